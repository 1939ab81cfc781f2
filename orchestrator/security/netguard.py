"""SSRF guard: status URLs must resolve to public addresses unless private ones are allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["UnsafeURL", "check_status_url", "is_forbidden_address", "resolve_public"]


class UnsafeURL(ValueError):
    """The URL is malformed or points at an address we refuse to call."""


def is_forbidden_address(ip: str) -> bool:
    """Loopback, private, link-local (cloud metadata), multicast, reserved or unspecified."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    )


def _split(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeURL("status URL must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise UnsafeURL("status URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("status URL has an invalid port") from exc
    return parts.hostname, port


async def resolve_public(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve `host`; refuse it when any address is forbidden (unless allowed)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeURL(f"cannot resolve {host}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for ip in addresses:
            if is_forbidden_address(ip):
                raise UnsafeURL(f"{host} resolves to a non-public address")
    return addresses


async def check_status_url(url: str, allow_private: bool) -> None:
    host, port = _split(url)
    await resolve_public(host, port, allow_private)
