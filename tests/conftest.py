from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_flyte_local_run_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Runs in tests do not record themselves in Flyte's local run store (~/.flyte, shared by every
    process on the machine); the tests of that feature turn it on with a private HOME."""
    monkeypatch.setenv("PLANNER_MCP_FLYTE_LOCAL_PERSISTENCE", "false")
    yield
