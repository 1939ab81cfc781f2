"""Pydantic models of the Twilio Verify v2 resources and form bodies (they feed /openapi.json).

Responses: Service, its list page, Verification, VerificationCheck and the legacy error body.
Every property is required (nullable where the server may send null): Twilio always sends every
declared property, and the SDKs read them all. Request bodies are form-encoded with PascalCase
names (some dotted, `Push.IncludeDate`); the models carry them as aliases, and the constraints
mirror what the handlers accept (orchestrator/dialects/twilio/), so a schema-valid form is a form
the server takes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SendCodeAttempt",
    "Service",
    "ServiceCreateForm",
    "ServicePage",
    "ServiceUpdateForm",
    "SnaUrl",
    "TwilioError",
    "Verification",
    "VerificationCheck",
    "VerificationCheckForm",
    "VerificationCreateForm",
    "VerificationUpdateForm",
]

VerificationStatus = Literal[
    "pending", "approved", "canceled", "expired", "failed", "max_attempts_reached"
]
WireChannel = Literal["sms", "call", "email", "whatsapp", "sna"]
_SID = r"^[0-9a-fA-F]{32}$"


def _sid(prefix: str) -> str:
    return f"^{prefix}{_SID[1:]}"


# ---- responses ----------------------------------------------------------------------------------


class TwilioError(BaseModel):
    """Twilio's legacy error body. No `type`/`title`: with both, the SDK raises its RFC 9457
    exception instead."""

    code: int
    message: str
    more_info: str
    status: int


class Service(BaseModel):
    sid: str = Field(pattern=_sid("VA"))
    account_sid: str
    friendly_name: str
    code_length: int
    lookup_enabled: bool
    skip_sms_to_landlines: bool
    dtmf_input_required: bool
    tts_name: str | None
    psd2_enabled: bool
    do_not_share_warning_enabled: bool
    custom_code_enabled: bool
    verify_event_subscription_enabled: bool
    default_template_sid: str | None
    push: dict[str, Any]
    totp: dict[str, Any]
    whatsapp: dict[str, Any]
    passkeys: dict[str, Any]
    date_created: str
    date_updated: str
    url: str
    links: dict[str, str]


class PageMeta(BaseModel):
    page: int
    page_size: int
    first_page_url: str
    previous_page_url: str | None
    next_page_url: str | None
    url: str
    key: str


class ServicePage(BaseModel):
    services: list[Service]
    meta: PageMeta


class SendCodeAttempt(BaseModel):
    time: str | None
    channel: Literal["SMS", "CALL", "EMAIL", "whatsapp", "SNA"]
    attempt_sid: str


class SnaUrl(BaseModel):
    url: str
    # the desktop handoff page (start responses only; not in Twilio's own API)
    handoff_url: str | None = None


class _Standing(BaseModel):
    """What a verification and a check of it both report first (dialects.twilio._standing)."""

    sid: str = Field(pattern=_sid("VE"))
    service_sid: str
    account_sid: str
    to: str
    channel: WireChannel
    status: VerificationStatus
    valid: bool


class Verification(_Standing):
    lookup: dict[str, Any]
    amount: str | None
    payee: str | None
    send_code_attempts: list[SendCodeAttempt]
    date_created: str | None
    date_updated: str | None
    sna: SnaUrl | None
    url: str


class VerificationCheck(_Standing):
    amount: str | None
    payee: str | None
    sna_attempts_error_codes: list[int]
    date_created: str | None
    date_updated: str | None


# ---- form-encoded request bodies ----------------------------------------------------------------


class _Form(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class ServiceUpdateForm(_Form):
    friendly_name: str | None = Field(default=None, alias="FriendlyName", max_length=32)
    code_length: int | None = Field(default=None, alias="CodeLength", ge=4, le=10)
    lookup_enabled: bool | None = Field(default=None, alias="LookupEnabled")
    skip_sms_to_landlines: bool | None = Field(default=None, alias="SkipSmsToLandlines")
    dtmf_input_required: bool | None = Field(default=None, alias="DtmfInputRequired")
    tts_name: str | None = Field(default=None, alias="TtsName", max_length=64)
    psd2_enabled: bool | None = Field(default=None, alias="Psd2Enabled")
    do_not_share_warning_enabled: bool | None = Field(
        default=None, alias="DoNotShareWarningEnabled"
    )
    custom_code_enabled: bool | None = Field(default=None, alias="CustomCodeEnabled")
    verify_event_subscription_enabled: bool | None = Field(
        default=None, alias="VerifyEventSubscriptionEnabled"
    )
    default_template_sid: str | None = Field(
        default=None, alias="DefaultTemplateSid", pattern=_sid("HJ")
    )
    push_include_date: bool | None = Field(default=None, alias="Push.IncludeDate")
    push_apn_credential_sid: str | None = Field(
        default=None, alias="Push.ApnCredentialSid", pattern=_sid("CR")
    )
    push_fcm_credential_sid: str | None = Field(
        default=None, alias="Push.FcmCredentialSid", pattern=_sid("CR")
    )
    totp_issuer: str | None = Field(default=None, alias="Totp.Issuer", max_length=64)
    totp_time_step: int | None = Field(default=None, alias="Totp.TimeStep", ge=20, le=60)
    totp_code_length: int | None = Field(default=None, alias="Totp.CodeLength", ge=3, le=8)
    totp_skew: int | None = Field(default=None, alias="Totp.Skew", ge=0, le=2)
    whatsapp_msg_service_sid: str | None = Field(
        default=None, alias="Whatsapp.MsgServiceSid", pattern=_sid("MG")
    )
    whatsapp_from: str | None = Field(default=None, alias="Whatsapp.From", max_length=64)
    passkeys_rp_name: str | None = Field(
        default=None, alias="Passkeys.RelyingParty.Name", max_length=64
    )
    passkeys_attachment: Literal["platform", "cross-platform", "any"] | None = Field(
        default=None, alias="Passkeys.AuthenticatorAttachment"
    )
    passkeys_user_verification: Literal["required", "preferred", "discouraged"] | None = Field(
        default=None, alias="Passkeys.UserVerification"
    )


class ServiceCreateForm(ServiceUpdateForm):
    friendly_name: str = Field(alias="FriendlyName", min_length=1, max_length=32)


class VerificationCreateForm(_Form):
    to: str = Field(
        alias="To",
        min_length=1,
        max_length=254,
        description="An E.164 number with '+', or an email address for the email channel",
    )
    channel: Literal["sms", "call", "email", "whatsapp", "sna", "auto"] = Field(alias="Channel")
    custom_friendly_name: str | None = Field(
        default=None, alias="CustomFriendlyName", max_length=30
    )
    custom_code: str | None = Field(
        default=None, alias="CustomCode", pattern=r"^[A-Za-z0-9]{4,10}$"
    )
    send_digits: str | None = Field(
        default=None, alias="SendDigits", max_length=32, pattern=r"^[0-9#*wW]+$"
    )
    locale: str | None = Field(default=None, alias="Locale", max_length=16)
    amount: str | None = Field(default=None, alias="Amount", max_length=64)
    payee: str | None = Field(default=None, alias="Payee", max_length=64)
    rate_limits: str | None = Field(
        default=None, alias="RateLimits", description="A JSON object of rate-limit keys to values"
    )
    channel_configuration: str | None = Field(
        default=None, alias="ChannelConfiguration", description="A JSON object"
    )
    app_hash: str | None = Field(default=None, alias="AppHash", max_length=32)
    template_sid: str | None = Field(default=None, alias="TemplateSid", pattern=_sid("HJ"))
    template_custom_substitutions: str | None = Field(
        default=None, alias="TemplateCustomSubstitutions", description="A JSON object"
    )
    device_ip: str | None = Field(default=None, alias="DeviceIp", max_length=64)
    risk_check: Literal["enable", "disable"] | None = Field(default=None, alias="RiskCheck")


class VerificationUpdateForm(_Form):
    status: Literal["canceled", "approved"] = Field(alias="Status")


class VerificationCheckForm(_Form):
    """Names the verification by `VerificationSid` or by `To` (one of them is required)."""

    code: str | None = Field(default=None, alias="Code", pattern=r"^[A-Za-z0-9]{4,10}$")
    to: str | None = Field(default=None, alias="To", min_length=1, max_length=254)
    verification_sid: str | None = Field(default=None, alias="VerificationSid", pattern=_sid("VE"))
    amount: str | None = Field(default=None, alias="Amount", max_length=64)
    payee: str | None = Field(default=None, alias="Payee", max_length=64)
