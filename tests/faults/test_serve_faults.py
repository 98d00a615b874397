"""`planner-mcp serve` over stdio with a store it cannot open: it still answers `initialize`, lists
its tools, and every tool call reports the problem (path, cause, fix); no traceback anywhere."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from tests.faults.stdio import StdioServer


def test_serve_with_an_unusable_store_answers_initialize_and_reports_it_on_every_tool_call(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite3").write_bytes(b"not a database\n" * 100)
    server = StdioServer(home)
    try:
        initialized = server.initialize()
        server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = server.response(2)
        first = server.call_tool(3, "list_runs", {})
        second = server.call_tool(4, "execute_plan", {"plan": {"steps": []}})
    finally:
        server.close()

    assert initialized["result"]["serverInfo"]["name"] == "planner-mcp"
    assert "list_runs" in {tool["name"] for tool in tools["result"]["tools"]}
    for answer in (first, second):
        assert answer["result"]["isError"] is True
        text = answer["result"]["content"][0]["text"]
        assert "not a planner-mcp run store" in text and str(home / "runs.sqlite3") in text
        assert "PLANNER_MCP_HOME" in text
    assert b"Traceback" not in server.stderr


def test_serve_with_a_store_from_a_newer_version_reports_it_instead_of_crashing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with closing(sqlite3.connect(home / "runs.sqlite3")) as db:
        db.execute("PRAGMA user_version = 999")
    server = StdioServer(home)
    try:
        server.initialize()
        answer = server.call_tool(2, "list_runs", {})
    finally:
        server.close()

    assert answer["result"]["isError"] is True
    assert "schema version 999" in answer["result"]["content"][0]["text"]
    assert b"Traceback" not in server.stderr
