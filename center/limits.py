"""Pure rate limits for the registration port: a token bucket per client address."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Buckets:
    """`per_minute` attempts per key, refilled continuously; at most `max_keys` remembered."""

    per_minute: float
    max_keys: int = 10_000
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, t)

    def allow(self, key: str, now_s: float) -> bool:
        """Take one token for `key` at `now_s` (a monotonic clock); False when none is left."""
        if self.per_minute <= 0:
            return True
        tokens, last = self._tokens.get(key, (self.per_minute, now_s))
        tokens = min(self.per_minute, tokens + (now_s - last) * self.per_minute / 60.0)
        if len(self._tokens) >= self.max_keys and key not in self._tokens:
            self._forget_full(now_s)
        if tokens < 1.0:
            self._tokens[key] = (tokens, now_s)
            return False
        self._tokens[key] = (tokens - 1.0, now_s)
        return True

    def _forget_full(self, now_s: float) -> None:
        """Drop keys whose bucket has refilled: they carry no information any more."""
        full_after_s = 60.0
        self._tokens = {k: v for k, v in self._tokens.items() if now_s - v[1] < full_after_s}
