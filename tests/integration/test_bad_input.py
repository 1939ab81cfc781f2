"""Bad requests against the running stack: always a clean 4xx problem+json, never state left behind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.support.client import VonageApi

PROBLEM_FIELDS = {"type", "title", "detail", "instance"}


def sms(n: str, **extra: Any) -> dict[str, Any]:
    return {"channel": "sms", "to": n, **extra}


def start_body(n: str, **extra: Any) -> dict[str, Any]:
    return {"brand": "ACME", "workflow": [sms(n)], **extra}


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


@dataclass(frozen=True)
class Case:
    """One bad request. `body` is JSON built from the test's number; `raw` is sent as bytes."""

    id: str
    status: int
    param: str | None = None
    body: Callable[[str], Any] | None = None
    raw: Callable[[str], bytes] | None = None
    method: str = "POST"
    # "{live}" is a pending verification of this test's number, "{unknown}" a random uuid
    path: str = "/v2/verify"


START_CASES: list[Case] = [
    # ---- the body itself
    Case("malformed-json", 400, raw=lambda n: b'{"brand": "ACME", "workflow": ['),
    Case("invalid-utf8", 400, raw=lambda n: b'{"brand": "\xff\xfe"}'),
    Case("deeply-nested-json", 400, raw=lambda n: b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    Case("huge-integer", 400, raw=lambda n: b'{"channel_timeout": ' + b"9" * 5000 + b"}"),
    Case("json-array-body", 422, "body", body=lambda n: [start_body(n)]),
    Case("json-string-body", 422, "body", body=lambda n: "ACME"),
    Case("json-null-body", 422, "body", raw=lambda n: b"null"),
    Case("empty-body", 422, "body", raw=lambda n: b""),
    # ---- brand
    Case("brand-missing", 422, "brand", body=lambda n: without(start_body(n), "brand")),
    Case("brand-empty", 422, "brand", body=lambda n: start_body(n, brand="")),
    Case("brand-19-chars", 422, "brand", body=lambda n: start_body(n, brand="B" * 19)),
    Case("brand-null", 422, "brand", body=lambda n: start_body(n, brand=None)),
    Case("brand-int", 422, "brand", body=lambda n: start_body(n, brand=123)),
    *[
        Case(
            f"brand-with-{name}",
            422,
            "brand",
            body=lambda n, c=char: start_body(n, brand=f"AC{c}ME"),
        )
        for name, char in [
            ("slash", "/"),
            ("lbrace", "{"),
            ("rbrace", "}"),
            ("colon", ":"),
            ("dollar", "$"),
        ]
    ],
    # ---- workflow
    Case("workflow-missing", 422, "workflow", body=lambda n: without(start_body(n), "workflow")),
    Case("workflow-empty", 422, "workflow", body=lambda n: start_body(n, workflow=[])),
    Case("workflow-4-steps", 422, "workflow", body=lambda n: start_body(n, workflow=[sms(n)] * 4)),
    Case("workflow-string", 422, "workflow", body=lambda n: start_body(n, workflow="sms")),
    Case("workflow-object", 422, "workflow", body=lambda n: start_body(n, workflow=sms(n))),
    Case(
        "workflow-item-string", 422, "workflow[0]", body=lambda n: start_body(n, workflow=["sms"])
    ),
    Case(
        "channel-unknown",
        422,
        "workflow[0]",
        body=lambda n: start_body(n, workflow=[{"channel": "pigeon", "to": n}]),
    ),
    Case("channel-missing", 422, "workflow[0]", body=lambda n: start_body(n, workflow=[{"to": n}])),
    Case(
        "channel-legacy-whatsapp-interactive",
        422,
        "workflow[0]",
        body=lambda n: start_body(n, workflow=[{"channel": "whatsapp_interactive", "to": n}]),
    ),
    Case(
        "silent-auth-not-first",
        422,
        "workflow[1].channel",
        body=lambda n: start_body(n, workflow=[sms(n), {"channel": "silent_auth", "to": n}]),
    ),
    Case(
        "second-step-bad",
        422,
        "workflow[1].to",
        body=lambda n: start_body(n, workflow=[sms(n), {"channel": "voice", "to": "12"}]),
    ),
    # ---- destinations
    *[
        Case(
            f"sms-to-{name}",
            422,
            "workflow[0].to",
            body=lambda n, f=fn: start_body(n, workflow=[sms(f(n))]),
        )
        for name, fn in [
            ("letters", lambda n: n[:-4] + "abcd"),
            ("plus", lambda n: "+" + n),
            ("leading-00", lambda n: "00" + n),
            ("leading-0", lambda n: "0" + n[2:]),
            ("too-short", lambda n: n[:5]),
            ("16-digits", lambda n: n + "1234"),
            ("spaces", lambda n: f"{n[:2]} {n[2:6]} {n[6:]}"),
            ("empty", lambda n: ""),
        ]
    ],
    Case("sms-to-int", 422, "workflow[0].to", body=lambda n: start_body(n, workflow=[sms(int(n))])),
    Case(
        "sms-to-missing",
        422,
        "workflow[0].to",
        body=lambda n: start_body(n, workflow=[{"channel": "sms"}]),
    ),
    Case(
        "email-invalid",
        422,
        "workflow[0].to",
        body=lambda n: start_body(
            n, workflow=[{"channel": "email", "to": "not-an-email.example"}, sms(n)]
        ),
    ),
    Case(
        "email-two-ats",
        422,
        "workflow[0].to",
        body=lambda n: start_body(
            n, workflow=[{"channel": "email", "to": "a@b@example.com"}, sms(n)]
        ),
    ),
    Case(
        "whatsapp-without-from",
        422,
        "workflow[0].from",
        body=lambda n: start_body(n, workflow=[{"channel": "whatsapp", "to": n}]),
    ),
    Case(
        "sms-from-16-chars",
        422,
        "workflow[0].from",
        body=lambda n: start_body(n, workflow=[sms(n, **{"from": "F" * 16})]),
    ),
    Case(
        "reuse-code-string",
        422,
        "workflow[0].reuse_code",
        body=lambda n: start_body(n, workflow=[sms(n, reuse_code="yes")]),
    ),
    # ---- code settings
    Case("code-length-3", 422, "code_length", body=lambda n: start_body(n, code_length=3)),
    Case("code-length-11", 422, "code_length", body=lambda n: start_body(n, code_length=11)),
    Case("code-length-string", 422, "code_length", body=lambda n: start_body(n, code_length="6")),
    Case("code-with-dash", 422, "code", body=lambda n: start_body(n, code="12-34")),
    Case("code-3-chars", 422, "code", body=lambda n: start_body(n, code="123")),
    Case("code-11-chars", 422, "code", body=lambda n: start_body(n, code="12345678901")),
    Case("code-int", 422, "code", body=lambda n: start_body(n, code=1234)),
    Case(
        "code-length-mismatch",
        422,
        "code_length",
        body=lambda n: start_body(n, code="1234", code_length=6),
    ),
    # ---- timing, reference, locale
    Case(
        "channel-timeout-14",
        422,
        "channel_timeout",
        body=lambda n: start_body(n, channel_timeout=14),
    ),
    Case(
        "channel-timeout-901",
        422,
        "channel_timeout",
        body=lambda n: start_body(n, channel_timeout=901),
    ),
    Case(
        "channel-timeout-60.5",
        422,
        "channel_timeout",
        body=lambda n: start_body(n, channel_timeout=60.5),
    ),
    Case(
        "channel-timeout-string",
        422,
        "channel_timeout",
        body=lambda n: start_body(n, channel_timeout="60"),
    ),
    Case(
        "channel-timeout-bool",
        422,
        "channel_timeout",
        body=lambda n: start_body(n, channel_timeout=True),
    ),
    Case("client-ref-dash", 422, "client_ref", body=lambda n: start_body(n, client_ref="order-42")),
    Case(
        "client-ref-41-chars", 422, "client_ref", body=lambda n: start_body(n, client_ref="r" * 41)
    ),
    Case("client-ref-empty", 422, "client_ref", body=lambda n: start_body(n, client_ref="")),
    Case("locale-unsupported", 422, "locale", body=lambda n: start_body(n, locale="xx-yy")),
    Case("locale-int", 422, "locale", body=lambda n: start_body(n, locale=44)),
    # ---- size
    Case("body-over-64kb", 413, body=lambda n: start_body(n, padding="x" * 70_000)),
]

OTHER_CASES: list[Case] = [
    Case("check-non-uuid", 404, path="/v2/verify/not-a-uuid", body=lambda n: {"code": "1234"}),
    Case("check-uuid-with-suffix", 404, path="/v2/verify/{live}x", body=lambda n: {"code": "1234"}),
    Case("check-unknown-uuid", 404, path="/v2/verify/{unknown}", body=lambda n: {"code": "1234"}),
    Case("check-code-missing", 422, "code", path="/v2/verify/{live}", body=lambda n: {}),
    Case(
        "check-code-too-short",
        422,
        "code",
        path="/v2/verify/{live}",
        body=lambda n: {"code": "abc"},
    ),
    Case(
        "check-code-too-long",
        422,
        "code",
        path="/v2/verify/{live}",
        body=lambda n: {"code": "1" * 11},
    ),
    Case("check-code-int", 422, "code", path="/v2/verify/{live}", body=lambda n: {"code": 1234}),
    Case("check-code-dash", 422, "code", path="/v2/verify/{live}", body=lambda n: {"code": "12-4"}),
    Case("check-body-array", 422, "code", path="/v2/verify/{live}", body=lambda n: ["1234"]),
    Case("check-empty-body", 422, "code", path="/v2/verify/{live}", raw=lambda n: b""),
    Case("check-malformed-json", 400, path="/v2/verify/{live}", raw=lambda n: b'{"code": '),
    Case("next-workflow-unknown", 404, path="/v2/verify/{unknown}/next_workflow"),
    Case("next-workflow-non-uuid", 404, path="/v2/verify/nope/next_workflow"),
    Case("cancel-unknown", 404, method="DELETE", path="/v2/verify/{unknown}"),
    Case("cancel-non-uuid", 404, method="DELETE", path="/v2/verify/..%2F..%2Fetc"),
]

ALL_CASES = START_CASES + OTHER_CASES


def send(api: VonageApi, case: Case, path: str, number: str) -> requests.Response:
    if case.raw is not None:
        data = case.raw(number)
        return api.request(
            case.method, path, data=data, headers={"Content-Type": "application/json"}
        )
    if case.body is not None:
        return api.request(case.method, path, json=case.body(number))
    return api.request(case.method, path)


def assert_problem(resp: requests.Response, status: int, param: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert 400 <= resp.status_code < 500
    assert resp.headers["Content-Type"].split(";")[0].strip() == "application/problem+json"
    problem = resp.json()
    assert isinstance(problem, dict)
    assert PROBLEM_FIELDS <= set(problem), problem
    for key in PROBLEM_FIELDS:
        assert isinstance(problem[key], str)
        assert problem[key], key
    assert problem["type"].startswith("https://")
    uuid.UUID(problem["instance"])
    if status == 422:
        invalid = problem.get("invalid_parameters")
        assert isinstance(invalid, list)
        assert invalid, problem
        for entry in invalid:
            assert set(entry) == {"name", "reason"}
            assert entry["reason"]
        names = [entry["name"] for entry in invalid]
        assert param in names, names
    return problem


def start_ok(api: VonageApi, number: str) -> str:
    resp = api.start(start_body(number))
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_request_is_a_clean_4xx_and_leaves_no_state(
    api: VonageApi, number: str, case: Case
) -> None:
    live: str | None = None
    if "{live}" in case.path:
        live = start_ok(api, number)
    path = case.path.replace("{live}", live or "").replace("{unknown}", str(uuid.uuid4()))
    # a bad check sent again and again must not count as wrong codes (3 would end the request)
    repeats = 4 if live is not None else 1
    for _ in range(repeats):
        assert_problem(send(api, case, path, number), case.status, case.param)

    if live is not None:
        message = api.wait_message(number, live, "sms")
        checked = api.check(live, message["code"])
        assert checked.status_code == 200, checked.text
    # the destination is free: nothing was created or locked by the bad request
    start_ok(api, number)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in ALL_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", None],
    ids=["text-plain", "form-urlencoded", "xml", "none"],
)
def test_wrong_content_type_with_json_body_is_handled_cleanly(
    api: VonageApi, number: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    data = json.dumps(start_body(number)).encode()
    resp = api.request("POST", "/v2/verify", data=data, headers=headers)
    assert resp.status_code < 500, resp.text
    if resp.status_code == 202:
        rid = resp.json()["request_id"]
        assert api.cancel(rid).status_code == 204
    else:
        assert_problem(resp, resp.status_code, None if resp.status_code != 422 else "body")
    start_ok(api, number)


def test_form_encoded_body_is_a_clean_400(api: VonageApi, number: str) -> None:
    resp = api.request(
        "POST",
        "/v2/verify",
        data={"brand": "ACME", "workflow": "sms"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(resp, 400, None)
    start_ok(api, number)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not.a.jwt", "Basic !!!", "Digest abc"],
    ids=["missing", "bearer-empty", "bearer-garbage", "basic-garbage", "digest"],
)
def test_bad_credentials_are_401_problem(api: VonageApi, number: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = api.http.post(
        api.base + "/v2/verify", json=start_body(number), headers=headers, timeout=10
    )
    assert_problem(resp, 401, None)
    start_ok(api, number)
