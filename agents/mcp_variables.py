"""`${VAR}` in a servers.json entry: values read from planner-mcp's environment as the server starts,
so a token need not be written into the file, and never shown again.

`${VAR}` is the variable's value and `${VAR:-default}` the default where it is unset or empty (the
spelling MCP hosts document). An unset variable without a default is a `ServerVariableError` naming
the entry, the key and the variable (the server is unavailable with that reason; others are not).
Every value read is a secret: `Redactor` turns it back into `${VAR}` in any text bound for a log
or an error message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ServerVariableError(ValueError):
    """An entry uses a variable that is not set; the message names the entry, the key and the variable."""


class Redactor(logging.Filter):
    """The values read from variables, and text with each of them written back as `${VAR}`.

    As a logging filter (on the loggers of the HTTP client, which log request URLs) it rewrites the
    records' messages the same way."""

    def __init__(self) -> None:
        super().__init__()
        # Replaced whole (never changed in place): log records of any thread read it while a server starts.
        self._secrets: tuple[tuple[str, str], ...] = ()
        self._lock = threading.Lock()

    def add(self, value: str, variable: str) -> None:
        if not value:
            return
        with self._lock:
            known = dict(self._secrets) | {value: f"${{{variable}}}"}
            # Longest first: a secret may contain a shorter one.
            self._secrets = tuple(sorted(known.items(), key=lambda item: len(item[0]), reverse=True))

    def redact(self, text: str) -> str:
        for value, variable in self._secrets:
            text = text.replace(value, variable)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def expand(server: str, key: str, value: str, environ: Mapping[str, str], redactor: Redactor) -> str:
    """`value` with each `${VAR}` (or `${VAR:-default}`) replaced from `environ`; the values read go to
    `redactor`. `key` names where the value stands in the entry (`headers['Authorization']`)."""

    def replace(match: re.Match[str]) -> str:
        variable, default = match.group(1), match.group(2)
        found = environ.get(variable)
        if found is not None and (found or default is None):  # set; empty counts as unset before a default
            redactor.add(found, variable)
            return found
        if default is not None:
            return default
        raise ServerVariableError(
            f"the entry {server!r} uses ${{{variable}}} in {key}, and {variable} is not set in planner-mcp's "
            f"environment; set it where planner-mcp starts, or write ${{{variable}:-default}}"
        )

    return VARIABLE.sub(replace, value)
