"""Attacks on the code sandbox. Each test asserts the specific containment, then that the test
process (standing in for the server) is still healthy: alive, able to start processes, and able
to run the next program. With CI=true the strongest tier must be bubblewrap, so a missing install
fails loudly instead of skipping.
"""

import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.tools.test_code import sandbox_processes
from tools.code import ENV_TIER, PythonRun, Sandbox, SandboxLimits, detect_tier, tiers

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
        assert tier == "bubblewrap", "CI must run code under bubblewrap: apt-get install -y bubblewrap"
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
