"""The WhatsApp Cloud API provider against a local Graph API peer that checks each request
against Meta's published schema, and its webhooks signed the way Meta signs them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from orchestrator.delivery.receipts import BadReceipt, ForgedReceipt, Receipt, ReceiptRequest
from orchestrator.delivery.whatsapp_cloud import (
    WhatsAppCloudConfig,
    answer_challenge,
    read_receipts,
    template_language,
)
from tests.support.processes import free_port
from tests.support.whatsapp_peer import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    WhatsAppPeer,
    header_problems,
)
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, ProviderContext, ProviderError
from workers.providers.whatsapp_cloud import WhatsAppCloudProvider

TO = "447700900123"
VERIFY_TOKEN = "hub-verify-7c1e"


def config(base_url: str, **overrides: Any) -> WhatsAppCloudConfig:
    return WhatsAppCloudConfig.model_validate(
        {
            "kind": "whatsapp_cloud",
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": ACCESS_TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "base_url": base_url,
            **overrides,
        }
    )


def message(code: str = "482913", locale: str = "en-us", to: str = TO) -> OutboundMessage:
    return OutboundMessage(
        id="req-1:0",
        tenant="t",
        request_id="req-1",
        channel="whatsapp",
        to=to,
        sender="Acme",
        text=f"Acme: your code is {code}. Don't share it.",
        code=code,
        locale=locale,
    )


@pytest.fixture
async def peer() -> AsyncIterator[WhatsAppPeer]:
    async with WhatsAppPeer() as p:
        yield p


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Make = Callable[..., WhatsAppCloudProvider]


@pytest.fixture
def make(peer: WhatsAppPeer, http: aiohttp.ClientSession) -> Make:
    async def on_receipt(name: str, receipt: Receipt) -> None:
        raise AssertionError("WhatsApp receipts come by webhook, not in-band")

    context = ProviderContext(http, "http://127.0.0.1:9", lambda s: s, on_receipt)

    def build(base_url: str | None = None, **overrides: Any) -> WhatsAppCloudProvider:
        return WhatsAppCloudProvider("meta", config(base_url or peer.url, **overrides), context)

    return build


# --- sending -----------------------------------------------------------------------------------


async def test_send_is_a_valid_authentication_template(peer: WhatsAppPeer, make: Make) -> None:
    accepted = await make().send(message("482913"))

    assert isinstance(accepted, Accepted)
    assert accepted.provider_id.startswith("wamid.")
    assert peer.problems == []
    [request] = peer.requests
    assert request.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
    assert request.answer_status == 200
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert peer.sent[accepted.provider_id] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "template",
        "template": {
            "name": "verify_code",
            "language": {"code": "en_US", "policy": "deterministic"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "482913"}]},
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "482913"}],
                },
            ],
        },
    }


async def test_template_without_copy_code_button(peer: WhatsAppPeer, make: Make) -> None:
    accepted = await make(template="verify_code_plain", copy_code_button=False).send(message())

    components = peer.sent[accepted.provider_id]["template"]["components"]
    assert [c["type"] for c in components] == ["body"]


async def test_the_peer_refuses_a_field_meta_does_not_define(peer: WhatsAppPeer) -> None:
    """The closed schema is what makes the success test mean something."""
    body = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "template",
        "template": {"name": "verify_code", "language": {"code": "en_US"}, "priority": "high"},
    }
    status, answer = await _post_raw(peer, body)
    assert status == 400
    assert answer["error"]["code"] == 100
    [problem] = peer.problems
    assert "priority" in problem


async def test_the_peer_takes_what_meta_takes_despite_the_spec(peer: WhatsAppPeer) -> None:
    """Meta's own "Send Test Message" example: no recipient_type, no language policy. The
    spec's schema requires both; the peer (like the API) does not, so it passes the schema and
    fails only on the peer's template list."""
    body = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    status, answer = await _post_raw(peer, body)
    assert peer.problems == []
    assert (status, answer["error"]["code"]) == (404, 132001)


async def _post_raw(peer: WhatsAppPeer, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}", "User-Agent": "probe/1.0.0"}
    url = f"{peer.url}/v23.0/{PHONE_NUMBER_ID}/messages"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def test_the_peer_checks_the_spec_headers() -> None:
    good = {
        "Authorization": "Bearer EAAtoken",
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "verify-orchestrator/0.1.0",
    }
    assert header_problems(good) == []
    assert header_problems({**good, "User-Agent": "Python/3.11 aiohttp/3.14.5"})
    assert header_problems({**good, "Content-Type": "text/plain"})
    assert header_problems({"Authorization": good["Authorization"]}) == [
        "header Content-Type: missing"
    ]


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("en-us", "en_US"),
        ("en-gb", "en_GB"),
        ("de-de", "de"),
        ("fr-fr", "fr"),
        ("pt-br", "pt_BR"),
        ("es-mx", "es_MX"),
    ],
)
async def test_locale_picks_the_template_language(
    peer: WhatsAppPeer, make: Make, locale: str, language: str
) -> None:
    accepted = await make().send(message(locale=locale))

    assert peer.sent[accepted.provider_id]["template"]["language"]["code"] == language


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("pt-pt", "pt_PT"),
        ("zh-hk", "zh_HK"),
        ("es-us", "es"),
        ("es-es", "es_ES"),
        ("tl-ph", "fil"),
        ("nb-no", "nb"),
        ("he-il", "he"),
        ("ar-xa", "ar"),
        ("af-za", "af"),
        ("en-au", "en"),
        ("pt", "pt_BR"),
        ("xx-yy", "en_US"),
    ],
)
def test_template_language_mapping(locale: str, language: str) -> None:
    assert template_language(locale) == language


