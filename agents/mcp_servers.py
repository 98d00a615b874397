"""Specialists from MCP servers: each entry of a `servers.json` becomes an agent whose tools are that
server's tools, called over one client session per server.

The file has the shape MCP hosts already use, plus a few keys of ours:

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {}, "description": "Clock and time zones"},
        "docs": {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}}}}

`${VAR}` in `command`, `args`, `cwd`, `env`, `headers` and `url` is read from planner-mcp's environment as
the server starts (agents.mcp_variables); the values never appear in our log or error messages.

Sessions are bound to the event loop that opened them, while steps run on Flyte's loop, the MCP
server's loop or a CLI's. So every session lives on one loop of its own, in a thread owned by
`McpServers`, and calls from any loop are handed to it (`asyncio.run_coroutine_threadsafe`);
cancelling a call's caller cancels the call there. A session is opened at startup (or, with
`"start": "lazy"`, after the tools were listed, on the first call), shared by concurrent calls,
reopened after the server crashed (with backoff) and closed by `McpServers.close()`. A server that
could not start or list its tools is an unavailable agent that the next step needing it revives
(`AgentSpec.revive`: start it and list its tools again, after the same backoff). Before a call
to a stdio server a ping checks that it still lives, so a server that died while idle is restarted
before the call is sent rather than failing it.

A stdio server's environment is only what its entry lists, plus PATH and the few login variables the
MCP SDK always passes (HOME, USER, LOGNAME, SHELL, TERM): none of planner-mcp's keys or settings.
Its stderr goes to our log, line by line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import CallToolResult, TextContent, Tool
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from agents.mcp_variables import Redactor, ServerVariableError, expand
from planning.catalog import AgentSpec, CatalogFactoryError, ToolSpec
from planning.tool_schema import ToolSchemaError
from tools.errors import ToolError, ToolUnavailableError, TransientToolError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# The connection-closed code of JSON-RPC implementations (the MCP SDK's CONNECTION_CLOSED).
_CONNECTION_CLOSED = -32000
# An agent's name is also part of an MCP tool name (`<name>_agent`) and of Mermaid charts.
AGENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,47}")
_MAX_MESSAGE = 2_000
_BACKOFF_START_S = 1.0
_BACKOFF_MAX_S = 60.0
# The HTTP client's loggers, which write request URLs (a `${VAR}` in "url" may be a key).
_URL_LOGGERS = ("httpx", "httpx2", "mcp.client.streamable_http")


class ServersConfigError(CatalogFactoryError):
    """`PLANNER_MCP_SERVERS` names a file that cannot be used; the message says why and how to fix it."""


class ServerEntry(BaseModel):
    """One `mcpServers` entry: how to reach the server (stdio or streamable HTTP) and how to use it."""

    model_config = ConfigDict(extra="ignore")  # hosts add their own keys ("type", "autoApprove", ...)

    command: str | None = Field(default=None, description="stdio: the program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: its whole environment (plus PATH).")
    cwd: str | None = Field(default=None, description="stdio: its working directory.")
    url: str | None = Field(default=None, description="Streamable HTTP: the endpoint, e.g. http://127.0.0.1:9000/mcp.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Streamable HTTP: headers sent with each request."
    )
    disabled: bool = Field(default=False, description="Leave the server out.")
    description: str | None = Field(default=None, description="What the agent is for (the planner reads it).")
    instructions: str = Field(default="", description="Extra instructions for the agent's LLM.")
    allowed_tools: list[str] | None = Field(default=None, description="Only these tools (default: all).")
    start: Literal["startup", "lazy"] = Field(
        default="startup",
        description="`startup`: keep a session open from the start. `lazy`: list the tools at start, then "
        "stop the server until the first call.",
    )
    on_cluster: bool = Field(
        default=False,
        description="stdio: the command is installed in the Flyte task image, so cluster runs may use the "
        "server (each task pod starts its own). Without this, plans using it run only locally.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Longest wait for one tool call.")
    startup_timeout_s: float = Field(default=30.0, gt=0, description="Longest wait for the server to start.")
    max_concurrency: int = Field(default=4, ge=1, description="Steps of this agent running at once.")
    read_only_tools: list[str] = Field(default_factory=list, description="Tools to treat as read-only.")
    destructive_tools: list[str] = Field(default_factory=list, description="Tools to treat as destructive.")
    allow_destructive: bool | list[str] = Field(
        default=False,
        description="Destructive tools the planner and the agent's LLM may call (true: all). Without this, "
        "only plans written by a person call them.",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> ServerEntry:
        if (self.command is None) == (self.url is None):
            raise ValueError('give either "command" (a stdio server) or "url" (a streamable HTTP server)')
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def expanded(self, name: str, environ: Mapping[str, str], redactor: Redactor) -> ServerEntry:
        """This entry with `${VAR}` in its command, args, cwd, env, headers and url read from `environ`
        (raises ServerVariableError naming the key and the variable); `redactor` learns the values read."""

        def value(key: str, text: str | None) -> str | None:
            return None if text is None else expand(name, key, text, environ, redactor)

        def values(key: str, items: dict[str, str]) -> dict[str, str]:
            return {k: expand(name, f"{key}[{k!r}]", v, environ, redactor) for k, v in items.items()}

        return self.model_copy(
            update={
                "command": value("command", self.command),
                "args": [expand(name, f"args[{i}]", arg, environ, redactor) for i, arg in enumerate(self.args)],
                "cwd": value("cwd", self.cwd),
                "env": values("env", self.env),
                "headers": values("headers", self.headers),
                "url": value("url", self.url),
            }
        )


class ServersFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mcpServers: dict[str, ServerEntry]  # the hosts' spelling


def read_servers(path: Path) -> dict[str, ServerEntry]:
    """The enabled entries of a servers.json (raises ServersConfigError naming the problem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServersConfigError(f"PLANNER_MCP_SERVERS={str(path)!r} cannot be read ({exc.strerror})") from None
    try:
        servers = ServersFile.model_validate_json(text).mcpServers
    except ValidationError as exc:
        lines = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)[:10])
        raise ServersConfigError(
            f"{str(path)!r} is not a usable servers file ({lines}); "
            'write {"mcpServers": {"name": {"command": "...", "args": [...]} or {"url": "http://..."}}}'
        ) from None
    for name in servers:
        if not AGENT_NAME.fullmatch(name):
            raise ServersConfigError(
                f"{str(path)!r}: server name {name!r} cannot name an agent; use 1-48 ASCII letters, digits, "
                "'_' or '-', starting with a letter"
            )
    return {name: entry for name, entry in servers.items() if not entry.disabled}


