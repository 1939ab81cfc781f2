"""X-Forwarded-For is believed only from trusted proxies, and only as far as they go."""

from __future__ import annotations

import pytest

from orchestrator.security.forwarded import TrustedProxies

PROXIES = TrustedProxies("10.0.0.0/8, 127.0.0.1 ,fd00::/8")


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        # no proxies of ours in the way: the peer, whatever the header says
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("203.0.113.7", None, "203.0.113.7"),
        # one trusted hop: the address it saw
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        # the client wrote its own header: only the hop our proxy appended counts
        ("10.1.2.3", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        # a chain of our proxies: skipped from the right
        ("127.0.0.1", "198.51.100.1, 10.9.9.9, 10.0.0.1", "198.51.100.1"),
        # IPv6 proxies and clients
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
        # every hop ours: the leftmost
        ("10.1.2.3", "10.0.0.9, 10.0.0.1", "10.0.0.9"),
        # garbage where the client should be: the peer, never the garbage
        ("10.1.2.3", "not-an-ip", "10.1.2.3"),
        ("10.1.2.3", " , ", "10.1.2.3"),
        ("10.1.2.3", "", "10.1.2.3"),
    ],
)
def test_client_address(peer: str, header: str | None, client: str) -> None:
    assert PROXIES.client(peer, header) == client


def test_no_proxies_configured_trusts_nobody() -> None:
    none = TrustedProxies("")
    assert none.networks == ()
    assert none.client("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_a_bad_proxy_setting_fails_at_start() -> None:
    with pytest.raises(ValueError):
        TrustedProxies("10.0.0.0/8, not-a-network")
