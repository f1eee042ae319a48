"""Sans-IO message codec: Message <-> framed msgpack envelope {"call", "params"}."""

from __future__ import annotations

import dataclasses
from typing import Any

# msgpack ships no type hints; `unused-ignore` keeps this quiet once pyproject gains an override.
import msgpack  # type: ignore[import-untyped, unused-ignore]

from protocol.errors import PayloadError, ProtocolError
from protocol.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame
from protocol.messages import Exec, Message, RunRef, RunSpec, message_from_envelope, params_of


def encode(message: Message) -> bytes:
    """One message as one frame."""
    envelope = {"call": message.CALL, "params": message.to_params()}
    return encode_frame(msgpack.packb(envelope, use_bin_type=True))


# An exec's envelope around its params, whose fields are packed in this order (as `encode`
# packs them: the dataclass's field order); the spec, the bulk of a frame, arrives packed.
_EXEC_FIELDS = ("epoch", "ref", "spec", "shard_index", "shard_total", "params", "env_override")
if tuple(f.name for f in dataclasses.fields(Exec)) != _EXEC_FIELDS:
    raise RuntimeError("protocol.messages.Exec's fields changed: update codec.encode_exec")
_EXEC_HEAD = (
    b"\x82"  # a map of two: call, params
    + msgpack.packb("call")
    + msgpack.packb(Exec.CALL)
    + msgpack.packb("params")
    + bytes([0x80 | len(_EXEC_FIELDS)])
)
_SPEC_KEY = msgpack.packb("spec")
# The tail of almost every exec (no shard, params or env override), packed once.
_PLAIN_TAIL = msgpack.packb(
    {"shard_index": 0, "shard_total": 0, "params": "", "env_override": {}}, use_bin_type=True
)[1:]


def pack_spec(spec: RunSpec) -> bytes:
    """A run spec packed once, for `encode_exec` (a rule's spec is the same in every exec)."""
    return msgpack.packb(params_of(spec), use_bin_type=True)  # type: ignore[no-any-return]


def encode_exec(
    epoch: int,
    ref: RunRef | dict[str, Any],
    packed_spec: bytes,
    *,
    shard_index: int = 0,
    shard_total: int = 0,
    params: str = "",
    env_override: dict[str, str] | None = None,
) -> bytes:
    """`encode` of the Exec of these fields, byte for byte, its spec given packed
    (`pack_spec`): most of an exec's encoding is its spec's twenty fields, the same for every
    fire of a rule. `ref` may be given as its params map (`params_of(ref)`'s very keys and
    values, in order): the leader makes that map without a RunRef for every fire."""
    ref_params = ref if isinstance(ref, dict) else params_of(ref)
    # Fixed maps of 2 and 4 entries: each packs as a one-byte header and then its pairs.
    head = msgpack.packb({"epoch": epoch, "ref": ref_params}, use_bin_type=True)
    payload = b"".join(
        (
            _EXEC_HEAD,
            head[1:],
            _SPEC_KEY,
            packed_spec,
            _tail(shard_index, shard_total, params, env_override),
        )
    )
    return encode_frame(payload)


def _tail(
    shard_index: int, shard_total: int, params: str, env_override: dict[str, str] | None
) -> bytes:
    """The exec's last four fields packed, without their map's one-byte header."""
    if not (shard_index or shard_total or params or env_override):
        return _PLAIN_TAIL  # type: ignore[no-any-return]
    tail = msgpack.packb(
        {
            "shard_index": shard_index,
            "shard_total": shard_total,
            "params": params,
            "env_override": env_override or {},
        },
        use_bin_type=True,
    )
    return tail[1:]  # type: ignore[no-any-return]


def encode_many(messages: list[Message]) -> bytes:
    """Several frames joined, for one write per connection per tick."""
    return b"".join(encode(m) for m in messages)


def decode_payload(payload: bytes) -> Message:
    """Parse and validate one frame's payload; raise only ProtocolError subclasses."""
    try:
        envelope: Any = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many unrelated types for bad input
        raise PayloadError(f"payload is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(envelope, dict) or set(envelope) != {"call", "params"}:
        raise PayloadError('payload must be a map with exactly the keys "call" and "params"')
    return message_from_envelope(envelope["call"], envelope["params"])


class MessageDecoder:
    """Bytes in, validated messages out; the first error poisons the stream."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._frames = FrameDecoder(max_frame_bytes)
        self._error: ProtocolError | None = None

    @property
    def max_frame_bytes(self) -> int:
        return self._frames.max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, limit: int) -> None:
        self._frames.max_frame_bytes = limit

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes; return every message they complete, or raise the stream's first error."""
        if self._error is not None:
            raise self._error
        try:
            return [decode_payload(p) for p in self._frames.feed(data)]
        except ProtocolError as exc:
            # The frame decoder only poisons itself on framing errors; a bad payload must stop
            # the stream too, or the frames after it would be read as if nothing had happened.
            self._error = exc
            raise
