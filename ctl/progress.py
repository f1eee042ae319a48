"""A one-line progress note on stderr during long waits, only when stderr is a terminal."""

from __future__ import annotations

from typing import TextIO

_CLEAR = "\r\x1b[K"


class Progress:
    """`show()` rewrites the line in place; `clear()` before printing anything else."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.enabled = stream.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            self._stream.write(f"{_CLEAR}{text}")
            self._stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._stream.write(_CLEAR)
            self._stream.flush()
            self._shown = False
