"""The center process: lifecycle, the lease, rule and agent polling, and agents' reports."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import time
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.agent_pool import PoolListener
from center.alerts.loop import AlertLoop
from center.config import CenterConfig
from center.db import create_engine
from center.errors import NotLeader
from center.intake import Intake
from center.leader import Leader
from center.metrics import CenterMetrics
from center.registration import Guard, RegistrationServer
from center.reports import now_us
from center.retention import Retention, RetentionSettings
from center.routing import AGENT_ENABLED, AGENT_UNREACHABLE, AgentInfo
from center.rulebook import RuleBook
from protocol.messages import Ack, AgentState, Message, Pong, Register
from protocol.metrics_http import start_metrics_server
from protocol.tls import server_context

log = structlog.get_logger("center")
FINGERPRINT_EVERY_S = 5.0
COMMANDS_POLL_S = 0.3
SWEEP_EVERY_S = 2.0
TRANSIENT = (OSError, ConnectionError)


def _transient() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import DBAPIError

    return (DBAPIError, *TRANSIENT)


class RunState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class CenterService(PoolListener):
    """Every center serves registrations; the one holding the lease runs a Leader."""

    def __init__(self, config: CenterConfig, engine: AsyncEngine | None = None) -> None:
        self.config = config
        self.engine = engine or create_engine(config.db_url)
        self._own_engine = engine is None
        self.state = RunState.NEW
        self.rulebook = RuleBook()
        self.agents: dict[int, AgentInfo] = {}
        self.leader: Leader | None = None
        self.registration_port = 0
        self.metrics = CenterMetrics()
        self.intake = Intake(self.engine, self.metrics, config.center_name)
        # (our epoch, aid) whose fence was checked against the lease: once each, however many
        # of its replies say stale_epoch. A lease really lost is found by the lease loop too.
        self._fences_checked: set[tuple[int, int]] = set()
        self.metrics_port = 0
        self._metrics_server: asyncio.Server | None = None
        self._heartbeats: dict[int, store.Heartbeat] = {}
        self._lease_ok_mono = 0.0
        self._fingerprint: tuple[int, ...] = ()
        self._fingerprint_mono = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        # Taking the lead and applying rule changes must not interleave: a rule applied while
        # a new leader builds its planner would be lost to it.
        self._leadership = asyncio.Lock()
        self._rules_loaded = False
        self._writes: set[asyncio.Task[None]] = set()
        guard = Guard(
            max_connections=config.center_max_connections,
            per_address_per_minute=config.center_registrations_per_minute,
            refused=self.intake.handshake_refused,
            limited=lambda limit, _peer: self.metrics.limit_hits.labels(limit=limit).inc(),
        )
        self._registration = RegistrationServer(
            config.secret,
            config.center_name,
            self._register,
            config.center_max_frame_bytes,
            guard,
        )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        c = self.config
        tls = server_context(c.tls) if c.tls else None
        self.registration_port = await self._registration.start(*c.center_listen, tls)
        if c.center_metrics_listen is not None:
            self._metrics_server = await start_metrics_server(
                self.metrics.registry, *c.center_metrics_listen
            )
            self.metrics_port = int(self._metrics_server.sockets[0].getsockname()[1])
        tick_s = c.center_tick_ms / 1000
        # Alerts and retention read and write the database only, on the leader only.
        alerts = AlertLoop(self.engine, c, lambda: self.leader)
        retention = Retention(self.engine, RetentionSettings.of(c), lambda: self.leader)
        for name, step, every_s in (
            ("lease", self._lease_once, c.center_lease_renew_s),
            ("rules", self._rules_once, c.center_rules_poll_s),
            ("agents", self._agents_once, c.center_agents_poll_s),
            ("plan", self._plan_once, tick_s),
            ("reports", self._reports_once, tick_s),
            ("commands", self._commands_once, COMMANDS_POLL_S),
            ("sweep", self._sweep_once, SWEEP_EVERY_S),
            ("alerts", alerts.step, c.center_alerts_poll_s),
            ("retention", retention.step, c.center_retention_every_s),
        ):
            self._tasks.append(asyncio.create_task(self._every(name, step, every_s), name=name))
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="dispatch"))
        self.state = RunState.RUNNING
        log.info("center.started", name=c.center_name, registration_port=self.registration_port)

    async def stop(self) -> None:
        """Close the listener, stop planning, write what was received, give up the lease."""
        if self.state in (RunState.STOPPING, RunState.STOPPED):
            return
        self.state = RunState.STOPPING
        await self._registration.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(*_transient(), TimeoutError):
            async with asyncio.timeout(self.config.center_grace_s):
                await self._reports_once()
                await asyncio.gather(*self._writes, return_exceptions=True)
                if self.leader is not None:
                    await store.release_lease(self.engine, self.leader.lease)
        await self._step_down("shutdown")
        if self._own_engine:
            await self.engine.dispose()
        self.state = RunState.STOPPED
        log.info("center.stopped")

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT; a second signal exits at once."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                log.warning("center.forced_exit", signal=signum)
                os._exit(1)
            log.info("center.stopping", signal=signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    @property
    def is_leader(self) -> bool:
        return self.leader is not None

    async def _every(self, name: str, step: Callable[[], Awaitable[None]], every_s: float) -> None:
        """Run `step` forever; a database outage is logged and retried with backoff."""
        failures = 0
        while True:
            try:
                await step()
                failures = 0
            except NotLeader:
                await self._step_down(f"epoch fenced in {name}")
            except _transient() as exc:
                failures += 1
                self.metrics.store_errors.labels(loop=name).inc()
                log.warning(
                    "center.store_unavailable",
                    loop=name,
                    attempt=failures,
                    reason=str(exc).splitlines()[0][:300],
                )
            # The lease never backs off: a renewal missed for backoff can cost the lease.
            backoff_s = min(every_s * 2**failures, 5.0) if failures and name != "lease" else 0
            await asyncio.sleep(backoff_s or every_s)

    def _background(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except _transient() as exc:
                log.warning("center.store_unavailable", loop="background", reason=str(exc)[:300])

        task = asyncio.create_task(guarded())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    # ------------------------------------------------------------ leadership

    def epoch(self) -> int:
        return self.leader.epoch if self.leader else 0

    async def _lease_once(self) -> None:
        c, now = self.config, now_us()
        if self.leader is None:
            if not self._rules_loaded:
                return  # never lead with an empty rule book: misfires would be missed
            lease = await store.acquire_lease(self.engine, c.center_name, now, c.lease_ttl_us)
            if lease is not None:
                async with self._leadership:
                    await self._take_lead(lease)
            return
        leader = self.leader
        try:
            ok = await store.renew_lease(
                self.engine, leader.lease, now, c.lease_ttl_us, leader.cursor_us
            )
        except _transient():
            if time.monotonic() - self._lease_ok_mono > c.center_lease_ttl_s:
                await self._step_down("lease could not be renewed within its ttl")
            raise
        if not ok:
            await self._step_down("lease taken by another center")
        else:
            self._lease_ok_mono = time.monotonic()

    async def _take_lead(self, lease: store.Lease) -> None:
        self._lease_ok_mono = time.monotonic()
        leader = Leader(
            metrics=self.metrics,
            config=self.config,
            engine=self.engine,
            lease=lease,
            rulebook=self.rulebook,
            agents=self.agents,
            listener=self,
            background=self._background,
        )
        await leader.open()
        self.leader = leader

    async def _step_down(self, reason: str) -> None:
        leader, self.leader = self.leader, None
        if leader is not None:
            await leader.close()
            log.warning("center.not_leading", epoch=leader.epoch, reason=reason)

    # ------------------------------------------------------------ rules and agents

    async def _rules_once(self) -> None:
        complete = time.monotonic() - self._fingerprint_mono > FINGERPRINT_EVERY_S
        if complete:
            self._fingerprint_mono = time.monotonic()
            fingerprint = await store.rules_fingerprint(self.engine)
            complete = fingerprint != self._fingerprint
            self._fingerprint = fingerprint
        # Strictly newer than the newest change seen. A change stamped older (another host's
        # clock behind) or committed late with the same stamp changes the fingerprint and is
        # found by the complete load within FINGERPRINT_EVERY_S. No overlap window: thousands
        # of rules made at once share one stamp and would be re-read on every poll.
        since = None if complete else self.rulebook.max_update_us
        rows = await store.load_rules(self.engine, since)
        async with self._leadership:
            changes = self.rulebook.update(rows, complete=complete)
            if changes and self.leader is not None:
                self.leader.apply_rule_changes(changes)
        self._rules_loaded = True
        for task_id, error in changes.errors.items():
            if error:
                log.error("rule.invalid", task_id=task_id, error=error)
            else:
                log.info("rule.valid_again", task_id=task_id)
            await store.set_rule_error(self.engine, task_id, error)

    async def _agents_once(self) -> None:
        self.metrics.observe_state(self.leader, self.rulebook)
        self.agents = await store.load_agents(self.engine)
        beats, self._heartbeats = list(self._heartbeats.values()), {}
        await store.record_heartbeats(self.engine, beats)
        if self.leader is not None:
            self.leader.set_agents(self.agents)
            await self._mark_reachability(self.leader)

    async def _mark_reachability(self, leader: Leader) -> None:
        offline_s, now, mono = self.config.center_offline_after_s, now_us(), time.monotonic()
        for aid, link in leader.pool.links.items():
            status = self.agents[aid].status if aid in self.agents else None
            if status == AGENT_UNREACHABLE and link.connected:
                await store.set_agent_status(
                    self.engine, aid, AGENT_UNREACHABLE, AGENT_ENABLED, now
                )
            elif (
                status == AGENT_ENABLED
                and not link.connected
                and mono - link.down_since_mono > offline_s
            ):
                log.warning("agent.offline", aid=aid, down_s=round(mono - link.down_since_mono, 1))
                await store.set_agent_status(
                    self.engine, aid, AGENT_ENABLED, AGENT_UNREACHABLE, now
                )

    async def _register(self, message: Register, host: str) -> tuple[int, int]:
        return await store.register_agent(self.engine, message, host, now_us())

    # ------------------------------------------------------------ leader loops

    async def _plan_once(self) -> None:
        if self.leader is not None:
            await self.leader.plan_once()

    async def _commands_once(self) -> None:
        if self.leader is not None:
            await self.leader.commands_once()

    async def _sweep_once(self) -> None:
        if self.leader is not None:
            reports = self.intake.reports
            await self.leader.recovery.sweep(reports.added, reports.written)

    async def _dispatch_loop(self) -> None:
        # Short sleeps: one long asyncio.sleep wakes 5-10 ms late, 50 ms steps stay under 1 ms.
        while True:
            leader = self.leader
            nxt = leader.queue.next_due_us() if leader else None
            delay_s = 0.05 if nxt is None else min(max(nxt - now_us(), 0) / 1e6, 0.05)
            if delay_s > 0 and leader is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await leader.wake.wait()
            elif delay_s > 0:
                await asyncio.sleep(delay_s)
            if leader is not None and leader is self.leader:
                leader.wake.clear()
                leader.dispatch_due()

    # ------------------------------------------------------------ reports from agents

    async def _reports_once(self) -> None:
        """Write what agents reported, acknowledge it, then act on it (retries, dependents,
        reconciling agents that reconnected once all they resent is stored)."""
        await self.intake.flush_side()
        leader = self.leader
        batch = await self.intake.flush_reports(leader.after_reports if leader else None)
        if batch is not None and leader is not None:
            for aid, seqs in batch.acks.items():  # acknowledged only once acted on
                leader.send(aid, [Ack(seqs=seqs)])
        if leader is not None and leader is self.leader:
            ready = leader.recovery.take_ready(self.intake.reports.written)
            await leader.recovery.reconcile(ready)

    # PoolListener
    def on_report(self, aid: int, message: Message) -> None:
        self.intake.add(aid, message)

    def on_pong(self, aid: int, pong: Pong) -> None:
        self._heartbeats[aid] = store.Heartbeat(aid, now_us(), pong.resources)
        name = self.agents[aid].name if aid in self.agents else str(aid)
        self.metrics.agent_outbox.labels(agent=name).set(pong.resources.outbox)
        self.metrics.agent_processes.labels(agent=name).set(pong.resources.procs)
        if self.leader is not None:
            self.leader.recovery.note_pong(aid, self.intake.reports.added)

    def on_connected(self, aid: int, state: AgentState) -> None:
        leader = self.leader
        if leader is None:
            return
        if state.epoch > leader.epoch:
            self._fenced_out(aid, f"agent obeys epoch {state.epoch}")
            return
        leader.recovery.note_connected(aid, state.running)
        leader.sync_daemons(restart_aid=aid)
        leader.wake.set()

    def on_stale_epoch(self, aid: int, message: str) -> None:
        self._fenced_out(aid, message)

    def _fenced_out(self, aid: int, why: str) -> None:
        """An agent obeys a newer epoch than ours: another center leads, or (any holder of the
        cluster secret can send an epoch) the agent was fed a forged one. The lease decides."""
        leader = self.leader
        if leader is None or (leader.epoch, aid) in self._fences_checked:
            return
        self._fences_checked.add((leader.epoch, aid))
        log.warning("center.fenced_out", aid=aid, our_epoch=leader.epoch, reason=why)
        self._background(self._check_fence(leader, aid, why))

    async def _check_fence(self, leader: Leader, aid: int, why: str) -> None:
        still_ours = await store.renew_lease(
            self.engine, leader.lease, now_us(), self.config.lease_ttl_us
        )
        if self.leader is not leader:
            return
        if not still_ours:
            await self._step_down(f"fenced out by agent {aid}")
            return
        # We hold the lease at our epoch, so no real leader sent that one. Stepping down would
        # let one forged agent make every center give up the lease in turn.
        name = self.agents[aid].name if aid in self.agents else str(aid)
        log.error(
            "center.agent_epoch_forged", aid=aid, agent=name, our_epoch=leader.epoch, reason=why
        )
        self.intake.security_event("agent.epoch_forged", name, f"agent {aid}: {why}")
