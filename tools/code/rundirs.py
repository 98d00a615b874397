"""Run directories: a fresh temp dir per run, removed after it, and the leftovers of a process that
was killed before it could remove its own, removed when the next process starts.

A run dir holds a lock file that its process keeps locked (flock) while the run lasts. The kernel
drops the lock when the process dies, however it dies: a `planner-sandbox-*` dir whose lock can be
taken belongs to no living process. A dir without a lock file is a leftover once it is older than a
minute (a dir being set up gets its lock within microseconds).
"""

import contextlib
import fcntl
import functools
import logging
import os
import shutil
import tempfile
import time

logger = logging.getLogger(__name__)

PREFIX = "planner-sandbox-"
_LOCK_NAME = ".owner.lock"
_UNLOCKED_GRACE_S = 60.0


def create() -> tuple[str, int]:
    """A new run dir and the descriptor that holds its lock; give both to `remove` after the run."""
    run_dir = tempfile.mkdtemp(prefix=PREFIX)
    try:
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
        owner = os.open(os.path.join(run_dir, _LOCK_NAME), flags, 0o600)
    except BaseException:
        _rmtree(run_dir)
        raise
    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else holds it
    return run_dir, owner


def remove(run_dir: str, owner: int) -> None:
    """Remove a run dir, then release its lock."""
    try:
        _rmtree(run_dir)
    finally:
        os.close(owner)


def _rmtree(run_dir: str) -> None:
    """Remove a dir even where the program left subdirectories it made unreadable."""
    if os.geteuid() != 0:
        for root, dirs, _ in os.walk(run_dir):
            for name in dirs:
                path = os.path.join(root, name)
                if not os.path.islink(path):  # never follow a link the program planted
                    with contextlib.suppress(OSError):
                        os.chmod(path, 0o700)
    shutil.rmtree(run_dir, ignore_errors=True)


def remove_leftovers(parent: str) -> list[str]:
    """Remove the run dirs in `parent` that no living process owns; return their paths."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError as exc:
        logger.warning("cannot look for leftover sandbox dirs in %s: %s", parent, exc)
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if _is_leftover(entry.path):
                _rmtree(entry.path)
                removed.append(entry.path)
        except OSError as exc:  # another user's dir, or gone meanwhile
            logger.debug("leaving %s: %s", entry.path, exc)
    if removed:
        logger.info("removed %d leftover sandbox dirs in %s", len(removed), parent)
    return removed


def _is_leftover(path: str) -> bool:
    try:
        lock = os.open(os.path.join(path, _LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return time.time() - os.stat(path).st_mtime > _UNLOCKED_GRACE_S
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its process is alive and running it
    finally:
        os.close(lock)
    return True


@functools.cache
def remove_leftovers_once(parent: str) -> None:
    """`remove_leftovers`, once per process and parent dir."""
    remove_leftovers(parent)
