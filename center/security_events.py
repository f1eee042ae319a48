"""Security events for the audit log (refused handshakes, forged epochs), throttled, batched."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.metrics import CenterMetrics
from protocol.clock import now_us

EVENT_EVERY_S = 60.0  # at most one refused handshake per address per minute: no audit flood
MAX_ADDRESSES = 10_000


class SecurityEvents:
    """Audit rows waiting for the next flush; every center keeps one, leader or not."""

    def __init__(self, metrics: CenterMetrics, center_name: str) -> None:
        self._metrics = metrics
        self._center_name = center_name
        self._events: list[dict[str, Any]] = []
        self._refused_at: dict[str, float] = {}

    def handshake_refused(self, peer_ip: str, reason: str) -> None:
        self._metrics.handshakes_refused.inc()
        if self._first_in_a_while(peer_ip):
            self.record("handshake.refused", peer_ip, reason)

    def tls_refused(self, peer_ip: str, kind: str, reason: str) -> None:
        """A peer refused for its TLS or certificate (kind: handshake, certificate, csr)."""
        self._metrics.tls_refused.labels(kind=kind).inc()
        if self._first_in_a_while(f"tls {peer_ip}"):
            self.record(f"tls.{kind}_refused", peer_ip, reason)

    def _first_in_a_while(self, key: str) -> bool:
        mono = time.monotonic()
        if mono - self._refused_at.get(key, -EVENT_EVERY_S) < EVENT_EVERY_S:
            return False
        if len(self._refused_at) > MAX_ADDRESSES:
            self._refused_at.clear()
        self._refused_at[key] = mono
        return True

    def record(self, action: str, client: str, reason: str) -> None:
        """An audit_log row, written with the next flush (callers throttle)."""
        self._events.append(
            store.security_event(action, client, reason, center=self._center_name, at_us=now_us())
        )

    async def flush(self, engine: AsyncEngine) -> None:
        events, self._events = self._events, []
        try:
            await store.record_security_events(engine, events)
        except BaseException:
            self._events[:0] = events
            raise
