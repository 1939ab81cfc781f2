"""Fuzz the service against its own `GET /openapi.json`, both dialects, with schemathesis.

schemathesis loads the document the running session stack serves (HTTPS `serve` + worker +
redis-server) and, per operation, Hypothesis generates requests from the document's request
schemas: valid ones (positive) and ones that break them (negative: wrong types, missing required
fields, out-of-range values...). Every response must

* never be a 5xx (`not_a_server_error`);
* have a status the operation documents (`status_code_conformance`);
* have a documented content type and a body valid against the documented schema
  (`content_type_conformance`, `response_schema_conformance`): Vonage errors are problem+json,
  Twilio errors `{code, message, more_info, status}`.

Credentials: Vonage operations use an application's Basic `api_key:api_secret` (a JWT's `jti` is
single-use, so Bearer would need a fresh token per request; Basic exercises the same routes), and
Twilio operations an account's Basic `AccountSid:AuthToken`. Path parameters are wholly generated
(random ids: 404s) for a quarter of the cases and name real resources (a pending request_id, a
service sid, a verification sid or its To) for the rest, and bodies are sometimes wholly realistic
(E.164 numbers in the UK drama range, real channels, codes), so 2xx answers are reached too.

Reproducible: Hypothesis is derandomized, with OPENAPI_FUZZ_MAX_EXAMPLES generated cases per
operation (default 300; 14 operations, so ~4,200 cases plus the explicit examples), no deadline
and no shrinking (a failure prints a curl command); OPENAPI_FUZZ_EXPLORE=1 draws a new seed. `test_totals` runs last and checks the
totals: enough cases, no 5xx, and that 429s (the fraud guard / auth lockout) did not dominate.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.contract.templates_fuzz_plans import template_plans
from tests.support.processes import Stack, wait_until

MAX_EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_MAX_EXAMPLES", "300"))
# OPENAPI_FUZZ_EXPLORE=1: a fresh random seed per run (bug hunting), instead of CI's fixed one
EXPLORE = os.environ.get("OPENAPI_FUZZ_EXPLORE") == "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _drama(n: int, plus: bool) -> str:
    """A UK drama-range mobile (+44 7700 9xxxxx), reserved for fiction: never a real handset."""
    return ("+" if plus else "") + f"4477009{n % 10**5:05d}"


NUMBERS = st.integers(0, 10**5 - 1)
CODES = st.text("0123456789", min_size=4, max_size=10)
EMAILS = st.integers(0, 999).map(lambda n: f"fuzz{n}@example.com")


# ---- talking to the stack -----------------------------------------------------------------------


@dataclass
class Client:
    """Plain HTTP calls with one dialect's Basic credentials, to prepare real resources."""

    base: str
    auth: tuple[str, str]
    verify: str
    http: requests.Session = field(default_factory=requests.Session)
    used: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.http.auth = self.auth
        self.http.verify = self.verify

    def post(self, path: str, expect: int, **kw: Any) -> dict[str, Any]:
        resp = self.http.post(self.base + path, timeout=10, **kw)
        assert resp.status_code == expect, f"POST {path}: {resp.status_code} {resp.text}"
        body: dict[str, Any] = resp.json()
        return body

    def number(self) -> int:
        while True:
            n = random.randrange(10**5)
            if n not in self.used:
                self.used.add(n)
                return n


@dataclass
class Clients:
    vonage: Client
    twilio: Client

    # Vonage

    def request_id(self, *channels: str) -> tuple[str, str]:
        """A pending Vonage verification (its request_id and number), one step per channel."""
        to = _drama(self.vonage.number(), plus=False)
        workflow = [{"channel": c, "to": to} for c in channels or ("sms",)]
        body = self.vonage.post("/v2/verify", 202, json={"brand": "Fuzz", "workflow": workflow})
        return str(body["request_id"]), to

    def vonage_code(self, request_id: str, to: str) -> str:
        def find() -> str | None:
            resp = self.vonage.http.get(
                self.vonage.base + "/sandbox/v1/messages", params={"to": to}, timeout=10
            )
            resp.raise_for_status()
            for m in resp.json():
                if m.get("request_id") == request_id and m.get("code"):
                    return str(m["code"])
            return None

        code: str = wait_until(find, timeout=10, what=f"the code sent to {to}")
        return code

    # Twilio

    def service(self, **params: Any) -> str:
        data = {"FriendlyName": "Fuzz", **params}
        return str(self.twilio.post("/v2/Services", 201, data=data)["sid"])

    def verification(self, service: str) -> tuple[str, str]:
        to = _drama(self.twilio.number(), plus=True)
        data = {"To": to, "Channel": "sms"}
        body = self.twilio.post(f"/v2/Services/{service}/Verifications", 201, data=data)
        return str(body["sid"]), to


