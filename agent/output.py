"""Pure bounded output buffers: head + tail of a run's output, and the coalesced live tail."""

from __future__ import annotations

from dataclasses import dataclass

LIVE_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CapturedOutput:
    """What a finished run reports: kept bytes (with a skip marker), true size, truncated."""

    data: bytes
    total_bytes: int
    truncated: bool


class OutputBuffer:
    """Keeps the first and last `max_bytes // 2` bytes and counts everything fed."""

    def __init__(self, max_bytes: int) -> None:
        self._half = max(0, max_bytes) // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total_bytes = 0

    def feed(self, data: bytes) -> None:
        """Add one chunk; memory never exceeds `max_bytes` whatever is fed."""
        self.total_bytes += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data or not self._half:
            return
        if len(data) >= self._half:
            self._tail[:] = data[-self._half :]
            return
        self._tail += data
        excess = len(self._tail) - self._half
        if excess > 0:
            del self._tail[:excess]

    @property
    def skipped_bytes(self) -> int:
        """Bytes counted but not kept."""
        return self.total_bytes - len(self._head) - len(self._tail)

    def result(self) -> CapturedOutput:
        """Head, a marker line naming how much was skipped (if any), then tail."""
        skipped = self.skipped_bytes
        if skipped <= 0:
            return CapturedOutput(bytes(self._head + self._tail), self.total_bytes, False)
        marker = b"\n[... %d bytes skipped ...]\n" % skipped
        data = bytes(self._head) + marker + bytes(self._tail)
        return CapturedOutput(data, self.total_bytes, True)


class LiveTail:
    """Coalesces output for the live view: one pending chunk of at most `limit` bytes;
    what arrives while it is full is skipped (the final result still has head and tail)."""

    def __init__(self, limit: int = LIVE_CHUNK_BYTES) -> None:
        self._limit = limit
        self._pending = bytearray()
        self._start = 0
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Add one chunk: into the pending chunk if it fits, else skipped."""
        if not self._pending:
            self._start = self._pos
        room = self._limit - len(self._pending)
        # Once the chunk is full, later bytes are skipped: a chunk must be contiguous.
        if room > 0 and self._start + len(self._pending) == self._pos:
            self._pending += data[:room]
        self._pos += len(data)

    def take(self) -> tuple[int, bytes] | None:
        """The pending chunk as (offset in the whole output, bytes), or None."""
        if not self._pending:
            return None
        chunk = (self._start, bytes(self._pending))
        self._pending.clear()
        return chunk
