"""Hostile HTTP clients against a real `planner-mcp serve --transport http` process: a Host header
that only starts like an allowed one, headers and bodies sent too slowly, a client opening sessions
in a loop, sessions left idle. Each is bounded; the server keeps serving everyone else."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.durability.harness import REPO_ROOT
from tests.faults.harness import BOUND_S, env
from tests.faults.stdio import INITIALIZE

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
PER_CLIENT = 3
READ_TIMEOUT_S = 1
IDLE_S = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpServer:
    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.stderr = bytearray()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=env(
                home,
                PLANNER_MCP_HTTP_SESSIONS_PER_CLIENT=str(PER_CLIENT),
                PLANNER_MCP_HTTP_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
                PLANNER_MCP_HTTP_SESSION_IDLE_S=str(IDLE_S),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + BOUND_S
        while True:  # bounded wait for the port to accept connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(f"the server did not start: {self.stderr.decode(errors='replace')}") from None
                time.sleep(0.05)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for chunk in self.process.stderr:
            self.stderr.extend(chunk)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=BOUND_S)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    running = HttpServer(tmp_path_factory.mktemp("http") / "home")
    yield running
    running.stop()
    assert b"Traceback" not in running.stderr


def open_session(client: httpx.Client, url: str) -> str:
    answer = client.post(url, json=INITIALIZE, headers=ACCEPT)
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    notified = client.post(
        url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={**ACCEPT, "mcp-session-id": session},
    )
    assert notified.status_code == 202
    return session


def list_tools(client: httpx.Client, url: str, session: str) -> int:
    return client.post(
        url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        headers={**ACCEPT, "mcp-session-id": session},
    ).status_code


def test_a_host_that_only_starts_like_an_allowed_one_is_refused(server: HttpServer) -> None:
    with httpx.Client(timeout=BOUND_S) as client:
        for host in ("localhost:1@evil", "127.0.0.1:80.evil.com", "localhost:", "localhost:99999"):
            answer = client.post(server.url, json=INITIALIZE, headers={**ACCEPT, "host": host})
            assert answer.status_code == 421, host
        assert client.post(server.url, json=INITIALIZE, headers={**ACCEPT, "host": "localhost:8000"}).status_code == 200


def test_headers_sent_too_slowly_get_the_connection_closed(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND_S) as sock:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        assert sock.recv(1024) == b""  # closed by the server, well before BOUND_S


def test_a_body_sent_too_slowly_ends_the_request(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=BOUND_S) as sock:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Length: 500\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"jsonrpc": "2.0",')  # and never the rest of the body
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer == b"" or answer.split(b" ")[1] in (b"400", b"408"), answer[:200]


def test_a_client_opening_sessions_in_a_loop_only_replaces_its_own_idle_ones(server: HttpServer) -> None:
    with httpx.Client(timeout=BOUND_S) as client:
        busy = open_session(client, server.url)
        assert list_tools(client, server.url, busy) == 200
        flood = [client.post(server.url, json=INITIALIZE, headers=ACCEPT) for _ in range(40)]
        assert {answer.status_code for answer in flood} == {200}  # nobody is refused
        # The session in use survived; the flood's own first sessions were ended.
        assert list_tools(client, server.url, busy) == 200
        first = flood[0].headers["mcp-session-id"]
        assert list_tools(client, server.url, first) == 404


def test_an_idle_session_ends_after_the_configured_idle_time(server: HttpServer) -> None:
    with httpx.Client(timeout=BOUND_S) as client:
        session = open_session(client, server.url)
        assert list_tools(client, server.url, session) == 200
        # Idleness is the absence of requests: any probe of the session would renew it, so this
        # waits out twice the idle time once and then looks.
        time.sleep(2 * IDLE_S)
        assert list_tools(client, server.url, session) == 404
