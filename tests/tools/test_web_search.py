"""Tests for tools/web_search.py.

Search APIs and web pages are replaced by httpx.MockTransport with recorded-shape fixtures, DNS by an
injected resolver (except for IP literals and localhost, which the system resolves without a
network), and DuckDuckGo by a fake `ddgs` searcher.
"""

import base64
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
from pydantic import ValidationError

from tools.errors import ToolArgumentsError, ToolError, TransientToolError
from tools.web_search import (
    Page,
    SearchResult,
    SearchResults,
    WebSearchConfig,
    WebSearchTools,
)

FIXTURES = Path(__file__).parent / "fixtures"
TAVILY_KEY = "tvly-dev-SECRETsecret123"
BRAVE_KEY = "BSA-secret-token-456"
SEARXNG_URL = "https://searcher:hunter2@searx.example.org/"

Handler = Callable[[httpx.Request], httpx.Response]


def api_fixture(name: str) -> Any:
    return json.loads((FIXTURES / "web_search" / name).read_text(encoding="utf-8"))


def page_fixture(name: str) -> bytes:
    return (FIXTURES / "pages" / name).read_bytes()


class Recorder:
    """A MockTransport handler that records requests and answers with `respond`."""

    def __init__(self, respond: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._respond = respond

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._respond(request)


def tools(
    handler: Handler | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]],
    config: WebSearchConfig | None = None,
    *,
    resolver: Mapping[str, Sequence[str]] | None = None,
    ddgs: "FakeDdgs | None" = None,
) -> WebSearchTools:
    async def resolve(host: str, port: int) -> Sequence[str]:
        assert resolver is not None and host in resolver, f"unexpected DNS lookup of {host!r}"
        return resolver[host]

    return WebSearchTools(
        config or WebSearchConfig(),
        transport=httpx.MockTransport(handler),
        resolver=resolve if resolver is not None else None,
        ddgs_factory=(lambda: ddgs) if ddgs is not None else None,
    )


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request expected, got {request.method} {request.url}")


TAVILY = WebSearchConfig.model_validate({"tavily_api_key": TAVILY_KEY})
BRAVE = WebSearchConfig.model_validate({"brave_api_key": BRAVE_KEY})
SEARXNG = WebSearchConfig.model_validate({"searxng_url": SEARXNG_URL})


# -- configuration --


@pytest.mark.parametrize(
    ("environ", "provider"),
    [
        ({}, "ddgs"),
        ({"SEARXNG_URL": "http://localhost:8888"}, "searxng"),
        ({"SEARXNG_URL": "http://localhost:8888", "BRAVE_API_KEY": "b"}, "brave"),
        ({"SEARXNG_URL": "http://localhost:8888", "BRAVE_API_KEY": "b", "TAVILY_API_KEY": "t"}, "tavily"),
        ({"BRAVE_API_KEY": "b", "TAVILY_API_KEY": "t", "WEB_SEARCH_PROVIDER": "Brave"}, "brave"),
        ({"TAVILY_API_KEY": "t", "WEB_SEARCH_PROVIDER": "ddgs"}, "ddgs"),
        ({"TAVILY_API_KEY": "  ", "BRAVE_API_KEY": "", "WEB_SEARCH_PROVIDER": ""}, "ddgs"),
    ],
)
def test_provider_is_the_explicit_one_else_the_first_configured_else_ddgs(
    environ: dict[str, str], provider: str
) -> None:
    assert WebSearchConfig.from_env(environ).resolved_provider == provider


def test_from_env_reads_keys_and_the_private_fetch_switch() -> None:
    config = WebSearchConfig.from_env(
        {"TAVILY_API_KEY": " t-key ", "SEARXNG_URL": "http://s", "WEB_FETCH_ALLOW_PRIVATE": "true"}
    )

    assert (config.resolved_provider, config.brave_api_key, config.allow_private) == ("tavily", None, True)
    assert config.secrets() == ["t-key", "http://s"]


def test_an_unknown_provider_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"WEB_SEARCH_PROVIDER='bing' is not one of ddgs, tavily, brave, searxng"):
        WebSearchConfig.from_env({"WEB_SEARCH_PROVIDER": "bing"})


