"""Framing: `$<length>\\r\\n<payload>\\r\\n`, cut anywhere, size-limited, no second chances."""

from __future__ import annotations

import pytest

from protocol.errors import FrameError, FrameTooLarge
from protocol.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame

LIMIT = 16

GOOD = [
    # (id, stream, payloads decoded from it)
    ("empty stream", b"", []),
    ("zero-length payload", b"$0\r\n\r\n", [b""]),
    ("one frame", b"$3\r\nabc\r\n", [b"abc"]),
    ("two frames", b"$1\r\na\r\n$2\r\nbc\r\n", [b"a", b"bc"]),
    ("payload looks like a frame", b"$6\r\n\r\n$5\r\n\r\n", [b"\r\n$5\r\n"]),
    ("payload of every byte value", encode_frame(bytes(range(16))), [bytes(range(16))]),
    ("payload at the limit", encode_frame(b"x" * LIMIT), [b"x" * LIMIT]),
    ("partial header is kept", b"$3\r", []),
    ("partial payload is kept", b"$3\r\nab", []),
    ("payload without its CRLF yet", b"$3\r\nabc", []),
    ("payload with half its CRLF", b"$3\r\nabc\r", []),
    ("frame then partial frame", b"$1\r\na\r\n$5\r\nab", [b"a"]),
]

BAD = [
    # (id, stream, error class, words the message must contain)
    ("does not start with $", b"*3\r\nabc\r\n", FrameError, "must start with '$'"),
    ("HTTP request", b"GET / HTTP/1.1\r\n\r\n", FrameError, "must start with '$'"),
    ("second frame bad start", b"$1\r\na\r\nx", FrameError, "must start with '$'"),
    ("non-digit length", b"$3a\r\nabc\r\n", FrameError, "not a decimal number"),
    ("empty length", b"$\r\n\r\n", FrameError, "not a decimal number"),
    ("negative length", b"$-1\r\n", FrameError, "not a decimal number"),
    ("plus sign", b"$+1\r\na\r\n", FrameError, "not a decimal number"),
    ("space in length", b"$ 1\r\na\r\n", FrameError, "not a decimal number"),
    ("leading zero", b"$03\r\nabc\r\n", FrameError, "not a decimal number"),
    ("zero with leading zero", b"$00\r\n\r\n", FrameError, "not a decimal number"),
    ("bare CR in header", b"$3\rabc\r\n", FrameError, "not a decimal number"),
    ("payload not followed by CRLF", b"$3\r\nabcXY", FrameError, "not followed by CRLF"),
    ("payload followed by LFCR", b"$3\r\nabc\n\r", FrameError, "not followed by CRLF"),
    ("payload longer than declared", b"$2\r\nabc\r\n", FrameError, "not followed by CRLF"),
    ("no CRLF within 22 bytes", b"$" + b"1" * 21, FrameError, "no CRLF within 22 bytes"),
    ("long garbage header", b"$" + b"x" * 40, FrameError, "no CRLF within 22 bytes"),
    ("length above the limit", b"$17\r\n", FrameTooLarge, "above the limit"),
    ("19-digit length", b"$" + b"9" * 19 + b"\r\n", FrameTooLarge, "above the limit"),
]


def _feed_all(decoder: FrameDecoder, stream: bytes, chunking: str) -> list[bytes]:
    if chunking == "whole":
        return decoder.feed(stream)
    out: list[bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    return out


@pytest.mark.parametrize("chunking", ["whole", "byte by byte"])
@pytest.mark.parametrize(("stream", "payloads"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_good_streams_decode(stream: bytes, payloads: list[bytes], chunking: str) -> None:
    """A well-formed stream yields exactly its payloads, however it is cut."""
    assert _feed_all(FrameDecoder(LIMIT), stream, chunking) == payloads


@pytest.mark.parametrize("chunking", ["whole", "byte by byte"])
@pytest.mark.parametrize(
    ("stream", "error", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_streams_raise(
    stream: bytes, error: type[FrameError], words: str, chunking: str
) -> None:
    """A malformed stream raises the documented FrameError, however it is cut."""
    with pytest.raises(error, match=words.replace("$", r"\$")) as info:
        _feed_all(FrameDecoder(LIMIT), stream, chunking)
    assert type(info.value) is error


@pytest.mark.parametrize(
    ("header", "length"), [(b"$17\r\n", 17), (b"$" + b"9" * 19 + b"\r\n", 10**19 - 1)]
)
def test_frame_too_large_carries_length_and_limit(header: bytes, length: int) -> None:
    """FrameTooLarge names the declared length and the receiver's limit, before any payload."""
    with pytest.raises(FrameTooLarge) as info:
        FrameDecoder(LIMIT).feed(header)
    assert (info.value.length, info.value.limit) == (length, LIMIT)


def test_default_limit_is_one_mebibyte() -> None:
    """The default decoder accepts 1 MiB and refuses one byte more."""
    decoder = FrameDecoder()
    assert decoder.max_frame_bytes == MAX_FRAME_BYTES == 1 << 20
    assert decoder.feed(b"$1048576\r\n") == []
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(b"$1048577\r\n")


def test_decoder_is_poisoned_after_an_error() -> None:
    """After an error every later feed, even of good frames, raises the same error."""
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(FrameError) as first:
        decoder.feed(b"$3\r\nabcXY")
    assert decoder.buffered_bytes == 0
    for _ in range(2):
        with pytest.raises(FrameError) as again:
            decoder.feed(b"$0\r\n\r\n")
        assert again.value is first.value


def test_buffer_is_compacted_after_complete_frames() -> None:
    """Bytes of completed frames are released; only an unfinished frame stays buffered."""
    decoder = FrameDecoder(LIMIT)
    assert decoder.feed(encode_frame(b"abc") * 50) == [b"abc"] * 50
    assert decoder.buffered_bytes == 0
    assert decoder.feed(b"$5\r\nab") == []
    assert decoder.buffered_bytes == 2


def test_lowered_limit_applies_to_the_next_header() -> None:
    """Changing max_frame_bytes affects frames whose header is read afterwards."""
    decoder = FrameDecoder(LIMIT)
    decoder.max_frame_bytes = 2
    assert decoder.feed(b"$2\r\nab\r\n") == [b"ab"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"$3\r\n")
    assert info.value.limit == 2


@pytest.mark.parametrize(
    ("payload", "frame"),
    [(b"", b"$0\r\n\r\n"), (b"abc", b"$3\r\nabc\r\n"), (b"\r\n", b"$2\r\n\r\n\r\n")],
)
def test_encode_frame(payload: bytes, frame: bytes) -> None:
    """encode_frame writes `$<decimal length>\\r\\n<payload>\\r\\n` with no leading zeros."""
    assert encode_frame(payload) == frame
