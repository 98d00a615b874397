"""The search providers behind `search`: Tavily, Brave, SearXNG and DuckDuckGo (`ddgs`).

Each answer is read through a small pydantic model of the fields we use; failures become tool
errors that name the fix and never carry an API key.
"""

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import httpx
from ddgs import DDGS
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
from pydantic import BaseModel, SecretStr, ValidationError

from tools._http import read_up_to
from tools.errors import ToolError, TransientToolError
from tools.web_search.html_text import html_fragment_text
from tools.web_search.models import Provider, SearchResult, WebSearchConfig

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)

TAVILY_URL = "https://api.tavily.com/search"
BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"


class TextSearcher(Protocol):
    """The part of `ddgs.DDGS` that `search` uses."""

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


DdgsFactory = Callable[[], TextSearcher]
# A new HTTP client for one call (see WebSearchTools: clients never cross event loops).
ClientFactory = Callable[[], httpx.AsyncClient]


class Providers:
    """Runs a query against the configured provider."""

    def __init__(self, config: WebSearchConfig, client: ClientFactory, ddgs_factory: DdgsFactory | None) -> None:
        self._config = config
        self._client = client
        self._ddgs_factory = ddgs_factory or self._default_ddgs

    async def search(self, provider: Provider, query: str, max_results: int) -> list[SearchResult]:
        match provider:
            case "tavily":
                return await self._search_tavily(query, max_results)
            case "brave":
                return await self._search_brave(query, max_results)
            case "searxng":
                return await self._search_searxng(query, max_results)
            case "ddgs":
                return await self._search_ddgs(query, max_results)

    async def _search_tavily(self, query: str, max_results: int) -> list[SearchResult]:
        key = _secret(self._config.tavily_api_key, "TAVILY_API_KEY")
        raw = await self._api_json(
            "Tavily",
            "TAVILY_API_KEY",
            "POST",
            TAVILY_URL,
            headers={"Authorization": f"Bearer {key}"},
            json_body={"query": query, "max_results": max_results, "search_depth": "basic"},
        )
        data = self._parse("Tavily", _TavilyResponse, raw)
        return [SearchResult(title=r.title, url=r.url, snippet=r.content) for r in data.results]

    async def _search_brave(self, query: str, max_results: int) -> list[SearchResult]:
        key = _secret(self._config.brave_api_key, "BRAVE_API_KEY")
        raw = await self._api_json(
            "Brave Search",
            "BRAVE_API_KEY",
            "GET",
            BRAVE_URL,
            headers={"X-Subscription-Token": key},
            params={"q": query, "count": max_results},
        )
        data = self._parse("Brave Search", _BraveResponse, raw)
        hits = data.web.results if data.web is not None else []
        # Brave marks query terms with <strong> and escapes entities: make it plain text.
        return [
            SearchResult(title=html_fragment_text(r.title), url=r.url, snippet=html_fragment_text(r.description))
            for r in hits
        ]

    async def _search_searxng(self, query: str, max_results: int) -> list[SearchResult]:
        try:
            base = httpx.URL(_secret(self._config.searxng_url, "SEARXNG_URL"))
        except httpx.InvalidURL as exc:
            raise ToolError("`SEARXNG_URL` is not a valid URL; set it to e.g. http://localhost:8888.") from exc
        if base.scheme not in ("http", "https") or not base.host:
            raise ToolError("`SEARXNG_URL` must be an http:// or https:// URL, e.g. http://localhost:8888.")
        # Credentials in the URL travel as a Basic auth header, so no URL that is logged (httpx logs
        # every request URL) carries them.
        auth = httpx.BasicAuth(base.username, base.password) if base.userinfo else None
        endpoint = base.copy_with(userinfo=b"", path=base.path.rstrip("/") + "/search", query=None)
        raw = await self._api_json(
            "SearXNG",
            "SEARXNG_URL",
            "GET",
            str(endpoint),
            params={"q": query, "format": "json"},
            auth=auth,
        )
        data = self._parse("SearXNG", _SearxngResponse, raw)
        return [SearchResult(title=r.title, url=r.url, snippet=r.content or "") for r in data.results[:max_results]]

    async def _search_ddgs(self, query: str, max_results: int) -> list[SearchResult]:
        # ddgs is synchronous: run it in a worker thread. Abandon the thread if the deadline passes;
        # ddgs has its own per-request timeout, so it ends soon after.
        searcher = self._ddgs_factory()

        def run() -> list[dict[str, Any]]:
            return searcher.text(query, max_results=max_results, safesearch="moderate")

        try:
            with anyio.fail_after(self._config.timeout_s * 2):
                raw = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        except TimeoutError as exc:
            raise TransientToolError("DuckDuckGo search did not answer in time; retry in a moment.") from exc
        except RatelimitException as exc:
            raise TransientToolError("DuckDuckGo is rate limiting searches; retry in a minute.") from exc
        except TimeoutException as exc:
            raise TransientToolError("DuckDuckGo search timed out; retry in a moment.") from exc
        except DDGSException as exc:
            if "no results found" in str(exc).casefold():
                return []
            logger.info("ddgs search failed: %r", exc)
            raise TransientToolError(f"DuckDuckGo search failed ({str(exc)[:200]}); retry in a moment.") from exc
        return [
            SearchResult(title=str(r.get("title", "")), url=str(r.get("href", "")), snippet=str(r.get("body", "")))
            for r in raw
            if r.get("href")
        ]

    def _default_ddgs(self) -> TextSearcher:
        return DDGS(timeout=math.ceil(self._config.timeout_s))

    async def _api_json(
        self,
        provider: str,
        key_env: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        json_body: Mapping[str, object] | None = None,
        auth: httpx.Auth | None = None,
    ) -> object:
        """Call a search API and return its JSON; failures become tool errors free of secrets."""
        config = self._config
        try:
            with anyio.fail_after(config.timeout_s):
                async with (
                    self._client() as client,
                    client.stream(
                        method,
                        url,
                        headers={"Accept": "application/json", **(headers or {})},
                        params=params,
                        json=json_body,
                        auth=auth,
                    ) as response,
                ):
                    body, cut = await read_up_to(response, config.max_response_bytes)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TransientToolError(f"{provider} did not answer within {config.timeout_s:g} s; retry later.") from exc
        except httpx.TransportError as exc:
            # Never log the exception's request: it carries the API key.
            logger.info("%s request failed: %s", provider, type(exc).__name__)
            raise TransientToolError(f"Could not reach {provider} ({type(exc).__name__}); retry later.") from exc
        status = response.status_code
        reason = self._scrub(_api_error_reason(body) or response.reason_phrase)
        if status == 429 or status >= 500:
            wait = response.headers.get("retry-after", "").strip()
            hint = f"retry after {wait} s" if wait.isdigit() else "retry later"
            raise TransientToolError(f"{provider} answered HTTP {status} ({reason}); {hint}.")
        if status in (401, 403):
            extra = " and that its settings.yml lists `json` under search.formats" if provider == "SearXNG" else ""
            raise ToolError(f"{provider} refused the request (HTTP {status}: {reason}); check `{key_env}`{extra}.")
        if status != 200:
            raise ToolError(f"{provider} refused the request (HTTP {status}): {reason}")
        if cut:
            raise ToolError(f"{provider} sent more than {config.max_response_bytes} bytes; ask for fewer results.")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ToolError(f"{provider} answered with something that is not JSON; check `{key_env}`.") from exc

    def _parse(self, provider: str, model: type[_M], raw: object) -> _M:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            logger.warning("Unexpected %s answer: %d validation errors", provider, exc.error_count())
            raise ToolError(f"{provider} answered in an unexpected shape; try another provider.") from exc

    def _scrub(self, text: str) -> str:
        """Remove configured secrets from text that came back from a provider."""
        for secret in self._config.secrets():
            text = text.replace(secret, "***")
        return text


