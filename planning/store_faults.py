"""What can go wrong with the run store's file, each fault as one line naming the path, the cause
and the fix (StoreUnavailableError), and the store's other errors.

Faults of the file or its disk (full, read-only, not a database, damaged, owned by another user, a
data directory that cannot exist) become StoreUnavailableError; `planning.store` raises them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from planning.errors import UserFixableError


class StoreError(UserFixableError):
    """Base of the run store's errors."""


class StoreUnavailableError(StoreError):
    """The store cannot be opened, read or written; the message names the path, the cause and the fix.

    `disk_full` tells a run that hit it to stop and record why (once space is free, resume it)."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


_MOVE_HOME = "or set PLANNER_MCP_HOME to another directory"
# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26


def store_fault(path: Path, exc: sqlite3.Error | OSError) -> StoreUnavailableError:
    """A SQLite or filesystem error on the store at `path` as one line: path, cause and fix."""
    where = str(path)
    if isinstance(exc, OSError):
        cause = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            return StoreUnavailableError(
                f"{where}: no space left on the device ({cause}); free space there {_MOVE_HOME}", disk_full=True
            )
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StoreUnavailableError(f"{where}: cannot write there ({cause}); make it writable {_MOVE_HOME}")
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            return StoreUnavailableError(
                f"{where}: a file is in the way of the data directory ({cause}: {exc.filename}); "
                f"move that file away {_MOVE_HOME}"
            )
        if exc.errno == errno.ENOENT:
            return StoreUnavailableError(
                f"{where}: the data directory cannot be created there ({cause}); {_MOVE_HOME[3:]}"
            )
        return StoreUnavailableError(f"{where}: {cause}; check the disk and its permissions {_MOVE_HOME}")
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    cause = str(exc)
    if code == _SQLITE_FULL or "disk is full" in cause:
        return StoreUnavailableError(
            f"{where}: the disk is full ({cause}); free space on it (then resume unfinished runs) {_MOVE_HOME}",
            disk_full=True,
        )
    if code == _SQLITE_IOERR:
        return StoreUnavailableError(
            f"{where}: the disk failed a read or write ({cause}: full, read-only, a file size limit or failing "
            f"hardware); fix the disk (then resume unfinished runs) {_MOVE_HOME}",
            disk_full=True,
        )
    if code == _SQLITE_READONLY:
        return StoreUnavailableError(
            f"{where}: the store is read-only ({cause}); make the file and its directory writable {_MOVE_HOME}"
        )
    if code == _SQLITE_NOTADB:
        return StoreUnavailableError(f"{where}: not a planner-mcp run store ({cause}); move the file away {_MOVE_HOME}")
    if code == _SQLITE_CORRUPT:
        return StoreUnavailableError(
            f"{where}: the store is damaged ({cause}); move it away (or restore a copy) {_MOVE_HOME}"
        )
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreUnavailableError(f"{where}: locked by another program ({cause}); close it, or wait and retry")
    if code in (_SQLITE_CANTOPEN, _SQLITE_PERM):
        return StoreUnavailableError(
            f"{where}: cannot open the store ({cause}); check that its directory exists and is writable {_MOVE_HOME}"
        )
    return StoreUnavailableError(f"{where}: the store failed ({cause}); check the file and its disk {_MOVE_HOME}")


class RunNotFoundError(StoreError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r:.80}; call list_runs (or `planner-mcp runs`) for the ids")


class BadCursorError(StoreError, ValueError):
    def __init__(self, cursor: str) -> None:
        super().__init__(f"cursor {cursor!r:.60} is not one this store handed out; pass next_cursor from the last page")


def check_owner(path: Path) -> None:
    """Refuse a store file of another user: writing it would leave files that user cannot open."""
    try:
        owner = path.stat().st_uid
    except FileNotFoundError:
        return
    if owner != os.geteuid():
        raise StoreUnavailableError(
            f"{path}: owned by another user (uid {owner}, you are uid {os.geteuid()}); run planner-mcp as that "
            f"user {_MOVE_HOME} of your own"
        )
