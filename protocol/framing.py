"""Sans-IO frames: `$<length>\r\n<payload>\r\n`, binary-safe, with a size limit."""

from __future__ import annotations

from protocol.errors import FrameError, FrameTooLarge

MAX_FRAME_BYTES = 1 << 20
# "$" + up to 19 digits + "\r\n": anything longer without a CRLF is not a header.
_MAX_HEADER_BYTES = 22
_CRLF = b"\r\n"


def encode_frame(payload: bytes) -> bytes:
    """Wrap one payload in a frame."""
    return b"$%d\r\n%b\r\n" % (len(payload), payload)


class FrameDecoder:
    """Turns a byte stream, cut anywhere, into payloads; poisoned after the first error."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()
        self._need: int | None = None
        self._error: FrameError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    @property
    def max_frame_bytes(self) -> int:
        return self._max

    @max_frame_bytes.setter
    def max_frame_bytes(self, limit: int) -> None:
        """Change the limit for frames whose header has not been read yet (pre-auth budget)."""
        self._max = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every payload completed by them, in order."""
        if self._error is not None:
            raise self._error
        self._buf += data
        try:
            return self._drain()
        except FrameError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _drain(self) -> list[bytes]:
        buf, pos, payloads = self._buf, 0, []
        while True:
            if self._need is None:
                header_end = self._header_end(pos)
                if header_end < 0:
                    break
                self._need = self._parse_length(bytes(buf[pos + 1 : header_end]))
                pos = header_end + 2
            end = pos + self._need
            if len(buf) < end + 2:
                break
            if buf[end : end + 2] != _CRLF:
                raise FrameError("frame payload is not followed by CRLF")
            payloads.append(bytes(buf[pos:end]))
            pos, self._need = end + 2, None
        # One compaction per feed keeps many small frames in one read linear, not quadratic.
        del buf[:pos]
        return payloads

    def _header_end(self, pos: int) -> int:
        buf = self._buf
        if len(buf) > pos and buf[pos] != 0x24:  # "$"
            raise FrameError(f"frame must start with '$', got byte 0x{buf[pos]:02x}")
        end = buf.find(_CRLF, pos, pos + _MAX_HEADER_BYTES)
        if end < 0 and len(buf) - pos >= _MAX_HEADER_BYTES:
            raise FrameError("frame header has no CRLF within 22 bytes")
        return end

    def _parse_length(self, digits: bytes) -> int:
        if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
            raise FrameError(f"frame length {digits[:20]!r} is not a decimal number")
        length = int(digits)
        if length > self._max:
            raise FrameTooLarge(length, self._max)
        return length
