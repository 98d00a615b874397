from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_flyte_local_run_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Runs in tests do not record themselves in Flyte's local run store (~/.flyte, shared by every
    process on the machine); the tests of that feature turn it on with a private HOME.

    Child processes (a CLI, a served planner-mcp) get an environment without PLANNER_MCP_*, so
    they record their runs as a user's would: in a HOME of the test's own, under pytest's tmp dir."""
    monkeypatch.setenv("PLANNER_MCP_FLYTE_LOCAL_PERSISTENCE", "false")
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    yield