def tool_result(name: str, tool: str, result: CallToolResult, redactor: Redactor | None = None) -> JsonValue:
    """A tool call's value: its structured content when given, else its text; an error result raises
    (its message with the values of the entry's variables written as `${VAR}`)."""
    texts = [item.text if isinstance(item, TextContent) else f"[{item.type} content]" for item in result.content]
    text = "\n".join(texts)
    if result.is_error:
        message = text.strip() or "the tool reported an error without a message"
        message = message if redactor is None else redactor.redact(message)
        raise ToolError(f"{name}.{tool} failed: {_cut(message)}")
    if result.structured_content is not None:
        return result.structured_content  # type: ignore[return-value]
    return text


class _Session:
    """One server's client session on the owner loop: opened on demand, reopened after a crash."""

    def __init__(self, name: str, entry: ServerEntry, redactor: Redactor) -> None:
        self.name = name
        self.entry = entry  # as written: `${VAR}`s are read at each start
        self.redactor = redactor
        self.client: Client | None = None
        self.error: str | None = None  # why the last start failed, or how the server ended
        self._lock: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.reviving: asyncio.Future[list[Tool] | str] | None = None  # the one listing after a failed start

    def due(self) -> bool:
        """Whether a start may be tried now (the back-off after a failure has passed)."""
        return asyncio.get_running_loop().time() >= self._retry_at

    async def open(self) -> Client:
        """The live session, starting the server when there is none (after the backoff of a failure)."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self.client is not None:
                return self.client
            loop = asyncio.get_running_loop()
            delay = self._retry_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                entry = self.entry.expanded(self.name, os.environ, self.redactor)
            except ServerVariableError as exc:
                await self._failed(str(exc))
                raise ToolUnavailableError(self._unavailable()) from None
            ready: asyncio.Future[Client] = loop.create_future()
            stop = self._stop = asyncio.Event()
            self._keeper = asyncio.create_task(self._keep(entry, ready, stop), name=f"mcp-server-{self.name}")
            try:
                async with asyncio.timeout(self.entry.startup_timeout_s):
                    client = await asyncio.shield(ready)
            except TimeoutError:
                await self._failed(f"it did not answer within {self.entry.startup_timeout_s:g} s")
                raise ToolUnavailableError(self._unavailable()) from None
            except Exception as exc:  # noqa: BLE001 - any start failure is reported, never raised raw
                await self._failed(self.describe(exc))
                raise ToolUnavailableError(self._unavailable()) from None
            self.error = None
            return client

    async def _keep(self, entry: ServerEntry, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Hold the session open (entered and left in this one task, as the SDK requires) until `stop`."""
        mine: Client | None = None
        try:
            async with self._transport(entry) as transport, Client(transport) as client:
                self.client = mine = client
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported through `ready` or the log
            if not ready.done():
                ready.set_exception(exc)
            else:
                logger.warning("MCP server %r: session ended: %s", self.name, self.describe(exc))
        finally:
            if self.client is mine:  # not a newer session's
                self.client = None

    @asynccontextmanager
    async def _transport(self, entry: ServerEntry) -> AsyncIterator[Any]:
        if entry.url is not None:
            async with create_mcp_http_client(headers=entry.headers or None) as http:
                yield streamable_http_client(entry.url, http_client=http)
            return
        assert entry.command is not None
        parameters = StdioServerParameters(
            command=entry.command,
            args=entry.args,
            env={"PATH": os.environ.get("PATH", os.defpath), **entry.env},
            cwd=entry.cwd,
        )
        with _StderrToLog(self.name, self.redactor) as errlog:
            yield stdio_client(parameters, errlog=errlog)

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._keeper is not None:
            try:
                async with asyncio.timeout(10):
                    await self._keeper
            except TimeoutError:
                self._keeper.cancel()
            except Exception:  # noqa: BLE001 - already logged by the keeper
                pass
        self._keeper = None

    async def crashed(self, reason: str, client: Client | None = None) -> None:
        """The server went away mid-session: close what is left; the next call starts it again.

        `client`: the session the caller saw fail; if it is gone already, another call handled this
        crash (and the session may be a new one, which is left alone)."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:  # never while `open` starts a new session
            if client is not None and self.client is not client:
                return
            logger.warning("MCP server %r %s; it restarts on the next call", self.name, reason)
            await self._failed(reason)

    async def _failed(self, reason: str) -> None:
        await self.close()
        self.error = reason
        self._failures += 1
        backoff = min(_BACKOFF_MAX_S, _BACKOFF_START_S * 2 ** (self._failures - 1))
        self._retry_at = asyncio.get_running_loop().time() + backoff

    def succeeded(self) -> None:
        self._failures = 0

    def describe(self, exc: BaseException) -> str:
        """What went wrong, short, with the values of the entry's variables written as `${VAR}`."""
        return _cut(self.redactor.redact(_describe(exc)))

    def _unavailable(self) -> str:
        return (
            f"MCP server {self.name!r} could not start: {self.error}. Check its entry in PLANNER_MCP_SERVERS "
            "(command and args, or url; the server's own messages are in planner-mcp's log)"
        )


