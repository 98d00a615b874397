"""Which isolation this machine offers, probed once per process, and the command line for each tier.

bubblewrap  `bwrap` builds a new root holding only read-only binds of the system libraries and the
            interpreter, a private size-limited tmpfs as work dir, a fresh /proc, and new pid, net,
            ipc and uts namespaces (no network). A root server drops the program to SANDBOX_UID with
            setpriv *inside* the sandbox (never uid 0 there: root defeats RLIMIT_NPROC); a non-root
            server runs it under its own uid in a user namespace (`--unshare-all`).
unshare     `unshare` gives new pid (fresh /proc), net, ipc, uts and mount namespaces; setpriv drops to
            SANDBOX_UID. The host filesystem stays visible with that uid's permissions.
rlimits     a plain subprocess with resource limits: last resort, with a loud warning.

Every tier runs `python -I -S` with an empty environment, and the runner sets the rlimits.
"""

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from tools.code.models import TIERS, Tier

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


@dataclass(frozen=True)
class TierSetup:
    """How to start the sandboxed interpreter in one tier on this machine."""

    tier: Tier
    python: str  # interpreter path, valid inside the sandbox
    drop_to_uid: int | None  # SANDBOX_UID when the server is root, None to keep the server's uid
    warning: str | None = None  # a weakness of this setup that every result must carry


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
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError("bwrap")
    if setup.drop_to_uid is None:
        namespaces = ["--unshare-all"]
    else:
        # As root, --unshare-all would also make a user namespace that maps only uid 0, and setpriv
        # could not switch to SANDBOX_UID inside it. Every other namespace is unshared explicitly.
        namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args = [bwrap, *namespaces, "--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    args += _read_only_tree(setup.python)
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


def unshare_prefix(setup: TierSetup) -> list[str]:
    """The unshare command up to (not including) the interpreter."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FileNotFoundError("unshare")
    namespaces = ["--mount", "--net", "--pid", "--ipc", "--uts"]
    if setup.drop_to_uid is None:
        namespaces.insert(0, "--map-current-user")  # a non-root server needs a user namespace first
    args = [os.path.realpath(unshare), *namespaces, "--fork", "--kill-child", "--mount-proc"]
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
    return _python_args(setup.python)


def _candidate_setups(tier: Tier) -> list[TierSetup]:
    python = _interpreter()
    if tier == "bubblewrap":
        return [TierSetup("bubblewrap", python, SANDBOX_UID if _is_root() else None)]
    if tier == "unshare":
        if not _is_root():
            return [
                TierSetup(
                    "unshare",
                    python,
                    None,
                    warning=(
                        "the unshare sandbox runs the code as the server's own user: files that user "
                        "can read are readable by the code; install bubblewrap"
                    ),
                )
            ]
        # SANDBOX_UID must reach the interpreter on the host filesystem; the server's may sit in a
        # private home (pyenv under /root), so a system interpreter of the same version is next.
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        found = [python] + [p for p in (shutil.which(version), f"/usr/bin/{version}") if p]
        unique = list(dict.fromkeys(os.path.realpath(p) for p in found))
        return [TierSetup("unshare", p, SANDBOX_UID) for p in unique]
    warning = (
        "the code ran with resource limits only, without a bubblewrap or unshare sandbox: it could "
        "read the server's files, use the network and signal other processes"
    )
    if _is_root():
        warning += ", as root (the process limit does not hold for root)"
    return [TierSetup("rlimits", python, None, warning=warning + "; install bubblewrap")]


def _works(setup: TierSetup) -> bool:
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
            logger.info("sandbox tier %s is not available: %s", setup.tier, exc)
            return False
    if done.returncode != 0:
        logger.info(
            "sandbox tier %s does not work here (exit %s): %s",
            setup.tier,
            done.returncode,
            done.stderr.decode(errors="replace").strip()[-500:],
        )
        return False
    return True


_probe_lock = threading.Lock()
_probed: dict[Tier, TierSetup | None] = {}  # filled on first use, never at import


def probe(tier: Tier) -> TierSetup | None:
    """The working setup of `tier` on this machine, or None; probed once per process."""
    with _probe_lock:  # concurrent first runs wait for one probe instead of starting their own
        if tier not in _probed:
            _probed[tier] = _probe(tier)
        return _probed[tier]


def _probe(tier: Tier) -> TierSetup | None:
    if tier != "rlimits" and not sys.platform.startswith("linux"):
        return None
    for setup in _candidate_setups(tier):
        if _works(setup):
            logger.info("sandbox tier %s works with %s", tier, setup.python)
            return setup
    if tier == "rlimits":
        # Nothing weaker exists: keep the setup, and let a run that cannot start say so.
        return _candidate_setups("rlimits")[0]
    return None


def resolve(requested: Tier) -> TierSetup:
    """The strongest working tier that is not stronger than `requested`."""
    for tier in TIERS[TIERS.index(requested) :]:
        setup = probe(tier)
        if setup is not None:
            return setup
    raise AssertionError("unreachable: the rlimits tier always resolves")


def detect_tier() -> Tier:
    """The strongest isolation that works on this machine: "bubblewrap", "unshare" or "rlimits".

    Each tier is probed by actually starting a trivial sandboxed program (once per process; the
    answer is cached). bubblewrap needs the `bwrap` binary (`apt-get install bubblewrap`) and
    working namespaces; unshare needs util-linux `unshare` and `setpriv`. On macOS and other
    non-Linux systems neither exists, and the answer is always "rlimits": plain resource limits,
    which do not keep the code away from files, the network or other processes.
    """
    return resolve("bubblewrap").tier
