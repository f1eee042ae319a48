"""The leader's door for agents' reports: what the guard refuses is dropped and audited, live
output is taken within its budget, the rest goes to the intake."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from center import store
from center.intake import Intake
from center.leader_context import LeaderContext
from center.metrics import CenterMetrics
from center.output_budget import OutputBudget
from center.report_guard import Verdict, judge_report, parse_runid
from protocol.messages import Ack, Message, RunFinished, RunOutput, RunStarted

log = structlog.get_logger("center.report_buffer")
MAX_CAPPED_NOTED = 10_000  # runs whose dropped output was logged, before the set starts over


class ReportGate:
    """Admits each report an agent sends, or refuses it."""

    def __init__(
        self,
        ctx: LeaderContext,
        intake: Intake,
        metrics: CenterMetrics,
        security_event: Callable[[str, str, str], None],
        output: OutputBudget,
    ) -> None:
        self._ctx, self._intake, self._metrics = ctx, intake, metrics
        self._security_event = security_event
        self._output = output
        self._unsure: list[tuple[int, RunStarted | RunFinished]] = []
        self._refused_noted: set[int] = set()  # agents whose refusal is in the audit log
        self._capped_noted: set[str] = set()  # runs whose dropped output was logged

    def admit(self, aid: int, message: Message) -> None:
        judged = judge_report(message, aid, self._ctx.rulebook.rules, self._ctx.agents())
        if judged.verdict is Verdict.ACCEPT and isinstance(message, RunOutput):
            self._live_output(aid, message)
        elif judged.verdict is Verdict.ACCEPT:
            if isinstance(message, RunFinished):
                self._output.finished(message.ref.runid)
                self._capped_noted.discard(message.ref.runid)
            self._intake.add(aid, message)
        elif judged.verdict is Verdict.CHECK and isinstance(message, RunStarted | RunFinished):
            self._unsure.append((aid, message))
        else:
            self._refuse(aid, message, judged.reason)

    def _live_output(self, aid: int, chunk: RunOutput) -> None:
        """Stored within its run's bound and its agent's rate; else dropped and counted (one
        line per run: a `yes` would otherwise write one per chunk)."""
        ids = parse_runid(chunk.runid)
        rule = self._ctx.rulebook.rules.get(ids[0]) if ids else None
        limit = rule.output_max_bytes if rule is not None else 0
        size = len(chunk.data)
        if self._output.admit(aid, chunk.runid, size, limit, time.monotonic()):
            self._intake.add(aid, chunk)
            return
        self._metrics.output_dropped.inc(size)
        if chunk.runid not in self._capped_noted:
            if len(self._capped_noted) > MAX_CAPPED_NOTED:
                self._capped_noted.clear()
            self._capped_noted.add(chunk.runid)
            log.info("run.live_output_capped", runid=chunk.runid, aid=aid, limit_bytes=limit)

    def _refuse(self, aid: int, message: Message, reason: str) -> None:
        """Drop a report that is not the agent's to make: counted, logged and audited (once per
        agent and term), acknowledged so that the agent stops resending it."""
        self._metrics.reports_refused.inc()
        name = self._ctx.agent_name(aid)
        if aid not in self._refused_noted:
            self._refused_noted.add(aid)
            log.warning("report.refused", aid=aid, agent=name, reason=reason)
            self._security_event("report.refused", name, f"agent {aid}: {reason}")
        seq = getattr(message, "seq", 0)
        link = self._ctx.pool.link(aid)
        if seq and link is not None:
            link.send([Ack(seqs=[seq])])

    async def check_unsure(self) -> None:
        """Reports of runs whose rule no longer uses their agent: accepted if the store has
        the run planned for that very agent."""
        if not self._unsure:
            return
        unsure, self._unsure = self._unsure, []
        owners = await store.run_agents(self._ctx.engine, [m.ref.runid for _, m in unsure])
        for aid, message in unsure:
            if owners.get(message.ref.runid) == aid:
                self._intake.add(aid, message)
            else:
                self._refuse(aid, message, f"run {message.ref.runid} was never sent to it")