class _StderrToLog:
    """A pipe for a child's stderr whose lines a thread writes to our log (the child needs a real file)."""

    def __init__(self, name: str, redactor: Redactor) -> None:
        self.name = name
        self.redactor = redactor
        self._write: TextIO | None = None

    def __enter__(self) -> TextIO:
        read_fd, write_fd = os.pipe()
        self._write = os.fdopen(write_fd, "w")
        threading.Thread(target=self._forward, args=(read_fd,), name=f"mcp-stderr-{self.name}", daemon=True).start()
        return self._write

    def __exit__(self, *exc: object) -> None:
        if self._write is not None:
            self._write.close()  # the reader ends once the child's copy is closed too

    def _forward(self, read_fd: int) -> None:
        with os.fdopen(read_fd, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.strip():
                    logger.info("[%s] %s", self.name, self.redactor.redact(line.rstrip()))


class McpServers:
    """The configured servers' sessions, on an event loop of their own (a daemon thread)."""

    def __init__(self, entries: Mapping[str, ServerEntry]) -> None:
        self.entries = dict(entries)
        self._redactor = Redactor()
        for logger_name in _URL_LOGGERS:
            logging.getLogger(logger_name).addFilter(self._redactor)
        self._sessions = {name: _Session(name, entry, self._redactor) for name, entry in self.entries.items()}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-servers", daemon=True)
        self._thread.start()
        self._closed = False

    def _submit(self, coroutine: Coroutine[Any, Any, _T]) -> asyncio.Future[_T]:
        """Run `coroutine` on the owner loop; the future belongs to the caller's running loop."""
        if self._closed:
            coroutine.close()
            raise ToolUnavailableError("the MCP server connections are closed (the planner is shutting down)")
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    def list_tools(self) -> dict[str, list[Tool] | str]:
        """Each server's tools, or why it could not be reached (blocking; called while building the catalog)."""

        async def list_all() -> dict[str, list[Tool] | str]:
            results = await asyncio.gather(*(self._list(name) for name in self._sessions))
            return dict(zip(self._sessions, results, strict=True))

        return asyncio.run_coroutine_threadsafe(list_all(), self._loop).result()

    async def _list(self, name: str) -> list[Tool] | str:
        session = self._sessions[name]
        try:
            client = await session.open()
            async with asyncio.timeout(session.entry.startup_timeout_s):
                listed = await client.list_tools()
                tools, cursor = list(listed.tools), listed.next_cursor
                while cursor:
                    listed = await client.list_tools(cursor=cursor)
                    tools += listed.tools
                    cursor = listed.next_cursor
        except ToolUnavailableError as exc:
            return str(exc)
        except (TimeoutError, MCPError, OSError) as exc:
            await session.crashed(f"could not list its tools ({session.describe(exc)})")
            return f"MCP server {name!r} could not list its tools: {session.error}"
        if session.entry.start == "lazy":
            await session.close()
        return tools

    async def relist(self, name: str) -> list[Tool] | str | None:
        """For a server whose tools could not be listed: start it and list them again, from any event
        loop (one try for all callers at once); None while its back-off after the last failure lasts."""
        return await self._submit(self._relist(name))

    async def _relist(self, name: str) -> list[Tool] | str | None:
        session = self._sessions[name]
        if session.reviving is None or session.reviving.done():
            if not session.due():
                return None
            session.reviving = asyncio.ensure_future(self._list(name))
        return await asyncio.shield(session.reviving)  # a cancelled caller leaves the try to the others

    async def call(self, name: str, tool: str, arguments: dict[str, JsonValue], *, retry_safe: bool) -> JsonValue:
        """Call a tool from any event loop (cancelling the caller cancels the call)."""
        return await self._submit(self._call(name, tool, arguments, retry_safe=retry_safe))

    async def _call(self, name: str, tool: str, arguments: dict[str, JsonValue], *, retry_safe: bool) -> JsonValue:
        session = self._sessions[name]
        client = await session.open()
        if session.entry.transport == "stdio":
            client = await self._alive(session, client)
        timeout = session.entry.timeout_s
        try:
            async with asyncio.timeout(timeout):
                result = await client.call_tool(tool, arguments)
        except TimeoutError:
            raise ToolError(f"{name}.{tool} did not answer within {timeout:g} s (the entry's timeout_s)") from None
        except MCPError as exc:
            if exc.code != _CONNECTION_CLOSED:
                message = _cut(session.redactor.redact(exc.message))
                raise ToolError(f"{name}.{tool} was refused by the server: {message}") from None
            await session.crashed("exited during a call", client)
            if retry_safe:  # read-only or idempotent: calling it again cannot do anything twice
                raise TransientToolError(f"MCP server {name!r} exited during the call to {tool!r}") from None
            raise ToolError(
                f"MCP server {name!r} exited during the call to {tool!r}; whether the call took effect is unknown. "
                "The server restarts for the next call"
            ) from None
        session.succeeded()
        return tool_result(name, tool, result, session.redactor)

    async def _alive(self, session: _Session, client: Client) -> Client:
        """`client`, or a new session if the server exited since its last call (a ping tells, in well
        under a millisecond over stdio): a call is sent only to a live server, so a server killed
        while idle costs no failed step, not even of a tool that must not run twice."""
        try:
            async with asyncio.timeout(session.entry.startup_timeout_s):
                with warnings.catch_warnings():  # deprecated in the 2026 era, still answered or refused
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await client.send_ping()
        except MCPError as exc:
            if exc.code != _CONNECTION_CLOSED:
                return client  # it answers, if not to pings
        except TimeoutError:
            return client  # busy; the call has its own timeout
        await session.crashed("exited while idle", client)
        return await session.open()

    def close(self) -> None:
        """Close every session (stopping stdio servers) and the owner loop; safe to call twice."""
        if self._closed:
            return
        self._closed = True

        async def close_all() -> None:
            await asyncio.gather(*(session.close() for session in self._sessions.values()))

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=30)
        except TimeoutError:
            logger.warning("MCP servers did not all stop within 30 s")
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            for logger_name in _URL_LOGGERS:
                logging.getLogger(logger_name).removeFilter(self._redactor)


