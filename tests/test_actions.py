"""The action extractor: commitments not mentions, schema-valid values, located bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adaptcommand.cli import run_app
from adaptcommand.data.schema import Actions
from adaptcommand.errors import DataError
from adaptcommand.evaluation.action_metrics import score_labelled_jsonl
from adaptcommand.evaluation.actions import (
    annotate_jsonl,
    asked_devices,
    extract_actions,
    extract_actions_validated,
)


@pytest.mark.parametrize(("text", "expected"), [
    # questions and offers commit to nothing
    ("Would you like me to dim the lights?", {}),
    ("I can set the lights to warm. What brightness?", {}),
    ("What temperature would you like?", {}),
    ("Sure, I can set the TV input source to YouTube. What volume would you like?", {}),
    ("Shall I set the AC to cool mode?", {}),
    ("What's the current brightness of the lights?", {}),
    ("The lights are currently off. Would you like me to adjust them?", {}),
    # a user's question-shaped request is a request
    ("Could you set the TV volume to 25?", {"tv": {"volume": 25}}),
    ("How about 24 degrees? And set it to heat mode, please.",
     {"ac": {"temperature": 24, "mode": "heat"}}),
    # the assistant's commitment, followed by an offer that must not leak
    ("Setting the AC to 18 degrees with fan speed 1. Would you like me to set the mode to cool?",
     {"ac": {"temperature": 18, "fan_speed": 1}}),
])
def test_commitments_not_questions_or_offers(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Set the AC to 22 degrees and the lights to 40.",
     {"ac": {"temperature": 22}, "lights": {"brightness": 40}}),
    ("Set the lights to 40 and the AC to 22.",
     {"ac": {"temperature": 22}, "lights": {"brightness": 40}}),
    ("Dim the bedroom lights to 20% and put the TV on YouTube at volume 12.",
     {"tv": {"volume": 12, "input_source": "YouTube"}, "lights": {"brightness": 20}}),
    ("Set the volume to 20 on the TV and 30 on the speaker.",
     {"tv": {"volume": 20}, "speaker": {"volume": 30}}),
    ("Turn off the TV and AC.", {"tv": {}, "ac": {}}),
    ("Turn off the AC and arm the security system with the alarm volume at 70.",
     {"ac": {}, "security": {"armed": True, "alarm_volume": 70}}),
    ("Set the AC to cool and the lights to warm.",
     {"ac": {"mode": "cool"}, "lights": {"color": "warm"}}),
])
def test_several_devices_in_one_sentence(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Turn on the kitchen light to 75% brightness.", {"lights": {"brightness": 75}}),
    ("Set the lights to 30 percent.", {"lights": {"brightness": 30}}),
    ("Set the brightness of the TV to 65.", {"tv": {"brightness": 65}}),
    ("Make it 25 for volume and 40 for brightness.", {"tv": {"volume": 25, "brightness": 40}}),
    ("Set the AC to 22°C and the fan speed to 3.", {"ac": {"temperature": 22, "fan_speed": 3}}),
    ("Let's go with 23 degrees and fan speed 2.", {"ac": {"temperature": 23, "fan_speed": 2}}),
    ("Set it to 22, heat mode, and keep the fan low, like speed 1.",
     {"ac": {"temperature": 22, "mode": "heat", "fan_speed": 1}}),
    ("Let's keep it at 50, and set the mode to dynamic.",
     {"lights": {"brightness": 50, "mode": "dynamic"}}),
])
def test_numbers_go_to_their_unit_or_nearest_parameter(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Set the lights to warm white.", {"lights": {"color": "warm"}}),
    ("Adjust the lights to a cooler tone.", {"lights": {"color": "cool"}}),
    ("Dim the lights to 50, make 'em warm, and keep 'em static.",
     {"lights": {"brightness": 50, "color": "warm", "mode": "static"}}),
    ("I'd like the speaker bass-heavy at volume 45.",
     {"speaker": {"volume": 45, "equalizer": "bass boost"}}),
    ("Set the speaker volume to 30 with a balanced equalizer.",
     {"speaker": {"volume": 30, "equalizer": "balanced"}}),
    ("Arm the system, please.", {"security": {"armed": True}}),
    ("Make sure the security system is disarmed.", {"security": {"armed": False}}),
    ("Can you turn on the AC to heat the room?", {"ac": {"mode": "heat"}}),
    ("Set the AC to cool me down.", {"ac": {"mode": "cool"}}),
    ("Set the air conditioner to auto.", {"ac": {"mode": "auto"}}),
    ("Can you turn up the heat a bit?", {"ac": {}}),
    ("Switch the TV to HDMI 2.", {"tv": {"input_source": "HDMI2"}}),
    ("Can you play some classical music?", {"speaker": {}}),
])
def test_word_forms(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Don't turn on the TV.", {}),
    ("Don't turn on the TV, just dim the lights to 30%.", {"lights": {"brightness": 30}}),
    ("Please don't turn the TV and AC on.", {}),
    ("No need to turn on the AC.", {}),
    ("Set the TV to HDMI1. Oh, and don't forget to arm the security system.",
     {"tv": {"input_source": "HDMI1"}, "security": {"armed": True}}),
])
def test_negation(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Hey, just got back from a hike. Turn on the lights.", {"lights": {}}),
    ("I need access to the garage, so turn on the TV.", {"tv": {}}),
    ("The warm lights look nice; the alarm clock rang at 6 am.", {}),
    ("My arm is sore, set the house lights to 50.", {"lights": {"brightness": 50}}),
    ("It's a bit warm in here. Can you set the AC to 23?", {"ac": {"temperature": 23}}),
    ("It's so hot, I can't stand this heat. Turn on the AC.", {"ac": {}}),
    ("I fancy some light music while I read.", {}),
    ("Enjoy your cozy Netflix night!", {}),
])
def test_substring_and_weather_traps(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Set the thermostat to 70 degrees.", {"ac": {}}),
    ("Set the AC to 72 degrees Fahrenheit.", {"ac": {}}),
    ("Set the AC to 35.", {"ac": {}}),
    ("Set the fan speed to 5.", {"ac": {}}),
    ("Set the lights to 2700K.", {"lights": {}}),
    ("I prefer it around 50%. Can you set the humidifier to maintain that?", {}),
    ("Could you make sure the living room curtains are closed halfway?", {}),
    ("Increase the temperature by 2 degrees.", {"ac": {}}),
])
def test_values_outside_the_schema_are_not_values(text: str, expected: dict) -> None:
    assert extract_actions(text) == expected


def test_context_carries_across_sentences() -> None:
    assert extract_actions("The lights are too bright. Can you dim them a bit?") == {"lights": {}}
    text = "Turn on the TV to Netflix and set the volume to 20. Brightness at 40."
    assert extract_actions(text) == {"tv": {"volume": 20, "brightness": 40,
                                            "input_source": "Netflix"}}
    assert extract_actions("Could you adjust the AC? Set it to 21.") == {"ac": {"temperature": 21}}


@pytest.mark.parametrize(("text", "context", "expected"), [
    ("Of course. What temperature, mode, and fan speed would you like for the AC?", [], {"ac"}),
    ("What volume would you like for the sound system?", [], {"speaker"}),
    ("What brightness would you like? What volume for the speaker?", [], {"lights", "speaker"}),
    # "them" is the device the user just named
    ("Got it. What mode would you like me to set them to?", ["Dim the lamps, please."],
     {"lights"}),
    # a question that states a value offers it; a commitment and small talk ask nothing
    ("Shall I set the AC to 22 degrees?", [], set()),
    ("Setting the TV to volume 30. Is there anything else you'd like me to adjust?", [], set()),
    ("How can I help you today?", [], set()),
])
def test_asked_devices_are_those_a_question_leaves_open(text: str, context: list[str],
                                                        expected: set[str]) -> None:
    assert asked_devices(text, context) == expected


def test_output_is_in_schema_order_and_validates() -> None:
    text = "Speaker to 20, then set the AC to 22 degrees and the TV to Netflix."
    actions = extract_actions(text)
    assert list(actions) == ["tv", "ac", "speaker"]
    validated = extract_actions_validated(text)
    assert isinstance(validated, Actions)
    assert validated.ac is not None and validated.ac.temperature == 22
    assert validated.lights is None


def _run_cli(monkeypatch: pytest.MonkeyPatch, *args: object) -> int:
    monkeypatch.setattr(sys, "argv", ["adaptcommand", *map(str, args)])
    try:
        run_app()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_extract_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.jsonl"
    rows = [{"id": 1, "body": "Set the TV to Netflix."},
            {"id": 2, "body": "Would you like me to dim the lights?"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert _run_cli(monkeypatch, "actions", "extract", "--input", source, "--output", out,
                    "--field", "body") == 0
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == [{**rows[0], "actions": {"tv": {"input_source": "Netflix"}}},
                       {**rows[1], "actions": {}}]


def test_cli_bad_line_names_file_line_and_field_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Turn on the TV."}\n{"text": 3}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert _run_cli(monkeypatch, "actions", "extract", "--input", source, "--output", out) == 2
    assert f"{source}:2: field 'text'" in capsys.readouterr().err
    assert not out.exists()


def test_annotate_missing_field_raises_located_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hi"}\n\n{"message": "hi"}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        annotate_jsonl(source, tmp_path / "out.jsonl")
    assert (info.value.line, info.value.field, info.value.reason) == (3, "text", "missing")


def test_gold_dev_set_regression_floor(real_sample: Path) -> None:
    """Measured 0.996 device F1 and 0.998 parameter-value F1 on the 499 gold messages."""
    gold = real_sample.parent / "gold_actions_dev.jsonl"
    if not gold.is_file():
        pytest.skip(f"gold file not found at {gold}")
    scores = score_labelled_jsonl(gold, extract_actions)
    overall = scores["all"]
    assert overall.turns == 499
    assert overall.device.precision >= 0.98 and overall.device.f1 >= 0.98
    assert overall.param.precision >= 0.98 and overall.param.f1 >= 0.98
    for role in ("user", "assistant"):
        assert scores[role].param.f1 >= 0.97


@pytest.mark.parametrize(("text", "expected"), [
    # what the user can do is not what the reply does
    ("That's a great option. You can adjust the temperature to 22 degrees and the fan speed to 1.",
     {}),
    ("The lights are set to 40% brightness. You can turn on the TV with the remote.",
     {"lights": {"brightness": 40}}),
    ("You've set the lights to 30% brightness, which shows how you can control them.",
     {"lights": {"brightness": 30}}),
    ("Sure, I'd be happy to help you set the brightness of your lights.", {}),
    # a setting weighed, not applied
    ("Setting the smart speaker to volume 35 would be perfect for your evening.", {}),
    ("Setting the AC to auto mode, 22 degrees, is a great choice.", {}),
    ("Setting the AC to 22 degrees, which is a good choice for tonight.",
     {"ac": {"temperature": 22}}),
    # refusals and offers after a conjunction
    ("I'm unable to set the temperature of a device.", {}),
    ("But I can also adjust the brightness to 40, which is too bright.", {}),
    ("I can't turn off the TV, but I'll dim the lights to 20.", {"lights": {"brightness": 20}}),
    # a parameter owns its number whatever unit the reply attaches to it
    ("I'll just set the fan speed to 3 degrees.", {"ac": {"fan_speed": 3}}),
    ("I'll adjust the fan speed to 2 degrees Celsius and the temperature to 21 degrees.",
     {"ac": {"temperature": 21, "fan_speed": 2}}),
    # a passive report of disarming (the adapted arm's replies)
    ("The security system has been disabled.", {"security": {"armed": False}}),
    ("The alarm is now turned off.", {"security": {"armed": False}}),
])
def test_model_reply_patterns(text: str, expected: dict) -> None:
    """Patterns found in the embedded model's own replies (data/gold_model_replies)."""
    assert extract_actions(text) == expected


def test_gold_model_replies_regression_floor() -> None:
    """Measured 0.881 device F1 and 0.896 parameter-value F1 on the 205 hand-labelled replies of
    the embedded model: 95 of the base model (0.917 / 0.960; 0.725 / 0.767 before the
    model-reply rules), 95 of a 1-epoch unified LoRA (0.870 / 0.855) and 15 more of the base
    model, held out (0.818 / 0.909)."""
    gold = Path(__file__).resolve().parents[1] / "data/gold_model_replies/gold.jsonl"
    overall = score_labelled_jsonl(gold, extract_actions)["all"]
    assert overall.turns == 205
    assert overall.device.f1 >= 0.87 and overall.param.f1 >= 0.88