async def test_configured_language_wins(peer: WhatsAppPeer, make: Make) -> None:
    accepted = await make(language="en_GB").send(message(locale="de-de"))

    assert peer.sent[accepted.provider_id]["template"]["language"]["code"] == "en_GB"


async def test_language_the_template_lacks_is_132001(peer: WhatsAppPeer, make: Make) -> None:
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 132001: "):
        await make().send(message(locale="ja-jp"))


async def test_unknown_template_is_132001(peer: WhatsAppPeer, make: Make) -> None:
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 132001: .*does not exist"):
        await make(template="never_approved").send(message())
    assert peer.requests[0].answer_status == 404


async def test_missing_copy_code_button_is_132000(peer: WhatsAppPeer, make: Make) -> None:
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 132000: "):
        await make(copy_code_button=False).send(message())


async def test_bad_token_is_190_and_never_echoed(peer: WhatsAppPeer, make: Make) -> None:
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 190: Invalid OAuth") as caught:
        await make(access_token="EAAwrongtoken").send(message())
    assert "EAAwrongtoken" not in str(caught.value)
    assert peer.requests[0].answer_status == 401


async def test_wrong_phone_number_id_is_100(peer: WhatsAppPeer, make: Make) -> None:
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 100: "):
        await make(phone_number_id="999").send(message())


async def test_number_not_in_allowed_list_is_131030(peer: WhatsAppPeer, make: Make) -> None:
    peer.refused.add(TO)
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 131030: .*allowed list"):
        await make().send(message())


@pytest.mark.parametrize("code", [131047, 130429])
async def test_vendor_errors_carry_their_code(peer: WhatsAppPeer, make: Make, code: int) -> None:
    peer.error_code = code
    with pytest.raises(ProviderError, match=rf"^whatsapp_cloud {code}: "):
        await make().send(message())


async def test_server_error_is_a_provider_error(peer: WhatsAppPeer, make: Make) -> None:
    peer.mode = "fail"
    with pytest.raises(ProviderError, match=r"^whatsapp_cloud 1: "):
        await make().send(message())
    assert peer.requests[0].answer_status == 500


async def test_an_answer_that_is_not_json_is_a_provider_error(
    peer: WhatsAppPeer, make: Make
) -> None:
    peer.mode = "garbage"
    with pytest.raises(ProviderError, match="without JSON"):
        await make().send(message())


async def test_unreachable_graph_api_is_a_provider_error(make: Make) -> None:
    with pytest.raises(ProviderError, match="can't reach"):
        await make(base_url=f"http://127.0.0.1:{free_port()}").send(message())


async def test_hang_times_out(peer: WhatsAppPeer, make: Make) -> None:
    peer.mode = "hang"
    with pytest.raises((TimeoutError, ProviderError)):
        await make(timeout_seconds=0.3).send(message())
    assert len(peer.requests) == 1


# --- status webhooks ---------------------------------------------------------------------------

Post = Callable[..., Awaitable[tuple[int, str]]]


@pytest.fixture
async def hook(peer: WhatsAppPeer) -> AsyncIterator[str]:
    """A route shaped like the web process's: the raw request, framework-free, through
    read_receipts; 403 for a forged one, 400 for a malformed one."""
    cfg = config(peer.url)

    async def status(request: web.Request) -> web.Response:
        receipt_request = ReceiptRequest(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            body=await request.read(),
        )
        try:
            receipts = read_receipts(cfg, receipt_request)
        except ForgedReceipt:
            return web.Response(status=403)
        except BadReceipt:
            return web.Response(status=400)
        return web.json_response(
            [[r.provider_id, r.status, r.error, r.raw_status] for r in receipts]
        )

    app = web.Application()
    app.router.add_post("/providers/meta/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/providers/meta/status"
    await runner.cleanup()


async def test_signed_status_webhooks_become_receipts(
    peer: WhatsAppPeer, make: Make, hook: str
) -> None:
    accepted = await make().send(message())
    wamid = accepted.provider_id
    seen = []
    for status in ("sent", "delivered", "read"):
        code, text = await peer.post_webhook(hook, peer.status_payload(wamid, status))
        assert code == 200
        seen.extend(json.loads(text))
    assert seen == [
        [wamid, "sent", None, "sent"],
        [wamid, "delivered", None, "delivered"],
        [wamid, "delivered", None, "read"],
    ]


async def test_failed_status_carries_meta_error(peer: WhatsAppPeer, hook: str) -> None:
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Unable to deliver message."},
        }
    ]
    payload = peer.status_payload("wamid.X1", "failed", errors=errors)
    code, text = await peer.post_webhook(hook, payload)

    assert code == 200
    assert json.loads(text) == [["wamid.X1", "failed", "131026 Message undeliverable", "failed"]]


