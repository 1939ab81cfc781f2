"""Silent authentication through the sandbox operator: the check URL hops, outcomes and fallback.

The sandbox operator (config/sandbox_operator.toml): numbers starting 990 follow Vonage's virtual
operator (…99 failed, odd user_rejected, even completed); other numbers are matched against the
device IP (X-Sandbox-Device-IP): 127.0.0.1 is 447700900001, 100.64.0.0/16 is 447700900100.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from tests.support.client import VonageApi
from tests.support.processes import Stack, wait_until
from tests.support.receiver import WebhookReceiver

PROBLEM = "application/problem+json"
DEVICE_IP = "X-Sandbox-Device-IP"


def magic(last_two: str) -> str:
    """A virtual-operator number (990…) ending in `last_two`."""
    return "990" + f"{random.randrange(10**6):06d}" + last_two


def even_magic() -> str:
    return magic(random.choice("012345678") + random.choice("02468"))


def sa_body(to: str, fallback: bool = True, **sa_options: Any) -> dict[str, Any]:
    workflow: list[dict[str, Any]] = [{"channel": "silent_auth", "to": to, **sa_options}]
    if fallback:
        workflow.append({"channel": "sms", "to": to})
    return {"brand": "ACME", "workflow": workflow}


def start_sa(api: VonageApi, body: dict[str, Any]) -> tuple[str, str]:
    resp = api.start(body)
    assert resp.status_code == 202, resp.text
    data = resp.json()
    rid = data["request_id"]
    assert data["check_url"].endswith(f"/v2/verify/{rid}/silent-auth/redirect"), data
    return rid, data["check_url"]


def open_check_url(stack: Stack, url: str, device_ip: str | None = None) -> requests.Response:
    """What the handset does: GET the check URL over "mobile data", following every hop."""
    headers = {DEVICE_IP: device_ip} if device_ip else {}
    return requests.get(
        url, headers=headers, allow_redirects=True, verify=str(stack.cert), timeout=10
    )


def assert_problem(resp: requests.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert {"type", "title", "detail", "instance"} <= set(body), body
    return body


def sa_events(receiver: WebhookReceiver, rid: str) -> list[dict[str, Any]]:
    return [
        d.json
        for d in receiver.for_request(rid)
        if d.json.get("type") == "event" and d.json.get("channel") == "silent_auth"
    ]


def wait_sa_event(receiver: WebhookReceiver, rid: str, status: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((e for e in sa_events(receiver, rid) if e["status"] == status), None)

    found: dict[str, Any] = wait_until(find, what=f"silent_auth {status} event for {rid}")
    return found


def statuses(receiver: WebhookReceiver, rid: str) -> list[str]:
    return [s["status"] for s in receiver.wait_summary(rid).json["workflow"]]


def test_device_follows_check_url_and_code_completes(
    stack: Stack, api: VonageApi, receiver: WebhookReceiver
) -> None:
    to = "447700900100"  # the line behind the 100.64.0.0/16 "mobile network"
    rid, check_url = start_sa(api, sa_body(to))
    # async style: the backend learns the check URL from the action_pending webhook first
    pending = wait_sa_event(receiver, rid, "action_pending")
    assert pending["action"] == {"type": "check", "check_url": check_url}
    assert receiver.for_request(rid)[0].json == pending
    assert "finalized_at" not in pending

    device = open_check_url(stack, check_url, device_ip="100.64.0.23")
    assert device.status_code == 200, device.text
    assert device.history and all(r.status_code == 302 for r in device.history)
    assert device.history[0].url == check_url
    result = device.json()
    assert result["request_id"] == rid
    assert re.fullmatch(r"[A-Za-z0-9]{4,10}", result["code"]), result

    checked = api.check(rid, result["code"])
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"request_id": rid, "status": "completed"}

    assert statuses(receiver, rid) == ["completed", "unused"]
    assert receiver.wait_summary(rid).json["status"] == "completed"
    wait_sa_event(receiver, rid, "completed")
    events = sa_events(receiver, rid)
    assert [e["status"] for e in events] == ["action_pending", "completed"]
    assert "action" not in events[1] and events[1]["finalized_at"]
    # silent auth succeeded: no SMS was ever sent
    assert all(m["request_id"] != rid for m in api.messages(to))


def test_check_url_is_single_use(stack: Stack, api: VonageApi) -> None:
    _, check_url = start_sa(api, sa_body(even_magic()))
    assert open_check_url(stack, check_url).status_code == 200
    again = requests.get(check_url, allow_redirects=False, verify=str(stack.cert), timeout=10)
    assert_problem(again, 409)


def test_check_before_the_device_has_a_code_conflicts(stack: Stack, api: VonageApi) -> None:
    rid, check_url = start_sa(api, sa_body(even_magic()))
    early = assert_problem(api.check(rid, "abcd1234"), 409)
    assert "does not support a code" in early["detail"]
    # the refusal cost nothing: the device still completes and its code still works
    code = open_check_url(stack, check_url).json()["code"]
    assert api.check(rid, code).status_code == 200


def _fallback_flow(
    stack: Stack,
    api: VonageApi,
    receiver: WebhookReceiver,
    to: str,
    step_status: str,
    detail: str,
    device_ip: str | None = None,
) -> None:
    rid, check_url = start_sa(api, sa_body(to))
    began = time.monotonic()
    device = open_check_url(stack, check_url, device_ip=device_ip)
    problem = assert_problem(device, 412)
    assert problem["detail"] == detail
    assert device.history and all(r.status_code == 302 for r in device.history)

    # the SMS fallback goes out at once, not after the 60 s silent-auth timeout
    sms = api.wait_message(to, rid, "sms", timeout=10)
    assert time.monotonic() - began < 10
    assert wait_sa_event(receiver, rid, step_status)["request_id"] == rid

    checked = api.check(rid, sms["code"])
    assert checked.status_code == 200, checked.text
    assert statuses(receiver, rid) == [step_status, "completed"]
    assert receiver.wait_summary(rid).json["status"] == "completed"


def test_user_rejected_falls_back_to_sms(
    stack: Stack, api: VonageApi, receiver: WebhookReceiver
) -> None:
    to = magic(random.choice("012345678") + random.choice("1357"))
    detail = "The user rejected the silent authentication request."
    _fallback_flow(stack, api, receiver, to, "user_rejected", detail)


def test_failed_falls_back_to_sms(stack: Stack, api: VonageApi, receiver: WebhookReceiver) -> None:
    detail = "The silent auth verification cannot be completed."
    _fallback_flow(stack, api, receiver, magic("99"), "failed", detail)


def test_device_on_another_number_falls_back(
    stack: Stack, api: VonageApi, receiver: WebhookReceiver
) -> None:
    # the device's IP belongs to 447700900100, but the request is for 447700900001
    detail = "Device MSISDN does not match."
    _fallback_flow(stack, api, receiver, "447700900001", "failed", detail, "100.64.0.9")


def test_redirect_url_gets_the_result_in_the_fragment(stack: Stack, api: VonageApi) -> None:
    redirect_url = "https://acme.example/sa/done"
    rid, check_url = start_sa(api, sa_body(even_magic(), redirect_url=redirect_url))

    url, hops = check_url, 0
    while urlsplit(url).netloc != "acme.example":
        hop = requests.get(url, allow_redirects=False, verify=str(stack.cert), timeout=10)
        assert hop.status_code == 302, hop.text
        url = urljoin(url, hop.headers["Location"])
        hops += 1
        assert hops < 10, "too many hops"
    assert hops >= 2
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == redirect_url
    assert parts.query == ""
    fragment = parse_qs(parts.fragment)
    assert fragment["request_id"] == [rid]
    checked = api.check(rid, fragment["code"][0])
    assert checked.status_code == 200, checked.text


def test_uncovered_number_is_refused_without_leaving_state(api: VonageApi) -> None:
    to = "14155550100"
    refused = api.start(sa_body(to))
    problem = assert_problem(refused, 412)
    assert problem["title"] == "Network not supported"
    # nothing was kept: the same number starts an SMS verification at once
    sms = api.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": to}]})
    assert sms.status_code == 202, sms.text
    rid = sms.json()["request_id"]
    assert "check_url" not in sms.json()
    api.wait_message(to, rid, "sms")


def test_coverage_check_false_always_gives_a_check_url(
    stack: Stack, api: VonageApi, receiver: WebhookReceiver
) -> None:
    to = "14155550100"
    rid, check_url = start_sa(api, sa_body(to, coverage_check=False))
    # this machine's "device" is 447700900001, not the requested number: the failure arrives as
    # a callback, and the SMS fallback takes over
    assert_problem(open_check_url(stack, check_url), 412)
    assert wait_sa_event(receiver, rid, "failed")["request_id"] == rid
    code = api.wait_message(to, rid, "sms")["code"]
    assert api.check(rid, code).status_code == 200
