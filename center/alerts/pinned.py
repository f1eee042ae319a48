"""HTTP(S) POSTs to addresses checked beforehand, under the URL's own host name (Host, SNI).

The name is resolved once, the addresses are checked, and the connection goes to one of those
very addresses: a name that resolves to a public address for the check and to a private one
for the connection (DNS rebinding) cannot move the request. Redirects are not followed (a
redirect to an internal address would be the same hole), nor proxies from the environment.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ANSWER_BYTES = 65536


class PostFailed(Exception):
    """The POST got no answer, or an answer that is no success; the message says which."""


def _connect(ips: Sequence[str], port: int, timeout_s: float) -> socket.socket:
    """A connection to the first of `ips` that answers (each already checked)."""
    last: OSError | None = None
    for ip in ips:
        try:
            return socket.create_connection((ip, port), timeout=timeout_s)
        except OSError as exc:
            last = exc
    raise last or OSError("no address to connect to")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ips: Sequence[str], timeout_s: float) -> None:
        super().__init__(host, port, timeout=timeout_s)
        self._ips, self._timeout_s = tuple(ips), timeout_s

    def connect(self) -> None:
        self.sock = _connect(self._ips, self.port, self._timeout_s)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ips: Sequence[str], timeout_s: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout_s, context=self._tls)
        self._ips, self._timeout_s = tuple(ips), timeout_s

    def connect(self) -> None:
        raw = _connect(self._ips, self.port, self._timeout_s)
        try:  # the certificate is checked against the URL's host name, sent as SNI
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


@dataclass(frozen=True, slots=True)
class Answer:
    """The receiver's answer: status, reason phrase and (the first 64 KiB of) the body."""

    status: int
    reason: str
    body: bytes


def exchange(
    url: str,
    ips: Sequence[str],
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    *,
    label: str | None = None,
) -> Answer:
    """POST `body` to `url`, connecting only to `ips`; whatever the answer, or PostFailed if
    there is none. `label` names the URL in errors where the URL itself holds a secret."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPS if https else _PinnedHTTP
    conn = kind(host, port, ips, timeout_s)
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise PostFailed(f"cannot reach {(label or url)[:100]}: {exc}") from None
    finally:
        conn.close()
    return Answer(answer.status, answer.reason, data)


def post(
    url: str, ips: Sequence[str], body: bytes, headers: dict[str, str], timeout_s: float
) -> int:
    """POST `body` to `url`, connecting only to `ips`; the answer's status, or PostFailed."""
    answer = exchange(url, ips, body, headers, timeout_s)
    if not 200 <= answer.status < 300:
        more = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        raise PostFailed(f"HTTP {answer.status} {answer.reason} from {url[:100]}{more}")
    return answer.status
