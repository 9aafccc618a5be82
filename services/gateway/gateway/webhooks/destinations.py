"""Where a webhook may be delivered: public addresses only, vetted when it is sent (security issue, class 4).

A webhook URL is chosen by the caller and fetched by the gateway from inside the network, so without rules it
reaches what only the gateway can reach (a service's unauthenticated port, a cloud metadata endpoint) and
its delivery log reports what answered where. The rules:

- at creation and update: `http`/`https` only, no user-info (`user:password@`), at most `max_url_length`
  characters, and a host that is not a non-public IP literal or `localhost` (422 `webhook-url-not-allowed`);
- at every delivery: the URL is checked again, the host name is resolved and the delivery is refused if ANY
  of its addresses is not public (loopback, private, link-local — the metadata address 169.254.169.254 is
  one —, shared, multicast, reserved, unspecified; IPv4 inside IPv6 is unwrapped). The check runs inside
  the HTTP client's resolver, so the connection goes to the very addresses that were vetted: a DNS answer
  that changes between the check and the connection (rebinding) cannot slip through. Redirects are not
  followed (a 3xx is recorded as a failed attempt), so there is no second hop to vet;
- `GATEWAY_WEBHOOK_ALLOWED_HOSTS` lists host names, addresses or networks exempt from the address rule,
  for development and tests only (e.g. `127.0.0.1` for a local receiver);
- what the delivery log records is a category ("connection refused", "timeout", "refused: address not
  allowed", "HTTP 500"), never the exception text, which names addresses and ports.
"""

import ipaddress
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from shared.problems import DomainError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# The usual cloud metadata addresses: already non-public (link-local, unique-local), named for the reader.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.", "localhost.localdomain")

REFUSED_ADDRESS = "refused: address not allowed"
REFUSED_URL = "refused: URL not allowed"


class WebhookUrlNotAllowed(DomainError):
    status, slug, title = 422, "webhook-url-not-allowed", "Webhook URL not allowed"


class AddressNotAllowed(OSError):
    """Raised inside the client's resolver: aiohttp wraps it in a ClientConnectorDNSError, nothing connects."""


def is_public(ip: IpAddress) -> bool:
    """Globally reachable unicast, checked on the IPv4 address embedded in an IPv6 one too."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip.sixtofour is not None and not is_public(ip.sixtofour):
            return False
        if ip.teredo is not None and not all(is_public(a) for a in ip.teredo):
            return False
        if ip in _NAT64 and not is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)):
            return False
    if ip in METADATA_ADDRESSES:
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class DestinationPolicy:
    def __init__(self, allowed_hosts: Iterable[str] = (), max_url_length: int = 2048) -> None:
        self.max_url_length = max_url_length
        self._names: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowed_hosts:
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self._names.add(entry.lower().rstrip("."))

    def address_allowed(self, host: str, address: IpAddress) -> bool:
        if is_public(address):
            return True
        return host.lower().rstrip(".") in self._names or any(address in net for net in self._networks)

    def check_url(self, url: str) -> URL:
        """The parsed URL, or WebhookUrlNotAllowed saying why (at creation, update and delivery)."""
        if len(url) > self.max_url_length:
            raise WebhookUrlNotAllowed(f"the URL is longer than {self.max_url_length} characters")
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise WebhookUrlNotAllowed("the URL cannot be parsed") from None
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise WebhookUrlNotAllowed("the URL must be http or https with a host")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise WebhookUrlNotAllowed(
                "the URL must not carry credentials (user:password@); the receiver verifies the signature instead"
            )
        host = parsed.raw_host
        ip = _ip(host)
        local_name = ip is None and host.lower() in _LOCAL_NAMES and host.lower().rstrip(".") not in self._names
        if local_name or (ip is not None and not self.address_allowed(host, ip)):
            raise WebhookUrlNotAllowed("the URL must point at a public address", reason="address")
        return parsed


class VettingResolver(AbstractResolver):
    """Resolves like the default resolver, then refuses the whole answer if any address is not allowed."""

    def __init__(self, policy: DestinationPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            ip = _ip(answer["host"])
            if ip is None or not self._policy.address_allowed(host, ip):
                raise AddressNotAllowed(f"{host} resolves to an address that is not allowed")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def failure_category(exc: BaseException) -> str:
    """What the delivery log may say about a failed attempt: the kind of failure, not the network's layout."""
    if isinstance(exc, WebhookUrlNotAllowed):
        return REFUSED_ADDRESS if exc.extensions.get("reason") == "address" else REFUSED_URL
    if isinstance(exc, AddressNotAllowed):
        return REFUSED_ADDRESS
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return REFUSED_ADDRESS if isinstance(exc.os_error, AddressNotAllowed) else "name not resolved"
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else "connection failed"
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, aiohttp.InvalidURL):
        return REFUSED_URL
    return "connection failed"
