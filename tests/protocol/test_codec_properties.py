"""Property tests of the codec: round trips, any chunking, and nothing but ProtocolError on junk."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.codec import (
    MessageDecoder,
    decode_payload,
    encode,
    encode_exec,
    encode_many,
    pack_spec,
)
from protocol.errors import BadParams, ProtocolError
from protocol.framing import FrameDecoder, encode_frame
from protocol.messages import MESSAGES, Exec, Message
from tests.protocol import strategies as sts

CLASSES = list(MESSAGES.values())
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _payload(frame: bytes) -> bytes:
    (payload,) = FrameDecoder().feed(frame)
    return payload


def _frame_of(value: Any) -> bytes:
    return encode_frame(msgpack.packb(value, use_bin_type=True))


def test_every_message_class_has_a_unique_call_and_strategy() -> None:
    """MESSAGES maps each call to its class, and every field type has a strategy."""
    for call, cls in MESSAGES.items():
        assert call == cls.CALL
        sts.messages_of(cls)  # raises TypeError for a field type it cannot build
        assert decode_payload(_payload(encode(sts.sample_message(cls)))) == sts.sample_message(cls)


@pytest.mark.parametrize("cls", CLASSES, ids=[c.CALL for c in CLASSES])
@FAST
@given(data=st.data())
def test_round_trip_of_each_message_class(cls: type[Message], data: st.DataObject) -> None:
    """decode_payload of an encoded message's payload gives back an equal message of that class."""
    message = data.draw(sts.messages_of(cls))
    decoded = decode_payload(_payload(encode(message)))
    assert type(decoded) is cls
    assert decoded == message


@FAST
@given(message=sts.messages_of(Exec))
def test_an_exec_with_its_spec_packed_ahead_encodes_byte_for_byte_as_encode(
    message: Exec,
) -> None:
    """encode_exec (the leader's path: a rule's spec packed once) gives encode's very bytes."""
    frame = encode_exec(
        message.epoch,
        message.ref,
        pack_spec(message.spec),
        shard_index=message.shard_index,
        shard_total=message.shard_total,
        params=message.params,
        env_override=message.env_override,
    )
    assert frame == encode(message)


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(sts.any_message, max_size=6))
def test_round_trip_of_a_stream(messages: list[Message]) -> None:
    """A MessageDecoder fed the frames of several messages returns them all, in order."""
    assert MessageDecoder().feed(encode_many(messages)) == messages


@settings(max_examples=25, deadline=None)
@given(messages=st.lists(sts.any_message, min_size=1, max_size=3))
def test_stream_cut_at_every_byte_boundary(messages: list[Message]) -> None:
    """A stream cut in two at any byte, or fed byte by byte, decodes to the same messages."""
    stream = encode_many(messages)
    for cut in range(len(stream) + 1):
        decoder = MessageDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == messages
    decoder = MessageDecoder()
    assert [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])] == messages


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(sts.any_message, min_size=1, max_size=6), data=st.data())
def test_stream_in_random_chunks(messages: list[Message], data: st.DataObject) -> None:
    """A stream cut into random chunks decodes to the same messages."""
    stream = encode_many(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    decoder = MessageDecoder()
    out = [m for a, b in itertools.pairwise(bounds) for m in decoder.feed(stream[a:b])]
    assert out == messages


def _only_protocol_errors(stream: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        MessageDecoder().feed(stream)


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=64))
def test_random_bytes_raise_only_protocol_errors(junk: bytes) -> None:
    """Arbitrary bytes, raw or wrapped in a valid frame, raise nothing but ProtocolError."""
    _only_protocol_errors(junk)
    _only_protocol_errors(b"$" + junk)
    _only_protocol_errors(encode_frame(junk))


@settings(max_examples=300, deadline=None)
@given(value=sts.msgpack_values)
def test_random_msgpack_values_raise_only_protocol_errors(value: Any) -> None:
    """Any msgpack value as a payload, or as the params of a known call, is a ProtocolError."""
    _only_protocol_errors(_frame_of(value))
    for call in (value, "exec", "run_finished"):
        _only_protocol_errors(_frame_of({"call": call, "params": value}))


@settings(max_examples=200, deadline=None)
@given(envelope=sts.envelopes())
def test_mangled_params_decode_or_raise_only_protocol_errors(envelope: dict[str, Any]) -> None:
    """Params mixing real field names with random values either decode or raise ProtocolError."""
    _only_protocol_errors(_frame_of(envelope))


PATHS = [(cls, path, tp) for cls in CLASSES for path, tp in sts.field_paths(cls)]