def server_agents(servers: McpServers) -> list[AgentSpec]:
    """One agent per configured server, its tools those the server lists (and the entry allows).

    A server that cannot be reached becomes an agent without tools whose `unavailable` says why:
    the planner leaves it out, list_agents shows it, and its steps fail with that reason.
    """
    listed = servers.list_tools()
    return [_server_agent(servers, name, entry, listed[name]) for name, entry in servers.entries.items()]


def _server_agent(servers: McpServers, name: str, entry: ServerEntry, tools: list[Tool] | str) -> AgentSpec:
    """The agent of a server whose tools are `tools`, or which is unavailable for the reason `tools`:
    then the next step that needs it starts the server again (after the back-off of the failure)."""
    description = entry.description or f"The tools of the MCP server {name!r}."
    if isinstance(tools, str):
        logger.warning("%s", tools)

        async def revive() -> AgentSpec | None:
            listed = await servers.relist(name)
            if listed is None:
                return None
            agent = _server_agent(servers, name, entry, listed)
            if agent.unavailable is None:
                logger.warning("MCP server %r started and listed its tools: its agent is available", name)
            return agent

        return _agent(name, entry, description, (), unavailable=tools, revive=revive)
    specs = []
    for tool in tools:
        if entry.allowed_tools is not None and tool.name not in entry.allowed_tools:
            continue
        try:
            specs.append(_tool_spec(servers, name, entry, tool))
        except ToolSchemaError as exc:
            logger.warning("MCP server %r: tool left out: %s", name, exc)
    return _agent(name, entry, description, tuple(specs))


