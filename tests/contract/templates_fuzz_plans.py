"""Fuzz plans for the Templates operations (test_openapi_fuzz.py merges them into PLANS once
/openapi.json declares them): real templates and fragments of the fuzz application's account."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

__all__ = ["template_plans"]

TEXTS = st.sampled_from(
    ["${brand}: ${code}", "Code ${code}", "${code} valid ${time-limit} ${time-limit-unit}"]
)


def template_plans(setup: type) -> dict[str, Callable[[Any], Any]]:
    """The plans, built with the fuzz module's own `Setup` (passed in: no import back)."""
    base = "/v2/verify/templates"

    def template(c: Any) -> str:
        # the account holds ten templates at most: reuse the oldest ones once it is full
        resp = c.vonage.http.post(
            c.vonage.base + base, json={"name": "fz" + uuid.uuid4().hex[:8]}, timeout=10
        )
        if resp.status_code == 201:
            return str(resp.json()["template_id"])
        listed = c.vonage.http.get(c.vonage.base + base, timeout=10).json()
        return str(listed["_embedded"]["templates"][0]["template_id"])

    def fragment(c: Any, tid: str) -> str:
        letters = "".join(chr(ord("a") + b % 26) for b in uuid.uuid4().bytes[:4])
        body = {"channel": "sms", "locale": f"{letters[:2]}-{letters[2:]}", "text": "${code}"}
        made = c.vonage.post(f"{base}/{tid}/template_fragments", 201, json=body)
        return str(made["template_fragment_id"])

    def list_templates(c: Any) -> Any:
        template(c)
        queries = [{}, {"page_size": 1, "page": 2}, {"page_size": 100}]
        return setup(examples=[{"query": q} for q in queries])

    def create_template(c: Any) -> Any:
        bodies = st.fixed_dictionaries({"name": st.from_regex(r"[a-z]{3,10}", fullmatch=True)})
        return setup(bodies=bodies, examples=[{"body": {"name": "fz-create"}}])

    def one_template(c: Any) -> Any:
        params = [{"template_id": template(c)} for _ in range(2)]
        return setup(params=params, examples=[{"path_parameters": params[0]}])

    def update_template(c: Any) -> Any:
        params = [{"template_id": template(c)} for _ in range(2)]
        bodies = st.fixed_dictionaries(
            {}, optional={"is_default": st.booleans(), "name": st.just("fz-renamed")}
        )
        example_body = {"is_default": True}
        return setup(
            params=params,
            bodies=bodies,
            examples=[{"path_parameters": params[0], "body": example_body}],
        )

    def fragments(c: Any) -> Any:
        tid = template(c)
        fragment(c, tid)
        return setup(
            params=[{"template_id": tid}], examples=[{"path_parameters": {"template_id": tid}}]
        )

    def create_fragment(c: Any) -> Any:
        params = [{"template_id": template(c)}]
        bodies = st.fixed_dictionaries(
            {
                "channel": st.sampled_from(["sms", "voice"]),
                "locale": st.from_regex(r"[a-z]{2}-[a-z]{2}", fullmatch=True),
                "text": TEXTS,
            }
        )
        return setup(params=params, bodies=bodies)

    def one_fragment(c: Any) -> Any:
        tid = template(c)
        params = [{"template_id": tid, "template_fragment_id": fragment(c, tid)} for _ in range(2)]
        return setup(params=params, examples=[{"path_parameters": params[0]}])

    def update_fragment(c: Any) -> Any:
        tid = template(c)
        params = [{"template_id": tid, "template_fragment_id": fragment(c, tid)}]
        bodies = st.fixed_dictionaries({"text": TEXTS})
        return setup(params=params, bodies=bodies)

    def list_twilio(c: Any) -> Any:
        queries = [{}, {"FriendlyName": "none"}, {"PageSize": 1, "Page": 0}]
        return setup(examples=[{"query": q} for q in queries])

    return {
        "listTemplates": list_templates,
        "createTemplate": create_template,
        "getTemplate": one_template,
        "updateTemplate": update_template,
        "deleteTemplate": one_template,
        "listTemplateFragments": fragments,
        "addTemplateFragmentToTemplate": create_fragment,
        "getTemplateFragment": one_fragment,
        "updateTemplateFragment": update_fragment,
        "deleteTemplateFragment": one_fragment,
        "ListVerificationTemplate": list_twilio,
    }
