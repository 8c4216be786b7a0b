"""The rules behind refusing bad input, called directly: stream ids and their bounds,
the JSON nesting pre-scan, query integers and stream ids, and the schema types
(tests/test_bad_input.py drives the same inputs through the real edges)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import stream_ids
from engine.errors import DomainError, ErrorCode
from engine.nesting import MAX_DEPTH, json_too_deep
from engine.payments import parse_event
from engine.stream_ids import SEQ_MAX, BadStreamId, StreamId
from signaling import schemas
from signaling.http_api import parse_int, parse_stream_id

MAX_ID = f"{SEQ_MAX}-{SEQ_MAX}"


def invalid_code(call: Any) -> Any:
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code is ErrorCode.INVALID
    return caught.value


def test_stream_ids_parse_to_canonical_values() -> None:
    assert str(StreamId.from_text("0005-01")) == "5-1"
    assert StreamId.from_text(MAX_ID) == StreamId(SEQ_MAX, SEQ_MAX)
    ms, seq = StreamId.from_text("12-3")
    assert (ms, seq) == (12, 3)
    assert StreamId(10, 0) > StreamId(9, 5) and StreamId(1, 1) <= StreamId(1, 1)
    assert stream_ids.parse(StreamId(1, 2)) == StreamId(1, 2)
    for bad in (f"{SEQ_MAX + 1}-0", f"0-{SEQ_MAX + 1}", "\u0661-\u0661", "1-2\n", " 1-2",
                "1-", "-1", "1", "1-2-3", "", "1" * 21 + "-0", 5, None, ["1-2"]):
        with pytest.raises(BadStreamId):
            StreamId.from_text(bad)
        invalid_code(lambda bad=bad: stream_ids.parse(bad))
    with pytest.raises(BadStreamId):
        StreamId(-1, 0)
    with pytest.raises(AttributeError):
        StreamId(1, 2).ms = 5  # type: ignore[misc]


def test_exclusive_bounds_at_the_ends_of_the_id_space() -> None:
    assert stream_ids.after_bound("5-1") == "5-2"
    assert stream_ids.after_bound(f"5-{SEQ_MAX}") == "6-0"
    assert stream_ids.after_bound(MAX_ID) is None            # nothing can follow
    assert stream_ids.after_bound("0-0") == "0-1"
    assert stream_ids.before_bound("5-1") == "5-0"
    assert stream_ids.before_bound("5-0") == f"4-{SEQ_MAX}"
    assert stream_ids.before_bound("0-0") is None            # nothing precedes
    assert stream_ids.before_bound(MAX_ID) == f"{SEQ_MAX}-{SEQ_MAX - 1}"
    assert stream_ids.before("0-0") == "0-0"


def depth_of(raw: bytes) -> int:
    """The reference: how deep decoded JSON nests (0 for a scalar)."""
    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        return 0
    return depth(json.loads(raw))


def test_json_nesting_pre_scan() -> None:
    assert not json_too_deep(b"")
    assert not json_too_deep(b'{"username": "a", "password": "b"}')
    assert not json_too_deep(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    assert json_too_deep(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert json_too_deep(b"[" * 30_000)                       # the probe's, unclosed
    assert json_too_deep(b"[[]" * 40)                         # unclosed, never a long run
    assert not json_too_deep(b"[" * MAX_DEPTH + b"1")         # unclosed but shallow
    assert json_too_deep(b'{"a":' * 10_000 + b"1" + b"}" * 10_000)
    # brackets inside strings are text, escaped quotes included
    text = json.dumps({"bio": "[" * 500 + '\\"[[' + "{" * 500}).encode()
    assert not json_too_deep(text)
    # many siblings are not depth
    assert not json_too_deep(json.dumps([[[1]]] * 5_000).encode())
    # malformed but shallow: left to the decoder, which refuses it
    assert not json_too_deep(b"]]]][[[[" * 20)


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet='[]{}"a', max_size=3), inner, max_size=3),
    max_leaves=60)


@given(json_values, st.integers(min_value=0, max_value=6))
def test_json_nesting_pre_scan_matches_the_decoded_depth(value: Any, limit: int) -> None:
    raw = json.dumps(value).encode()
    assert json_too_deep(raw, limit) == (depth_of(raw) > limit)


def test_query_integers_are_length_bounded_before_int() -> None:
    assert parse_int(None, "limit", default=20, low=1, high=50) == 20
    assert parse_int("50", "limit", default=20, low=1, high=50) == 50
    assert parse_int("007", "limit", default=20, low=1, high=50) == 7
    started = time.perf_counter()
    for bad in ("9" * 5_000, "0", "51", "-1", "+5", " 5", "5 ", "", "x", "1.5", "\u00b2",
                "\u0663", "1" * 19):
        error = invalid_code(lambda bad=bad: parse_int(bad, "limit", default=20, low=1,
                                                        high=50))
        assert error.message == "limit must be a whole number from 1 to 50"
        assert error.details["field"] == "limit"
    assert time.perf_counter() - started < 1.0  # no quadratic int() of 5,000 digits


def test_query_stream_ids() -> None:
    assert parse_stream_id(None, "before") is None
    assert parse_stream_id("", "before") is None
    assert parse_stream_id("0-0", "before") == StreamId(0, 0)
    for bad in ("0-0-0", f"{SEQ_MAX + 1}-0", "9" * 5_000, "\u0661-0", "abc"):
        error = invalid_code(lambda bad=bad: parse_stream_id(bad, "before"))
        assert error.message.endswith("- at `before`") and error.details["field"] == "before"


def payload_types() -> list[type[schemas.Payload]]:
    return [v for v in vars(schemas).values()
            if isinstance(v, type) and issubclass(v, schemas.Payload) and v is not schemas.Payload]


def float_fields(kind: Any, path: str) -> list[tuple[str, Any]]:
    """Every float type reachable from a msgspec type, with where it is."""
    info = msgspec.inspect
    if isinstance(kind, info.FloatType):
        return [(path, kind)]
    if isinstance(kind, info.UnionType):
        return [f for t in kind.types for f in float_fields(t, path)]
    if isinstance(kind, info.StructType):
        return [f for fld in kind.fields for f in float_fields(fld.type, f"{path}.{fld.name}")]
    if isinstance(kind, info.ListType | info.SetType | info.FrozenSetType | info.VarTupleType):
        return float_fields(kind.item_type, f"{path}[]")
    if isinstance(kind, info.DictType):
        return float_fields(kind.value_type, f"{path}{{}}")
    return []


def test_every_float_field_of_every_schema_is_finite_and_bounded() -> None:
    found = [f for schema in payload_types()
             for f in float_fields(msgspec.inspect.type_info(schema), schema.__name__)]
    assert found, "no float field: this test would prove nothing"
    for path, kind in found:
        low = kind.ge if kind.ge is not None else kind.gt
        high = kind.le if kind.le is not None else kind.lt
        assert low is not None and high is not None, f"{path} takes NaN/Infinity"
        assert math.isfinite(low) and math.isfinite(high), path
    for value in (math.inf, -math.inf, math.nan, 1e300, -1.0):
        error = invalid_code(lambda value=value: schemas.convert(schemas.DmList,
                                                                 {"before": value}))
        assert error.message.endswith("at `$.before`"), error.message
    assert schemas.convert(schemas.DmList, {"before": 1_700_000_000.5}).before == 1_700_000_000.5


def test_schemas_type_message_ids_and_take_exactly_one_object() -> None:
    page = schemas.convert(schemas.DmHistory, {"conversation_id": "a" * 32, "before": "007-0"})
    assert page.before == StreamId(7, 0) and page.after is None
    error = invalid_code(lambda: schemas.convert(
        schemas.DmHistory, {"conversation_id": "a" * 32, "after": f"{SEQ_MAX + 1}-0"}))
    assert error.message.endswith("at `$.after`")
    error = invalid_code(lambda: schemas.convert(schemas.ChatHistory,
                                                 {"live_id": "a" * 16, "after": 12}))
    assert error.message == "Expected `str`, got `int` - at `$.after`"
    for nothing in (None, [], "live:end"):
        error = invalid_code(lambda nothing=nothing: schemas.convert(schemas.Empty, nothing))
        assert "must be an object" in error.message


def test_the_webhook_parser_refuses_deep_nesting() -> None:
    for raw in (b"[" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        error = invalid_code(lambda raw=raw: parse_event(raw))
        assert "nests deeper than 32" in error.message


@pytest.mark.parametrize(("schema", "field", "good"), [
    (schemas.UserTarget, "user_id", "0123456789abcdef"),
    (schemas.RoomLeave, "live_id", "0123456789abcdef"),
    (schemas.DmConversation, "conversation_id", "0" * 32),
    (schemas.NotifyRead, "id", "n1"),
    (schemas.NotifyList, "before", "12:n1"),
    (schemas.CashoutRequest, "request_id", "abcdefgh"),
])
def test_id_patterns_match_the_whole_text(schema: Any, field: str, good: str) -> None:
    """msgspec searches its patterns and `$` matches before a final newline: an id with a
    trailing "\\n" passed (found by bench/fuzz.py); now refused, the id itself accepted."""
    extra = {"diamonds": 1} if schema is schemas.CashoutRequest else {}
    assert getattr(schemas.convert(schema, {field: good, **extra}), field) == good
    for bad in (good + "\n", "\n" + good, good + "\n\n", good + " "):
        error = invalid_code(lambda bad=bad: schemas.convert(schema, {field: bad, **extra}))
        assert error.details["field"] == field, bad


def test_gift_send_ids_match_the_whole_text() -> None:
    base = {"transfer_id": "abcdefgh", "creator": "ann", "gift_id": "rose"}
    assert schemas.convert(schemas.GiftSend, base).gift_id == "rose"
    for field in ("transfer_id", "gift_id"):
        bad = {**base, field: base[field] + "\n"}
        assert invalid_code(lambda bad=bad: schemas.convert(schemas.GiftSend, bad))
