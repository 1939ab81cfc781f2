"""Codes and tokens from `secrets`, keyed hashes for storage, and sealing for in-flight codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

from cryptography.fernet import Fernet

__all__ = ["SecretCodeTools"]

_SA_ALPHABET = string.ascii_letters + string.digits


class SecretCodeTools:
    """The production `CodeTools`: every code is random and only its keyed hash is kept."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        self._hash_key = hashlib.sha256(b"verify-orchestrator/code-hash\0" + key).digest()
        seal_key = hashlib.sha256(b"verify-orchestrator/code-seal\0" + key).digest()
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
        return self._fernet.encrypt(code.encode()).decode()

    def unseal(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()
