"""Serving the MCP server: stdio (stdout carries only JSON-RPC; malformed lines get JSON-RPC errors)
or streamable HTTP behind the host guard, the bearer token and the session and body limits."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError

from agents.llm.select import select_llm
from planning.catalog import load_catalog
from planning.errors import UserFixableError
from planning.settings import Settings
from server.app import App
from server.http_auth import HostGuard, HttpSecurity, http_security
from server.http_limits import BodyDeadline, HttpLimits, SessionQuota, header_timeout_protocol
from server.mcp_server import build_server
from server.mcp_state import ServerState

logger = logging.getLogger(__name__)


def serve(
    settings: Settings,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Serve MCP over stdio (stdout carries only JSON-RPC) or streamable HTTP at http://HOST:PORT/mcp.

    Refuses to start (SystemExit with the reason) on an unsafe HTTP configuration or a bad LLM setting.
    """
    environ = os.environ if environ is None else environ
    try:
        security = http_security(host, environ) if transport == "http" else None
        limits = HttpLimits.from_env(environ)
        llm = select_llm(environ, settings.home)
        catalog = load_catalog(settings)
    except UserFixableError as exc:
        raise SystemExit(f"planner-mcp: {exc}") from None

    def factory(settings: Settings) -> App:
        return App.open(settings, llm=llm, catalog=catalog)

    server = build_server(settings, catalog=catalog, app_factory=factory, http=security)
    try:
        if security is None:
            if sys.stdin.isatty():
                _exit_soon_after_interrupt()
            anyio.run(run_stdio, server)
        else:
            _serve_http(server, security, limits, host, port)
    except KeyboardInterrupt:
        logger.info("stopped")
    finally:
        catalog.close()  # stops the MCP servers it started


def _exit_soon_after_interrupt(grace_s: float = 3.0) -> None:
    """Ctrl-C in a terminal stops the stdio server: the SDK reads stdin in a thread that sits in a
    blocking read until Enter, which would hold the exit. The shutdown gets `grace_s` (runs are
    cancelled and recorded), then the process ends; a run cut short is `interrupted`, never lost."""

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(grace_s, os._exit, args=(130,)).start()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_interrupt)


async def run_stdio(server: MCPServer[ServerState]) -> None:
    """Serve over stdio like `MCPServer.run_stdio_async`, except that a line that is no JSON-RPC
    message (malformed JSON, a batch, nesting too deep) gets an error reply with `id: null`
    (-32700 parse error or -32600 invalid request) and a log line, instead of silence."""
    lowlevel = server._lowlevel_server  # mcp 2.3 has no public way to run it on our own streams
    async with stdio_server() as (read_stream, write_stream):
        screened_send, screened = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def screen() -> None:
            async with screened_send:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        await write_stream.send(SessionMessage(_malformed_line_error(item)))
                        continue
                    await screened_send.send(item)

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(screen)
            await lowlevel.run(screened, write_stream, lowlevel.create_initialization_options())
            task_group.cancel_scope.cancel()


def _malformed_line_error(exc: Exception) -> JSONRPCError:
    invalid_json = any(e.get("type") == "json_invalid" for e in getattr(exc, "errors", lambda: [])())
    code, message = (PARSE_ERROR, "Parse error") if invalid_json else (INVALID_REQUEST, "Invalid Request")
    logger.warning("stdin: a line that is not a JSON-RPC message (%s); answered %d %s", str(exc)[:300], code, message)
    detail = "the line is not valid JSON" if invalid_json else "the line is not one JSON-RPC request or notification"
    return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=f"{message}: {detail}"))


def _serve_http(
    server: MCPServer[ServerState], security: HttpSecurity, limits: HttpLimits, host: str, port: int
) -> None:
    import uvicorn

    app = server.streamable_http_app(
        transport_security=security.transport_security(),
        host=host,
        session_idle_timeout=limits.session_idle_s,
        max_sessions=limits.max_sessions,
    )
    logger.warning(
        "serving MCP at http://%s:%d/mcp (%s)",
        host,
        port,
        "bearer token required" if security.token else "no token: loopback clients only",
    )
    # log_config=None: uvicorn logs through our stderr logging (its default config sends access logs to stdout).
    bounded = BodyDeadline(SessionQuota(app, limits), limits.read_timeout_s)
    config = uvicorn.Config(
        HostGuard(bounded, security.allowed_hosts),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        http=header_timeout_protocol(limits.read_timeout_s),
    )
    anyio.run(uvicorn.Server(config).serve)
