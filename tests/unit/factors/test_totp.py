"""TOTP factors: RFC 6238 vectors, pyotp interoperability, skew, one use per time step, the
provisioning URI authenticator apps scan, and the config ranges."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from orchestrator.factors import totp
from orchestrator.factors.totp import TotpConfig

# RFC 6238 Appendix B: the seeds are ASCII digits of the hash's block size, 8 digits, 30 s steps
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, {"sha1": "94287082", "sha256": "46119246", "sha512": "90693936"}),
    (1111111109, {"sha1": "07081804", "sha256": "68084774", "sha512": "25091201"}),
    (1111111111, {"sha1": "14050471", "sha256": "67062674", "sha512": "99943326"}),
    (1234567890, {"sha1": "89005924", "sha256": "91819424", "sha512": "93441116"}),
    (2000000000, {"sha1": "69279037", "sha256": "90698825", "sha512": "38618901"}),
    (20000000000, {"sha1": "65353130", "sha256": "77737706", "sha512": "47863826"}),
]


def b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode().rstrip("=")


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize(("at", "codes"), VECTORS)
def test_rfc6238_vectors(alg: str, at: int, codes: dict[str, str]) -> None:
    config = TotpConfig(time_step=30, skew=0, code_length=8, alg=alg)  # type: ignore[arg-type]
    step = totp.match_step(b32(SEEDS[alg]), codes[alg], config, at)
    assert step == at // 30
    # one digit off is no match
    wrong = codes[alg][:-1] + str((int(codes[alg][-1]) + 1) % 10)
    assert totp.match_step(b32(SEEDS[alg]), wrong, config, at) is None


def reference_code(secret: str, step: int, digits: int, alg: str) -> str:
    """RFC 4226 §5.3 written out, independent of pyotp (which refuses fewer than 6 digits)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, step.to_bytes(8, "big"), getattr(hashlib, alg)).digest()
    offset = mac[-1] & 0x0F
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize(("time_step", "digits"), [(30, 6), (45, 7), (60, 8)])
def test_codes_from_pyotp_verify(alg: str, time_step: int, digits: int) -> None:
    secret = totp.new_secret()
    config = TotpConfig(time_step=time_step, skew=1, code_length=digits, alg=alg)  # type: ignore[arg-type]
    app = pyotp.TOTP(secret, digits=digits, digest=getattr(hashlib, alg), interval=time_step)
    now = 1_700_000_000.0
    assert totp.match_step(secret, app.at(now), config, now) == int(now // time_step)


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("digits", [3, 4, 5, 6, 7, 8])
def test_every_code_length_matches_rfc4226(alg: str, digits: int) -> None:
    secret = totp.new_secret()
    config = TotpConfig(time_step=20, skew=0, code_length=digits, alg=alg)  # type: ignore[arg-type]
    for step in (0, 1, 85_000_000, 2**31 + 7):
        code = reference_code(secret, step, digits, alg)
        assert config.code_at(secret, step) == code
        assert totp.match_step(secret, code, config, step * 20 + 3) == step


def test_skew_window() -> None:
    secret = totp.new_secret()
    app = pyotp.TOTP(secret)
    now = 1_700_000_015.0  # mid-step
    step = int(now // 30)
    for skew in (0, 1, 2):
        config = TotpConfig(skew=skew)
        for distance in range(-3, 4):
            code = app.at(now + 30 * distance)
            expected = step + distance if abs(distance) <= skew else None
            found = totp.match_step(secret, code, config, now)
            # a neighbour's code may collide with another step's by chance (1e-6): skip those
            if found is not None and expected is not None:
                assert found == expected
            elif expected is None:
                assert found is None or found != step + distance


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", " 123456", "+12345"])
def test_malformed_codes_never_match(code: str) -> None:
    secret = totp.new_secret()
    assert totp.match_step(secret, code, TotpConfig(), 1_700_000_000.0) is None


def test_a_code_is_accepted_once_per_step() -> None:
    secret = totp.new_secret()
    config = TotpConfig(skew=1)
    app = pyotp.TOTP(secret)
    now = 1_700_000_000.0
    step = totp.accept(secret, app.at(now), config, now, last_used_step=-1)
    assert step == int(now // 30)
    # the same code again, same window: a replay
    assert totp.accept(secret, app.at(now), config, now + 5, last_used_step=step) is None
    # the previous step's code (still inside the skew) is older than the one used: refused
    assert totp.accept(secret, app.at(now - 30), config, now, last_used_step=step) is None
    # the next step's code is new
    assert totp.accept(secret, app.at(now + 30), config, now, last_used_step=step) == step + 1


def test_provisioning_uri_round_trips_through_pyotp() -> None:
    secret = totp.new_secret()
    config = TotpConfig(time_step=45, skew=2, code_length=8, alg="sha256")
    uri = totp.provisioning_uri(secret, "Jane's phone", "Acme & Co", config)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Acme%20%26%20Co:Jane%27s%20phone"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "secret": secret,
        "issuer": "Acme & Co",
        "algorithm": "SHA256",
        "digits": "8",
        "period": "45",
    }
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert parsed.digits == 8 and parsed.interval == 45
    assert parsed.issuer == "Acme & Co" and parsed.name == "Jane's phone"
    now = 1_700_000_000.0
    assert totp.match_step(secret, parsed.at(now), config, now) == int(now // 45)


def test_default_uri_spells_out_every_parameter() -> None:
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXP", "phone", "Verify", totp.DEFAULT)
    assert uri == (
        "otpauth://totp/Verify:phone?secret=JBSWY3DPEHPK3PXP&issuer=Verify"
        "&algorithm=SHA1&digits=6&period=30"
    )


def test_secrets() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32 and len(base64.b32decode(secret)) == 20
    assert totp.new_secret() != secret
    assert totp.normalize_secret("jbsw y3dp ehpk 3pxp") == "JBSWY3DPEHPK3PXP"
    assert totp.normalize_secret("JBSWY3DPEHPK3PXPJBSWY3DPEH======") == (
        "JBSWY3DPEHPK3PXPJBSWY3DPEH"
    )
    assert totp.normalize_secret("JBSWY3DPEHPK3PXPJBSWY3DPE") is None  # 25 chars: no Base32
    assert totp.normalize_secret("JBSWY3DP") is None  # 40 bits: too short
    assert totp.normalize_secret("JBSWY3DPEHPK3PX1") is None  # 1 is not Base32
    assert totp.normalize_secret("JBSWY3DPEHPK3PX!") is None
    assert totp.normalize_secret("A" * 206) is None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"time_step": 19}, "time_step"),
        ({"time_step": 61}, "time_step"),
        ({"skew": -1}, "skew"),
        ({"skew": 3}, "skew"),
        ({"code_length": 2}, "code_length"),
        ({"code_length": 9}, "code_length"),
        ({"alg": "md5"}, "alg"),
    ],
)
def test_config_ranges(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TotpConfig(**kwargs)  # type: ignore[arg-type]


def test_config_round_trip() -> None:
    config = TotpConfig(time_step=20, skew=0, code_length=3, alg="sha512")
    assert config.as_config() == {"alg": "sha512", "skew": 0, "code_length": 3, "time_step": 20}
    assert TotpConfig.from_config(config.as_config()) == config
    assert TotpConfig.from_config({}) == totp.DEFAULT