def _replace(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    new = dict(params)
    new[head] = _replace(params[head], rest, value) if rest else value
    return new


def _remove(params: dict[str, Any], path: str) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    new = dict(params)
    if rest:
        new[head] = _remove(params[head], rest)
    else:
        del new[head]
    return new


@pytest.mark.parametrize(("cls", "path", "tp"), PATHS, ids=[f"{c.CALL}.{p}" for c, p, _ in PATHS])
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_wrong_type_names_the_field(
    cls: type[Message], path: str, tp: Any, data: st.DataObject
) -> None:
    """A value of the wrong type in any field, nested or not, is a BadParams naming that field."""
    params = _replace(data.draw(sts.messages_of(cls)).to_params(), path, sts.wrong_value(tp))
    with pytest.raises(BadParams) as info:
        decode_payload(msgpack.packb({"call": cls.CALL, "params": params}, use_bin_type=True))
    assert (info.value.call, info.value.field) == (cls.CALL, path)


def _is_required(cls: type, path: str) -> bool:
    head, _, rest = path.partition(".")
    field = {f.name: f for f in dataclasses.fields(cls)}[head]  # type: ignore[arg-type]
    if rest:
        return _is_required(typing.get_type_hints(cls)[head], rest)
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


REQUIRED = [(c, p) for c in CLASSES for p, _ in sts.field_paths(c) if _is_required(c, p)]


@pytest.mark.parametrize(("cls", "path"), REQUIRED, ids=[f"{c.CALL}.{p}" for c, p in REQUIRED])
def test_missing_required_field_names_the_field(cls: type[Message], path: str) -> None:
    """A required field left out, nested or not, is a BadParams naming that field."""
    params = _remove(sts.sample_message(cls).to_params(), path)
    with pytest.raises(BadParams, match="is missing") as info:
        cls.from_params(params)
    assert info.value.field == path


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"seqs": [1, True]}, "seqs[1]", "must be int, got bool"),
        ({"seqs": [1 << 63]}, "seqs[0]", "is out of the signed 64-bit range"),
        ({"seqs": [-(1 << 63) - 1]}, "seqs[0]", "is out of the signed 64-bit range"),
        ({"seqs": "1,2"}, "seqs", "must be a list, got str"),
    ],
)
def test_ack_bad_params_table(params: dict[str, Any], field: str, reason: str) -> None:
    """Bad integers in a list are refused with the index of the item and the reason."""
    with pytest.raises(BadParams) as info:
        MESSAGES["ack"].from_params(params)
    assert (info.value.field, info.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "must be a finite number"),
        (float("inf"), "must be a finite number"),
        (float("-inf"), "must be a finite number"),
        (10**400, "must be a finite number"),
        (True, "must be float, got bool"),
        ("1", "must be float, got str"),
    ],
)
def test_non_finite_floats_are_refused(value: Any, reason: str) -> None:
    """A float field refuses NaN, infinities, bools and strings, naming the nested field."""
    params = {"sent_ms": 1, "resources": {"cpu_pct": value}}
    with pytest.raises(BadParams) as info:
        MESSAGES["pong"].from_params(params)
    assert (info.value.field, info.value.reason) == ("resources.cpu_pct", reason)


def test_int_is_accepted_for_a_float_field() -> None:
    """An integer sent for a float field is taken as that float."""
    pong = MESSAGES["pong"].from_params({"sent_ms": 1, "resources": {"load1": 2}})
    assert pong.resources.load1 == 2.0  # type: ignore[attr-defined]
    assert type(pong.resources.load1) is float  # type: ignore[attr-defined]


def test_message_decoder_is_poisoned_by_a_bad_payload() -> None:
    """After a payload error the decoder refuses everything, even well-formed frames."""
    decoder = MessageDecoder()
    good = encode(MESSAGES["ack"](seqs=[1]))  # type: ignore[call-arg]
    with pytest.raises(ProtocolError) as first:
        decoder.feed(encode_frame(b"\xc1"))
    with pytest.raises(ProtocolError) as again:
        decoder.feed(good)
    assert again.value is first.value


@FAST
@given(message=sts.messages_of(Exec))
def test_a_plain_exec_with_its_tail_packed_once_encodes_as_encode(message: Exec) -> None:
    """An exec with no shard, params or env override (its tail packed once) gives encode's
    very bytes."""
    plain = dataclasses.replace(message, shard_index=0, shard_total=0, params="", env_override={})
    frame = encode_exec(plain.epoch, plain.ref, pack_spec(plain.spec))
    assert frame == encode(plain)
