"""HTML (and other text bodies) to readable text: block elements on their own lines, scripts,
styles and navigation dropped, whitespace collapsed except inside <pre>.

Parsing is CPU work: callers run `extract_text` in a worker thread, off the shared event loop.
"""

import codecs
import re

import lxml.etree
import lxml.html

# Elements whose content is never readable page text.
_DROPPED_TAGS = ("script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "embed", "canvas")
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tr",
        "ul",
    ]
)
_CELL_TAGS = frozenset({"td", "th"})
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[^\S\n]+")


def html_fragment_text(fragment: str) -> str:
    """Plain text of a small HTML fragment (tags dropped, entities decoded, spaces collapsed)."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent=True)
    except (lxml.etree.ParserError, ValueError):
        return " ".join(fragment.split())
    return " ".join(root.text_content().split())


def extract_text(body: bytes, mime: str, charset: str | None) -> tuple[str | None, str]:
    """(title, readable text) of a downloaded body."""
    charset = _known_codec(charset)
    if mime in ("text/html", "application/xhtml+xml"):
        return html_to_text(body, charset)
    return None, body.decode(charset or "utf-8", errors="replace").strip()


def _known_codec(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def html_to_text(body: bytes, charset: str | None) -> tuple[str | None, str]:
    if not body.strip():
        return None, ""
    if charset is None:
        # No charset header: valid UTF-8 is UTF-8; otherwise let lxml read <meta charset>.
        try:
            body.decode("utf-8")
            charset = "utf-8"
        except UnicodeDecodeError:
            charset = None
    parser = lxml.html.HTMLParser(encoding=charset, remove_comments=True, remove_pis=True)
    try:
        doc = lxml.html.document_fromstring(body, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return None, ""
    title_el = doc.find("head/title")
    title = " ".join(title_el.text_content().split()) if title_el is not None else ""
    for el in list(doc.iter(*_DROPPED_TAGS)):
        el.drop_tree()
    body_el = doc.find("body")
    root = body_el if body_el is not None else doc
    return title or None, _readable_text(root)


def _readable_text(root: lxml.html.HtmlElement) -> str:
    """Text of `root`: block elements on their own lines, whitespace collapsed except inside <pre>."""
    parts: list[str] = []
    in_pre = 0

    def add(text: str | None) -> None:
        if text:
            # Source line breaks are plain spaces in HTML; only blocks (and <pre>) break lines.
            parts.append(text if in_pre else _WHITESPACE.sub(" ", text))

    # iterwalk instead of recursion: hostile pages can nest elements very deeply.
    for event, el in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            if tag == "pre":
                in_pre += 1
            add(el.text)
        else:
            if tag == "pre":
                in_pre -= 1
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            elif tag in _CELL_TAGS:
                parts.append(" ")
            if el is not root:
                add(el.tail)
    lines = ("".join(parts)).split("\n")
    collapsed = (_SPACES.sub(" ", line).strip() for line in lines)
    return "\n".join(line for line in collapsed if line)
