"""How much live output the center takes (pure): a run's chunks up to its rule's bound, and each
agent's within a rate, so that no agent can fill the center's memory or the shared database."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_RUNS_TRACKED = 100_000  # runs whose live bytes are counted; the oldest are forgotten
BURST_S = 4.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at_s: float


@dataclass(slots=True)
class OutputBudget:
    """Admits live output chunks: `rate_bytes_s` per agent, in bursts of `BURST_S` seconds'
    worth."""

    rate_bytes_s: float
    _runs: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _agents: dict[int, _Bucket] = field(default_factory=dict)

    def admit(self, aid: int, runid: str, size: int, run_limit: int, now_s: float) -> bool:
        """Whether to store a chunk of `size` bytes of `runid` from agent `aid`: within the
        run's bound (the rule's output_max_bytes) and the agent's rate."""
        used = self._runs.get(runid, 0)
        if used + size > run_limit or not self._take(aid, size, now_s):
            return False
        self._runs[runid] = used + size
        self._runs.move_to_end(runid)
        if len(self._runs) > MAX_RUNS_TRACKED:
            self._runs.popitem(last=False)
        return True

    @property
    def burst_bytes(self) -> float:
        return BURST_S * self.rate_bytes_s

    def finished(self, runid: str) -> None:
        """The run ended: its count is no longer needed."""
        self._runs.pop(runid, None)

    def _take(self, aid: int, size: int, now_s: float) -> bool:
        bucket = self._agents.get(aid)
        if bucket is None:
            bucket = self._agents[aid] = _Bucket(self.burst_bytes, now_s)
        refill = (now_s - bucket.at_s) * self.rate_bytes_s
        bucket.tokens, bucket.at_s = min(self.burst_bytes, bucket.tokens + refill), now_s
        if bucket.tokens < size:
            return False
        bucket.tokens -= size
        return True
