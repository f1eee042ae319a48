"""Exec frames encoded ahead of their fire, and run specs cached per rule version."""

from __future__ import annotations

import asyncio

from center.dispatcher import exec_for
from center.rules import Rule, run_spec
from center.runs import PlannedRun
from protocol.codec import encode_exec, pack_spec
from protocol.messages import Exec, RunSpec
from protocol.vocabulary import Trigger

ENCODE_SLICE = 2_000  # frames encoded between two yields to the event loop
# Specs kept at most: the busy rules stay cached; a million hourly rules do not each keep a
# spec all day (a spec is cheap to make again, about half a KB to hold).
MAX_SPECS = 50_000


class ExecFrames:
    """What the leader sends for a run: encoded while there is time, so that at the fire only
    a write is left; a rule edited since falls back to encoding at the fire."""

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch
        self._frames: dict[str, tuple[bytes, int]] = {}  # runid -> (frame, rule version)
        # task_id -> (version, spec, the spec packed: the bulk of every exec's encoding)
        self._specs: dict[int, tuple[int, RunSpec, bytes]] = {}

    def _cached(self, rule: Rule) -> tuple[int, RunSpec, bytes]:
        cached = self._specs.get(rule.id)
        if cached is None or cached[0] != rule.update_time:
            if len(self._specs) >= MAX_SPECS:
                self._specs.clear()
            spec = run_spec(rule)
            cached = self._specs[rule.id] = (rule.update_time, spec, pack_spec(spec))
        return cached

    def spec(self, rule: Rule) -> RunSpec:
        return self._cached(rule)[1]

    def exec_msg(self, run: PlannedRun, rule: Rule) -> Exec:
        return exec_for(run, self.spec(rule), self._epoch)

    def _encode(self, run: PlannedRun, rule: Rule) -> bytes:
        _version, spec, packed = self._cached(rule)
        return encode_exec(exec_for(run, spec, self._epoch), packed)

    async def encode_ahead(self, runs: list[PlannedRun], rules: dict[int, Rule]) -> None:
        """Encode the scheduled runs' frames in slices, yielding between them, so that a
        burst never stalls the dispatch loop."""
        for i, run in enumerate(runs):
            rule = rules.get(run.task_id)
            if rule is not None and run.trigger == Trigger.SCHEDULE:
                self._frames[run.runid] = (self._encode(run, rule), rule.update_time)
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