def test_an_explicit_provider_without_its_key_names_the_variable_and_hides_other_secrets() -> None:
    with pytest.raises(ValidationError) as raised:
        WebSearchConfig.from_env({"WEB_SEARCH_PROVIDER": "brave", "TAVILY_API_KEY": TAVILY_KEY})

    assert "provider 'brave' needs `BRAVE_API_KEY`" in str(raised.value)
    assert TAVILY_KEY not in str(raised.value)


def test_the_config_never_shows_its_secrets() -> None:
    config = WebSearchConfig.from_env(
        {"TAVILY_API_KEY": TAVILY_KEY, "BRAVE_API_KEY": BRAVE_KEY, "SEARXNG_URL": SEARXNG_URL}
    )

    shown = repr(config) + str(config) + config.model_dump_json()
    assert [secret for secret in (TAVILY_KEY, BRAVE_KEY, SEARXNG_URL) if secret in shown] == []


# -- search providers --


@pytest.mark.anyio
async def test_tavily_search_posts_the_query_with_a_bearer_key() -> None:
    api = Recorder(lambda request: httpx.Response(200, json=api_fixture("tavily_search.json")))

    results = await tools(api, TAVILY).search("  python 3.13 release date ", max_results=3)

    assert results == SearchResults(
        query="python 3.13 release date",
        provider="tavily",
        results=[
            SearchResult(
                title="Python Release Python 3.13.0 | Python.org",
                url="https://www.python.org/downloads/release/python-3130/",
                snippet="Python 3.13.0 is the newest major release of the Python programming language, and it "
                "contains many new features and optimizations compared to Python 3.12. Release date: Oct. 7, 2024.",
            ),
            SearchResult(
                title="What's New In Python 3.13 — Python 3.13.1 documentation",
                url="https://docs.python.org/3/whatsnew/3.13.html",
                snippet="This article explains the new features in Python 3.13, compared to 3.12. "
                "Python 3.13 was released on October 7, 2024.",
            ),
            SearchResult(
                title="PEP 719 – Python 3.13 Release Schedule | peps.python.org",
                url="https://peps.python.org/pep-0719/",
                snippet="This document describes the development and release schedule for Python 3.13. "
                "3.13.0 final: Monday, 2024-10-07.",
            ),
        ],
    )
    [request] = api.requests
    assert (request.method, str(request.url)) == ("POST", "https://api.tavily.com/search")
    assert request.headers["authorization"] == f"Bearer {TAVILY_KEY}"
    assert json.loads(request.content) == {
        "query": "python 3.13 release date",
        "max_results": 3,
        "search_depth": "basic",
    }


@pytest.mark.anyio
async def test_brave_search_sends_the_token_header_and_returns_plain_text() -> None:
    api = Recorder(lambda request: httpx.Response(200, json=api_fixture("brave_web_search.json")))

    results = await tools(api, BRAVE).search("python 3.13 release date", max_results=2)

    assert results == SearchResults(
        query="python 3.13 release date",
        provider="brave",
        results=[
            SearchResult(
                title="Python Release Python 3.13.0 | Python.org",
                url="https://www.python.org/downloads/release/python-3130/",
                snippet="Python 3.13.0 is the newest major release of the Python programming language & it "
                "contains many new features. Release Date: Oct. 7, 2024",
            ),
            SearchResult(
                title="What's New In Python 3.13",
                url="https://docs.python.org/3/whatsnew/3.13.html",
                snippet="This article explains the new features in Python 3.13, compared to 3.12.",
            ),
        ],
    )
    [request] = api.requests
    assert request.method == "GET"
    assert request.url.copy_with(query=None) == httpx.URL("https://api.search.brave.com/res/v1/web/search")
    assert dict(request.url.params) == {"q": "python 3.13 release date", "count": "2"}
    assert request.headers["x-subscription-token"] == BRAVE_KEY
    assert request.headers["accept"] == "application/json"


@pytest.mark.anyio
async def test_brave_without_web_results_returns_an_empty_list() -> None:
    answer = {"type": "search", "query": {"original": "zzqqxx"}, "mixed": {"type": "mixed", "main": []}}

    results = await tools(lambda request: httpx.Response(200, json=answer), BRAVE).search("zzqqxx")

    assert results == SearchResults(query="zzqqxx", provider="brave", results=[])


