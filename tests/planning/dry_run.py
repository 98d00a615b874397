"""A Flyte dry run of one of our tasks, in a process of its own, for test_remote: writes the task spec
it would send to a cluster as protobuf bytes.

    python -m tests.planning.dry_run TASK REQUEST_JSON OUT_DIR

Its own process because Flyte parses task sources (`ast.parse`, for cache versions) on its loop
thread, and CPython 3.11.7's AST constructor is not thread-safe: inside pytest, which parses while
it imports, the two raced (SystemError "recursion depth mismatch") and once hung a CI run.
"""

import asyncio
import sys
from pathlib import Path

from planning import engine, flyte_env

SPEC_FILE = "task_spec.pb"


async def dry_run(task_name: str, request: str, out: Path) -> None:
    flyte = engine.flyte
    await flyte.init.aio(root_dir=flyte_env.PROJECT_ROOT, project="proj", domain="dev")
    runner = flyte.with_runcontext(mode="remote", dry_run=True, copy_bundle_to=out, version="vdry")
    run = await runner.run.aio(getattr(engine, task_name), request)
    (out / SPEC_FILE).write_bytes(run.task_spec.SerializeToString())  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(dry_run(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
