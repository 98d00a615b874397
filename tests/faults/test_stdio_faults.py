"""Malformed input on `planner-mcp serve`'s stdin: every bad line gets a JSON-RPC error with `id: null`
and a log line, protocol errors carry the spec's codes, and the server keeps answering."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from tests.faults.stdio import StdioServer

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602


def test_malformed_lines_get_parse_or_invalid_request_errors_and_the_server_keeps_answering(tmp_path: Path) -> None:
    server = StdioServer(tmp_path / "home")
    try:
        initialized = server.initialize()
        answers = []
        for line in (b"{not json\n", b'[{"jsonrpc": "2.0", "id": 7, "method": "ping"}]\n', b"[" * 1000 + b"\n"):
            server.send_raw(line)
            answers.append(server.response(None))
        server.send({"jsonrpc": "2.0", "id": 9, "method": "ping"})
        pong = server.response(9)
    finally:
        server.close()

    assert initialized["result"]["serverInfo"]["version"] == version("planner-mcp")
    assert [a["error"]["code"] for a in answers] == [PARSE_ERROR, INVALID_REQUEST, PARSE_ERROR]
    assert all(a["id"] is None for a in answers)
    assert pong["result"] == {}
    assert server.stderr.count(b"not a JSON-RPC message") == 3
    assert b"Traceback" not in server.stderr


def test_prompt_errors_carry_the_invalid_params_code(tmp_path: Path) -> None:
    server = StdioServer(tmp_path / "home")
    try:
        server.initialize()
        requests = [
            {"name": "no_such_prompt", "arguments": {}},
            {"name": "plan_and_execute", "arguments": {}},  # `request` is required
        ]
        answers = []
        for number, params in enumerate(requests, start=2):
            server.send({"jsonrpc": "2.0", "id": number, "method": "prompts/get", "params": params})
            answers.append(server.response(number))
    finally:
        server.close()

    assert [a["error"]["code"] for a in answers] == [INVALID_PARAMS, INVALID_PARAMS]
    assert "no_such_prompt" in answers[0]["error"]["message"]
    assert b"Traceback" not in server.stderr
