"""What the agent does with each center message: runs, overlap, daemons, kills, acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog

from agent.daemons import DaemonSupervisor
from agent.decisions import DaemonPolicy, epoch_refusal
from agent.handle import RunHandle
from agent.holding import Holding
from agent.journal import Journal
from agent.metrics import AgentMetrics
from agent.oneshots import OneShots
from agent.resources import Admission, current_resources
from agent.runner import Runner
from agent.runs import RunLimits, RunTable
from agent.server import Session, Sessions
from protocol import auth, statuses
from protocol.clock import now_us
from protocol.errors import UnknownCall
from protocol.messages import (
    Ack,
    AgentState,
    DaemonsWanted,
    Error,
    Exec,
    Kill,
    Message,
    Ping,
    Pong,
    Resources,
)

RESEND_BATCH = 500
log = structlog.get_logger("agent.control")


class Control:
    """Handles center messages, starts and stops runs, routes events to the leader.

    Runs live in a RunTable; one-shot runs go through OneShots (cap and overlap), daemon rules
    through the DaemonSupervisor. Every handler is synchronous: the frames of one read are
    handled without yielding, so their durable writes (epoch, accepted run ids, events, wanted
    daemons) share one outbox transaction.
    """

    def __init__(
        self,
        agent_name: str,
        sessions: Sessions,
        journal: Journal,
        runner: Runner,
        daemon_policy: DaemonPolicy | None = None,
        *,
        limits: RunLimits | None = None,
        metrics: AgentMetrics | None = None,
        key_hash: str = "",
        admission: Admission | None = None,
    ) -> None:
        self._agent_name = agent_name
        self._admission = admission or Admission()
        self._key_hash = key_hash  # of the key it registers with: proves it is that agent
        self._sessions = sessions
        self._journal = journal
        self._metrics = metrics = metrics or AgentMetrics()
        self.table = RunTable(
            sessions, journal, runner, limits=limits or RunLimits(), metrics=metrics
        )
        self.oneshots = OneShots(self.table)
        self.holding = Holding(self._accept, self.table.finish, self.table.preparer)
        self.daemons = DaemonSupervisor(
            self.table, journal, sessions, daemon_policy or DaemonPolicy()
        )
        sessions.on_new_leader = self._became_leader

    @property
    def runs(self) -> dict[str, RunHandle]:
        """Every run the agent knows: running, waiting for a slot, daemon instances."""
        return self.table.runs

    # ------------------------------------------------------------ connection lifecycle

    async def welcome(self, session: Session) -> AsyncIterator[list[Message]]:
        """AgentState and every daemon rule's status first, then every unacked event in seq
        order, in batches.

        A run missing from the state has ended, and its RunFinished was noted when it left
        the table (in the same step): waiting for the journal to commit what is noted before
        reading the unacked events puts that result in this resend, ahead of any pong, so the
        center never takes a run that just finished for one it lost."""
        known = [*self.runs, *self.holding.runids()]
        yield [
            AgentState(
                epoch=self._journal.epoch,
                running=known,
                agent_name=self._agent_name,
                key_proof=auth.identity_proof(
                    self._key_hash, session.conn.session_nonce, self._agent_name
                )
                if self._key_hash
                else b"",
            ),
            *self.daemons.statuses(),
        ]
        await self._journal.committed()
        events = await self._journal.call(self._journal.outbox.unacked, 0)
        for i in range(0, len(events), RESEND_BATCH):
            batch = events[i : i + RESEND_BATCH]
            session.sent_seq = max(session.sent_seq, batch[-1].seq)
            yield list(batch)

    def _became_leader(self, session: Session) -> None:
        """A new leader gets every daemon status now and the events it missed."""
        self.daemons.send_all(session)
        self.table.spawn(self._resend_missed(session), f"resend to {session.conn.peer}")

    async def _resend_missed(self, session: Session) -> None:
        """A connection that just became leader gets what it has not been sent yet."""
        session.hold()  # events committed meanwhile wait, then all go in seq order
        try:
            missed = await self._journal.call(self._journal.outbox.unacked, session.sent_seq)
            session.deliver(missed)
        finally:
            session.release()

    # ------------------------------------------------------------ messages

    def handle(self, session: Session, message: Message) -> list[Message]:
        """Dispatch one message from a center; replies are returned, never awaited."""
        if isinstance(message, Exec):
            return self._on_exec(session, message)
        if isinstance(message, Ping):
            if not epoch_refusal(message.epoch, self._journal.epoch):
                self._note_epoch(session, message.epoch)
            session.ping_ms = message.sent_ms
            return self.sign_of_life(session)
        if isinstance(message, Kill):
            return self._on_kill(session, message)
        if isinstance(message, Ack):
            self._journal.ack(message.seqs)
            return []
        if isinstance(message, DaemonsWanted):
            return self._on_daemons(session, message)
        if isinstance(message, Error):
            log.warning(
                "agent.center_error",
                center=session.conn.peer_name,
                code=message.code,
                message=message.message,
            )
            return []
        raise UnknownCall(message.CALL)

    def sign_of_life(self, session: Session) -> list[Message]:
        """A pong to the newest ping read; unasked, it tells a center that sent a burst ahead
        (its ping waiting behind it) that we are alive and reading."""
        return [Pong(sent_ms=session.ping_ms, resources=self.resources())]

    def _note_epoch(self, session: Session, epoch: int) -> None:
        """Remember the epoch a center sent; a connection that becomes leader gets a resend."""
        self._journal.note_epoch(epoch)
        self._sessions.note_epoch(session, epoch)

    def _stale(
        self, session: Session, epoch: int, what: str, runid: str = ""
    ) -> list[Message] | None:
        """An Error reply if `epoch` is stale or implausible; else note it and return None."""
        highest = self._journal.epoch
        reason = epoch_refusal(epoch, highest)
        if reason:
            log.warning(
                "agent.stale_epoch",
                center=session.conn.peer_name,
                what=what,
                epoch=epoch,
                highest=highest,
                reason=reason,
            )
            return [Error(code="stale_epoch", runid=runid, message=f"{what}: {reason}, refused")]
        self._note_epoch(session, epoch)
        return None

    def _on_exec(self, session: Session, msg: Exec) -> list[Message]:
        """Fence, deduplicate, then hand the run to the overlap policy."""
        runid = msg.ref.runid
        refused = self._stale(session, msg.epoch, f"exec {runid}", runid)
        if refused is not None:
            return refused
        if not runid:
            return [Error(code="bad_exec", message="exec: ref.runid is empty, nothing run")]
        if self.holding.replace(msg):
            return []
        if runid in self.runs or self._journal.seen(runid):
            log.debug("agent.exec_repeated", runid=runid)
            return []
        received_us = now_us()
        self._metrics.observe_receipt(msg.ref.trigger, msg.ref.sched_us, received_us)
        if not self.holding.hold_if_early(msg, received_us):
            self._accept(msg)
        return []

    def _accept(self, msg: Exec) -> None:
        """Remember the run id durably, then hand the run to its rule's overlap policy."""
        if self._journal.seen(msg.ref.runid) or msg.ref.runid in self.runs:
            return
        self._journal.remember_run(msg.ref, now_us())
        self.oneshots.accept(msg)

    def _on_kill(self, session: Session, msg: Kill) -> list[Message]:
        """Stop one run (by runid) or every run of a rule, waiting ones included; a killed
        daemon instance is restarted (pausing the rule is what stops a daemon)."""
        refused = self._stale(session, msg.epoch, f"kill {msg.runid or msg.task_id}", msg.runid)
        if refused is not None:
            return refused
        reason = msg.reason or "killed on request"
        if msg.runid:
            targets = [self.runs[msg.runid]] if msg.runid in self.runs else []
        else:
            targets = [h for h in self.runs.values() if h.task_id == msg.task_id]
        for handle in targets:
            handle.request_stop(statuses.KILLED, reason)
        self.holding.drop(msg.runid, msg.task_id, reason, now_us())
        log.info(
            "agent.kill",
            task_id=msg.task_id,
            runid=msg.runid or None,
            reason=reason,
            stopping=len(targets),
        )
        return []

    def _on_daemons(self, session: Session, msg: DaemonsWanted) -> list[Message]:
        """Fence, then make the daemon rules match what the center wants."""
        refused = self._stale(session, msg.epoch, "daemons")
        if refused is not None:
            return refused
        self.daemons.apply(msg)
        return []

    def resources(self) -> Resources:
        """Load figures for a pong or a registration."""
        procs, outbox = self.table.processes, self._journal.outbox.count
        return current_resources(procs, outbox, self._admission)

    # ------------------------------------------------------------ output and shutdown

    def pump_output(self) -> None:
        """Send each run's pending live chunk to the leader (throttled, see RunTable)."""
        self.table.pump_output()

    @property
    def run_tasks(self) -> set[asyncio.Task[None]]:
        """The tasks still going (runs, daemon instances, resends), for shutdown."""
        return self.table.tasks

    def stop_daemons(self, reason: str) -> None:
        """Stop every daemon instance (they never end by themselves); the wanted set stays."""
        self.daemons.stop_all(reason)

    def stop_all(self, reason: str) -> None:
        """Ask every run to stop (TERM, grace, KILL) with `reason`; held runs are forgotten."""
        self.holding.forget_all()
        self.daemons.stop_all(reason)
        self.table.stop_all(reason)