@pytest.fixture(scope="module")
def clients(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    """A fresh Vonage application and a fresh Twilio account: nothing else shares their data."""
    key = tmp_path_factory.mktemp("fuzz") / "app.key"
    app = stack.cli("apps", "create", "--name", "fuzz", "--private-key-out", str(key))
    account = stack.cli("accounts", "create", "--name", "fuzz")
    assert isinstance(app, dict) and isinstance(account, dict)
    cert = str(stack.cert)
    return Clients(
        vonage=Client(stack.url, (str(app["api_key"]), str(app["api_secret"])), cert),
        twilio=Client(stack.url, (str(account["account_sid"]), str(account["auth_token"])), cert),
    )


@pytest.fixture(scope="module")
def schema(stack: Stack) -> Any:
    """The service's own document, as schemathesis sees it (explicit config: hermetic runs)."""
    return schemathesis.openapi.from_url(
        stack.url + "/openapi.json",
        config=schemathesis.Config.from_dict({}),
        verify=str(stack.cert),
    )


# ---- the plan: real data per operation ------------------------------------------------------------


@dataclass
class Setup:
    """Real data for one operation, made fresh for it.

    params: path-parameter sets naming real resources (mixed with wholly generated ones).
    bodies: wholly realistic bodies, sent with real parameters as a further share of the cases.
    examples: explicit requests always sent first: {"path_parameters"?, "query"?, "body"?}.
    auth: False for operations the document marks `security: []`.
    """

    params: list[dict[str, str]] = field(default_factory=list)
    bodies: st.SearchStrategy[Any] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    auth: bool = True


def _new_request(c: Clients) -> Setup:
    sms = st.builds(lambda n: [{"channel": "sms", "to": _drama(n, plus=False)}], NUMBERS)
    two = st.builds(
        lambda n: [
            {"channel": "sms", "to": _drama(n, plus=False)},
            {"channel": "voice", "to": _drama(n, plus=False)},
        ],
        NUMBERS,
    )
    email = st.builds(lambda e: [{"channel": "email", "to": e}], EMAILS)
    bodies = st.fixed_dictionaries(
        {"brand": st.sampled_from(["ACME", "My Bank"]), "workflow": st.one_of(sms, two, email)},
        optional={"code_length": st.integers(4, 10), "locale": st.sampled_from(["en-gb", "es-es"])},
    )
    workflow = [{"channel": "sms", "to": _drama(c.vonage.number(), plus=False)}]
    return Setup(bodies=bodies, examples=[{"body": {"brand": "ACME", "workflow": workflow}}])


def _check_code(c: Clients) -> Setup:
    pending = [c.request_id() for _ in range(3)]
    right_id, right_to = pending[0]
    params = [{"request_id": rid} for rid, _ in pending]
    return Setup(
        params=params,
        bodies=st.fixed_dictionaries({"code": CODES}),
        examples=[
            {"path_parameters": params[1], "body": {"code": "0000"}},
            {"path_parameters": params[0], "body": {"code": c.vonage_code(right_id, right_to)}},
        ],
    )


def _cancel_request(c: Clients) -> Setup:
    params = [{"request_id": c.request_id()[0]} for _ in range(4)]
    return Setup(params=params[1:], examples=[{"path_parameters": params[0]}])


def _next_workflow(c: Clients) -> Setup:
    params = [{"request_id": c.request_id("sms", "voice")[0]} for _ in range(3)]
    return Setup(params=params[1:], examples=[{"path_parameters": params[0]}])


def _silent_auth_check(c: Clients) -> Setup:
    # wholly generated request ids only: a real check URL is a one-shot redirect chain
    return Setup(auth=False)


def _list_services(c: Clients) -> Setup:
    c.service()
    c.service()
    queries = [{}, {"PageSize": 1, "Page": 0}, {"PageSize": 1, "Page": 1}, {"PageSize": 1000}]
    return Setup(examples=[{"query": q} for q in queries])


def _create_service(c: Clients) -> Setup:
    bodies = st.fixed_dictionaries(
        {"FriendlyName": st.sampled_from(["ACME", "Login"])},
        optional={
            "CodeLength": st.integers(4, 10),
            "CustomCodeEnabled": st.sampled_from(["true", "false"]),
            "Totp.Skew": st.integers(0, 2),
        },
    )
    return Setup(bodies=bodies, examples=[{"body": {"FriendlyName": "ACME"}}])


def _fetch_service(c: Clients) -> Setup:
    params = [{"ServiceSid": c.service()}, {"ServiceSid": c.service(CodeLength=8)}]
    return Setup(params=params, examples=[{"path_parameters": params[0]}])


def _update_service(c: Clients) -> Setup:
    params = [{"ServiceSid": c.service()}, {"ServiceSid": c.service()}]
    bodies = st.fixed_dictionaries(
        {}, optional={"FriendlyName": st.just("Renamed"), "CodeLength": st.integers(4, 10)}
    )
    example_body = {"FriendlyName": "Renamed", "CodeLength": 8}
    return Setup(
        params=params,
        bodies=bodies,
        examples=[{"path_parameters": params[0], "body": example_body}],
    )


def _delete_service(c: Clients) -> Setup:
    params = [{"ServiceSid": c.service()} for _ in range(4)]
    return Setup(params=params[1:], examples=[{"path_parameters": params[0]}])


def _create_verification(c: Clients) -> Setup:
    plain, custom = c.service(), c.service(CustomCodeEnabled="true")
    phone = st.fixed_dictionaries(
        {
            "To": NUMBERS.map(lambda n: _drama(n, plus=True)),
            "Channel": st.sampled_from(["sms", "call", "auto"]),
        },
        optional={"Locale": st.sampled_from(["en", "es", "pt-BR"])},
    )
    email = st.fixed_dictionaries({"To": EMAILS, "Channel": st.just("email")})
    to = _drama(c.twilio.number(), plus=True)
    return Setup(
        params=[{"ServiceSid": plain}, {"ServiceSid": custom}],
        bodies=st.one_of(phone, email),
        examples=[
            {"path_parameters": {"ServiceSid": plain}, "body": {"To": to, "Channel": "sms"}},
            {
                "path_parameters": {"ServiceSid": custom},
                "body": {"To": to, "Channel": "sms", "CustomCode": "8642"},
            },
        ],
    )


def _fetch_verification(c: Clients) -> Setup:
    service = c.service()
    made = [c.verification(service) for _ in range(2)]
    params = [{"ServiceSid": service, "Sid": sid} for sid, _ in made]
    params += [{"ServiceSid": service, "Sid": to} for _, to in made]
    return Setup(params=params, examples=[{"path_parameters": p} for p in params[::2]])


def _update_verification(c: Clients) -> Setup:
    service = c.service()
    made = [c.verification(service) for _ in range(4)]
    params = [{"ServiceSid": service, "Sid": sid} for sid, _ in made]
    return Setup(
        params=params[2:],
        bodies=st.fixed_dictionaries({"Status": st.sampled_from(["canceled", "approved"])}),
        examples=[
            {"path_parameters": params[0], "body": {"Status": "canceled"}},
            {"path_parameters": params[1], "body": {"Status": "approved"}},
        ],
    )


def _create_verification_check(c: Clients) -> Setup:
    service = c.service()
    made = [c.verification(service) for _ in range(3)]
    sids, tos = [s for s, _ in made], [t for _, t in made]
    bodies = st.one_of(
        st.fixed_dictionaries({"To": st.sampled_from(tos), "Code": CODES}),
        st.fixed_dictionaries({"VerificationSid": st.sampled_from(sids), "Code": CODES}),
    )
    return Setup(
        params=[{"ServiceSid": service}],
        bodies=bodies,
        examples=[
            {"path_parameters": {"ServiceSid": service}, "body": {"To": tos[0], "Code": "0000"}}
        ],
    )


PLANS: dict[str, Callable[[Clients], Setup]] = {
    # Vonage Verify v2
    "newRequest": _new_request,
    "checkCode": _check_code,
    "cancelRequest": _cancel_request,
    "nextWorkflow": _next_workflow,
    "silentAuthCheck": _silent_auth_check,
    # Twilio Verify v2
    "ListService": _list_services,
    "CreateService": _create_service,
    "FetchService": _fetch_service,
    "UpdateService": _update_service,
    "DeleteService": _delete_service,
    "CreateVerification": _create_verification,
    "FetchVerification": _fetch_verification,
    "UpdateVerification": _update_verification,
    "CreateVerificationCheck": _create_verification_check,
}
PLANS.update(template_plans(Setup))
# every operation's statuses, for test_totals
TALLY: dict[str, Counter[int]] = {}


# ---- the tests ---------------------------------------------------------------------------------


def test_document_covers_the_plan(schema: Any) -> None:
    """Every operation the document declares is fuzzed here, and only those."""
    declared = {
        op.ok().definition.raw["operationId"] for op in schema.get_all_operations() if op.ok()
    }
    assert declared == set(PLANS)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("operation_id", list(PLANS))
def test_fuzz_operation(operation_id: str, schema: Any, clients: Clients) -> None:
    setup = PLANS[operation_id](clients)
    operation = schema.find_operation_by_id(operation_id)
    client = clients.vonage if operation.path.startswith("/v2/verify") else clients.twilio
    auth = client.auth if setup.auth else None

    def generated(mode: GenerationMode) -> st.SearchStrategy[Any]:
        wholly: st.SearchStrategy[Any] = operation.as_strategy(mode)
        if not setup.params:
            return wholly
        real = st.sampled_from(setup.params).flatmap(
            lambda p: operation.as_strategy(mode, path_parameters=p)
        )
        # a quarter wholly generated (random ids: 4xx), the rest naming real resources
        return st.one_of(wholly, real, real, real)

    cases = st.one_of(generated(GenerationMode.POSITIVE), generated(GenerationMode.NEGATIVE))
    if setup.bodies is not None:
        bodies = setup.bodies
        params = setup.params or [{}]
        realistic = st.sampled_from(params).flatmap(
            lambda p: bodies.flatmap(
                lambda b: operation.as_strategy(path_parameters=p or None, body=b)
            )
        )
        cases = st.one_of(cases, realistic)
    statuses: Counter[int] = Counter()
    TALLY[operation_id] = statuses

    def run(case: Any) -> None:
        response = case.call(base_url=client.base, session=client.http, auth=auth)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    for ex in reversed(setup.examples):
        run = example(case=operation.Case(**ex))(run)
    run = settings(
        max_examples=MAX_EXAMPLES,
        derandomize=not EXPLORE,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(case=cases)(run))
    # the session carries the dialect's credentials; `auth` overrides any generated header
    client.http.auth = auth
    try:
        run()
    finally:
        client.http.auth = client.auth

    print(f"{operation_id}: {sum(statuses.values())} cases, statuses {sorted(statuses.items())}")
    if operation_id != "silentAuthCheck":  # only random request ids: 404s by design
        assert any(200 <= s < 300 for s in statuses), f"{operation_id} never answered 2xx"


def test_totals(stack: Stack) -> None:
    """Runs last: the whole fuzz's size and shape (no 5xx; 429s did not crowd out the rest)."""
    if len(TALLY) < len(PLANS):
        pytest.skip("not every operation was fuzzed in this run")
    total: Counter[int] = Counter()
    for statuses in TALLY.values():
        total.update(statuses)
    cases = sum(total.values())
    lines = [f"{op}: {sum(s.values())} {sorted(s.items())}" for op, s in TALLY.items()]
    report = "\n".join([*lines, f"total: {cases} cases, statuses {sorted(total.items())}"])
    print(report)
    Path(stack.workdir / "openapi-fuzz.txt").write_text(report + "\n")
    assert not [s for s in total if s >= 500], report
    assert cases >= len(PLANS) * MAX_EXAMPLES * 0.9, report
    assert total[429] <= cases * 0.05, f"429s dominate the fuzz:\n{report}"
