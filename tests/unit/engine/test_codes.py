"""SecretCodeTools: codes, keyed hashes and sealed codes (AES-GCM, with Fernet still readable)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken

from orchestrator.engine.codes import SecretCodeTools

KEY = b"k" * 32


def test_sealed_codes_round_trip_and_never_repeat() -> None:
    tools = SecretCodeTools(KEY)
    sealed = {tools.seal("0123") for _ in range(100)}
    assert len(sealed) == 100  # a fresh nonce each time
    for s in sealed:
        assert "0123" not in s
        assert tools.unseal(s) == "0123"


def test_tampered_or_foreign_sealed_codes_are_refused() -> None:
    tools = SecretCodeTools(KEY)
    sealed = tools.seal("123456")
    body = sealed[2:]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 1
    forged = "a." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(InvalidTag):
        tools.unseal(forged)
    with pytest.raises(InvalidTag):
        SecretCodeTools(b"x" * 32).unseal(sealed)
    with pytest.raises(ValueError):
        tools.unseal("a.AAAA")


def test_codes_sealed_with_fernet_before_the_switch_still_unseal() -> None:
    seal_key = hashlib.sha256(b"verify-orchestrator/code-seal\0" + KEY).digest()
    legacy = Fernet(base64.urlsafe_b64encode(seal_key)).encrypt(b"987654").decode()
    tools = SecretCodeTools(KEY)
    assert tools.unseal(legacy) == "987654"
    with pytest.raises(InvalidToken):
        tools.unseal(legacy[:-4] + "AAAA")