@pytest.mark.anyio
async def test_searxng_search_asks_for_json_and_keeps_max_results() -> None:
    api = Recorder(lambda request: httpx.Response(200, json=api_fixture("searxng_search.json")))

    results = await tools(api, SEARXNG).search("python 3.13 release date", max_results=3)

    assert results == SearchResults(
        query="python 3.13 release date",
        provider="searxng",
        results=[
            SearchResult(
                title="Python Release Python 3.13.0 | Python.org",
                url="https://www.python.org/downloads/release/python-3130/",
                snippet="Python 3.13.0 is the newest major release of the Python programming language, and it "
                "contains many new features and optimizations compared to Python 3.12.",
            ),
            SearchResult(
                title="PEP 719 – Python 3.13 Release Schedule",
                url="https://peps.python.org/pep-0719/",
                snippet="This document describes the development and release schedule for Python 3.13.",
            ),
            SearchResult(
                title="History of Python - Wikipedia",
                url="https://en.wikipedia.org/wiki/History_of_Python",
                snippet="",
            ),
        ],
    )
    [request] = api.requests
    # Credentials from SEARXNG_URL travel as Basic auth, never in the (logged) URL.
    assert request.url.copy_with(query=None) == httpx.URL("https://searx.example.org/search")
    assert dict(request.url.params) == {"q": "python 3.13 release date", "format": "json"}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"searcher:hunter2").decode()

    fewer = await tools(api, SEARXNG).search("python 3.13 release date", max_results=1)
    assert [r.url for r in fewer.results] == ["https://www.python.org/downloads/release/python-3130/"]


@pytest.mark.anyio
async def test_searxng_without_json_output_says_how_to_enable_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, html="<html><body><h1>403 Forbidden</h1></body></html>")

    with pytest.raises(ToolError) as raised:
        await tools(handler, SEARXNG).search("anything")

    assert str(raised.value) == (
        "SearXNG refused the request (HTTP 403: Forbidden); check `SEARXNG_URL` and that its settings.yml "
        "lists `json` under search.formats."
    )


class FakeDdgs:
    """Stands in for ddgs.DDGS: returns canned results or raises, and records calls."""

    def __init__(self, results: list[dict[str, Any]] | None = None, error: Exception | None = None) -> None:
        self.results = results or []
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append((query, kwargs))
        if self.error is not None:
            raise self.error
        return self.results


@pytest.mark.anyio
async def test_ddgs_is_the_keyless_default_and_maps_its_result_fields() -> None:
    ddgs = FakeDdgs(
        [
            {
                "title": "Python 3.13.0",
                "href": "https://www.python.org/downloads/release/python-3130/",
                "body": "Oct 7",
            },
            {"title": "no link", "href": "", "body": "dropped"},
            {"title": "PEP 719", "href": "https://peps.python.org/pep-0719/", "body": "Schedule"},
        ]
    )

    results = await tools(never_called, ddgs=ddgs).search("python 3.13", max_results=4)

    assert results == SearchResults(
        query="python 3.13",
        provider="ddgs",
        results=[
            SearchResult(
                title="Python 3.13.0", url="https://www.python.org/downloads/release/python-3130/", snippet="Oct 7"
            ),
            SearchResult(title="PEP 719", url="https://peps.python.org/pep-0719/", snippet="Schedule"),
        ],
    )
    assert ddgs.calls == [("python 3.13", {"max_results": 4, "safesearch": "moderate"})]


@pytest.mark.anyio
async def test_ddgs_finding_nothing_is_an_empty_result_not_an_error() -> None:
    ddgs = FakeDdgs(error=DDGSException("No results found."))

    results = await tools(never_called, ddgs=ddgs).search("zzqqxx")

    assert results == SearchResults(query="zzqqxx", provider="ddgs", results=[])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (RatelimitException("202 Ratelimit"), "DuckDuckGo is rate limiting searches; retry in a minute."),
        (TimeoutException("timed out"), "DuckDuckGo search timed out; retry in a moment."),
        (DDGSException("Connection reset by peer"), "DuckDuckGo search failed (Connection reset by peer)"),
    ],
)
async def test_ddgs_network_failures_are_retryable(error: Exception, message: str) -> None:
    with pytest.raises(TransientToolError, match=re.escape(message)):
        await tools(never_called, ddgs=FakeDdgs(error=error)).search("python")


@pytest.mark.anyio
async def test_a_hung_ddgs_search_is_abandoned_at_the_deadline() -> None:
    release = threading.Event()

    class HungDdgs(FakeDdgs):
        def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
            release.wait(timeout=30)
            return []

    config = WebSearchConfig(timeout_s=0.05)
    try:
        with pytest.raises(TransientToolError, match="DuckDuckGo search did not answer in time"):
            await tools(never_called, config, ddgs=HungDdgs()).search("python")
    finally:
        release.set()


