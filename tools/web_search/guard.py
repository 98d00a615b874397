"""The server-side request forgery guard of `fetch_page`.

The host is resolved and every address must be public (not private, loopback, link-local,
multicast, reserved or unspecified; IPv4-mapped and other IPv4-embedding IPv6 forms included); the
request then goes to the checked address (`pinned_request`), so a second DNS answer cannot
redirect it; every redirect hop is checked the same way (`redirect_target`).
"""

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx

from tools.errors import ToolError, TransientToolError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# (host, port) -> IP addresses as strings. The default asks the system resolver (getaddrinfo).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve `host` with getaddrinfo (off the event loop) to its IP addresses."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise TransientToolError(f"DNS lookup of {host!r} failed temporarily; retry in a moment.") from exc
        raise ToolError(f"The host {host!r} does not exist (DNS lookup failed); check the URL.") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_fetch_url(url: str) -> httpx.URL:
    """The URL to fetch, or ToolError saying why it cannot be fetched."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolError(f"{url!r} is not a valid URL ({exc}); give an absolute http(s) URL.") from exc
    _check_fetchable(parsed, url)
    return parsed


def _check_fetchable(parsed: httpx.URL, shown: str) -> None:
    if parsed.scheme not in ("http", "https"):
        raise ToolError(f"Only http:// and https:// URLs can be fetched, got {shown!r}.")
    if not parsed.host:
        raise ToolError(f"{shown!r} has no host name; give an absolute URL such as 'https://example.com/page'.")
    if parsed.userinfo:
        raise ToolError(f"{shown!r} carries a user name or password; remove the 'user:password@' part.")


def redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    try:
        target = current.join(location)
    except httpx.InvalidURL as exc:
        raise ToolError(f"{str(current)!r} redirected to an invalid URL {location!r}.") from exc
    _check_fetchable(target, str(target))
    return target.copy_with(fragment=None)


def _ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _blocked_reason(address: str) -> str | None:
    """Why `address` must not be fetched from, or None if it is a public internet address."""
    ip = _ip_or_none(address)
    if ip is None:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that IPv4 address: judge the embedded one.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _blocked_reason(str(embedded))
            return f"embeds {embedded}: {inner}" if inner else None
    checks = (
        (ip.is_unspecified, "unspecified address"),
        (ip.is_loopback, "loopback address"),
        (ip.is_link_local, "link-local address"),
        (ip.is_multicast, "multicast address"),
        (ip.is_private, "private address"),
        (ip.is_reserved, "reserved address"),
        (not ip.is_global, "not a globally routable address"),
    )
    return next((reason for failed, reason in checks if failed), None)


async def pinned_request(
    client: httpx.AsyncClient, url: httpx.URL, resolver: Resolver, *, allow_private: bool
) -> httpx.Request:
    """Build a GET for `url` that connects to a checked public address of its host."""
    if allow_private:
        return client.build_request("GET", url)
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    literal = _ip_or_none(host)
    addresses = [host] if literal is not None else list(await resolver(host, port))
    if not addresses:
        raise ToolError(f"The host {host!r} has no addresses; check the URL {str(url)!r}.")
    for address in addresses:
        problem = _blocked_reason(address)
        if problem is not None:
            raise ToolError(
                f"Refusing to fetch {str(url)!r}: {host!r} resolves to {address} ({problem}), which is not "
                "on the public internet. Only public web pages can be fetched."
            )
    # Connect to the address just checked, not to whatever a second DNS lookup returns; the Host
    # header and TLS server name (SNI and certificate check) stay those of the real host.
    pinned = url.copy_with(host=addresses[0])
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return client.build_request("GET", pinned, headers={"Host": url.netloc.decode("ascii")}, extensions=extensions)
