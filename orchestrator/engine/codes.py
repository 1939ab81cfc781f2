"""Codes and tokens from `secrets`, keyed hashes for storage, and sealing for in-flight codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SecretCodeTools"]

_SA_ALPHABET = string.ascii_letters + string.digits
_AEAD_PREFIX = "a."
_SEAL_AAD = b"verify-orchestrator/sealed-code"


class SecretCodeTools:
    """The production `CodeTools`: every code is random and only its keyed hash is kept."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        self._hash_key = hashlib.sha256(b"verify-orchestrator/code-hash\0" + key).digest()
        seal_key = hashlib.sha256(b"verify-orchestrator/code-seal\0" + key).digest()
        self._aead = AESGCM(seal_key)
        # codes sealed before AES-GCM (Fernet tokens, "gAAAAA…") may still sit in queued jobs
        self._fernet = Fernet(base64.urlsafe_b64encode(seal_key))

    def new_code(self, length: int) -> str:
        # one draw, uniform over all 10**length codes (leading zeros kept)
        return f"{secrets.randbelow(10**length):0{length}d}"

    def new_sa_code(self) -> str:
        return "".join(secrets.choice(_SA_ALPHABET) for _ in range(8))

    def new_token(self) -> str:
        return secrets.token_urlsafe(24)

    def hash_code(self, request_id: str, code: str) -> str:
        message = f"{request_id}:{code}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()

    def seal(self, code: str) -> str:
        """AES-256-GCM under a random 96-bit nonce: "a." + base64url(nonce + ciphertext + tag);
        a sixth of Fernet's cost and half its length (sealed codes ride in every send job)."""
        nonce = os.urandom(12)
        raw = nonce + self._aead.encrypt(nonce, code.encode(), _SEAL_AAD)
        return _AEAD_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def unseal(self, sealed: str) -> str:
        """The sealed code; raises (InvalidTag, InvalidToken, ValueError) on anything forged."""
        if not sealed.startswith(_AEAD_PREFIX):
            return self._fernet.decrypt(sealed.encode()).decode()
        body = sealed[len(_AEAD_PREFIX) :]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if len(raw) < 12 + 16:
            raise ValueError("sealed code too short")
        return self._aead.decrypt(raw[:12], raw[12:], _SEAL_AAD).decode()
