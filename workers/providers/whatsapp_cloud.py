"""WhatsApp through Meta's Cloud API: the code in an approved authentication template.

WhatsApp only lets a business open a conversation with a template Meta approved, and the
AUTHENTICATION category is the one for codes: its body is fixed ("{{1}} is your verification
code") and takes the code as its single parameter; its copy-code button is a URL button at
index 0 that takes the code again. So `message.text` (our own rendered copy) is not sent; the
template's language is chosen from the message's locale instead.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from orchestrator import __version__
from orchestrator.delivery.whatsapp_cloud import WhatsAppCloudConfig, template_language
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, Provider, ProviderContext, ProviderError

__all__ = ["WhatsAppCloudProvider"]

_KIND = "whatsapp_cloud"
# name/x.y.z: the shape Meta's spec gives its User-Agent header; it names us in Meta's logs
_USER_AGENT = f"verify-orchestrator/{__version__}"
_MAX_REASON = 200


def _reason(text: object) -> str:
    """Meta's error message, one short line (it never echoes the access token)."""
    return " ".join(str(text).split())[:_MAX_REASON]


class WhatsAppCloudProvider(Provider):
    """POST /{version}/{phone_number_id}/messages, Bearer-authenticated, one template message
    per send; Accepted carries the wamid that status webhooks name."""

    def __init__(self, name: str, config: WhatsAppCloudConfig, context: ProviderContext) -> None:
        self.name = name
        self._config = config
        self._http = context.http
        base = config.base_url.rstrip("/")
        self._url = f"{base}/{config.version}/{config.phone_number_id}/messages"

    def language(self, message: OutboundMessage) -> str:
        return self._config.language or template_language(message.locale)

    def body(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON Meta documents for an authentication template with a copy-code button."""
        code_param = [{"type": "text", "text": message.code}]
        components: list[dict[str, Any]] = [{"type": "body", "parameters": code_param}]
        if self._config.copy_code_button:
            components.append(
                # the index is a string in Meta's schema; 0 is the template's only button
                {"type": "button", "sub_type": "url", "index": "0", "parameters": code_param}
            )
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.lstrip("+"),
            "type": "template",
            "template": {
                "name": self._config.template,
                "language": {"code": self.language(message), "policy": "deterministic"},
                "components": components,
            },
        }

    async def send(self, message: OutboundMessage) -> Accepted:
        """Raises ProviderError ("whatsapp_cloud <code>: <reason>") when Meta refuses or errs or
        can't be reached; lets TimeoutError out when it hangs past timeout_seconds."""
        token = self._config.access_token.get_secret_value()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
        }
        timeout = aiohttp.ClientTimeout(total=self._config.timeout_seconds)
        try:
            async with self._http.post(
                self._url, json=self.body(message), headers=headers, timeout=timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            # before ClientError: aiohttp's ServerTimeoutError is both, and a hang stays a timeout
            raise
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"{_KIND}: can't reach the Graph API ({type(exc).__name__})"
            ) from None
        return self._accepted(status, raw)

    def _accepted(self, status: int, raw: bytes) -> Accepted:
        try:
            answer: object = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            code = error.get("code", status)
            raise ProviderError(f"{_KIND} {code}: {_reason(error.get('message', ''))}")
        if status >= 300:
            raise ProviderError(f"{_KIND} HTTP {status}: the Graph API gave no error body")
        if not isinstance(answer, dict):
            raise ProviderError(f"{_KIND}: the Graph API answered {status} without JSON")
        messages = answer.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise ProviderError(f"{_KIND}: the Graph API answered {status} without a message id")
        return Accepted(message_id)
