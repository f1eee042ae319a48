"""Protocol errors; every one means "close this connection", never "crash the process".

ProtocolError                 the peer broke the protocol
├── FrameError                the byte stream is not `$<len>\\r\\n<payload>\\r\\n`
│   └── FrameTooLarge         a declared length is above the receiver's limit
├── PayloadError              a payload is not a msgpack map {"call": str, "params": map}
├── UnknownCall               the call name is not one this side knows
├── BadParams                 a field of params is missing, of the wrong type or out of range
├── AuthError                 the handshake failed (wrong secret, wrong order, timeout, hang-up)
└── TlsRefused                the peer's certificate may not act as it claims (role, name, revoked)
ConnectionClosed              the peer closed the connection (not an error of the protocol)
TlsNotReady                   the built-in PKI has given this process no certificate yet
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the protocol; `code` goes into the `error` frame sent back."""

    code = "protocol"


class FrameError(ProtocolError):
    code = "frame"


class FrameTooLarge(FrameError):
    code = "frame_too_large"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes is above the limit of {limit} bytes")
        self.length = length
        self.limit = limit


class PayloadError(ProtocolError):
    code = "payload"


class UnknownCall(ProtocolError):
    code = "unknown_call"

    def __init__(self, call: str) -> None:
        super().__init__(f"unknown call {call!r}")
        self.call = call


class BadParams(ProtocolError):
    code = "bad_params"

    def __init__(self, call: str, field: str, reason: str) -> None:
        super().__init__(f"{call}: field {field!r} {reason}")
        self.call = call
        self.field = field
        self.reason = reason


class AuthError(ProtocolError):
    code = "auth"


class ConnectionClosed(Exception):
    """The peer closed the connection, cleanly or not."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"connection to {peer} closed")
        self.peer = peer


class TlsRefused(ProtocolError):
    code = "tls"


class TlsNotReady(Exception):
    """The built-in PKI has not given this process a certificate yet."""
