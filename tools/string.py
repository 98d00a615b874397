"""Text tools for the string specialist: counting, case, reversing, replacing and joining.

Counts are of Unicode characters (code points). Tools that build text refuse results over
MAX_RESULT_CHARS, so a replace or join cannot blow up memory.
"""

import reprlib
import unicodedata
from typing import Annotated

from pydantic import Field

from tools.arguments import checked
from tools.errors import ToolError

MAX_RESULT_CHARS = 1_000_000

Text = Annotated[str, Field(description="The text to work on.")]


def _refuse_oversized(length: int) -> None:
    if length > MAX_RESULT_CHARS:
        raise ToolError(
            f"the result would be {length:,} characters, over the limit of {MAX_RESULT_CHARS:,}; work on a shorter text"
        )


@checked
def word_count(text: Text) -> int:
    """Count the words in text, split on whitespace ("Hello, world!" has 2 words).

    Punctuation counts as part of its word; empty text has 0 words.
    """
    return len(text.split())


@checked
def letter_count(
    text: Text,
    letter: Annotated[
        str | None,
        Field(description="One letter to count, case-insensitively (e.g. 'r'); omit it to count all letters."),
    ] = None,
) -> int:
    """Count the letters in text, or how often one given letter appears, ignoring case.

    Without `letter`: every alphabetic character; digits, spaces and punctuation are not letters
    ("Hello World!" has 10). With `letter`: occurrences of that one letter in either case
    (letter 'l' in "Hello World" gives 3).
    """
    # NFC so that an accented letter typed as letter + combining mark counts as the one letter it shows.
    content = unicodedata.normalize("NFC", text)
    if letter is None:
        return sum(1 for char in content if char.isalpha())
    wanted = unicodedata.normalize("NFC", letter)
    if len(wanted) != 1:
        raise ToolError(
            f"letter must be exactly one letter, got {reprlib.repr(letter)} ({len(wanted)} characters); pass a single "
            "letter such as 'r' (no quotes or spaces inside), omit letter to count all letters, "
            "or use count_substring for longer text"
        )
    if not wanted.isalpha():
        raise ToolError(
            f"letter must be a letter, got {letter!r}; to count digits, spaces or punctuation use count_substring"
        )
    target = wanted.casefold()
    return sum(1 for char in content if char.casefold() == target)


@checked
def char_count(text: Text) -> int:
    """Count every character in text, including spaces, digits and punctuation ("Hi there!" has 9)."""
    return len(text)


@checked
def reverse(text: Text) -> str:
    """Return text with its characters in reverse order ("abc" gives "cba")."""
    return text[::-1]


@checked
def upper(text: Text) -> str:
    """Return text in upper case ("Hello" gives "HELLO")."""
    return text.upper()


@checked
def lower(text: Text) -> str:
    """Return text in lower case ("Hello" gives "hello")."""
    return text.lower()


@checked
def replace(
    text: Text,
    old: Annotated[str, Field(min_length=1, description="The exact text to find (case-sensitive, not empty).")],
    new: Annotated[str, Field(description="The text to put in its place; may be empty to delete.")],
) -> str:
    """Replace every occurrence of `old` in text with `new` (case-sensitive).

    Returns the text unchanged when `old` does not occur.
    """
    occurrences = text.count(old)
    _refuse_oversized(len(text) + occurrences * (len(new) - len(old)))
    return text.replace(old, new)


@checked
def count_substring(
    text: Text,
    substring: Annotated[str, Field(min_length=1, description="The exact text to count (case-sensitive, not empty).")],
) -> int:
    """Count the non-overlapping occurrences of `substring` in text, case-sensitively.

    "aaaa" contains "aa" 2 times. For a single letter regardless of case use letter_count.
    """
    return text.count(substring)


@checked
def concat(
    parts: Annotated[list[str], Field(description="The strings to join, in order.")],
    separator: Annotated[str, Field(description="Text put between parts, e.g. ' ' or ', '.")] = "",
) -> str:
    """Join strings into one with `separator` between them (["a", "b"] with "-" gives "a-b").

    An empty list gives "".
    """
    _refuse_oversized(sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0))
    return separator.join(parts)
