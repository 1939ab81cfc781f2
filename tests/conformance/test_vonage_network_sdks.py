"""Conformance: the official Vonage Network SDKs (`vonage-network-number-verification`,
`vonage-network-sim-swap`, through `vonage.Vonage`), unmodified, against a real `serve` process.

THE ONE CHANGE: the SDKs' API host. Both API classes, and the `NetworkAuth` each wraps, keep the
host in a `_host` attribute (`'api-eu.vonage.com'`; `HttpClientOptions.api_host` is not read by
the Network APIs), and build `https://{_host}{path}`; `aim()` sets it to
`127.0.0.1:<port>/sandbox/operator`, the sandbox operator's root on the stack. The front-channel
URL from `get_oidc_url` is hard-coded to `https://oidc.idp.vonage.com/oauth2/auth`; the "device"
opens it with that origin swapped for the same root (only the host changes, path and query are
the SDK's). `requests` trusts the stack's self-signed certificate through REQUESTS_CA_BUNDLE,
which the session `stack` fixture exports.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client import ForbiddenError
from vonage_network_number_verification import (
    CreateOidcUrl,
    NetworkNumberVerification,
    NumberVerificationRequest,
)
from vonage_network_sim_swap import LastSwapDate, NetworkSimSwap, SimSwapCheckRequest

from tests.support.client import TestApp
from tests.support.processes import Stack

VONAGE_OIDC = "https://oidc.idp.vonage.com"
DEVICE_IP = "X-Sandbox-Device-IP"
ON_MOBILE_DATA = "100.64.0.7"  # config/sandbox_operator.toml: 100.64.0.0/16 → 447700900100
ON_WIFI = "203.0.113.9"


def aim(sdk: NetworkNumberVerification | NetworkSimSwap, stack: Stack) -> Any:
    """Point an SDK API object at the stack's sandbox operator: its host, nothing else."""
    host = f"{stack.host}/sandbox/operator"
    sdk._host = host
    sdk._network_auth._host = host
    return sdk


@pytest.fixture
def vonage(stack: Stack, app: TestApp) -> Vonage:
    response = requests.get(
        stack.url + "/sandbox/operator/.well-known/openid-configuration",
        verify=str(stack.cert),
        timeout=10,
    )
    if response.status_code == 404:
        pytest.fail("create_app does not register orchestrator.sandbox.operator_api's routes")
    auth = Auth(application_id=app.application_id, private_key=app.private_key_path)
    # max_retries=0: a failure surfaces at once, never as a silently repeated POST
    return Vonage(auth, HttpClientOptions(max_retries=0, timeout=10))


def magic(last: str) -> str:
    """A number of Vonage's 990 virtual operator ending in `last`."""
    return "990" + f"{random.randrange(10**7):07d}" + last


def device_follows(stack: Stack, oidc_url: str, device_ip: str) -> dict[str, list[str]]:
    """The handset opens the SDK's OIDC URL over "mobile data"; the redirect's query."""
    assert oidc_url.startswith(VONAGE_OIDC + "/oauth2/auth?"), oidc_url
    url = stack.url + "/sandbox/operator" + oidc_url.removeprefix(VONAGE_OIDC)
    resp = requests.get(
        url,
        headers={DEVICE_IP: device_ip},
        allow_redirects=False,
        verify=str(stack.cert),
        timeout=10,
    )
    assert resp.status_code == 302, resp.text
    return parse_qs(urlsplit(resp.headers["Location"]).query)


def test_number_verification_front_channel_then_verify(stack: Stack, vonage: Vonage) -> None:
    nv = aim(vonage.network_number_verification, stack)
    redirect_uri = stack.url + "/app/number-verification/callback"
    for attempt, (number, hashed, device_ip, expected) in enumerate(
        [
            ("+447700900100", False, ON_MOBILE_DATA, True),
            ("+447700900100", True, ON_MOBILE_DATA, True),
            ("+447700900555", False, ON_MOBILE_DATA, False),
        ]
    ):
        state = f"state-{attempt}"
        oidc_url = nv.get_oidc_url(
            CreateOidcUrl(redirect_uri=redirect_uri, state=state, login_hint=number)
        )
        query = device_follows(stack, oidc_url, device_ip)
        assert query["state"] == [state]
        params: dict[str, Any] = {"code": query["code"][0], "redirect_uri": redirect_uri}
        if hashed:
            params["hashed_phone_number"] = hashlib.sha256(number.encode()).hexdigest()
        else:
            params["phone_number"] = number
        # one SDK client for every attempt: its reused headers must not break the second round
        result = nv.verify(NumberVerificationRequest(**params))
        assert result.device_phone_number_verified is expected


def test_number_verification_answers_the_sdk_with_camara_errors(
    stack: Stack, vonage: Vonage
) -> None:
    nv = aim(vonage.network_number_verification, stack)
    redirect_uri = stack.url + "/app/callback"
    # a device on Wi-Fi gets a code, but no network authentication: 403 from the API
    url = nv.get_oidc_url(
        CreateOidcUrl(redirect_uri=redirect_uri, state="w", login_hint="+447700900100")
    )
    query = device_follows(stack, url, ON_WIFI)
    request = NumberVerificationRequest(
        code=query["code"][0], redirect_uri=redirect_uri, phone_number="+447700900100"
    )
    with pytest.raises(ForbiddenError) as caught:
        nv.verify(request)
    body = caught.value.response.json()
    assert body["code"] == "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    # the virtual operator: an odd 990 number is declined on the front channel
    url = nv.get_oidc_url(
        CreateOidcUrl(redirect_uri=redirect_uri, state="o", login_hint=magic("3"))
    )
    query = device_follows(stack, url, ON_MOBILE_DATA)
    assert query["error"] == ["access_denied"] and query["state"] == ["o"]
    # an even one completes whatever the device's IP, as on Vonage's virtual operator
    even = magic("4")
    url = nv.get_oidc_url(CreateOidcUrl(redirect_uri=redirect_uri, state="e", login_hint=even))
    query = device_follows(stack, url, ON_WIFI)
    request = NumberVerificationRequest(
        code=query["code"][0], redirect_uri=redirect_uri, phone_number="+" + even
    )
    assert nv.verify(request).device_phone_number_verified is True


def test_sim_swap_check_and_last_swap_date(stack: Stack, vonage: Vonage) -> None:
    ss = aim(vonage.network_sim_swap, stack)
    swapped = "+" + magic("8")  # the virtual operator: changed an hour ago
    status = ss.check(SimSwapCheckRequest(phone_number=swapped, max_age=2))
    # the SDK hands back the JSON as is (its SwapStatus model, never applied, types `swapped` as
    # a string; CAMARA's is a boolean)
    assert status == {"swapped": True}
    status = ss.check(SimSwapCheckRequest(phone_number=swapped))  # maxAge defaults to 240 h
    assert status == {"swapped": True}
    # the operator table's [[sim_swaps]]: 447700900118 changed on 2026-01-01
    status = ss.check(SimSwapCheckRequest(phone_number="+447700900118", max_age=1))
    assert status == {"swapped": False}
    date = ss.get_last_swap_date("+447700900118")
    assert LastSwapDate(**date).last_swap_date == "2026-01-01T00:00:00Z"
    date = ss.get_last_swap_date(swapped)
    assert LastSwapDate(**date).last_swap_date.endswith("Z")
