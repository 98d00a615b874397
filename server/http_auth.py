"""Security of the streamable-HTTP transport: bind rules, bearer token, Host and Origin checks.

Loopback binds (127.0.0.1, localhost, ::1) are safe by default: only local clients can connect and
DNS-rebinding protection rejects requests whose Host is not a loopback name (421). Any other bind
exposes the server to a network, so it must have both a bearer token (`PLANNER_MCP_TOKEN`,
compared in constant time) and the host names clients use (`PLANNER_MCP_ALLOWED_HOSTS`); without
them the server refuses to start. A token set on a loopback bind is required too.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from planning.errors import UserFixableError

logger = logging.getLogger(__name__)

TOKEN_ENV = "PLANNER_MCP_TOKEN"
ALLOWED_HOSTS_ENV = "PLANNER_MCP_ALLOWED_HOSTS"
MIN_TOKEN_CHARS = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class HttpConfigError(UserFixableError, ValueError):
    """The HTTP transport is configured unsafely; the message says what to set."""


@dataclass(frozen=True)
class HttpSecurity:
    """How the HTTP transport authenticates clients and which Host/Origin headers it accepts."""

    token: str | None
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]

    def transport_security(self) -> TransportSecuritySettings:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(self.allowed_hosts),
            allowed_origins=list(self.allowed_origins),
        )


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def http_security(host: str, environ: Mapping[str, str]) -> HttpSecurity:
    """The security settings for binding `host`, from the environment; HttpConfigError if unsafe."""
    token = environ.get(TOKEN_ENV, "").strip() or None
    extra_hosts = [h.strip() for h in environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise HttpConfigError(
            f"{TOKEN_ENV} is {len(token)} characters long; use at least {MIN_TOKEN_CHARS} random characters "
            '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`).'
        )
    if not is_loopback(host):
        needed = {
            TOKEN_ENV: (token, "a bearer token that clients must send"),
            ALLOWED_HOSTS_ENV: (
                extra_hosts,
                f"the comma-separated host names or host:port pairs clients connect to, "
                f"e.g. {ALLOWED_HOSTS_ENV}=myhost.lan:8000",
            ),
        }
        missing = [f"{name} ({why})" for name, (value, why) in needed.items() if not value]
        if missing:
            raise HttpConfigError(
                f"refusing to serve HTTP on {host!r}: a non-loopback address is reachable from the network, so "
                f"set {' and '.join(missing)}. Or bind 127.0.0.1 (the default) for local clients only."
            )
    names = [*_LOOPBACK_NAMES] if is_loopback(host) else []
    names += extra_hosts
    allowed_hosts: list[str] = []
    allowed_origins: list[str] = []
    for name in names:
        patterns = [name] if _has_port(name) else [name, f"{name}:*"]
        allowed_hosts += patterns
        allowed_origins += [f"{scheme}://{pattern}" for pattern in patterns for scheme in ("http", "https")]
    return HttpSecurity(token=token, allowed_hosts=tuple(allowed_hosts), allowed_origins=tuple(allowed_origins))


def _has_port(name: str) -> bool:
    if name.startswith("["):  # [::1] or [::1]:8000
        return "]:" in name
    return ":" in name


class BearerTokenVerifier:
    """Accepts exactly one static token (`PLANNER_MCP_TOKEN`), compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id="planner-mcp-client", scopes=[])


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a Host header matches an allowed entry (`name`, `name:port` or `name:*`) exactly:
    the port, when there is one, must be a port number (`localhost:1@evil` is no `localhost:*`)."""
    if not host:
        return False
    name, port = _split_host(host)
    if port is not None and not (port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        return False
    for pattern in allowed:
        if pattern.endswith(":*"):
            if port is not None and name == pattern[:-2]:
                return True
        elif host == pattern:
            return True
    return False


def _split_host(host: str) -> tuple[str, str | None]:
    """`name` and `port` of a Host header (`[::1]:8000` -> `[::1]`, `8000`); port None if absent."""
    if host.startswith("["):
        name, bracket, rest = host.partition("]")
        if not bracket:
            return host, None
        return f"{name}]", rest[1:] if rest.startswith(":") else (rest or None)
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, None)


class HostGuard:
    """ASGI middleware: 421 for a Host header the server does not answer to, before anything else.

    The SDK checks Host too, but only after bearer authentication; checking first means a
    DNS-rebinding page gets 421 whether or not it has a token.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            if not host_allowed(host, self.allowed_hosts):
                logger.warning("refused a request for Host %r (allowed: %s)", host, ", ".join(self.allowed_hosts))
                response = PlainTextResponse("Invalid Host header", status_code=421)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
