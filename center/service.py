"""The center process: lifecycle, the lease, rule and agent polling, registration; a Leader
for as long as it holds the lease."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.bulk import many_objects
from center.cluster_tls import APPROVED, CenterTls
from center.config import CenterConfig
from center.errors import NotLeader
from center.leader import Leader, LeaderHooks
from center.loops import Background, every, transient_errors
from center.metrics import CenterMetrics
from center.registration import Guard, RegistrationServer
from center.routing import AgentInfo
from center.rulebook import RuleBook, RuleChanges
from center.security_events import SecurityEvents
from center.store import calendars as calendars_store
from center.store import pki as pki_store
from center.store.db import create_engine
from protocol.clock import now_us
from protocol.messages import Register, Registered, Resources
from protocol.metrics_http import start_metrics_server
from protocol.vocabulary import TlsMode

log = structlog.get_logger("center")
FINGERPRINT_EVERY_S = 5.0
# At most 0.25 % of the time in the complete fingerprint: it costs 40 ms of CPU at 100k rules
# on SQLite, 0.8 % of a core every 5 s, a quarter of the fleet mix's whole budget; it looks
# only for changes made behind the admin's back (hard deletes, stamps from a clock behind).
FINGERPRINT_COST_RATIO = 400


class RunState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class CenterService:
    """Every center serves registrations and polls rules and agents; the one holding the lease
    runs a Leader, whose loops live and die with its term."""

    def __init__(self, config: CenterConfig, engine: AsyncEngine | None = None) -> None:
        self.config = config
        self.engine = engine or create_engine(config.db_url)
        self._own_engine = engine is None
        self.state = RunState.NEW
        self.rulebook = RuleBook()
        self.agents: dict[int, AgentInfo] = {}
        self.leader: Leader | None = None
        self._term: asyncio.Task[None] | None = None
        self.registration_port = 0
        self.metrics = CenterMetrics()
        self.security = SecurityEvents(self.metrics, config.center_name)
        # (our epoch, aid) whose fence was checked against the lease: once each, however many
        # of its replies say stale_epoch. A lease really lost is found by the lease loop too.
        self._fences_checked: set[tuple[int, int]] = set()
        self.metrics_port = 0
        self._metrics_server: asyncio.Server | None = None
        self._heartbeats: dict[int, store.Heartbeat] = {}
        self._lease_ok_mono = 0.0
        self._fingerprint: tuple[int, ...] = ()
        self._calendars_fingerprint: tuple[int, ...] = ()
        self._fingerprint_due_mono = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        # Taking the lead and applying rule changes must not interleave: a rule applied while
        # a new leader builds its planner would be lost to it.
        self._leadership = asyncio.Lock()
        self._rules_loaded = False
        self._background = Background()
        self.tls = CenterTls(config)
        guard = Guard(
            max_connections=config.center_max_connections,
            per_address_per_minute=config.center_registrations_per_minute,
            refused=self.security.handshake_refused,
            tls_refused=self.security.tls_refused,
            limited=lambda limit, _peer: self.metrics.limit_hits.labels(limit=limit).inc(),
        )
        self._registration = RegistrationServer(
            config.secret,
            config.center_name,
            self._register,
            config.center_max_frame_bytes,
            guard=guard,
            tls=self.tls.link,
        )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        c = self.config
        await self.tls.start(self.engine)
        self.registration_port = await self._registration.start(*c.center_listen)
        if c.center_metrics_listen is not None:
            self._metrics_server = await start_metrics_server(
                self.metrics.registry, *c.center_metrics_listen
            )
            self.metrics_port = int(self._metrics_server.sockets[0].getsockname()[1])
        for name, step, every_s in (
            ("lease", self._lease_once, c.center_lease_renew_s),
            ("rules", self._rules_once, c.center_rules_poll_s),
            ("agents", self._agents_once, c.center_agents_poll_s),
        ):
            # The lease never backs off: a renewal missed for backoff can cost the lease.
            loop = every(name, step, every_s, self.metrics, backoff=name != "lease")
            self._tasks.append(asyncio.create_task(loop, name=name))
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
        await self._step_down("shutdown", release=True)
        with contextlib.suppress(*transient_errors(), TimeoutError):
            async with asyncio.timeout(self.config.center_grace_s):
                await self.security.flush(self.engine)
        await self._background.drain(self.config.center_grace_s)
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
        except transient_errors():
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
            hooks=LeaderHooks(
                heartbeat=self._heartbeat,
                fenced_out=self._fenced_out,
                security_event=self.security.record,
            ),
            tls=None if self.tls.mode is TlsMode.PLAINTEXT else self.tls.link,
        )
        await leader.open()
        self.leader = leader
        self._term = asyncio.create_task(self._lead(leader), name="leader")

    async def _lead(self, leader: Leader) -> None:
        """The leader's term: its loops run until one is fenced out (or the service ends it)."""
        try:
            await leader.run()
        except* NotLeader as group:
            reason = f"epoch fenced: {group.exceptions[0]}"
        except* Exception as group:
            log.error("center.leader_failed", exc_info=group.exceptions[0])
            reason = f"leader failed: {group.exceptions[0]!r}"[:300]
        else:
            return
        if self.leader is leader:
            self._term = None  # ending from inside: nothing to cancel
            await self._step_down(reason)

    async def _step_down(self, reason: str, *, release: bool = False) -> None:
        """End the term: cancel its loops, close it (writing what agents reported first, and
        giving up the lease at once, on `release`: a clean shutdown)."""
        leader, self.leader = self.leader, None
        term, self._term = self._term, None
        if term is not None:
            term.cancel()
            await asyncio.gather(term, return_exceptions=True)
        if leader is None:
            return
        await leader.close(flush=release)
        if release:
            with contextlib.suppress(*transient_errors(), TimeoutError):
                async with asyncio.timeout(self.config.center_grace_s):
                    await store.release_lease(self.engine, leader.lease)
        log.warning("center.not_leading", epoch=leader.epoch, reason=reason)

    # ------------------------------------------------------------ rules and agents

    async def _rules_once(self) -> None:
        complete = time.monotonic() >= self._fingerprint_due_mono
        if complete:
            started = time.monotonic()
            fingerprint = await store.rules_fingerprint(self.engine)
            # The fingerprint reads the whole table (0.2 s at 1M rules on SQLite): never more
            # than 1/FINGERPRINT_COST_RATIO of the time, however big the rule book.
            took_s = time.monotonic() - started
            self._fingerprint_due_mono = started + max(
                FINGERPRINT_EVERY_S, FINGERPRINT_COST_RATIO * took_s
            )
            complete = fingerprint != self._fingerprint
            self._fingerprint = fingerprint
        # Strictly newer than the newest change seen. A change stamped older (another host's
        # clock behind) or committed late with the same stamp changes the fingerprint and is
        # found by the complete load within FINGERPRINT_EVERY_S. No overlap window: thousands
        # of rules made at once share one stamp and would be re-read on every poll.
        since = None if complete else self.rulebook.max_update_us
        probe = await store.rules_probe(self.engine)
        if self.leader is not None:
            self.leader.note_probe(probe.workflows, probe.pending_command)
        calendars, newest_us = probe.calendars, probe.newest_rule_us
        if calendars != self._calendars_fingerprint:
            await self._calendars_once(calendars)
        elif since is not None and newest_us <= since:
            self._rules_loaded = True
            return  # nothing changed: one indexed read, no rule rows
        with many_objects() if complete else contextlib.nullcontext():
            rows = await store.load_rules(self.engine, since)
            async with self._leadership:
                changes = self.rulebook.update(rows, complete=complete)
                if changes and self.leader is not None:
                    self.leader.apply_rule_changes(changes)
            del rows
        self._rules_loaded = True
        await self._store_errors(changes)

    async def _calendars_once(self, fingerprint: tuple[int, ...]) -> None:
        """Groups' calendars, re-read when one changed: rules using it are re-planned. Read
        before the rules, so that a rule naming a new calendar finds it."""
        async with self.engine.connect() as conn:
            calendars = await calendars_store.load_calendars(conn)
        async with self._leadership:
            changes = self.rulebook.update_calendars(calendars)
            if changes and self.leader is not None:
                self.leader.apply_rule_changes(changes)
        self._calendars_fingerprint = fingerprint
        await self._store_errors(changes)

    async def _store_errors(self, changes: RuleChanges) -> None:
        for task_id, error in changes.errors.items():
            if error:
                log.error("rule.invalid", task_id=task_id, error=error)
            else:
                log.info("rule.valid_again", task_id=task_id)
            await store.set_rule_error(self.engine, task_id, error)

    async def _agents_once(self) -> None:
        leader = self.leader
        self.metrics.observe_rules(self.rulebook)
        if leader is None:
            self.metrics.observe_leading(
                epoch=0, agents_connected=0, queue_depth=0, rules_planned=0
            )
        else:
            leader.observe()
        await self.security.flush(self.engine)
        await self.tls.refresh(self.engine)
        self.agents = await store.load_agents(self.engine)
        beats, self._heartbeats = list(self._heartbeats.values()), {}
        await store.record_heartbeats(self.engine, beats)
        if leader is not None and leader is self.leader:
            leader.set_agents(self.agents)
            await leader.mark_reachability(self.config.center_offline_after_s)

    async def _register(self, message: Register, host: str) -> Registered:
        """Record the agent; under the built-in PKI, answer with the CAs and its certificate."""
        aid, status = await store.register_agent(self.engine, message, host, now_us())
        on_file = ""
        if message.csr and status in APPROVED:
            on_file = await pki_store.agent_cert(self.engine, aid)
        enrolment = self.tls.enrol(message, status, on_file)
        if enrolment.issued is not None:
            await pki_store.save_agent_cert(self.engine, aid, enrolment.issued, now_us())
        if enrolment.refused:
            log.warning("center.csr_refused", aid=aid, agent=message.name, reason=enrolment.refused)
            self.security.tls_refused(host, "csr", f"agent {message.name}: {enrolment.refused}")
        return Registered(
            agent_id=aid,
            status=status,
            ca=enrolment.ca,
            cert=enrolment.cert,
            note=enrolment.note,
        )

    # ------------------------------------------------------------ from the leader

    def _heartbeat(self, aid: int, resources: Resources) -> None:
        self._heartbeats[aid] = store.Heartbeat(aid, now_us(), resources)

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
        self.security.record("agent.epoch_forged", name, f"agent {aid}: {why}")
