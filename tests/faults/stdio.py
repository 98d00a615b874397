"""`planner-mcp serve` (stdio) as a real subprocess, spoken to line by line in raw JSON-RPC."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.durability.harness import REPO_ROOT
from tests.faults.harness import BOUND_S, env

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "fault-test", "version": "0"},
    },
}


class StdioServer:
    """The server's stdout lines arrive on a queue (read by a thread), so every read is bounded."""

    def __init__(self, home: Path, **extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            cwd=REPO_ROOT,
            env=env(home, **extra),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stderr = bytearray()
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for chunk in self.process.stderr:
            self.stderr.extend(chunk)

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def receive(self, timeout_s: float = BOUND_S) -> dict[str, Any]:
        """The next message on stdout (every stdout line must be JSON)."""
        return json.loads(self.lines.get(timeout=timeout_s))

    def response(self, request_id: int | None, timeout_s: float = BOUND_S) -> dict[str, Any]:
        while True:
            message = self.receive(timeout_s)
            if message.get("id") == request_id and "method" not in message:
                return message

    def initialize(self) -> dict[str, Any]:
        self.send(INITIALIZE)
        answer = self.response(1)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    def call_tool(self, request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        )
        return self.response(request_id)

    def close(self) -> int:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=BOUND_S)
