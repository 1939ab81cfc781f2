"""Wire models of the Templates APIs (Vonage's templates and fragments, Twilio's listing), and
their /openapi.json paths; a schema module, so orchestrator/http/openapi.py may read it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "OPENAPI_MODELS",
    "CreateFragmentRequest",
    "CreateTemplateRequest",
    "FragmentPage",
    "PatchFragmentRequest",
    "PatchTemplateRequest",
    "Template",
    "TemplateFragment",
    "TemplatePage",
    "TwilioTemplate",
    "TwilioTemplatePage",
    "openapi_paths",
]

_NAME = r"^[A-Za-z0-9_-]+$"
_LOCALE = r"^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})?$"
_TEXT = "May use ${code} (required), ${brand}, ${time-limit} and ${time-limit-unit}"


class _Strict(BaseModel):
    # strict as the start body: "true" is not true; unknown fields are ignored
    model_config = ConfigDict(strict=True, extra="ignore")


class CreateTemplateRequest(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=_NAME)


class PatchTemplateRequest(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=_NAME)
    is_default: bool | None = None


class CreateFragmentRequest(_Strict):
    channel: Literal["sms", "voice"]
    locale: str = Field(min_length=2, max_length=16, pattern=_LOCALE)
    text: str = Field(min_length=1, max_length=1000, description=_TEXT)


class PatchFragmentRequest(_Strict):
    text: str = Field(min_length=1, max_length=1000, description=_TEXT)


class Link(BaseModel):
    href: str


class TemplateLinks(BaseModel):
    self: Link
    fragments: Link


class Template(BaseModel):
    template_id: str
    name: str
    is_default: bool
    links: TemplateLinks = Field(alias="_links")


class FragmentLinks(BaseModel):
    self: Link
    template: Link


class TemplateFragment(BaseModel):
    template_fragment_id: str
    channel: Literal["sms", "voice"]
    locale: str
    text: str
    date_created: str
    date_updated: str
    links: FragmentLinks = Field(alias="_links")


class PageLinks(BaseModel):
    self: Link
    first: Link
    last: Link
    next: Link | None = None
    prev: Link | None = None


class _Templates(BaseModel):
    templates: list[Template]


class _Fragments(BaseModel):
    template_fragments: list[TemplateFragment]


class TemplatePage(BaseModel):
    page_size: int
    page: int
    total_pages: int
    total_items: int
    embedded: _Templates = Field(alias="_embedded")
    links: PageLinks = Field(alias="_links")


class FragmentPage(BaseModel):
    page_size: int
    page: int
    total_pages: int
    total_items: int
    embedded: _Fragments = Field(alias="_embedded")
    links: PageLinks = Field(alias="_links")


class TwilioTranslation(BaseModel):
    is_default_translation: bool
    status: str
    locale: str
    text: str = Field(description="With Twilio's {{code}}, {{friendly_name}}, {{ttl}}")
    date_created: str
    date_updated: str


class TwilioTemplate(BaseModel):
    sid: str = Field(pattern=r"^HJ[0-9a-fA-F]{32}$")
    account_sid: str
    friendly_name: str
    channels: list[Literal["sms", "voice"]]
    translations: dict[str, TwilioTranslation]


class TwilioPageMeta(BaseModel):
    page: int
    page_size: int
    first_page_url: str
    previous_page_url: str | None
    next_page_url: str | None
    url: str
    key: str


class TwilioTemplatePage(BaseModel):
    templates: list[TwilioTemplate]
    meta: TwilioPageMeta


OPENAPI_MODELS: list[type[BaseModel]] = [
    CreateTemplateRequest,
    PatchTemplateRequest,
    CreateFragmentRequest,
    PatchFragmentRequest,
    Template,
    TemplateFragment,
    TemplatePage,
    FragmentPage,
    TwilioTemplatePage,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(model.__name__)}},
    }


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model.__name__)}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _param(name: str, where: str = "path") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "format": "uuid"}
    if where == "query":
        schema = {"type": "integer", "minimum": 1}
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


def openapi_paths() -> dict[str, Any]:
    """The templates operations for /openapi.json (`Problem` and `TwilioError` are the
    document's own error schemas)."""
    tags = {"tags": ["Vonage Verify v2 Templates"]}
    errors = {
        "400": _problem("Malformed JSON"),
        "401": _problem("Missing or refused credentials"),
        "413": _problem("Body too large"),
        "422": _problem("Invalid parameters"),
        "429": _problem("Too many failed Basic authentications: locked out for a while"),
    }
    missing = {"404": _problem("No such template (or fragment) in this account")}
    conflict = {
        "409": _problem("template-exists, fragment-exists, not-empty-template, max-templates")
    }
    paging = [_param("page_size", "query"), _param("page", "query")]
    tid, fid = _param("template_id"), _param("template_fragment_id")
    base = "/v2/verify/templates"
    one_template = _json(Template, "The template")
    one_fragment = _json(TemplateFragment, "The fragment")
    return {
        base: {
            "get": {
                "operationId": "listTemplates",
                **tags,
                "parameters": paging,
                "responses": {"200": _json(TemplatePage, "A HAL page"), **errors},
            },
            "post": {
                "operationId": "createTemplate",
                **tags,
                "requestBody": _body(CreateTemplateRequest),
                "responses": {"201": one_template, **errors, **conflict},
            },
        },
        base + "/{template_id}": {
            "parameters": [tid],
            "get": {
                "operationId": "getTemplate",
                **tags,
                "responses": {"200": one_template, **errors, **missing},
            },
            "patch": {
                "operationId": "updateTemplate",
                **tags,
                "requestBody": _body(PatchTemplateRequest),
                "responses": {"200": one_template, **errors, **missing, **conflict},
            },
            "delete": {
                "operationId": "deleteTemplate",
                **tags,
                "responses": {"204": {"description": "Deleted"}, **errors, **missing, **conflict},
            },
        },
        base + "/{template_id}/template_fragments": {
            "parameters": [tid],
            "get": {
                "operationId": "listTemplateFragments",
                **tags,
                "parameters": paging,
                "responses": {"200": _json(FragmentPage, "A HAL page"), **errors, **missing},
            },
            "post": {
                "operationId": "addTemplateFragmentToTemplate",
                **tags,
                "requestBody": _body(CreateFragmentRequest),
                "responses": {"201": one_fragment, **errors, **missing, **conflict},
            },
        },
        base + "/{template_id}/template_fragments/{template_fragment_id}": {
            "parameters": [tid, fid],
            "get": {
                "operationId": "getTemplateFragment",
                **tags,
                "responses": {"200": one_fragment, **errors, **missing},
            },
            "patch": {
                "operationId": "updateTemplateFragment",
                **tags,
                "requestBody": _body(PatchFragmentRequest),
                "responses": {"200": one_fragment, **errors, **missing},
            },
            "delete": {
                "operationId": "deleteTemplateFragment",
                **tags,
                "responses": {"204": {"description": "Deleted"}, **errors, **missing},
            },
        },
        "/v2/Templates": {
            "get": {
                "operationId": "ListVerificationTemplate",
                "tags": ["Twilio Verify v2"],
                "security": [{"basicAuth": []}],
                "parameters": [
                    {"name": "FriendlyName", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "PageSize",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {"name": "Page", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": _json(TwilioTemplatePage, "A page of the account's templates"),
                    "400": {
                        "description": "Invalid parameter (code 60200 names it)",
                        "content": {"application/json": {"schema": _ref("TwilioError")}},
                    },
                    "401": {
                        "description": "Missing or refused credentials (20003)",
                        "content": {"application/json": {"schema": _ref("TwilioError")}},
                    },
                },
            }
        },
    }
