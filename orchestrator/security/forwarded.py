"""The client's address behind reverse proxies: `X-Forwarded-For`, from trusted hops only.

Per-IP limits (the fraud guard's send window, Basic-auth lockouts) key on the caller's address.
Behind a load balancer every request comes from the balancer, so one abuser would lock everyone
out. With `VERIFY_TRUSTED_PROXIES` (comma-separated addresses or CIDRs, empty by default) a
request whose peer is one of them is read through its `X-Forwarded-For`: walking the list from the
right, trusted hops are skipped and the first address that is not trusted is the client. A peer
that is not trusted is the client whatever the header says, so nobody can spoof their way out of
a limit by sending the header themselves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["TrustedProxies", "middleware_for"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, spec: str) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in spec.split(",")
            if part.strip()
        )

    def trusts(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address for a request from `peer` carrying this X-Forwarded-For."""
        if not self.trusts(peer) or not forwarded_for:
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return _valid(hop) or peer
        # every hop is a proxy of ours: the leftmost is as close to the client as we can get
        return _valid(hops[0]) if hops else peer


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def middleware_for(spec: str) -> Middleware:
    """A middleware that makes `request.remote` the client's address (no-op without proxies)."""
    proxies = TrustedProxies(spec)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if proxies.networks and proxies.trusts(request.remote):
            client = proxies.client(request.remote, request.headers.get("X-Forwarded-For"))
            if client is not None and client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)

    return middleware