@pytest.mark.anyio
async def test_a_searxng_url_that_is_not_http_is_a_configuration_error() -> None:
    config = WebSearchConfig.model_validate({"searxng_url": "localhost:8888"})

    with pytest.raises(ToolError) as raised:
        await tools(never_called, config).search("python")

    assert str(raised.value) == "`SEARXNG_URL` must be an http:// or https:// URL, e.g. http://localhost:8888."


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "max_results", "message"),
    [
        ("", 5, "invalid arguments for search: query: String should have at least 1 character"),
        ("   ", 5, "query: String should have at least 1 character"),
        ("x" * 401, 5, "query: String should have at most 400 characters"),
        ("python", 0, "max_results: Input should be greater than or equal to 1 (got 0)"),
        ("python", 21, "max_results: Input should be less than or equal to 20 (got 21)"),
        ("python", True, "max_results: expected a number, got the boolean True"),
    ],
)
async def test_bad_search_arguments_are_refused_before_any_request(query: str, max_results: int, message: str) -> None:
    ddgs = FakeDdgs()

    with pytest.raises(ToolArgumentsError, match=re.escape(message)):
        await tools(never_called, ddgs=ddgs).search(query, max_results=max_results)
    assert ddgs.calls == []


# -- search API failures --

PROVIDER_CONFIGS = {"Tavily": TAVILY, "Brave Search": BRAVE, "SearXNG": SEARXNG}


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDER_CONFIGS)
@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_rate_limits_and_server_errors_are_retryable(provider: str, status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": "30"}, json={"error": "busy"})

    with pytest.raises(TransientToolError) as raised:
        await tools(handler, PROVIDER_CONFIGS[provider]).search("python")

    assert str(raised.value) == f"{provider} answered HTTP {status} (busy); retry after 30 s."


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("config", "answer", "message"),
    [
        (
            TAVILY,
            httpx.Response(401, json=api_fixture("tavily_error_401.json")),
            "Tavily refused the request (HTTP 401: Unauthorized: missing or invalid API key.); check `TAVILY_API_KEY`.",
        ),
        (
            BRAVE,
            httpx.Response(401, json=api_fixture("brave_error_401.json")),
            "Brave Search refused the request (HTTP 401: The provided subscription token is invalid.); "
            "check `BRAVE_API_KEY`.",
        ),
        (
            BRAVE,
            httpx.Response(422, json=api_fixture("brave_error_422.json")),
            "Brave Search refused the request (HTTP 422): Unable to validate request parameter(s)",
        ),
    ],
)
async def test_client_errors_carry_the_providers_reason(
    config: WebSearchConfig, answer: httpx.Response, message: str
) -> None:
    with pytest.raises(ToolError) as raised:
        await tools(lambda request: answer, config).search("python")

    assert str(raised.value) == message
    assert not isinstance(raised.value, TransientToolError)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDER_CONFIGS)
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "Could not reach {} (ConnectError); retry later."),
        (httpx.ReadTimeout("The read operation timed out"), "{} did not answer within 10 s; retry later."),
    ],
)
async def test_network_failures_are_retryable(provider: str, error: httpx.TransportError, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(TransientToolError) as raised:
        await tools(handler, PROVIDER_CONFIGS[provider]).search("python")

    assert str(raised.value) == message.format(provider)


def echo_the_key(request: httpx.Request) -> httpx.Response:
    # A hostile or buggy endpoint that repeats the credentials it received.
    leaked = request.headers.get("authorization", "") + request.headers.get("x-subscription-token", "")
    return httpx.Response(400, json={"detail": f"bad key {leaked} for {request.url}"})


def fail_with_the_request(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"cannot connect for {request.url}", request=request)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDER_CONFIGS)
@pytest.mark.parametrize("handler", [echo_the_key, fail_with_the_request])
async def test_secrets_never_reach_error_messages_or_logs(
    provider: str, handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ToolError) as raised:
        await tools(handler, PROVIDER_CONFIGS[provider]).search("python")

    exposed = str(raised.value) + caplog.text
    assert [s for s in (TAVILY_KEY, BRAVE_KEY, "hunter2") if s in exposed] == []


