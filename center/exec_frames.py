"""Exec frames encoded ahead of their fire, and run specs cached per rule version."""

from __future__ import annotations

import asyncio

from center.dispatcher import exec_for
from center.planner import Fire
from center.rules import Rule, run_spec
from center.runs import PlannedRun
from protocol.codec import encode_exec, pack_spec
from protocol.messages import Exec
from protocol.vocabulary import Trigger

ENCODE_SLICE = 2_000  # frames encoded between two yields to the event loop
# Packed specs kept at most (some 300 bytes each): a 100k rule book's stay cached; a million
# hourly rules do not each keep one all day (a spec is cheap to make again).
MAX_SPECS = 120_000
# A spec is kept only for a rule that fires again this soon: a cache of rules taken in turn
# (a million rules every 15 minutes or hourly) that cannot hold them all would be cleared
# before any came round again, so it keeps the ones that come round most.
KEEP_SPEC_US = 5 * 60 * 1_000_000


class ExecFrames:
    """What the leader sends for a run: encoded while there is time, so that at the fire only
    a write is left; a rule edited since falls back to encoding at the fire."""

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch
        self._frames: dict[str, tuple[bytes, int]] = {}  # runid -> (frame, rule version)
        # task_id -> (rule version, its spec packed: the bulk of every exec's encoding)
        self._specs: dict[int, tuple[int, bytes]] = {}

    def exec_msg(self, run: PlannedRun, rule: Rule) -> Exec:
        return exec_for(run, run_spec(rule), self._epoch)

    def _packed_spec(self, rule: Rule, keep: bool) -> bytes:
        cached = self._specs.get(rule.id)
        if cached is not None and cached[0] == rule.update_time:
            return cached[1]
        packed = pack_spec(run_spec(rule))
        if keep:
            if len(self._specs) >= MAX_SPECS:
                self._specs.clear()
            self._specs[rule.id] = (rule.update_time, packed)
        return packed

    def _encode(self, run: PlannedRun, rule: Rule, keep: bool = False) -> bytes:
        return encode_exec(
            self._epoch,
            run.ref_params(),
            self._packed_spec(rule, keep),
            shard_index=run.instance if run.shard_total else 0,
            shard_total=run.shard_total,
            params=run.params,
            env_override=run.env_override,
        )

    async def encode_ahead(
        self, runs: list[PlannedRun], rules: dict[int, Rule], soon_again: set[int]
    ) -> None:
        """Encode the scheduled runs' frames in slices, yielding between them, so that a
        burst never stalls the dispatch loop. The specs of rules in `soon_again` (firing
        again within KEEP_SPEC_US) are kept for their next fire."""
        for i, run in enumerate(runs):
            rule = rules.get(run.task_id)
            if rule is not None and run.trigger == Trigger.SCHEDULE:
                frame = self._encode(run, rule, run.task_id in soon_again)
                self._frames[run.runid] = (frame, rule.update_time)
            if i % ENCODE_SLICE == ENCODE_SLICE - 1:
                await asyncio.sleep(0)

    def frame_of(self, run: PlannedRun, rule: Rule) -> bytes:
        """The frame encoded ahead if its rule has not changed since; else encoded now."""
        ahead = self._frames.pop(run.runid, None)
        if ahead is not None and ahead[1] == rule.update_time:
            return ahead[0]
        return self._encode(run, rule)

    def forget(self, runid: str) -> None:
        self._frames.pop(runid, None)


def soon_again(fires: list[Fire]) -> set[int]:
    """The rules among `fires` that fire again within KEEP_SPEC_US: their specs are kept."""
    return {
        f.task_id for f in fires if f.next_us is not None and f.next_us - f.sched_us <= KEEP_SPEC_US
    }
