"""Rule-based extraction of the smart-home settings a message commits to.

Action metrics compare what a model's reply *does* with what the reference reply does, so the
extractor reads commitments, not mentions: offers and questions ("Would you like me to dim the
lights?") set nothing, negated requests are dropped, and only schema-valid values are kept (a
device named with an out-of-schema value, such as 70 degrees Fahrenheit, becomes `{device: {}}`).

Text is read sentence by sentence. In each sentence we find device, parameter and value mentions,
resolve which device an ambiguous one belongs to (nearest mention in the sentence, then earlier
sentences, then what the sentence's other parameters have in common, then a default), and attach
every number to its unit or nearest device/parameter mention. Pure `re`, deterministic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from adaptcommand.data.schema import DEVICE_MODELS, DEVICES, Actions
from adaptcommand.errors import DataError
from adaptcommand.fileio import read_jsonl, write_jsonl_atomic

ActionDict = dict[str, dict[str, object]]
Reading = tuple[str, str | None, object]  # (device, param or None, value or None)

_I = re.IGNORECASE
# The parameter a bare number sets on a device ("dim the lights to 40", "set the AC to 22").
_DEFAULT_NUMERIC = {"tv": "volume", "ac": "temperature", "lights": "brightness",
                    "speaker": "volume", "security": "alarm_volume"}
_LINK = r"(?:to|on|at|is|in|of|set\s+to)"  # "mode to cool", "color set to warm"
_COLOR_WORD = r"(?:colou?rs?|tones?|glow|white|hues?|shades?|light(?:s|ing)?|lamps?)"
_LIGHT_NOUN = r"(?:lights?|lighting|lamps?|bulbs?)"
_A_BIT = r"(?:(?:a\s+)?(?:bit|little|tad|lot)\s+)?(?:more\s+)?"
_SETTING_TARGET = r"(?:\bto|\bat|\bon|'em|\bthem|\bit)\s+(?:a\s+)?"  # "set them to a warm..."
_PRONOUN = re.compile(r"\b(?:it|them|they|'em)\b", _I)


@dataclass(frozen=True)
class _Entry:
    """A lexicon pattern and what a match can mean. A match with several readings is resolved
    from context; a `needs_context` match is dropped when context does not fit it."""

    pattern: re.Pattern[str]
    readings: tuple[Reading, ...]
    needs_context: bool = False


def _entry(pattern: str, *readings: Reading, needs_context: bool = False) -> _Entry:
    return _Entry(re.compile(pattern, _I), readings, needs_context)


def _mode(value: str) -> str:
    return rf"\b{value}(?:ing)?\s+(?:mode|setting)\b|\b(?:mode|setting)\s+(?:{_LINK}\s+)?{value}\b"


def _color(value: str) -> str:
    return (rf"\b{value}(?:er)?\s+{_COLOR_WORD}\b|\b{_LIGHT_NOUN}\s+{_A_BIT}{value}(?:er)?\b"
            rf"|\bcolou?r\s+(?:{_LINK}\s+)?(?:a\s+)?{value}(?:er)?\b")


_VERB_OBJECT = r"(?:up\s+)?(?:down|the|it|me|us|things|this|my|our|everything)\b"  # "heat the room"
_LEXICON: tuple[_Entry, ...] = (
    # devices
    _entry(r"\b(?:tv|t\.v\.|television|telly)\b", ("tv", None, None)),
    _entry(r"\b(?:ac|a/c|aircon|air[- ]con(?:dition(?:ing|er))?|thermostat|heater|heating)\b"
           r"|\b(?:turn|crank|bump|pump|put|set)\w*\s+(?:up\s+|on\s+|down\s+)?the\s+heat\b"
           r"|\bthe\s+heat\s+(?:up|on|down)\b", ("ac", None, None)),
    _entry(rf"\b{_LIGHT_NOUN}\b(?!\s+(?:music|jazz|rain|snow|breeze|snack|meal|lunch|dinner"
           r"|breakfast|reading|jacket|touch))", ("lights", None, None)),
    _entry(r"\b(?:speakers?|radio|stereo|sound\s+system)\b"
           r"|\b(?:turn|crank|set|lower|raise)\w*\s+(?:up\s+|down\s+)?the\s+music\b"
           r"|\b(?:play|put|turn\s+on|start|queue)\w*(?:\s+[\w'-]+){0,3}?\s+(?:music|tunes|songs?"
           r"|sounds|playlist|jazz|podcast|album)\b", ("speaker", None, None)),
    _entry(r"\bsecurity(?:\s+system)?\b|\b(?:alarm|burglar\s+alarm)\s+system\b",
           ("security", None, None)),
    # numeric parameters
    _entry(r"\balarm\s+volume\b", ("security", "alarm_volume", None)),
    _entry(r"\bfan(?:\s+speed)?\b|\bspeed\b", ("ac", "fan_speed", None)),
    _entry(r"(?<!outdoor )(?<!outside )(?<!current )\btemp(?:erature)?\b(?!\s+(?:outside|out)\b)",
           ("ac", "temperature", None)),
    _entry(r"\bvolume\b", ("tv", "volume", None), ("speaker", "volume", None),
           ("security", "alarm_volume", None)),
    _entry(r"\b(?:brightness|bright(?:er|en)?|dim(?:med|mer)?)\b", ("lights", "brightness", None),
           ("tv", "brightness", None)),
    # categorical values
    _entry(r"\bhdmi\s*-?\s*1\b", ("tv", "input_source", "HDMI1")),
    _entry(r"\bhdmi\s*-?\s*2\b", ("tv", "input_source", "HDMI2")),
    _entry(r"\b(?-i:AV)\b|\bav\s+input\b", ("tv", "input_source", "AV")),
    _entry(r"\bnetflix\b", ("tv", "input_source", "Netflix")),
    _entry(r"\byou\s?tube\b", ("tv", "input_source", "YouTube")),
    _entry(r"\bbass[- ]?(?:boost(?:ed)?|heavy)\b|\b(?:boost|more|extra|heavy)\s+(?:the\s+)?bass\b",
           ("speaker", "equalizer", "bass boost")),
    _entry(r"\btreble[- ]?(?:boost(?:ed)?|heavy)\b|\b(?:boost|more|extra)\s+(?:the\s+)?treble\b",
           ("speaker", "equalizer", "treble boost")),
    _entry(rf"\bbalanced\s+(?:equali[sz]er|eq|sound|audio)\b"
           rf"|\b(?:equali[sz]er|eq|sound|audio|speakers?)\s+(?:{_LINK}\s+)?balanced\b",
           ("speaker", "equalizer", "balanced")),
    _entry(r"\bdisarm(?:ed|ing|s)?\b|\b(?:deactivate|disable|turn\s+off|switch\s+off)\w*\s+"
           r"(?:the\s+)?(?:security|alarm)\b"
           # the passive report of a model reply: "The security system has been disabled."
           r"|\b(?:security|alarm)(?:\s+system)?\s+(?:\w+\s+){0,2}(?:disabled|deactivated"
           r"|turned\s+off|switched\s+off)\b", ("security", "armed", False)),
    _entry(r"\b(?:re)?arm(?:ed|ing|s)?\s+(?:the\s+|my\s+|our\s+)?(?:\w+\s+)?(?:security|alarm"
           r"|system|house|home|it)\b"
           r"|\b(?:(?:security|alarm)(?:\s+system)?|system|house|home)\s+(?:\w+\s+){0,2}armed\b"
           r"|\b(?:activate|enable|turn\s+on|switch\s+on)\w*\s+(?:the\s+)?(?:security|alarm)\b",
           ("security", "armed", True)),
    _entry(r"\bstatic\b", ("lights", "mode", "static")),
    _entry(r"\bdynamic\b", ("lights", "mode", "dynamic")),
    _entry(r"\bneutral\b", ("lights", "color", "neutral")),
    _entry(_color("warm") + rf"|\bwarm(?:er)?\s+up\s+(?:the\s+|my\s+)?(?:\w+\s+)?{_LIGHT_NOUN}\b",
           ("lights", "color", "warm")),
    _entry(_color("cool"), ("lights", "color", "cool")),
    _entry(_mode("cool") + rf"|\bcool\s+{_VERB_OBJECT}", ("ac", "mode", "cool")),
    _entry(_mode("heat") + rf"|(?<!the\s)\bheat\s+{_VERB_OBJECT}", ("ac", "mode", "heat")),
    _entry(_mode("auto(?:matic)?"), ("ac", "mode", "auto")),
    # "set the lights to warm", "make 'em warm", "AC to cool": the device says what it means
    _entry(rf"{_SETTING_TARGET}(?:nice\s+)?warm(?:er)?\b(?!\s+(?:up|in)\b)",
           ("lights", "color", "warm"), needs_context=True),
    _entry(rf"{_SETTING_TARGET}cool\b(?!\s+(?:down|off|in)\b)", ("lights", "color", "cool"),
           ("ac", "mode", "cool"), needs_context=True),
    _entry(r"\bbalanced\b", ("speaker", "equalizer", "balanced"), needs_context=True),
    _entry(r"(?:\bto|\bon)\s+heat\b", ("ac", "mode", "heat"), needs_context=True),
    _entry(r"(?:\bto|\bon)\s+auto\b", ("ac", "mode", "auto"), needs_context=True),
)

# Sentences that ask or offer instead of committing: questions about values or state, offers
# ("I can set...", "Would you like me to..."), checks of the current state, hedges.
_NOT_COMMITMENT = re.compile(
    r"\bwould\s+you\s+(?:like|prefer|want)\b|\bdo\s+you\s+(?:want|prefer|need)\b|\bwant\s+me\s+to\b"
    r"|\b(?:shall|should)\s+I\b|\bI\s+should\b|(?<!as )\byou'?d\s+(?:like|prefer)\b"
    r"|\blet\s+me\s+know\b|\bspecify\b|\btell\s+me\b|\bcheck\b|\bconfirm\b|\bto\s+know\b"
    r"|\bcurrent(?:ly)?\b|\balready\b|\brecommend|\bsuggest"
    # model replies: what the user can do ("You can set the brightness to 75"), help with doing
    # it, and a setting only weighed ("Setting the AC to 22 would be perfect / is a great idea")
    r"|(?<!how\s)\byou\s+can\b|\bhelp\s+you\b"
    r"|^setting\b[^?!]*?(?<!which\s)\b(?:would\s+be|is\s+(?:a|an|just|really|perfect|great|good"
    r"|fine|nice|ideal))\b",
    _I,
)
_OFFER_VERB = r"(?:set|turn|adjust|change|dim|switch|make|put|play|lower|raise)"
_OFFER = re.compile(
    rf"(?:^|,\s*)I\s+(?:can(?!'t|not)|could\s+(?:also\s+)?{_OFFER_VERB})\b"
    rf"|\b(?:but|and|so|however|also),?\s+I\s+can(?:\s+(?:also|certainly|still))?\s+{_OFFER_VERB}\b",
    _I,
)
_WH_QUESTION = re.compile(
    r"^(?:[\w']+(?:\s+[\w']+)?\s*[,!]\s*)?(?:what(?!\s+about)|which|how(?!\s+about)|when|where"
    r"|who|why(?!\s+(?:don't|not))|is(?!\s+it\s+possible)|are|was|were|do|does|did|has|have)\b"
    r"[^?]*\?\s*$",
    _I,
)
# A sentence that names a device only counts if it asks for or reports a change.
_ACTION_CUE = re.compile(
    r"\b(?:set|sets|setting|turn\w*|switch\w*|adjust\w*|chang\w*|dim\w*|brighten\w*|lower\w*"
    r"|rais\w*|increas\w*|decreas\w*|reduc\w*|crank\w*|bump\w*|boost\w*|make|making|made|put"
    r"|putting|keep\w*|play\w*|start\w*|stop\w*|paus\w*|mut\w*|unmut\w*|arm\w*|disarm\w*"
    r"|activat\w*|deactivat\w*|enabl\w*|disabl\w*|prepar\w*|power\w*|shut\w*|warm\w*\s+up"
    r"|cool\w*\s+down|do\s+something|tweak\w*|fix|launch\w*|open|go\s+with|how\s+about|bring"
    r"|now\s+(?:on|off)|I'd\s+like|I\s+would\s+like|I\s+want|I\s+need|please"
    r"|(?:can|could|would|will)\s+(?:you|ya|u)|you\s+could)\b",
    _I,
)
# Without an action verb, a value counts only when stated as a setting ("input source to
# Netflix", "static mode is perfect"), not in passing ("your Netflix night", "warm lights").
_ASSIGNED = re.compile(r"\b(?:to|on|now|input|source)\s+$", _I)
_SETTING_WORD = re.compile(r"\b(?:mode|setting|colou?r|tone|equali[sz]er|eq|input|source"
                           r"|(?:dis)?armed)\b",
                           _I)
_NEGATION = re.compile(r"\b(?:don't|dont|do\s+not|never|no\s+need\s+to|not|unable\s+to|can't"
                       r"|cannot)\b(?!\s+forget)", _I)
_SCOPE_END = re.compile(
    r"[,;:]|\b(?:but|instead|just|then)\b|\band\s+(?=(?:please\s+)?(?:set|turn|switch|adjust|dim"
    r"|make|put|change|play|keep|lower|raise|arm)\b)",
    _I,
)
_NUMBER = re.compile(r"(?<![\w'#$£€.,-])(\d{1,3})(\.\d+)?(?![\d:])")
# Numbers that are not settings: relative changes ("by 10"), channels, episodes...
_NOT_A_SETTING_BEFORE = re.compile(r"\b(?:by|channel|episode|season|track|page|number)\s*$", _I)
_NOT_A_SETTING = re.compile(
    r"(?:s|th|st|nd|rd|k)\b|\s*(?:am|pm|a\.m|p\.m|minutes?|mins?|hours?|hrs?|seconds?|secs?|days?"
    r"|weeks?|months?|years?|times|kelvin|o'clock)\b",
    _I,
)
_FAHRENHEIT = re.compile(r"\s*(?:°\s*f\b|degrees?\s+f(?:ahrenheit)?\b|f\b|fahrenheit\b)", _I)
_CELSIUS = re.compile(r"\s*(?:°\s*c?|º\s*c?|degrees?(?:\s+c(?:elsius)?\b)?|c\b|celsius\b)", _I)
_PERCENT = re.compile(r"\s*(?:%|percent\b|per\s+cent\b)", _I)
# What may stand between a mention and its number: "volume is now set to 30", "25 for volume".
_LEAD_IN = re.compile(r"(?:[\s:=]|\b(?:to|at|of|is|are|level|on|set|now)\b)*", _I)
_LEAD_OUT = re.compile(r"\s*(?:(?:for|of|on|the|in|as)\s+)*", _I)
_PARAM_OF = re.compile(r"\s+(?:of|on|for)\s+(?:the\s+|my\s+)?(?:[\w-]+\s+)?", _I)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    readings: tuple[Reading, ...]
    needs_context: bool = False

    @property
    def anchor(self) -> str | None:
        """The device, when the mention alone says which one it is."""
        return self.readings[0][0] if len(self.readings) == 1 and not self.needs_context else None


@dataclass(frozen=True)
class _Resolved:
    start: int
    end: int
    device: str
    param: str | None
    value: object
    by_default: bool = False  # no context said which device: good enough for a number only


def extract_actions(text: str, *, commitments_only: bool = True) -> ActionDict:
    """Settings `text` commits to, as `{device: {param: value}}` in schema order.

    `commitments_only=False` also keeps settings named in offers, questions and state reports
    ("Shall I set the AC to 22?"): what a message makes known, not what it does.
    """
    found: ActionDict = {}
    history: list[str] = []  # devices mentioned so far, latest last: for "it" and carried params
    for sentence in _sentences(text.replace("’", "'")):
        resolved = _resolve(_mentions(sentence), history)
        if not commitments_only or _is_commitment(sentence):
            _apply_sentence(sentence, resolved, history, found)
        history.extend(item.device for item in resolved if not item.by_default)
    return _canonical(found)


def asked_devices(text: str, context: Sequence[str] = ()) -> set[str]:
    """Devices `text` asks the user to choose settings for: named (or implied by a parameter)
    in a question that states no value ("What temperature and mode would you like for the
    AC?" -> {"ac"}); "it" and "them" take the device last mentioned, in `text` or before it in
    `context` (the earlier messages, oldest first)."""
    asked: set[str] = set()
    history = [item.device for message in context for sentence in _sentences(message)
               for item in _resolve(_mentions(sentence), []) if not item.by_default]
    for sentence in _sentences(text.replace("’", "'")):
        resolved = _resolve(_mentions(sentence), history)
        if (sentence.endswith("?") and not _is_commitment(sentence)
                and not any(extract_actions(sentence, commitments_only=False).values())):
            asked |= {item.device for item in resolved}
            if _PRONOUN.search(sentence) and not resolved and history:
                asked.add(history[-1])
        history.extend(item.device for item in resolved if not item.by_default)
    return asked


def extract_actions_validated(text: str) -> Actions:
    """`extract_actions` as the schema's pydantic `Actions` (values are schema-valid by design)."""
    return Actions.model_validate(extract_actions(text))


def _sentences(text: str) -> Iterator[str]:
    for part in _SENTENCE_SPLIT.split(text):
        if part.strip():
            yield part.strip()


def _is_commitment(sentence: str) -> bool:
    return not (_NOT_COMMITMENT.search(sentence) or _OFFER.search(sentence)
                or _WH_QUESTION.search(sentence))


@functools.lru_cache(maxsize=1 << 16)
def _mentions(sentence: str) -> tuple[_Mention, ...]:
    """Lexicon matches without overlaps: specific patterns first, then the earliest and longest
    ("alarm volume" over "volume", "heat mode" over "to heat"). Cached: sentences recur
    ("Setting the AC to heat mode."), and matching the lexicon is most of the extractor's time."""
    candidates = sorted(
        ((entry.needs_context, m.start(), -m.end(), entry.readings)
         for entry in _LEXICON for m in entry.pattern.finditer(sentence)),
        key=lambda c: c[:3],
    )
    kept: list[_Mention] = []
    for needs_context, start, neg_end, readings in candidates:
        if all(-neg_end <= k.start or start >= k.end for k in kept):
            kept.append(_Mention(start, -neg_end, readings, needs_context))
    return tuple(sorted(kept, key=lambda m: m.start))


def _resolve(mentions: Sequence[_Mention], history: list[str]) -> list[_Resolved]:
    """One reading per mention; a context-dependent one that context does not fit is dropped."""
    anchors = [m for m in mentions if m.anchor is not None]
    unplaced = [m for m in mentions if m.anchor is None and not m.needs_context]
    resolved = []
    for mention in mentions:
        options = {reading[0]: reading for reading in mention.readings}
        device = mention.anchor or _from_context(mention, anchors, history, options)
        by_default = device is None and not mention.needs_context
        if by_default:
            device = _common_device(unplaced, options)
        if device is not None:
            _, param, value = options[device]
            resolved.append(_Resolved(mention.start, mention.end, device, param, value, by_default))
    return resolved


def _from_context(
    mention: _Mention, anchors: list[_Mention], history: list[str], options: dict[str, Reading]
) -> str | None:
    """The device the sentence (closest fitting mention) or the dialogue so far points to.

    A context-dependent word ("to cool") takes the closest device only, fitting or not; an
    ambiguous parameter ("volume") takes the closest device that has it.
    """
    if mention.needs_context:
        nearby = [a.anchor for a in sorted(anchors, key=lambda a: abs(a.start - mention.start))]
        closest = (nearby or history[-1:] or [None])[0]
        return closest if closest in options else None
    fitting = [a for a in anchors if a.anchor in options]
    if fitting:
        return min(fitting, key=lambda a: abs(a.start - mention.start)).anchor
    return next((device for device in reversed(history) if device in options), None)


def _common_device(unplaced: list[_Mention], options: dict[str, Reading]) -> str:
    """The reading most of the sentence's unplaced mentions share ("volume 30, brightness 40"
    -> TV), ties going to the first, default, reading."""
    def support(device: str) -> int:
        return sum(any(r[0] == device for r in m.readings) for m in unplaced)

    return max(options, key=support)


def _negated_spans(sentence: str) -> list[tuple[int, int]]:
    spans = []
    for cue in _NEGATION.finditer(sentence):
        stop = _SCOPE_END.search(sentence, cue.end())
        spans.append((cue.start(), stop.start() if stop else len(sentence)))
    return spans


def _apply_sentence(
    sentence: str, resolved: list[_Resolved], history: list[str], found: ActionDict
) -> None:
    """Add one committing sentence's settings to `found` (later values override earlier ones)."""
    negated = _negated_spans(sentence)

    def live(position: int) -> bool:
        return not any(a <= position < b for a, b in negated)

    carried = history[-1] if history and _PRONOUN.search(sentence) else None
    numbers = [n for n in _numbers(sentence, resolved, carried) if live(n[0])]
    # Asking for a change, or stating a number setting, makes every mention in it count.
    about_settings = _ACTION_CUE.search(sentence) is not None or any(n[2] for n in numbers)
    for item in resolved:
        if not live(item.start):
            continue
        if item.value is not None and (about_settings or _stated_as_setting(sentence, item)):
            _set(found, item.device, item.param, item.value)
        elif about_settings and item.value is None and not item.by_default:
            found.setdefault(item.device, {})
    for _, device, param, value in numbers:
        _set(found, device, param, value)
    if about_settings and not resolved and carried is not None and not negated:
        found.setdefault(carried, {})


def _stated_as_setting(sentence: str, item: _Resolved) -> bool:
    """A parameter word next to the value ("static mode"), or "to"/"now" just before it."""
    return bool(_SETTING_WORD.search(sentence, max(0, item.start - 12), item.end + 12)
                or _ASSIGNED.search(sentence, 0, item.start))


def _numbers(
    sentence: str, resolved: list[_Resolved], carried: str | None
) -> Iterator[tuple[int, str, str | None, object]]:
    """(position, device, param, value) for each number; param/value None when not schema-valid."""
    for match in _NUMBER.finditer(sentence):
        end = match.end()
        if not _is_setting_number(sentence, match, resolved):
            continue
        owner = _owning_param(sentence, match.start(), resolved)
        if _FAHRENHEIT.match(sentence, end) and owner is None:
            yield match.start(), "ac", None, None
            continue
        if owner is not None:  # "fan speed to 3 degrees": the parameter owns the number
            target: tuple[str, str | None] | None = owner
        elif celsius := _CELSIUS.match(sentence, end):
            target = ("ac", "temperature")
            end = celsius.end()
        else:
            percent = _PERCENT.match(sentence, end)
            end = percent.end() if percent else end
            target = _number_target(sentence, match.start(), end, resolved, carried)
        if target is None:
            continue
        device, param = target
        param = param or _DEFAULT_NUMERIC[device]
        value = None if match.group(2) else int(match.group(1))
        if value is not None and _valid(device, param, value):
            yield match.start(), device, param, value
        else:
            yield match.start(), device, None, None


def _owning_param(sentence: str, start: int, resolved: list[_Resolved]
                  ) -> tuple[str, str | None] | None:
    """A numeric parameter other than temperature named right before the number ("fan speed
    to 3"), which owns it whatever unit follows."""
    before = [r for r in resolved if r.end <= start]
    if before and before[-1].value is None and before[-1].param not in (None, "temperature") \
            and _LEAD_IN.fullmatch(sentence, before[-1].end, start):
        return before[-1].device, before[-1].param
    return None


def _is_setting_number(sentence: str, match: re.Match[str], resolved: list[_Resolved]) -> bool:
    """False for years, times, durations, "by 10", and digits inside a mention ("HDMI 1")."""
    start = match.start()
    return not (any(r.start <= start < r.end for r in resolved)
                or _NOT_A_SETTING.match(sentence, match.end())
                or _NOT_A_SETTING_BEFORE.search(sentence, max(0, start - 10), start))


def _number_target(
    sentence: str, start: int, end: int, resolved: list[_Resolved], carried: str | None
) -> tuple[str, str | None] | None:
    """The (device, numeric param) a number belongs to, by closeness: the mention right before
    it ("volume 30", "lights to 40"), else a parameter or device right after it ("50%
    brightness", "30 on the speaker"), else the nearest before, any after, the carried device."""
    def numeric(item: _Resolved) -> tuple[str, str | None]:
        return item.device, item.param if item.value is None else None

    before = [r for r in resolved if r.end <= start]
    after = [r for r in resolved if r.start >= end]
    if len(before) > 1 and _PARAM_OF.fullmatch(sentence, before[-2].end, before[-1].start) \
            and before[-2].device == before[-1].device and before[-1].param is None:
        before.pop()  # "the brightness of the TV to 65": the parameter owns the number
    if before and _LEAD_IN.fullmatch(sentence, before[-1].end, start):
        return numeric(before[-1])
    if after and after[0].value is None and _LEAD_OUT.fullmatch(sentence, end, after[0].start):
        return numeric(after[0])
    if before:
        return numeric(before[-1])
    if after:
        return numeric(after[0])
    return (carried, None) if carried is not None else None


def _valid(device: str, param: str, value: int) -> bool:
    try:
        DEVICE_MODELS[device].model_validate({param: value})
    except ValidationError:
        return False
    return True


def _set(found: ActionDict, device: str, param: str | None, value: object) -> None:
    settings = found.setdefault(device, {})
    if param is not None and value is not None:
        settings[param] = value


def _canonical(found: ActionDict) -> ActionDict:
    """Devices and params in schema order, so equal actions serialize to equal bytes."""
    return {
        device: {p: found[device][p] for p in DEVICE_MODELS[device].model_fields
                 if p in found[device]}
        for device in DEVICES
        if device in found
    }


def annotate_jsonl(input_path: str | Path, output_path: str | Path, field: str = "text") -> int:
    """Write each input line plus its extracted `actions` (replacing any there); returns the
    number of lines. The whole input is checked before anything is written."""
    rows = []
    for line, row in read_jsonl(input_path):
        text = row.get(field)
        if not isinstance(text, str):
            reason = "missing" if field not in row else "must be a string"
            raise DataError(reason, path=input_path, line=line, field=field)
        rows.append({**row, "actions": extract_actions(text)})
    write_jsonl_atomic(output_path, rows)
    return len(rows)
