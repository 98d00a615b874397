"""Store and data-dir faults through the real CLI: each gives one line naming the path, the cause and
the fix (PLANNER_MCP_HOME for the place), exit 1, and never a traceback. Full and read-only disks are
real: a tmpfs mounted in a private mount namespace (`unshare`); those tests skip where the kernel
allows no namespace."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from tests.durability.harness import REPO_ROOT
from tests.faults.harness import BOUND_S, cli, env, integrity, one_error_line


def runs(home: Path) -> subprocess.CompletedProcess[str]:
    return cli(home, "runs")


def make_store(home: Path) -> Path:
    """A healthy store with one finished run (a tool-step plan)."""
    plan = home.parent / "plan.json"
    plan.write_text(json.dumps({"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}}]}))
    ran = cli(home, "run", "--plan", str(plan))
    assert ran.returncode == 0, ran.stderr
    return home / "runs.sqlite3"


def test_a_file_that_is_not_a_store_is_named_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite3").write_bytes(b"this is a text file, not SQLite\n" * 200)

    listed = runs(home)

    line = one_error_line(listed.stderr)
    assert listed.returncode == 1
    assert str(home / "runs.sqlite3") in line and "not a planner-mcp run store" in line
    assert "PLANNER_MCP_HOME" in line


def test_a_damaged_store_is_named_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = make_store(home)
    with closing(sqlite3.connect(db)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[4096 : len(data)] = b"\xff" * (len(data) - 4096)  # every page after the header page
    db.write_bytes(bytes(data))

    listed = runs(home)

    line = one_error_line(listed.stderr)
    assert listed.returncode == 1
    assert str(db) in line
    assert "damaged" in line or "not a planner-mcp run store" in line


def test_a_store_from_a_newer_planner_mcp_is_refused_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = make_store(home)
    with closing(sqlite3.connect(db)) as connection:
        connection.execute("PRAGMA user_version = 999")

    listed = runs(home)

    line = one_error_line(listed.stderr)
    assert "schema version 999" in line and "upgrade planner-mcp" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_store_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = make_store(home)
    for path in home.glob("runs.sqlite3*"):
        os.chown(path, 65534, 65534)

    listed = runs(home)

    line = one_error_line(listed.stderr)
    assert str(db) in line and "owned by another user (uid 65534" in line
    assert db.stat().st_uid == 65534  # nothing of it was taken over


def test_a_data_dir_under_a_file_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")

    listed = runs(blocker / "home")

    line = one_error_line(listed.stderr)
    assert listed.returncode == 1
    assert "a file is in the way" in line and "PLANNER_MCP_HOME" in line


def test_a_data_dir_in_proc_names_the_variable() -> None:
    listed = runs(Path("/proc/planner-mcp-home"))

    line = one_error_line(listed.stderr)
    assert listed.returncode == 1
    assert "/proc/planner-mcp-home" in line and "PLANNER_MCP_HOME" in line


# -- real full and read-only filesystems ---------------------------------------------------------


def _namespace_prefix() -> list[str] | None:
    """A command prefix giving a private mount namespace where tmpfs can be mounted, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ([unshare, "--mount"], [unshare, "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, timeout=30
        )
        if probe.returncode == 0:
            return prefix
    return None


NAMESPACE = _namespace_prefix()
needs_namespace = pytest.mark.skipif(NAMESPACE is None, reason="no mount namespace available for a real tmpfs")


def in_tmpfs(home: Path, size: str, script: str, extra_env: dict[str, str] | None = None) -> str:
    """Run a shell `script` (with $CLI = the planner-mcp command) with `home` a tmpfs of `size`."""
    assert NAMESPACE is not None
    home.mkdir(parents=True, exist_ok=True)
    prelude = f"set -u\nmount -t tmpfs -o size={size},mode=0755 tmpfs {home}\nCLI='{sys.executable} -m server.cli'\n"
    done = subprocess.run(
        [*NAMESPACE, "bash", "-c", prelude + textwrap.dedent(script)],
        cwd=REPO_ROOT,
        env=env(home, **(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=BOUND_S * 3,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_namespace
def test_a_full_disk_at_open_is_named_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "out"
    out.mkdir()
    in_tmpfs(
        home,
        "64k",
        f"""
        head -c 1M /dev/zero > {home}/filler 2>/dev/null || true
        $CLI runs > {out}/stdout 2> {out}/stderr; echo $? > {out}/rc
        """,
    )

    line = one_error_line((out / "stderr").read_text())
    assert (out / "rc").read_text().strip() == "1"
    assert str(home / "runs.sqlite3") in line and "full" in line and "PLANNER_MCP_HOME" in line


@needs_namespace
def test_a_read_only_data_dir_is_named_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "out"
    out.mkdir()
    in_tmpfs(
        home,
        "4m",
        f"""
        mount -o remount,ro {home}
        $CLI runs > {out}/stdout 2> {out}/stderr; echo $? > {out}/rc
        """,
    )

    line = one_error_line((out / "stderr").read_text())
    assert (out / "rc").read_text().strip() == "1"
    assert str(home / "runs.sqlite3") in line and "PLANNER_MCP_HOME" in line
    assert "read-only" in line.lower() or "cannot" in line.lower()


@needs_namespace
def test_a_disk_that_fills_mid_run_records_why_leaves_no_step_running_and_resumes_once_freed(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    out = tmp_path / "out"
    out.mkdir()
    # Each step's result is 200 KB (the `blob` tool); the tmpfs has room for the store and a few.
    plan = {
        "steps": [
            {"id": i, "agent": "blob", "tool": "blob", "args": {"kib": 200, "seed": i}, "depends_on": [i - 1]}
            for i in range(2, 13)
        ]
    }
    plan["steps"].insert(0, {"id": 1, "agent": "blob", "tool": "blob", "args": {"kib": 200, "seed": 1}})
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    in_tmpfs(
        home,
        "1500k",
        f"""
        $CLI run --plan {tmp_path}/plan.json > {out}/run.stdout 2> {out}/run.stderr; echo $? > {out}/run.rc
        $CLI runs --limit 1 > {out}/runs.stdout 2>&1
        id=$(python3 -c "import sqlite3; print(sqlite3.connect('file:{home}/runs.sqlite3?mode=ro', uri=True).execute('select id from runs').fetchone()[0])")
        $CLI show "$id" --json > {out}/failed.json 2> {out}/show.stderr
        mount -o remount,size=64m {home}
        $CLI resume "$id" --json > {out}/resumed.json 2> {out}/resume.stderr; echo $? > {out}/resume.rc
        cp {home}/runs.sqlite3 {out}/
        """,
        {"PLANNER_MCP_CATALOG": "tests.faults.fault_catalog:build"},
    )

    stderr = (out / "run.stderr").read_text()
    assert "Traceback" not in stderr and "TaskGroup" not in stderr, stderr
    assert (out / "run.rc").read_text().strip() == "1"
    failed = json.loads((out / "failed.json").read_text())
    assert failed["status"] == "failed"
    assert "full" in failed["error"] and "Resume it" in failed["error"]
    statuses = [s["status"] for s in failed["steps"]]
    assert "running" not in statuses
    assert "succeeded" in statuses and "pending" in statuses  # it stopped part-way, keeping what finished
    done_before = {s["id"]: s["attempts"] for s in failed["steps"] if s["status"] == "succeeded"}

    assert (out / "resume.rc").read_text().strip() == "0", (out / "resume.stderr").read_text()
    resumed = json.loads((out / "resumed.json").read_text())
    assert resumed["status"] == "succeeded"
    assert {s["id"]: s["attempts"] for s in resumed["steps"] if s["id"] in done_before} == done_before
    assert integrity(out / "runs.sqlite3") == "ok"
