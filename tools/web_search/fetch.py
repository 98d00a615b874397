"""`fetch_page`'s download: redirects followed by hand (each hop through the SSRF guard), the
status and content type checked, the body read up to a limit and turned into readable text."""

import logging

import anyio
import anyio.to_thread
import httpx

from tools._http import read_up_to
from tools.errors import ToolError, TransientToolError
from tools.web_search.guard import Resolver, parse_fetch_url, pinned_request, redirect_target
from tools.web_search.html_text import extract_text
from tools.web_search.models import Page, WebSearchConfig
from tools.web_search.providers import ClientFactory

logger = logging.getLogger(__name__)

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_TEXT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain", "application/json"})
_XML_TYPES = frozenset({"text/xml", "application/xml"})


async def fetch_page(
    config: WebSearchConfig, client_factory: ClientFactory, resolver: Resolver, url: str, max_chars: int
) -> Page:
    """Download `url` (already stripped and length-checked by the tool's signature) as a Page."""
    current = parse_fetch_url(url)
    async with client_factory() as client:
        for _hop in range(config.max_redirects + 1):
            try:
                with anyio.fail_after(config.timeout_s):
                    request = await pinned_request(client, current, resolver, allow_private=config.allow_private)
                    response = await client.send(request, stream=True)
                    try:
                        if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                            current = redirect_target(current, response.headers["location"])
                            continue
                        _check_page_status(response, current)
                        content_type = _check_content_type(response, current)
                        body, cut = await read_up_to(response, config.max_download_bytes)
                    finally:
                        await response.aclose()
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise TransientToolError(
                    f"{str(current)!r} did not answer within {config.timeout_s:g} s; retry later."
                ) from exc
            except httpx.TransportError as exc:
                logger.info("fetch of %s failed: %r", current, exc)
                raise TransientToolError(
                    f"Could not download {str(current)!r} ({type(exc).__name__}); retry later."
                ) from exc
            # Parsing megabytes of HTML is CPU work: keep it off the (shared) event loop.
            title, text = await anyio.to_thread.run_sync(extract_text, body, content_type, response.charset_encoding)
            return Page(
                url=url,
                final_url=str(current),
                content_type=content_type,
                title=title,
                text=text[:max_chars],
                truncated=cut or len(text) > max_chars,
            )
    raise ToolError(
        f"{url!r} redirected more than {config.max_redirects} times; give the final URL of the page instead."
    )


def _check_page_status(response: httpx.Response, url: httpx.URL) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientToolError(f"{str(url)!r} answered HTTP {status} ({response.reason_phrase}); retry later.")
    if not 200 <= status < 300:
        raise ToolError(
            f"{str(url)!r} answered HTTP {status} ({response.reason_phrase}); check the URL or try another page."
        )


def _check_content_type(response: httpx.Response, url: httpx.URL) -> str:
    raw = response.headers.get("content-type", "")
    mime = raw.split(";", 1)[0].strip().lower()
    if mime in _TEXT_TYPES or mime in _XML_TYPES or mime.endswith(("+xml", "+json")):
        return mime
    shown = repr(mime) if mime else "no content type"
    raise ToolError(
        f"{str(url)!r} is {shown}, not a text page; only HTML, plain text, JSON and XML can be read. "
        "Look for an HTML page about the same thing."
    )
