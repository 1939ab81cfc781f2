"""The templates operations' /openapi.json pieces: every reference resolves, every operation id
is Vonage's (or Twilio's) own."""

from __future__ import annotations

import json
import re

from pydantic.json_schema import models_json_schema

from orchestrator.templates import schema

VONAGE_OPERATIONS = {
    "listTemplates",
    "createTemplate",
    "getTemplate",
    "updateTemplate",
    "deleteTemplate",
    "listTemplateFragments",
    "addTemplateFragmentToTemplate",
    "getTemplateFragment",
    "updateTemplateFragment",
    "deleteTemplateFragment",
}


def test_paths_reference_only_known_schemas() -> None:
    _, defs = models_json_schema(
        [(m, "validation") for m in schema.OPENAPI_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    known = set(defs["$defs"]) | {"Problem", "TwilioError"}
    text = json.dumps(schema.openapi_paths())
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs and refs <= known, refs - known


def test_operation_ids() -> None:
    ops = {
        op["operationId"]
        for item in schema.openapi_paths().values()
        for key, op in item.items()
        if key != "parameters"
    }
    assert ops == VONAGE_OPERATIONS | {"ListVerificationTemplate"}


def test_response_models_read_the_hal_shapes() -> None:
    link = {"href": "https://h/v2/verify/templates/t"}
    page = {
        "page_size": 10,
        "page": 1,
        "total_pages": 1,
        "total_items": 1,
        "_embedded": {
            "templates": [
                {
                    "template_id": "t",
                    "name": "n",
                    "is_default": True,
                    "_links": {"self": link, "fragments": link},
                }
            ]
        },
        "_links": {"self": link, "first": link, "last": link},
    }
    parsed = schema.TemplatePage.model_validate(page)
    assert parsed.embedded.templates[0].links.fragments.href == link["href"]
