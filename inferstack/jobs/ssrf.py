"""The SSRF guard for webhook URLs: checked at submit time and again, on the resolved address, at send time.

A URL is allowed when it is `https`, has a host, and every address that host resolves to is a public unicast
address: no loopback, private (RFC 1918, CGNAT), link-local (which holds the instance metadata service),
unique-local or site-local IPv6, multicast, reserved, unspecified, documentation, or IPv4-mapped/translated
forms of those. `allow_loopback` (only set by `inferstack dev --allow-loopback-webhooks`) admits
`http(s)://127.0.0.0/8`, `localhost` and `[::1]`, nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from inferstack.jobs.exceptions import UnsafeWebhookUrlError
from inferstack.observability import logger

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

#: Blocked beyond what `ipaddress` flags as non-global: the AWS metadata endpoints, named for clear messages.
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
MAX_URL_LENGTH = 2048


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeWebhookUrlError(f"webhook host {host!r} does not resolve: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


#: Looks webhook hosts up on behalf of callers that cannot wait long; a lookup past its budget is abandoned here
#: (the thread finishes in its own time; nobody waits for it).
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-dns")


def bounded(resolve: Resolver, budget_s: float) -> Resolver:
    """`resolve`, given at most `budget_s` seconds: a slow DNS server makes the URL refused (`UnsafeWebhookUrlError`)
    instead of holding its caller (the API function) to its own timeout."""
    def within_budget(host: str, port: int) -> list[str]:
        future = _LOOKUPS.submit(resolve, host, port)
        try:
            return future.result(timeout=budget_s)
        except FutureTimeout:
            raise UnsafeWebhookUrlError(f"webhook host {host!r} did not resolve within {budget_s:g} s") from None
    return within_budget


def _unwrap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip.teredo:
            return ip.teredo[1]
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_problem(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why `address` may not receive webhooks, or None when it may."""
    ip = _unwrap(ipaddress.ip_address(address.split("%", maxsplit=1)[0]))
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip in METADATA_ADDRESSES:
        return "the instance metadata service"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")):
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a non-public address"
    return None


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def check_webhook_url(url: str, *, allow_loopback: bool = False, resolve: Resolver = system_resolver,
                      refused_ports: Collection[int] = ()) -> CheckedUrl:
    """Validate a webhook URL and resolve its host; raise `UnsafeWebhookUrlError` saying why it is refused."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrlError(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrlError(f"webhook URL is malformed: {exc}") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeWebhookUrlError("webhook URL has no host")
    if parts.username or parts.password:
        raise UnsafeWebhookUrlError("webhook URL must not carry credentials")
    local_name = host in {"localhost", "localhost.localdomain"} or host.endswith(".localhost")
    if parts.scheme != "https" and not (allow_loopback and parts.scheme == "http"):
        raise UnsafeWebhookUrlError(f"webhook URL must use https, not {parts.scheme or 'no scheme'}")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if local_name and not allow_loopback:
            raise UnsafeWebhookUrlError(f"webhook host {host!r} is a loopback name") from None
        addresses = resolve(host, port)
    if not addresses:
        raise UnsafeWebhookUrlError(f"webhook host {host!r} does not resolve")
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback)
        if problem:
            if address == host:  # the client's own address literal: nothing to hide
                raise UnsafeWebhookUrlError(f"webhook host {host!r} is {problem}; webhooks are only sent to public "
                                            "addresses")
            # what a name resolves to inside this network is not the client's to learn: the log has it
            logger.warning("webhook host refused", extra={"host": host, "address": address, "reason": problem})
            raise UnsafeWebhookUrlError(f"webhook host {host!r} resolves to {problem}; webhooks are only sent to "
                                        "public addresses")
    loopback = all(_unwrap(ipaddress.ip_address(a)).is_loopback for a in addresses)
    if loopback and port in refused_ports:
        raise UnsafeWebhookUrlError(f"webhook URL points at port {port} of the local stack itself (its AWS emulator, "
                                    "a function, a model server or the gateway); webhooks go to receivers only")
    if parts.scheme == "http" and not loopback:
        raise UnsafeWebhookUrlError("plain http is only allowed to loopback receivers under inferstack dev")
    return CheckedUrl(url, parts.scheme, host, port, tuple(addresses))
