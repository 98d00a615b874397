"""A fault-injecting OpenAI-compatible server on 127.0.0.1, spoken to over real TCP.

Each request to POST /v1/chat/completions takes the next behaviour from a script (then the last one
forever): a chat completion with given content, an HTTP status, an HTML page with status 200, a
body cut off mid-way, a connection reset, or a hang. Raw sockets, so every fault is exactly what
goes over the wire; every request is counted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Behaviour:
    kind: str  # chat | status | html | truncated | reset | hang
    content: str = ""
    status: int = 200


def chat(content: str | Mapping[str, object]) -> Behaviour:
    return Behaviour("chat", content if isinstance(content, str) else json.dumps(content))


def status(code: int) -> Behaviour:
    return Behaviour("status", status=code)


HTML = Behaviour("html")
TRUNCATED = Behaviour("truncated")
RESET = Behaviour("reset")
HANG = Behaviour("hang")


@dataclass
class FakeLLM:
    url: str
    script: list[Behaviour]
    requests: list[dict[str, object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, body: dict[str, object]) -> Behaviour:
        with self._lock:
            self.requests.append(body)
            index = min(len(self.requests), len(self.script)) - 1
            return self.script[index]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


def _completion(content: str) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1,
        "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    return json.dumps(body).encode()


def _response(code: int, body: bytes, content_type: str, *, length: int | None = None, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {code} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body) if length is None else length}"
        f"\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


def _read_request(conn: socket.socket) -> dict[str, object]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return {}
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    try:
        return json.loads(body)
    except ValueError:
        return {}


def _serve_one(fake: FakeLLM, conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        behaviour = fake.next(_read_request(conn))
        if behaviour.kind == "chat":
            conn.sendall(_response(200, _completion(behaviour.content), "application/json"))
        elif behaviour.kind == "status":
            error = json.dumps({"error": {"message": f"injected {behaviour.status}", "type": "fault"}}).encode()
            conn.sendall(_response(behaviour.status, error, "application/json", extra="retry-after-ms: 10\r\n"))
        elif behaviour.kind == "html":
            conn.sendall(_response(200, b"<html><body>Proxy login required</body></html>", "text/html"))
        elif behaviour.kind == "truncated":
            body = _completion("x")
            conn.sendall(_response(200, body[: len(body) // 2], "application/json", length=len(body)))
        elif behaviour.kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif behaviour.kind == "hang":
            stop.wait()


@contextmanager
def fake_llm(script: Sequence[Behaviour]) -> Iterator[FakeLLM]:
    """Serve `script` on 127.0.0.1 until the block ends (hanging connections are released then)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    fake = FakeLLM(url=f"http://127.0.0.1:{listener.getsockname()[1]}/v1", script=list(script))
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_one, args=(fake, conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(timeout=5)