async def test_tampered_webhook_is_forged(peer: WhatsAppPeer, hook: str) -> None:
    payload = peer.status_payload("wamid.X1", "delivered")
    code, _ = await peer.post_webhook(hook, payload, tamper=True)
    assert code == 403


async def test_unsigned_webhook_is_forged(peer: WhatsAppPeer, hook: str) -> None:
    code, _ = await peer.post_webhook(
        hook, peer.status_payload("wamid.X1", "delivered"), sign=False
    )
    assert code == 403


def test_signature_with_another_app_secret_is_forged(peer: WhatsAppPeer) -> None:
    body = json.dumps(peer.status_payload("wamid.X1", "delivered")).encode()
    headers = {k.lower(): v for k, v in peer.sign(body).items()}
    request = ReceiptRequest("POST", "https://v.example/providers/meta/status", headers, {}, body)
    with pytest.raises(ForgedReceipt):
        read_receipts(config("http://x", app_secret="another-secret"), request)


async def test_inbound_message_webhook_gives_no_receipt(peer: WhatsAppPeer, hook: str) -> None:
    code, text = await peer.post_webhook(hook, peer.inbound_payload(TO, "hello"))
    assert (code, json.loads(text)) == (200, [])


def _signed(peer: WhatsAppPeer, body: bytes) -> ReceiptRequest:
    headers = {k.lower(): v for k, v in peer.sign(body).items()}
    return ReceiptRequest("POST", "https://v.example/providers/meta/status", headers, {}, body)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"object": "whatsapp_business_account", "entry": {"id": "1"}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": '
        b'[{"value": {"statuses": [{"status": "sent"}]}}]}]}',
    ],
)
def test_signed_but_malformed_is_bad(peer: WhatsAppPeer, body: bytes) -> None:
    with pytest.raises(BadReceipt):
        read_receipts(config("http://x"), _signed(peer, body))


def test_other_fields_and_objects_give_no_receipt(peer: WhatsAppPeer) -> None:
    review = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "APPROVED", "message_template_name": "verify_code"},
                    }
                ],
            }
        ],
    }
    for payload in (review, {"object": "page", "entry": []}):
        assert read_receipts(config("http://x"), _signed(peer, json.dumps(payload).encode())) == []


# --- the subscription handshake ----------------------------------------------------------------


def test_challenge_answered_with_the_right_verify_token() -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    assert answer_challenge(config("http://x"), query) == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_challenge_refused_otherwise(query: dict[str, str]) -> None:
    with pytest.raises(ForgedReceipt):
        answer_challenge(config("http://x"), query)


def test_challenge_refused_without_a_configured_verify_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    with pytest.raises(ForgedReceipt):
        answer_challenge(config("http://x", verify_token=None), query)


# --- the providers file (needs every kind's module: providers_file imports them all) ------------


def test_providers_file_meta_table(tmp_path: Path) -> None:
    from orchestrator.delivery.providers_file import ProvidersFileError, load_delivery

    path = tmp_path / "providers.toml"
    path.write_text(
        "[providers.meta]\n"
        'kind = "whatsapp_cloud"\n'
        f'phone_number_id = "{PHONE_NUMBER_ID}"\n'
        'access_token = "from-the-file"\n'
        f'app_secret = "{APP_SECRET}"\n'
        'template = "verify_code"\n'
        "\n[routes.whatsapp]\n"
        'default = ["meta"]\n'
    )
    environ = {"VERIFY_PROVIDER_META_ACCESS_TOKEN": ACCESS_TOKEN}
    delivery = load_delivery(path, {}, environ, sandbox=False)

    meta = delivery.providers["meta"]
    assert isinstance(meta, WhatsAppCloudConfig)
    assert meta.access_token.get_secret_value() == ACCESS_TOKEN  # the environment wins
    assert (meta.phone_number_id, meta.template, meta.version) == (
        PHONE_NUMBER_ID,
        "verify_code",
        "v23.0",
    )
    assert meta.base_url == "https://graph.facebook.com"
    assert delivery.route("whatsapp", TO) == ("meta",)

    path.write_text(
        '[providers.meta]\nkind = "whatsapp_cloud"\nphone_number_id = "1"\n'
        'access_token = "EAAsecretvalue"\n'
    )
    with pytest.raises(ProvidersFileError) as caught:
        load_delivery(path, {}, {}, sandbox=False)
    line = str(caught.value)
    assert "app_secret" in line and "\n" not in line and "EAAsecretvalue" not in line
