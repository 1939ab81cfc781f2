"""Template texts: ${code} required, known placeholders only, one SMS segment at the longest."""

from __future__ import annotations

import pytest

from orchestrator.templates import rules


def test_a_short_text_with_the_code_passes() -> None:
    assert rules.text_problems("${brand}: ${code} is your code", "sms") == []
    assert rules.text_problems("Your ${brand} code is ${code}", "voice") == []


def test_the_code_placeholder_is_required() -> None:
    (problem,) = rules.text_problems("${brand} says hello", "sms")
    assert "${code}" in problem


def test_an_unknown_placeholder_is_named() -> None:
    (problem,) = rules.text_problems("${code} from ${brnad}", "sms")
    assert "${brnad}" in problem


def test_declared_variables_are_known() -> None:
    assert rules.text_problems("${code} for ${app}", "sms", ["app"]) == []
    assert rules.text_problems("${code} for ${app}", "sms") != []


def test_gsm_segment_counts_placeholders_at_their_longest() -> None:
    # ${code} is 10, ${brand} 18: with the separators the fixed text may be 160 - 30 long
    fixed = "x" * (160 - 10 - 18 - 2)
    assert rules.text_problems(f"${{brand}} ${{code}} {fixed}", "sms") == []
    (problem,) = rules.text_problems(f"${{brand}} ${{code}} {fixed}x", "sms")
    assert "one SMS segment" in problem and "161" in problem


def test_extension_characters_cost_two_septets() -> None:
    base = "${code} " + "a" * (160 - 11 - 1)
    assert rules.text_problems(base + "a", "sms") == []
    assert rules.text_problems(base + "€", "sms") != []


def test_a_character_outside_gsm7_makes_the_limit_70() -> None:
    text = "${code} " + "ж" * (70 - 11)
    assert rules.text_problems(text, "sms") == []
    assert rules.text_problems(text + "ж", "sms") != []


def test_voice_texts_are_not_bound_by_sms_segments() -> None:
    long = "Your code is ${code}. " + "Listen carefully. " * 20
    assert rules.text_problems(long, "voice") == []
    assert rules.text_problems(long, "sms") != []
    assert rules.text_problems("${code}" + "x" * rules.VOICE_TEXT_MAX, "voice") != []


@pytest.mark.parametrize(
    ("twilio", "ours"),
    [
        ("Your {{friendly_name}} code is {{code}}", "Your ${brand} code is ${code}"),
        ("{{code}} expires in {{ttl}} minutes", "${code} expires in ${time-limit} minutes"),
        ("{{ code }} for {{app}}", "${code} for ${app}"),
        ("${code} stays", "${code} stays"),
    ],
)
def test_twilio_placeholders_become_ours_and_back(twilio: str, ours: str) -> None:
    assert rules.canonical(twilio) == ours
    assert rules.canonical(rules.twilio_form(ours)) == ours


def test_rendered_problems_uses_the_real_values() -> None:
    text = "${brand}: ${code}"
    assert rules.rendered_problems(text, {"brand": "ACME", "code": "1234"}) == []
    assert rules.rendered_problems(text, {"brand": "Ж" * 70, "code": "1234"}) != []