def _agent(
    name: str,
    entry: ServerEntry,
    description: str,
    tools: tuple[ToolSpec, ...],
    *,
    unavailable: str | None = None,
    revive: Callable[[], Awaitable[AgentSpec | None]] | None = None,
) -> AgentSpec:
    return AgentSpec(
        name=name,
        description=description,
        tools=tools,
        open_world=True,  # what a server reaches is its own business: hosts should assume the world
        instructions=entry.instructions or "Use the tools as their descriptions say.",
        max_concurrency=entry.max_concurrency,
        # The step's own limit: a few calls of the entry's per-call limit.
        timeout_s=entry.timeout_s * 3 + entry.startup_timeout_s,
        unavailable=unavailable,
        revive=revive,
        local_only=(
            f"the MCP server {name!r} runs as a local process (stdio); a Flyte cluster's task pods cannot start it. "
            'Run the plan locally, or serve it over streamable HTTP where the pods can reach it ("url")'
            if entry.transport == "stdio" and not entry.on_cluster
            else None
        ),
    )


def _tool_spec(servers: McpServers, name: str, entry: ServerEntry, tool: Tool) -> ToolSpec:
    hints = tool.annotations
    read_only = tool.name in entry.read_only_tools or (
        tool.name not in entry.destructive_tools and hints is not None and hints.read_only_hint is True
    )
    # MCP's defaults: a tool is destructive unless it is read-only or says destructiveHint: false.
    destructive = tool.name in entry.destructive_tools or (
        not read_only and (hints is None or hints.destructive_hint is not False)
    )
    allowed = entry.allow_destructive is True or (
        isinstance(entry.allow_destructive, list) and tool.name in entry.allow_destructive
    )
    retry_safe = read_only or (hints is not None and hints.idempotent_hint is True and not destructive)
    tool_name = tool.name

    async def call(arguments: dict[str, JsonValue]) -> JsonValue:
        return await servers.call(name, tool_name, arguments, retry_safe=retry_safe)

    return ToolSpec.from_json_schema(
        tool.name,
        tool.description or tool.title or "",
        tool.input_schema,
        call,
        planner_may_call=not destructive or allowed,
        destructive=destructive,  # allowed: a plan the planner writes with it waits for approval
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    if isinstance(exc, FileNotFoundError):
        return f"the command was not found ({exc.filename or exc})"
    return str(exc) or type(exc).__name__


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