@pytest.mark.anyio
async def test_an_oversized_api_answer_is_refused() -> None:
    config = WebSearchConfig.model_validate({"tavily_api_key": TAVILY_KEY, "max_response_bytes": 1000})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"url": "https://e.com", "content": "x" * 5000}]})

    with pytest.raises(ToolError, match="Tavily sent more than 1000 bytes"):
        await tools(handler, config).search("python")


@pytest.mark.anyio
async def test_an_api_answer_that_is_not_json_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<html><body>Welcome to nginx!</body></html>")

    with pytest.raises(ToolError) as raised:
        await tools(handler, SEARXNG).search("python")

    assert str(raised.value) == "SearXNG answered with something that is not JSON; check `SEARXNG_URL`."


@pytest.mark.anyio
async def test_an_api_answer_of_unexpected_shape_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"title": "no url"}]})

    with pytest.raises(ToolError, match="Tavily answered in an unexpected shape"):
        await tools(handler, TAVILY).search("python")


# -- fetch_page --

PUBLIC = {"example.com": ["93.184.215.14"], "www.example.org": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}


def html_response(body: bytes, status: int = 200, content_type: str = "text/html; charset=utf-8") -> httpx.Response:
    return httpx.Response(status, headers={"Content-Type": content_type}, content=body)


@pytest.mark.anyio
async def test_fetch_page_returns_the_readable_text_of_an_html_page() -> None:
    web = Recorder(lambda request: html_response(page_fixture("article.html")))

    page = await tools(web, resolver=PUBLIC).fetch_page("https://example.com/news/python-3-13")

    assert page == Page(
        url="https://example.com/news/python-3-13",
        final_url="https://example.com/news/python-3-13",
        content_type="text/html",
        title="Python 3.13 released — Example News",
        text="\n".join(
            [
                "Python 3.13 released",
                "By Ada L. · 7 October 2024",
                "The Python core team released Python 3.13.0 on Monday. It ships an experimental free-threaded "
                "build and a new interactive interpreter.",
                "Highlights",
                "Free-threaded CPython (PEP 703)",
                "An experimental JIT compiler",
                "Version Date",
                "3.13.0 2024-10-07",
                "Read the changelog at docs.python.org.",
                "Happy hacking!",
                "© 2024 Example News",
            ]
        ),
        truncated=False,
    )


@pytest.mark.anyio
async def test_fetch_page_connects_to_the_address_it_checked() -> None:
    # Pinning the checked address defeats DNS rebinding: a second lookup could answer 127.0.0.1.
    web = Recorder(lambda request: html_response(b"<p>hi</p>"))

    await tools(web, resolver=PUBLIC).fetch_page("https://example.com:8443/a?b=1")
    await tools(web, resolver=PUBLIC).fetch_page("http://www.example.org/")

    first, second = web.requests
    assert (str(first.url), first.headers["host"], first.extensions["sni_hostname"]) == (
        "https://93.184.215.14:8443/a?b=1",
        "example.com:8443",
        "example.com",
    )
    assert (str(second.url), second.headers["host"], "sni_hostname" in second.extensions) == (
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
        "www.example.org",
        False,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 (loopback address)"),
        ("http://localhost:8080/admin", "127.0.0.1 (loopback address)"),
        ("http://[::1]/", "::1 (loopback address)"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local address)"),
        ("http://10.0.0.1/", "10.0.0.1 (private address)"),
        ("http://192.168.1.1/", "192.168.1.1 (private address)"),
        ("http://172.16.5.4/", "172.16.5.4 (private address)"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 (embeds 127.0.0.1: loopback address)"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 (embeds 169.254.169.254: link-local address)"),
        ("http://[2002:7f00:1::]/", "2002:7f00:1:: (embeds 127.0.0.1: loopback address)"),
        ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe (embeds 169.254.169.254: link-local address)"),
        ("http://2130706433/", "127.0.0.1 (loopback address)"),
        ("http://0x7f000001/", "127.0.0.1 (loopback address)"),
        ("http://127.1/", "127.0.0.1 (loopback address)"),
        ("http://0.0.0.0/", "0.0.0.0 (unspecified address)"),
        ("http://[::]/", ":: (unspecified address)"),
        ("http://[fe80::1]/", "fe80::1 (link-local address)"),
        ("http://[fc00::1]/", "fc00::1 (private address)"),
        ("http://224.0.0.251/", "224.0.0.251 (multicast address)"),
        ("http://240.0.0.1/", "240.0.0.1 (private address)"),
        ("http://100.64.0.1/", "100.64.0.1 (not a globally routable address)"),
    ],
)
async def test_fetch_page_refuses_internal_addresses_before_connecting(url: str, reason: str) -> None:
    # The system resolver answers IP literals, numeric forms and localhost without a network.
    web = Recorder(never_called)

    with pytest.raises(ToolError) as raised:
        await WebSearchTools(transport=httpx.MockTransport(web)).fetch_page(url)

    message = str(raised.value)
    assert message.startswith(f"Refusing to fetch {url!r}: ")
    assert f"resolves to {reason}, which is not on the public internet." in message
    assert web.requests == []


