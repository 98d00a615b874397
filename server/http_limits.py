"""Bounds of the streamable-HTTP transport: sessions, slow clients, flooding clients.

- Sessions end after PLANNER_MCP_HTTP_SESSION_IDLE_S (default 300 s) with no request in flight
  (the SDK's idle timeout); at most PLANNER_MCP_HTTP_MAX_SESSIONS (default 256) are open at once.
- One client (its address and credential) keeps at most PLANNER_MCP_HTTP_SESSIONS_PER_CLIENT
  (default 16) sessions: a new one ends that client's least useful session (one that never went
  beyond `initialize`, else its least recently used), so a client opening sessions in a loop only
  ever replaces its own and cannot fill the server for everyone else.
- A request's headers must arrive within PLANNER_MCP_HTTP_READ_TIMEOUT_S (default 10 s) of the
  connection opening (or of the previous response), and its body within that time of the headers;
  otherwise the connection is closed (headers) or the request ends with 408 (body).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from planning.errors import UserFixableError

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
# A session that has seen no more than this many requests did nothing beyond initializing.
_OPENING_REQUESTS = 2


class HttpLimitsError(UserFixableError, ValueError):
    """A PLANNER_MCP_HTTP_* setting is not a valid number; the message names it."""


@dataclass(frozen=True)
class HttpLimits:
    session_idle_s: float = 300.0
    max_sessions: int = 256
    sessions_per_client: int = 16
    read_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HttpLimits:
        values: dict[str, Any] = {}
        for name, variable, kind in (
            ("session_idle_s", "PLANNER_MCP_HTTP_SESSION_IDLE_S", float),
            ("max_sessions", "PLANNER_MCP_HTTP_MAX_SESSIONS", int),
            ("sessions_per_client", "PLANNER_MCP_HTTP_SESSIONS_PER_CLIENT", int),
            ("read_timeout_s", "PLANNER_MCP_HTTP_READ_TIMEOUT_S", float),
        ):
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                value = kind(text)
            except ValueError:
                value = 0
            if not 0 < value < 10**9:
                raise HttpLimitsError(f"{variable}={text!r:.40} must be a number above 0; fix or unset it")
            values[name] = value
        return cls(**values)


@dataclass
class _Session:
    client: str
    headers: list[tuple[bytes, bytes]]  # of the opening request: what a DELETE for it needs
    last_seen: float = field(default_factory=time.monotonic)
    requests: int = 1


class SessionQuota:
    """ASGI middleware: at most `limits.sessions_per_client` MCP sessions per client (see the module)."""

    def __init__(self, app: ASGIApp, limits: HttpLimits, path: str = "/mcp") -> None:
        self.app = app
        self.limits = limits
        self.path = path
        self.sessions: dict[str, _Session] = {}
        self._lock = anyio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session_id = headers.get(SESSION_HEADER)
        if session_id is not None:
            await self._existing(session_id, scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        client = _client_key(scope, headers)
        async with self._lock:
            self._forget_expired()
            mine = {sid: s for sid, s in self.sessions.items() if s.client == client}
            victim = _least_useful(mine) if len(mine) >= self.limits.sessions_per_client else None
            if victim is not None:
                self.sessions.pop(victim)
        if victim is not None:
            logger.warning(
                "client %s has %d open sessions (PLANNER_MCP_HTTP_SESSIONS_PER_CLIENT); ending its session %s",
                client.split("|")[0],
                len(mine),
                victim[:12],
            )
            await self._end(victim, mine[victim], scope)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                opened = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
                if opened is not None and message["status"] < 400:
                    self.sessions[opened] = _Session(client=client, headers=list(scope["headers"]))
            await send(message)

        await self.app(scope, receive, watch)

    async def _existing(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.requests += 1
            session.last_seen = time.monotonic()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 404:
                self.sessions.pop(session_id, None)
            await send(message)

        await self.app(scope, receive, watch)
        if scope["method"] == "DELETE":
            self.sessions.pop(session_id, None)
        elif session is not None:
            session.last_seen = time.monotonic()

    def _forget_expired(self) -> None:
        """Sessions the SDK has ended for idleness (it counts from a request's end; this from its
        start, so a long request may be forgotten early: the quota errs towards admitting)."""
        horizon = time.monotonic() - self.limits.session_idle_s
        for session_id in [sid for sid, s in self.sessions.items() if s.last_seen < horizon]:
            del self.sessions[session_id]

    async def _end(self, session_id: str, session: _Session, scope: Scope) -> None:
        """End a session through the transport itself: a DELETE with its opening credentials."""
        headers = [(k, v) for k, v in session.headers if k not in (b"content-length", b"content-type")]
        headers.append((SESSION_HEADER.encode(), session_id.encode()))
        delete: Scope = {**scope, "method": "DELETE", "headers": headers, "query_string": b""}
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async def discard(message: Message) -> None:
            return None

        with anyio.move_on_after(self.limits.read_timeout_s):
            await self.app(delete, receive, discard)


def _client_key(scope: Scope, headers: Headers) -> str:
    host = (scope.get("client") or ("unknown", 0))[0]
    credential = headers.get("authorization", "")
    return f"{host}|{hashlib.sha256(credential.encode()).hexdigest()[:16]}"


def _least_useful(sessions: dict[str, _Session]) -> str | None:
    if not sessions:
        return None
    return min(sessions, key=lambda sid: (sessions[sid].requests > _OPENING_REQUESTS, sessions[sid].last_seen))


class BodyDeadline:
    """ASGI middleware: a request body must arrive within `timeout_s` of its headers, else 408.

    Only the body is bounded: once it is complete, waiting on `receive` (a disconnect, an open
    SSE stream) is left alone."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.timeout_s
        body_done = False
        timed_out = False
        started = False
        request = anyio.CancelScope()

        async def bounded() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()):
                message = await receive()
                body_done = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            # The handler never sees the half body: the request is cancelled and answered 408.
            timed_out = True
            request.cancel()
            await anyio.sleep_forever()
            raise AssertionError("unreachable: the request was cancelled")

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with request:
            await self.app(scope, bounded, tracking)
        if timed_out:
            logger.warning("a request body did not arrive within %g s; answered 408", self.timeout_s)
            if not started:
                response = PlainTextResponse("Request body too slow", status_code=408, headers={"connection": "close"})
                await response(scope, receive, send)


def header_timeout_protocol(timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers take over `timeout_s`."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: Any = None
        _header_cycle: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_cycle = self.cycle
            self._header_timer = self.loop.call_later(timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._header_cycle:  # a new request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is self._header_cycle and not self.transport.is_closing():
                logger.warning("closing a connection whose request headers took over %g s", timeout_s)
                self.transport.close()

    return HeaderTimeoutProtocol
