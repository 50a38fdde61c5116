"""voice.frames: every frame of PROTOCOL.md parsed, every malformed one refused with a code."""
import json

import pytest

from metrotest_bot.voice import frames
from metrotest_bot.voice.frames import FrameError

LIMIT = 64 * 1024


def parse(obj):
    return frames.parse(obj if isinstance(obj, (str, bytes)) else json.dumps(obj, ensure_ascii=False), LIMIT)


def test_setup():
    ev = parse({"type": "setup", "callId": "abc", "from": "+79120000000", "to": "+73430000000", "sessionId": "s1"})
    assert ev == frames.Setup(call_id="abc", from_number="+79120000000", to_number="+73430000000", session_id="s1")
    # Numbers sent as JSON numbers and a hidden caller id (empty "from") are accepted.
    ev = parse({"type": "setup", "callId": 42, "from": "", "to": 73430000000})
    assert (ev.call_id, ev.from_number, ev.to_number, ev.session_id) == ("42", "", "73430000000", None)


@pytest.mark.parametrize("raw, confidence", [(0.93, 0.93), (87, 0.87), (None, None), (100, 1.0), (1, 1.0)])
def test_prompt_confidence_is_normalized(raw, confidence):
    obj = {"type": "prompt", "text": "Алло", "last": True}
    if raw is not None:
        obj["confidence"] = raw
    ev = parse(obj)
    assert ev.text == "Алло" and ev.last is True
    assert ev.confidence == pytest.approx(confidence) if confidence is not None else ev.confidence is None


def test_other_events():
    assert parse({"type": "interrupt", "answerId": "a1", "utteranceUntilInterrupt": "Мы работаем",
                  "durationUntilInterruptMs": 1500}) == frames.Interrupt("a1", "Мы работаем", 1500.0)
    assert parse({"type": "dtmf", "digit": "0"}) == frames.Dtmf("0")
    assert parse({"type": "dtmf", "digit": 7}) == frames.Dtmf("7")
    assert parse({"type": "recording", "url": "https://rec.example/1.mp3"}) == frames.Recording("https://rec.example/1.mp3")
    assert parse({"type": "hangup"}) == frames.Hangup(None)
    assert parse({"type": "hangup", "reason": "busy"}) == frames.Hangup("busy")


@pytest.mark.parametrize("raw, code", [
    ("not json", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('"prompt"', "bad_json"),
    ({"text": "Алло"}, "missing_field"),
    ({"type": 5}, "missing_field"),
    ({"type": "bogus"}, "unknown_type"),
    ({"type": "setup", "from": "1", "to": "2"}, "missing_field"),
    ({"type": "setup", "callId": "", "from": "1", "to": "2"}, "bad_field"),
    ({"type": "setup", "callId": "x" * 200, "from": "1", "to": "2"}, "bad_field"),
    ({"type": "setup", "callId": "c", "from": ["1"], "to": "2"}, "bad_field"),
    ({"type": "prompt", "last": True}, "missing_field"),
    ({"type": "prompt", "text": "Алло"}, "missing_field"),
    ({"type": "prompt", "text": "Алло", "last": "yes"}, "bad_field"),
    ({"type": "prompt", "text": 12, "last": True}, "bad_field"),
    ({"type": "prompt", "text": "Алло", "last": True, "confidence": 500}, "bad_field"),
    ({"type": "prompt", "text": "Алло", "last": True, "confidence": "high"}, "bad_field"),
    ({"type": "interrupt", "utteranceUntilInterrupt": ""}, "missing_field"),
    ({"type": "interrupt", "answerId": "a1"}, "missing_field"),
    ({"type": "interrupt", "answerId": "a1", "utteranceUntilInterrupt": "", "durationUntilInterruptMs": -1},
     "bad_field"),
    ({"type": "dtmf"}, "missing_field"),
    ({"type": "dtmf", "digit": "A"}, "bad_field"),
    ({"type": "dtmf", "digit": "12"}, "bad_field"),
    ({"type": "recording"}, "missing_field"),
    ({"type": "recording", "url": "javascript:alert(1)"}, "bad_field"),
    (b'{"type": "hangup"}', "binary_frame"),
])
def test_malformed(raw, code):
    with pytest.raises(FrameError) as err:
        parse(raw)
    assert err.value.code == code
    assert err.value.message


def test_size_limit_counts_utf8_bytes():
    # 40 000 Cyrillic letters are 80 000 bytes: over 64 KiB although under 64 Ki characters.
    text = json.dumps({"type": "prompt", "text": "я" * 40_000, "last": True}, ensure_ascii=False)
    assert len(text) < LIMIT
    with pytest.raises(FrameError) as err:
        frames.parse(text, LIMIT)
    assert err.value.code == "frame_too_large"
    ok = json.dumps({"type": "prompt", "text": "я" * 30_000, "last": True}, ensure_ascii=False)
    assert frames.parse(ok, LIMIT).text == "я" * 30_000
    with pytest.raises(FrameError):
        frames.parse("x" * (LIMIT + 1), LIMIT)


@pytest.mark.parametrize("raw, deep", [
    ("[" * 5000, True),
    ('{"a":' * 5000, True),
    ("[" * 33 + "]" * 33, True),
    ('{"type": "prompt", "last": true, "text": "' + "[{" * 100 + '"}', False),  # inside a string
    ('{"type": "prompt", "last": true, "text": "\\\\"' + "[" * 40 + "}", True),  # an escaped backslash, then the string ends
    ('{"type": "prompt", "last": true, "text": "\\"' + "[" * 40 + "}", False),  # an escaped quote: still in the string
    ("[" * 32 + "]" * 32, False),
])
def test_json_depth_is_limited_before_parsing(raw, deep):
    assert frames.too_deep(raw, 32) is deep
    if deep:
        with pytest.raises(FrameError) as err:
            frames.parse(raw, LIMIT)
        assert err.value.code == "too_deep"


def test_outgoing_frames():
    assert json.loads(frames.text_frame("a1", 0, "Здравствуйте!", False)) == {
        "type": "text", "answerId": "a1", "seq": 0, "text": "Здравствуйте!", "last": False}
    assert json.loads(frames.transfer_frame("+73430001210", "Соединяю")) == {
        "type": "transfer", "to": "+73430001210", "text": "Соединяю"}
    assert json.loads(frames.end_frame("goodbye", "До свидания")) == {
        "type": "end", "reason": "goodbye", "text": "До свидания"}
    assert json.loads(frames.error_frame("bad_json", "frame is not valid JSON")) == {
        "type": "error", "code": "bad_json", "message": "frame is not valid JSON"}
    # Russian goes out as UTF-8 text, not \\u escapes.
    assert "Здравствуйте" in frames.text_frame("a1", 0, "Здравствуйте!", True)
