"""Which fragment a step sends: by channel, then exact locale, then language, else none."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.domain.models import Channel, Step, Verification
from orchestrator.templates import selection, store

NOW = "2026-01-01T00:00:00.000Z"


def _template(*fragments: tuple[str, str, str]) -> store.Template:
    frags = [
        store.Fragment(f"f{i}", channel, locale, text, NOW, NOW)
        for i, (channel, locale, text) in enumerate(fragments)
    ]
    return store.Template("t", "login", NOW, NOW, fragments=frags)


def test_exact_locale_then_bare_language_then_oldest_of_the_language() -> None:
    t = _template(
        ("sms", "en-us", "us ${code}"),
        ("sms", "en", "en ${code}"),
        ("sms", "de-at", "at ${code}"),
        ("sms", "de-de", "de ${code}"),
        ("voice", "fr-fr", "fr ${code}"),
    )
    assert (f := selection.pick_fragment(t, "sms", "en-us")) and f.text.startswith("us")
    assert (f := selection.pick_fragment(t, "sms", "en-gb")) and f.text.startswith("en ")
    assert (f := selection.pick_fragment(t, "sms", "de-ch")) and f.text.startswith("at")
    assert selection.pick_fragment(t, "sms", "fr-fr") is None
    assert (f := selection.pick_fragment(t, "voice", "fr-ca")) and f.text.startswith("fr")


def test_apply_sets_sms_and_voice_steps_only() -> None:
    t = _template(("sms", "en-gb", "${brand}: ${code}"), ("voice", "en-gb", "Code ${code}"))
    steps = [
        Step(channel=Channel.WHATSAPP, to="447700900001", sender="447700900500"),
        Step(channel=Channel.SMS, to="447700900001"),
        Step(channel=Channel.VOICE, to="447700900001"),
    ]
    values = {"brand": "ACME", "code": "1234"}
    assert selection.apply_template(t, steps, "en-gb", values) == []
    assert "template_text" not in steps[0].options
    assert steps[1].options["template_text"] == "${brand}: ${code}"
    assert steps[2].options["template_text"] == "Code ${code}"


def test_substitutions_are_filled_at_start_and_checked_for_length() -> None:
    t = _template(("sms", "en", "${code} for ${app}"))
    steps = [Step(channel=Channel.SMS, to="15005550006")]
    assert selection.apply_template(t, steps, "en-us", {"code": "1234"}, {"app": "Shop"}) == []
    assert steps[0].options["template_text"] == "${code} for Shop"
    long = {"app": "Ж" * 80}
    assert selection.apply_template(t, steps, "en-us", {"code": "1234"}, long) != []


def test_start_values_take_the_code_length_and_time_limit() -> None:
    v = Verification(
        request_id="r",
        tenant="app",
        brand="ACME",
        locale="en-gb",
        channel_timeout=60,
        code_length=6,
        steps=[Step(channel=Channel.SMS, to="447700900001")],
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    values = selection.start_values(v)
    assert values["code"] == "W" * 6
    assert values["time-limit"] == "1" and values["time-limit-unit"] == "minute"


def test_keep_existing_leaves_a_workflows_text_alone() -> None:
    t = _template(("sms", "en", "template ${code}"))
    steps = [Step(channel=Channel.SMS, to="1", options={"template_text": "workflow ${code}"})]
    selection.apply_template(t, steps, "en", {"code": "1"}, keep_existing=True)
    assert steps[0].options["template_text"] == "workflow ${code}"
    selection.apply_template(t, steps, "en", {"code": "1"})
    assert steps[0].options["template_text"] == "template ${code}"
