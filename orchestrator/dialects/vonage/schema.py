"""Pydantic models of the Vonage Verify v2 request and response bodies (also feed /openapi.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CheckRequest",
    "CheckResponse",
    "EmailStep",
    "InvalidParameter",
    "Problem",
    "SilentAuthResponse",
    "SilentAuthStep",
    "SmsStep",
    "StartResponse",
    "VerifyRequest",
    "VoiceStep",
    "WhatsAppStep",
    "WorkflowStep",
]

_ALNUM = r"^[a-zA-Z0-9]+$"


class _Strict(BaseModel):
    # strict: "60" is not 60 and 1 is not true; unknown fields are ignored, as the SDKs expect
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class SilentAuthStep(_Strict):
    channel: Literal["silent_auth"]
    to: str = Field(min_length=1, max_length=50, description="E.164 number without '+'")
    redirect_url: str | None = Field(default=None, min_length=1, max_length=2048)
    coverage_check: bool = True
    mode: Literal["standard", "advanced"] = "standard"
    sandbox: bool | None = None


class SmsStep(_Strict):
    channel: Literal["sms"]
    to: str = Field(min_length=1, max_length=50)
    from_: str | None = Field(default=None, alias="from", min_length=1, max_length=15)
    entity_id: str | None = Field(default=None, min_length=1, max_length=20)
    content_id: str | None = Field(default=None, min_length=1, max_length=20)
    app_hash: str | None = Field(default=None, min_length=11, max_length=11)
    reuse_code: bool = False


class WhatsAppStep(_Strict):
    channel: Literal["whatsapp"]
    to: str = Field(min_length=1, max_length=50)
    from_: str = Field(alias="from", min_length=1, max_length=50)
    mode: Literal["otp_code", "zero_tap"] = "otp_code"
    reuse_code: bool = False


class VoiceStep(_Strict):
    channel: Literal["voice"]
    to: str = Field(min_length=1, max_length=50)
    reuse_code: bool = False


class EmailStep(_Strict):
    channel: Literal["email"]
    to: str = Field(min_length=3, max_length=254)
    from_: str | None = Field(default=None, alias="from", min_length=3, max_length=254)
    reuse_code: bool = False


WorkflowStep = Annotated[
    SilentAuthStep | SmsStep | WhatsAppStep | VoiceStep | EmailStep,
    Field(discriminator="channel"),
]


class VerifyRequest(_Strict):
    brand: str = Field(min_length=1, max_length=18, pattern=r"^[^/{}:$]*$")
    # either `workflow`, or `workflow_name` (a named workflow of VERIFY_WORKFLOWS_FILE) with
    # `to` (and `email` for its email steps); parse_start refuses both and neither
    workflow: list[WorkflowStep] | None = Field(default=None, min_length=1, max_length=3)
    workflow_name: str | None = Field(default=None, min_length=1, max_length=64)
    to: str | None = Field(default=None, min_length=1, max_length=50)
    email: str | None = Field(default=None, min_length=3, max_length=254)
    # an extra field: the device's IP, for the workflow conditions about its mobile network
    device_ip: str | None = Field(default=None, min_length=2, max_length=45)
    locale: str | None = Field(default=None, min_length=2, max_length=10)
    channel_timeout: int = Field(default=180, ge=15, le=900)
    client_ref: str | None = Field(default=None, min_length=1, max_length=40, pattern=_ALNUM)
    code_length: int | None = Field(default=None, ge=4, le=10)
    code: str | None = Field(default=None, min_length=4, max_length=10, pattern=_ALNUM)
    template_id: str | None = None
    fraud_check: bool | None = None


class StartResponse(BaseModel):
    request_id: str
    check_url: str | None = None
    # silent-auth-first workflows: the desktop handoff page (QR code / SMS link to the phone)
    handoff_url: str | None = None


class CheckRequest(_Strict):
    code: str = Field(min_length=4, max_length=10, pattern=_ALNUM)


class CheckResponse(BaseModel):
    request_id: str
    status: Literal["completed"]


class SilentAuthResponse(BaseModel):
    request_id: str
    code: str


class InvalidParameter(BaseModel):
    name: str
    reason: str


class Problem(BaseModel):
    """RFC 7807 problem details, as every Vonage error answers."""

    type: str
    title: str
    detail: str
    instance: str
    request_id: str | None = None
    invalid_parameters: list[InvalidParameter] | None = None