@pytest.mark.anyio
async def test_a_host_with_any_internal_address_is_refused() -> None:
    web = Recorder(never_called)
    resolver = {"mixed.example": ["93.184.215.14", "10.1.2.3"]}

    with pytest.raises(ToolError, match=r"'mixed\.example' resolves to 10\.1\.2\.3 \(private address\)"):
        await tools(web, resolver=resolver).fetch_page("https://mixed.example/")
    assert web.requests == []


@pytest.mark.anyio
async def test_a_redirect_to_an_internal_address_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/iam/"})

    web = Recorder(handler)

    with pytest.raises(ToolError) as raised:
        await tools(web, resolver=PUBLIC).fetch_page("https://example.com/innocent")

    assert str(raised.value).startswith("Refusing to fetch 'http://169.254.169.254/latest/meta-data/iam/': ")
    assert [str(r.url) for r in web.requests] == ["https://93.184.215.14/innocent"]


@pytest.mark.anyio
async def test_a_redirect_to_a_host_resolving_internally_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": "https://intranet.example/"})

    resolver = {**PUBLIC, "intranet.example": ["192.168.0.10"]}

    with pytest.raises(ToolError, match=r"'intranet\.example' resolves to 192\.168\.0\.10 \(private address\)"):
        await tools(handler, resolver=resolver).fetch_page("https://example.com/")


@pytest.mark.anyio
async def test_public_redirects_are_followed_and_reported_as_the_final_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "example.com":
            return httpx.Response(301, headers={"Location": "http://www.example.org/start"})
        if request.url.path == "/start":
            return httpx.Response(307, headers={"Location": "/final#section"})
        return html_response(b"<title>Final</title><p>Arrived.</p>")

    page = await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/old")

    assert (page.url, page.final_url, page.title, page.text) == (
        "https://example.com/old",
        "http://www.example.org/final",
        "Final",
        "Arrived.",
    )


@pytest.mark.anyio
async def test_too_many_redirects_stop_with_a_clear_error() -> None:
    web = Recorder(lambda request: httpx.Response(302, headers={"Location": f"/hop{len(web.requests)}"}))
    config = WebSearchConfig(max_redirects=3)

    with pytest.raises(ToolError) as raised:
        await tools(web, config, resolver=PUBLIC).fetch_page("https://example.com/")

    assert str(raised.value) == (
        "'https://example.com/' redirected more than 3 times; give the final URL of the page instead."
    )
    assert len(web.requests) == 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Only http:// and https:// URLs can be fetched, got 'file:///etc/passwd'."),
        ("ftp://example.com/x", "Only http:// and https:// URLs can be fetched, got 'ftp://example.com/x'."),
        ("example.com/page", "Only http:// and https:// URLs can be fetched, got 'example.com/page'."),
        ("https://", "'https://' has no host name"),
        ("http://admin:pw@example.com/", "carries a user name or password"),
        ("http://0177.0.0.1/", "is not a valid URL"),
        ("", "invalid arguments for fetch_page: url: String should have at least 1 character"),
        ("https://example.com/" + "x" * 2048, "url: String should have at most 2048 characters"),
    ],
)
async def test_urls_that_are_not_plain_web_addresses_are_refused(url: str, message: str) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        await tools(never_called, resolver={}).fetch_page(url)


