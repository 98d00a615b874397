"""The HTTP transport's security rules: which binds may start, the token check, the Host guard."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from server.http_auth import (
    BearerTokenVerifier,
    HostGuard,
    HttpConfigError,
    HttpSecurity,
    host_allowed,
    http_security,
)

TOKEN = "s3cret-token-0123456789"


def test_a_loopback_bind_needs_no_token_and_answers_only_to_loopback_names() -> None:
    security = http_security("127.0.0.1", {})

    assert security == HttpSecurity(
        token=None,
        allowed_hosts=("127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"),
        allowed_origins=(
            "http://127.0.0.1",
            "https://127.0.0.1",
            "http://127.0.0.1:*",
            "https://127.0.0.1:*",
            "http://localhost",
            "https://localhost",
            "http://localhost:*",
            "https://localhost:*",
            "http://[::1]",
            "https://[::1]",
            "http://[::1]:*",
            "https://[::1]:*",
        ),
    )
    assert security.transport_security().enable_dns_rebinding_protection is True


def test_a_token_set_for_a_loopback_bind_is_required_too() -> None:
    assert http_security("localhost", {"PLANNER_MCP_TOKEN": f"  {TOKEN} "}).token == TOKEN


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "set PLANNER_MCP_TOKEN (a bearer token that clients must send) and PLANNER_MCP_ALLOWED_HOSTS ("),
        ({"PLANNER_MCP_TOKEN": TOKEN}, "set PLANNER_MCP_ALLOWED_HOSTS ("),
        ({"PLANNER_MCP_ALLOWED_HOSTS": "planner.lan"}, "set PLANNER_MCP_TOKEN ("),
        ({"PLANNER_MCP_TOKEN": TOKEN, "PLANNER_MCP_ALLOWED_HOSTS": " , "}, "set PLANNER_MCP_ALLOWED_HOSTS ("),
    ],
)
def test_a_non_loopback_bind_refuses_without_token_and_allowed_hosts(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(HttpConfigError) as error:
        http_security("0.0.0.0", environ)

    assert str(error.value).startswith("refusing to serve HTTP on '0.0.0.0': a non-loopback address")
    assert missing in str(error.value)


def test_a_non_loopback_bind_answers_only_to_the_allowed_hosts() -> None:
    security = http_security(
        "0.0.0.0", {"PLANNER_MCP_TOKEN": TOKEN, "PLANNER_MCP_ALLOWED_HOSTS": "planner.lan:8000, 10.0.0.5"}
    )

    assert security.token == TOKEN
    assert security.allowed_hosts == ("planner.lan:8000", "10.0.0.5", "10.0.0.5:*")
    assert not host_allowed("127.0.0.1:8000", security.allowed_hosts)


def test_a_short_token_is_refused_with_how_to_make_a_good_one() -> None:
    with pytest.raises(HttpConfigError, match=r"PLANNER_MCP_TOKEN is 5 characters long; use at least 16"):
        http_security("127.0.0.1", {"PLANNER_MCP_TOKEN": "short"})


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:1", True),
        ("[::1]:8000", True),
        ("localhost", True),
        ("127.0.0.1.evil.example:80", False),
        ("localhostevil:80", False),
        ("localhost:1@evil", False),
        ("127.0.0.1:80.evil.example", False),
        ("localhost:", False),
        ("localhost:99999", False),
        ("[::1]:8000@evil", False),
        ("[::1]", True),
        ("evil.example", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allowed_matches_names_and_port_wildcards_exactly(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, http_security("127.0.0.1", {}).allowed_hosts) is allowed


@pytest.mark.anyio
async def test_the_verifier_accepts_only_the_exact_token() -> None:
    verifier = BearerTokenVerifier(TOKEN)

    accepted = await verifier.verify_token(TOKEN)
    assert accepted is not None and accepted.token == TOKEN
    assert await verifier.verify_token(TOKEN[:-1]) is None
    assert await verifier.verify_token(TOKEN + "x") is None
    assert await verifier.verify_token("") is None


@pytest.mark.anyio
async def test_the_host_guard_answers_421_before_the_app_sees_the_request() -> None:
    seen: list[str] = []

    async def endpoint(request: object) -> PlainTextResponse:
        seen.append("app")
        return PlainTextResponse("ok")

    app = HostGuard(Starlette(routes=[Route("/", endpoint)]), ("127.0.0.1:*",))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        refused = await http.get("/", headers={"Host": "evil.example"})
        served = await http.get("/")

    assert (refused.status_code, refused.text) == (421, "Invalid Host header")
    assert (served.status_code, served.text) == (200, "ok")
    assert seen == ["app"]