# -- provider answers (only the fields we read) --


class _TavilyResult(BaseModel):
    title: str = ""
    url: str
    content: str = ""


class _TavilyResponse(BaseModel):
    results: list[_TavilyResult]


class _BraveResult(BaseModel):
    title: str = ""
    url: str
    description: str = ""


class _BraveWeb(BaseModel):
    results: list[_BraveResult] = []


class _BraveResponse(BaseModel):
    web: _BraveWeb | None = None  # absent when nothing matched


class _SearxngResult(BaseModel):
    title: str = ""
    url: str
    content: str | None = None


class _SearxngResponse(BaseModel):
    results: list[_SearxngResult]


# -- helpers --


def _secret(value: SecretStr | None, env: str) -> str:
    if value is None:  # the config validator normally prevents this
        raise ToolError(f"This search provider is not configured; set `{env}`.")
    return value.get_secret_value()


def _api_error_reason(body: bytes) -> str | None:
    """Pull the human reason out of the error shapes of Tavily, Brave and SearXNG."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    candidates: list[object] = [data.get("detail"), data.get("error"), data.get("message")]
    for candidate in candidates:
        if isinstance(candidate, dict):  # Tavily {"detail": {"error": ...}}, Brave {"error": {"detail": ...}}
            candidate = candidate.get("error") or candidate.get("detail") or candidate.get("message")
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()[:300]
    return None