@pytest.mark.anyio
async def test_a_redirect_to_another_scheme_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "file:///etc/passwd"})

    with pytest.raises(ToolError, match=re.escape("Only http:// and https:// URLs can be fetched")):
        await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content_type", "shown"),
    [("image/png", "'image/png'"), ("application/pdf", "'application/pdf'"), ("", "no content type")],
)
async def test_non_text_content_is_refused(content_type: str, shown: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": content_type}, content=b"\x89PNG\r\n")

    with pytest.raises(ToolError) as raised:
        await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/logo")

    assert str(raised.value) == (
        f"'https://example.com/logo' is {shown}, not a text page; only HTML, plain text, JSON and XML can be "
        "read. Look for an HTML page about the same thing."
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/plain; charset=utf-8", b"  line one\n  line two  \n", "line one\n  line two"),
        ("application/json", b'{"ok": true}', '{"ok": true}'),
        ("application/rss+xml", b"<rss><channel/></rss>", "<rss><channel/></rss>"),
        ("text/plain; charset=iso-8859-1", "Crème brûlée".encode("latin-1"), "Crème brûlée"),
    ],
)
async def test_text_json_and_xml_are_returned_as_they_are(content_type: str, body: bytes, text: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": content_type}, content=body)

    page = await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/data")

    assert (page.title, page.text, page.content_type) == (None, text, content_type.split(";")[0])


@pytest.mark.anyio
async def test_an_html_page_in_a_legacy_charset_is_decoded_from_its_meta_tag() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return html_response(page_fixture("latin1.html"), content_type="text/html")

    page = await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/menu")

    assert (page.title, page.text) == ("Café", "Crème brûlée")


@pytest.mark.anyio
async def test_long_text_is_cut_to_max_chars_and_marked_truncated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=b"a" * 5000)

    page = await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/long", max_chars=1000)

    assert (page.text, page.truncated) == ("a" * 1000, True)


@pytest.mark.anyio
async def test_the_download_stops_at_the_size_cap() -> None:
    streamed: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(10_000):
            streamed.append(i)
            yield b"<p>" + b"word " * 200 + b"</p>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/html"}, content=endless())

    config = WebSearchConfig(max_download_bytes=10_000)
    page = await tools(handler, config, resolver=PUBLIC).fetch_page("https://example.com/huge", max_chars=200_000)

    assert page.truncated is True
    assert len(page.text) < 10_000
    assert len(streamed) < 20  # stopped reading long before the 10,000 chunks


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "error"), [(404, ToolError), (410, ToolError), (429, TransientToolError)])
async def test_http_errors_from_pages_say_what_happened(status: int, error: type[ToolError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return html_response(b"<h1>nope</h1>", status=status)

    with pytest.raises(error) as raised:
        await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/gone")

    assert str(raised.value).startswith(f"'https://example.com/gone' answered HTTP {status} ")
    assert (type(raised.value) is TransientToolError) == (status == 429)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_from_pages_are_retryable(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return html_response(b"down", status=status)

    with pytest.raises(TransientToolError, match=f"answered HTTP {status}"):
        await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/")


@pytest.mark.anyio
async def test_a_page_that_cannot_be_reached_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 113] No route to host")

    with pytest.raises(TransientToolError) as raised:
        await tools(handler, resolver=PUBLIC).fetch_page("https://example.com/")

    assert str(raised.value) == "Could not download 'https://example.com/' (ConnectError); retry later."


@pytest.mark.anyio
async def test_a_page_that_never_answers_hits_the_deadline() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    config = WebSearchConfig(timeout_s=0.05)

    with pytest.raises(TransientToolError) as raised:
        await tools(handler, config, resolver=PUBLIC).fetch_page("https://example.com/slow")

    assert str(raised.value) == "'https://example.com/slow' did not answer within 0.05 s; retry later."


@pytest.mark.anyio
async def test_allow_private_lets_trusted_deployments_reach_internal_hosts() -> None:
    web = Recorder(lambda request: html_response(b"<title>Wiki</title><p>internal</p>"))

    page = await tools(web, WebSearchConfig(allow_private=True)).fetch_page("http://localhost:8080/wiki")

    assert (page.title, page.text) == ("Wiki", "internal")
    assert str(web.requests[0].url) == "http://localhost:8080/wiki"


@pytest.mark.anyio
@pytest.mark.parametrize("max_chars", [0, 99, 200_001])
async def test_max_chars_out_of_range_is_refused(max_chars: int) -> None:
    with pytest.raises(
        ToolArgumentsError, match=rf"invalid arguments for fetch_page: max_chars: .* \(got {max_chars}\)"
    ):
        await tools(never_called, resolver={}).fetch_page("https://example.com/", max_chars=max_chars)
