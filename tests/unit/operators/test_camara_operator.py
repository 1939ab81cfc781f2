"""The CAMARA operator adapter against a strict local operator (tests/support/camara_peer.py):
the device flow driven as a handset would (authorize → redirect with a code → exchange →
verify), each client authentication, discovery, every failure mapped to a webhook reason, and
SIM Swap through CIBA (pending, slow_down, timeouts). The peer records every protocol violation;
each test that expects a well-behaved client asserts there was none."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from orchestrator.operators.base import DeviceOutcome, OperatorUnavailable
from orchestrator.operators.camara import CamaraConfig, CamaraOperator, pkce_verifier
from tests.support.camara_peer import CamaraPeer, Client

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
SECRET = b"k" * 32
REDIRECT = "https://verify.example/v2/verify/3fa85f64/silent-auth/callback"
NUMBER = "447700900123"
CLIENT_SECRET = "s3cret:with&odd=chars"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class FakeTime:
    """A clock that only moves when the operator sleeps (CIBA polling without waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
async def peer(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[CamaraPeer]:
    p = CamaraPeer()
    server = await aiohttp_server(p.app())
    p.base = str(server.make_url("")).rstrip("/")
    yield p
    p.release()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Make = Callable[..., CamaraOperator]


@pytest.fixture
def make(peer: CamaraPeer, http: aiohttp.ClientSession) -> Make:
    def build(
        method: str = "private_key_jwt",
        *,
        discovery: bool = True,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = RSA_KEY,
        fake: FakeTime | None = None,
        **extra: Any,
    ) -> CamaraOperator:
        client_id = f"client-{method}"
        peer.clients[client_id] = Client(
            client_id,
            method,
            public_key=key.public_key(),
            secret=CLIENT_SECRET,
            redirect_uris=(REDIRECT,),
        )
        values: dict[str, Any] = {
            "kind": "camara",
            "client_id": client_id,
            "client_auth": method,
            "prefixes": ["44"],
            "number_verification_url": f"{peer.base}/number-verification/v2",
            "sim_swap_url": f"{peer.base}/sim-swap/v2",
        }
        if discovery:
            values["issuer"] = peer.base
        else:
            values["authorize_url"] = f"{peer.base}/authorize"
            values["token_url"] = f"{peer.base}/token"
            values["bc_authorize_url"] = f"{peer.base}/bc-authorize"
        if method in ("private_key_jwt", "bearer_jwt"):
            values["private_key"] = _pem(key)
        else:
            values["client_secret"] = CLIENT_SECRET
        values.update(extra)
        config = CamaraConfig.model_validate(values)
        if fake is None:
            return CamaraOperator("acme", config, http, SECRET)
        return CamaraOperator("acme", config, http, SECRET, clock=fake.clock, sleep=fake.sleep)

    return build


async def device_flow(
    op: CamaraOperator,
    http: aiohttp.ClientSession,
    line: str | None,
    msisdn: str = NUMBER,
) -> DeviceOutcome:
    """What a handset and the callback do: follow the first hop to the operator over "mobile
    data" (the peer reads the line from X-Device-Line), come back with a code, redeem it."""
    state = secrets.token_urlsafe(16)
    url = await op.authorize_url(msisdn=msisdn, state=state, redirect_uri=REDIRECT)
    headers = {"X-Device-Line": line} if line else {}
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = dict(parse_qsl(urlsplit(location).query))
    assert query["state"] == state
    if "error" in query:
        return op.outcome_for_error(query["error"], query.get("error_description", ""))
    return await op.exchange(query["code"], msisdn, state=state, redirect_uri=REDIRECT)


METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post", "bearer_jwt"]


@pytest.mark.parametrize("method", METHODS)
async def test_the_device_on_the_number_completes_with_each_client_authentication(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make, method: str
) -> None:
    op = make(method)
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("completed")
    assert await device_flow(op, http, "447700900999") == DeviceOutcome("failed", "number_mismatch")
    assert peer.violations == []


async def test_explicit_endpoints_need_no_discovery(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make(discovery=False)
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("completed")
    assert "discovery" not in peer.requests
    assert peer.violations == []


async def test_discovery_is_fetched_once(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make()
    await op.start()
    for _ in range(2):
        assert await device_flow(op, http, NUMBER) == DeviceOutcome("completed")
    assert peer.requests.count("discovery") == 1


async def test_an_ec_key_signs_es256_assertions(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make(key=EC_KEY, key_id="ec-1")
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("completed")
    assert peer.violations == []


async def test_hashed_phone_numbers(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make(hashed_phone_number=True)
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("completed")
    assert await device_flow(op, http, "447700900999") == DeviceOutcome("failed", "number_mismatch")
    assert peer.violations == []


async def test_the_authorize_url_carries_what_camara_asks(make: Make) -> None:
    op = make()
    url = await op.authorize_url(msisdn="+" + NUMBER, state="st-1", redirect_uri=REDIRECT)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query.pop("code_challenge")
    assert query == {
        "response_type": "code",
        "client_id": "client-private_key_jwt",
        "redirect_uri": REDIRECT,
        "scope": "openid dpv:FraudPreventionAndDetection#number-verification-verify-read",
        "state": "st-1",
        "login_hint": f"tel:+{NUMBER}",
        "prompt": "none",
        "code_challenge_method": "S256",
    }
    assert await op.covers(NUMBER) and not await op.covers("15551234567")


def test_the_pkce_verifier_is_derived_not_stored() -> None:
    one = pkce_verifier(SECRET, "acme", "state-1")
    assert one == pkce_verifier(SECRET, "acme", "state-1")
    assert len(one) == 43
    assert one != pkce_verifier(SECRET, "acme", "state-2")
    assert one != pkce_verifier(SECRET, "other", "state-1")
    assert one != pkce_verifier(b"x" * 32, "acme", "state-1")


async def test_a_device_off_mobile_data_is_not_authenticated_by_the_network(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make()
    assert await device_flow(op, http, None) == DeviceOutcome("failed", "not_on_mobile_network")
    assert peer.violations == []


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("access_denied", DeviceOutcome("user_rejected", "oauth_error: access_denied")),
        ("login_required", DeviceOutcome("failed", "not_on_mobile_network")),
        ("consent_required", DeviceOutcome("failed", "oauth_error: consent_required")),
        ("server_error", DeviceOutcome("failed", "oauth_error: server_error")),
        ("weird error\nwith text", DeviceOutcome("failed", "oauth_error")),
    ],
)
async def test_an_oauth_error_at_the_callback_maps_to_an_outcome(
    peer: CamaraPeer,
    http: aiohttp.ClientSession,
    make: Make,
    error: str,
    outcome: DeviceOutcome,
) -> None:
    peer.authorize_error = error
    assert await device_flow(make(), http, NUMBER) == outcome


async def test_a_code_is_redeemed_once(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make()
    state = "st-2"
    url = await op.authorize_url(msisdn=NUMBER, state=state, redirect_uri=REDIRECT)
    async with http.get(url, headers={"X-Device-Line": NUMBER}, allow_redirects=False) as r:
        code = dict(parse_qsl(urlsplit(r.headers["Location"]).query))["code"]
    first = await op.exchange(code, NUMBER, state=state, redirect_uri=REDIRECT)
    again = await op.exchange(code, NUMBER, state=state, redirect_uri=REDIRECT)
    assert first == DeviceOutcome("completed")
    assert again == DeviceOutcome("failed", "oauth_error: invalid_grant")


async def test_another_state_fails_pkce(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    """A code stolen and redeemed under another flow's state: the verifier does not match."""
    op = make()
    url = await op.authorize_url(msisdn=NUMBER, state="mine", redirect_uri=REDIRECT)
    async with http.get(url, headers={"X-Device-Line": NUMBER}, allow_redirects=False) as r:
        code = dict(parse_qsl(urlsplit(r.headers["Location"]).query))["code"]
    outcome = await op.exchange(code, NUMBER, state="theirs", redirect_uri=REDIRECT)
    assert outcome == DeviceOutcome("failed", "oauth_error: invalid_grant")
    assert peer.violations == ["token: PKCE code_verifier does not match the challenge"]


async def test_no_code_at_the_callback(make: Make) -> None:
    outcome = await make().exchange("", NUMBER, state="s", redirect_uri=REDIRECT)
    assert outcome == DeviceOutcome("failed", "oauth_error: missing code")


@pytest.mark.parametrize(
    ("endpoint", "fault", "reason"),
    [
        ("token", "503", "operator_error: 503"),
        ("token", "bad_json", "operator_error: bad json"),
        ("verify", "503", "operator_error: 503 UNAVAILABLE"),
        ("verify", "500", "operator_error: 500 INTERNAL"),
        ("verify", "401", "operator_error: 401 UNAUTHENTICATED"),
        ("verify", "403", "operator_error: 403 PERMISSION_DENIED"),
        ("verify", "429", "operator_error: 429 TOO_MANY_REQUESTS"),
        ("verify", "bad_json", "operator_error: bad json"),
        ("verify", "correlator", "operator_error: x-correlator mismatch"),
    ],
)
async def test_operator_failures_map_to_reasons(
    peer: CamaraPeer,
    http: aiohttp.ClientSession,
    make: Make,
    endpoint: str,
    fault: str,
    reason: str,
) -> None:
    op = make()
    peer.faults[endpoint] = fault
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("failed", reason)


@pytest.mark.parametrize("endpoint", ["token", "verify"])
async def test_a_hanging_operator_times_out(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make, endpoint: str
) -> None:
    op = make(timeout_seconds=0.3)
    peer.faults[endpoint] = "hang"
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("failed", "timeout")


async def test_an_unreachable_operator(http: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nobody listens there
    base = f"http://127.0.0.1:{port}"
    config = CamaraConfig.model_validate(
        {
            "kind": "camara",
            "client_id": "c",
            "client_auth": "client_secret_post",
            "client_secret": "x",
            "prefixes": ["44"],
            "authorize_url": f"{base}/authorize",
            "token_url": f"{base}/token",
            "number_verification_url": f"{base}/nv",
        }
    )
    op = CamaraOperator("gone", config, http, SECRET)
    outcome = await op.exchange("code", NUMBER, state="s", redirect_uri=REDIRECT)
    assert outcome == DeviceOutcome("failed", "operator_unreachable")


async def test_discovery_failures_are_retried_not_remembered(
    peer: CamaraPeer, http: aiohttp.ClientSession, make: Make
) -> None:
    op = make()
    peer.faults["discovery"] = "503"
    with pytest.raises(OperatorUnavailable) as caught:
        await op.authorize_url(msisdn=NUMBER, state="s", redirect_uri=REDIRECT)
    assert caught.value.reason == "discovery_failed: 503"
    del peer.faults["discovery"]
    assert await device_flow(op, http, NUMBER) == DeviceOutcome("completed")


async def test_a_discovery_document_of_another_issuer_is_refused(
    peer: CamaraPeer, make: Make
) -> None:
    op = make(issuer=peer.base.replace("127.0.0.1", "localhost"))
    with pytest.raises(OperatorUnavailable) as caught:
        await op.start()
    assert caught.value.reason == "discovery_failed: issuer mismatch"


# -- SIM swap through CIBA -------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
async def test_sim_swap_within_the_window(peer: CamaraPeer, make: Make, method: str) -> None:
    peer.swaps[NUMBER] = datetime.now(UTC) - timedelta(hours=5)
    op = make(method, fake=FakeTime())
    assert await op.sim_swapped(NUMBER, 24) is True
    assert await op.sim_swapped(NUMBER, 2) is False
    assert await op.sim_swapped("447700900555", 2400) is False
    assert peer.violations == []


async def test_ciba_polls_through_pending_and_slow_down(peer: CamaraPeer, make: Make) -> None:
    peer.ciba_script = ["authorization_pending", "slow_down", "authorization_pending", "ok"]
    fake = FakeTime()
    op = make(fake=fake, timeout_seconds=60)
    assert await op.sim_swapped(NUMBER, 24) is False
    # the peer's interval (2 s), then 5 s more after slow_down (CIBA core §11)
    assert fake.slept == [2, 7, 7]
    assert peer.requests.count("token") == 4
    assert peer.violations == []


async def test_ciba_gives_up_at_the_timeout(peer: CamaraPeer, make: Make) -> None:
    peer.ciba_script = ["authorization_pending"]
    fake = FakeTime()
    op = make(fake=fake, timeout_seconds=10)
    with pytest.raises(OperatorUnavailable) as caught:
        await op.sim_swapped(NUMBER, 24)
    assert caught.value.reason == "timeout"
    assert sum(fake.slept) <= 10


@pytest.mark.parametrize(
    ("endpoint", "fault", "reason"),
    [
        ("bc-authorize", "503", "operator_error: 503"),
        ("token", "503", "operator_error: 503"),
        ("check", "503", "operator_error: 503 UNAVAILABLE"),
        ("check", "bad_json", "operator_error: bad json"),
        ("check", "correlator", "operator_error: x-correlator mismatch"),
    ],
)
async def test_sim_swap_failures_make_the_operator_unavailable(
    peer: CamaraPeer, make: Make, endpoint: str, fault: str, reason: str
) -> None:
    peer.faults[endpoint] = fault
    with pytest.raises(OperatorUnavailable) as caught:
        await make(fake=FakeTime()).sim_swapped(NUMBER, 24)
    assert caught.value.reason == reason


async def test_a_denied_ciba_request(peer: CamaraPeer, make: Make) -> None:
    peer.ciba_script = ["authorization_pending", "access_denied"]
    with pytest.raises(OperatorUnavailable) as caught:
        await make(fake=FakeTime()).sim_swapped(NUMBER, 24)
    assert caught.value.reason == "oauth_error: access_denied"


async def test_a_hanging_sim_swap_check_times_out(peer: CamaraPeer, make: Make) -> None:
    peer.faults["check"] = "hang"
    with pytest.raises(OperatorUnavailable) as caught:
        await make(timeout_seconds=0.3).sim_swapped(NUMBER, 24)
    assert caught.value.reason == "timeout"


async def test_a_two_legged_token_gets_the_number_after_missing_identifier(
    peer: CamaraPeer, make: Make
) -> None:
    peer.two_legged_sim_swap = True
    peer.swaps[NUMBER] = datetime.now(UTC) - timedelta(hours=1)
    assert await make(fake=FakeTime()).sim_swapped(NUMBER, 24) is True
    assert peer.requests.count("check") == 2


async def test_always_sending_the_number_to_a_strict_operator(peer: CamaraPeer, make: Make) -> None:
    op = make(fake=FakeTime(), sim_swap_phone_number="always")
    with pytest.raises(OperatorUnavailable) as caught:
        await op.sim_swapped(NUMBER, 24)
    assert caught.value.reason == "operator_error: 422 UNNECESSARY_IDENTIFIER"


async def test_max_age_outside_camaras_range(make: Make) -> None:
    with pytest.raises(ValueError):
        await make().sim_swapped(NUMBER, 0)
    with pytest.raises(ValueError):
        await make().sim_swapped(NUMBER, 2401)


async def test_an_operator_predating_the_identifier_rules_gets_the_number(
    peer: CamaraPeer, make: Make
) -> None:
    """SIM Swap 0.4 (Vonage's v040 path) required phoneNumber, even with a CIBA token."""
    peer.phone_number_required = True
    peer.swaps[NUMBER] = datetime.now(UTC) - timedelta(hours=1)
    assert await make(fake=FakeTime()).sim_swapped(NUMBER, 24) is True
    assert await make(fake=FakeTime(), sim_swap_phone_number="always").sim_swapped(NUMBER, 24)
    assert peer.requests.count("check") == 3


async def test_never_sending_the_number_to_a_two_legged_operator(
    peer: CamaraPeer, make: Make
) -> None:
    peer.two_legged_sim_swap = True
    with pytest.raises(OperatorUnavailable) as caught:
        await make(fake=FakeTime(), sim_swap_phone_number="never").sim_swapped(NUMBER, 24)
    assert caught.value.reason == "operator_error: 422 MISSING_IDENTIFIER"


# -- TLS with a private CA (ca_file) ---------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camara-peer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_text(_pem(key))
    return cert_file, key_file


@pytest.fixture
async def tls_peer(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> AsyncIterator[tuple[CamaraPeer, Path]]:
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    p = CamaraPeer()
    server = await aiohttp_server(p.app(), ssl=context)
    p.base = str(server.make_url("")).rstrip("/")
    assert p.base.startswith("https://")
    yield p, cert_file
    p.release()


def _tls_operator(
    peer: CamaraPeer, http: aiohttp.ClientSession, ca_file: Path | None
) -> CamaraOperator:
    peer.clients["tls"] = Client(
        "tls", "client_secret_post", secret=CLIENT_SECRET, redirect_uris=(REDIRECT,)
    )
    config = CamaraConfig.model_validate(
        {
            "kind": "camara",
            "issuer": peer.base,
            "number_verification_url": f"{peer.base}/number-verification/v2",
            "client_id": "tls",
            "client_auth": "client_secret_post",
            "client_secret": CLIENT_SECRET,
            "prefixes": ["44"],
            "ca_file": str(ca_file) if ca_file else None,
        }
    )
    return CamaraOperator("tls", config, http, SECRET)


async def test_a_private_ca_is_trusted_through_ca_file(
    tls_peer: tuple[CamaraPeer, Path], http: aiohttp.ClientSession
) -> None:
    peer, cert_file = tls_peer
    op = _tls_operator(peer, http, cert_file)
    state = "tls-state"
    url = await op.authorize_url(msisdn=NUMBER, state=state, redirect_uri=REDIRECT)
    device = ssl.create_default_context(cafile=str(cert_file))
    async with http.get(
        url, headers={"X-Device-Line": NUMBER}, allow_redirects=False, ssl=device
    ) as response:
        code = dict(parse_qsl(urlsplit(response.headers["Location"]).query))["code"]
    outcome = await op.exchange(code, NUMBER, state=state, redirect_uri=REDIRECT)
    assert outcome == DeviceOutcome("completed")
    assert peer.violations == []


async def test_an_untrusted_certificate_is_refused(
    tls_peer: tuple[CamaraPeer, Path], http: aiohttp.ClientSession
) -> None:
    peer, _ = tls_peer
    op = _tls_operator(peer, http, None)
    with pytest.raises(OperatorUnavailable) as caught:
        await op.start()
    assert caught.value.reason == "operator_error: tls"
    assert peer.requests == []
