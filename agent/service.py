"""The agent's lifecycle, like uvicorn's Server: startup, main loop, shutdown on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType, TracebackType

import structlog

from agent.accounts import own_account
from agent.config import AgentConfig
from agent.control import Control
from agent.enrolment import AgentTls
from agent.errors import AgentError
from agent.identity import load_or_create_key
from agent.journal import Journal
from agent.metrics import AgentMetrics
from agent.orphans import TrackedProcess, stop_orphans, unknown_outcomes
from agent.outbox import Outbox
from agent.process import signal_group
from agent.registration import Registrar
from agent.resources import Admission
from agent.runner import OUTPUT_DRAIN_S, Runner
from agent.runs import RunLimits
from agent.runspec import UserPolicy
from agent.server import AgentServer, Sessions
from agent.userswitch import choose_user_switch
from protocol import auth
from protocol.clock import now_us
from protocol.messages import RunFinished
from protocol.metrics_http import start_metrics_server
from protocol.settings import HostPort

TICK_S = 0.25  # live output is coalesced to at most one chunk per run per tick
PRUNE_EVERY_S = 60.0
FORCED_WAIT_S = 2.0
# A RunFinished carries the output: keep it inside the frame limit with room for the rest.
FRAME_HEADROOM_BYTES = 16 * 1024
log = structlog.get_logger("agent.service")


class RunState(enum.Enum):
    """Where an AgentService is in its life."""

    CREATED = "created"
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"
    STOPPED = "stopped"


class AgentService:
    """One agent: listener, runs, outbox, registration, metrics. `serve()` for a process,
    `async with` (or `start()`/`stop()`) for tests and embedding.

    Startup opens the outbox, picks the way to switch users (agent.userswitch), stops the
    processes a crashed predecessor left running (agent.orphans: they end `lost`, with the
    reason, reported before any center can connect), then listens (mutual TLS if configured),
    registers and serves /metrics.
    Shutdown closes the listener, then the connections, stops daemon instances at once (they
    never finish by themselves), gives one-shot runs the grace (`agent_kill_grace_s`) to finish,
    then stops the rest (TERM, their own kill grace, KILL). The wanted daemons stay in the
    outbox, so the next start brings them back.
    A second SIGTERM/SIGINT skips every grace: remaining process groups are killed at once.
    """

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = RunState.CREATED
        self.port = 0
        self.advertise = HostPort(config.agent_listen.host, 0)
        self.sessions = Sessions()
        self.metrics = AgentMetrics()
        self.metrics_port = 0
        self._metrics_server: asyncio.Server | None = None
        self._exit = asyncio.Event()
        self._force = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._outbox: Outbox | None = None
        self._journal: Journal | None = None
        self._control: Control | None = None
        self._server: AgentServer | None = None
        self.registrar: Registrar | None = None
        self.tls = AgentTls(config)

    @property
    def control(self) -> Control:
        """The message handlers and run table (after start)."""
        assert self._control is not None, "the agent is not started"
        return self._control

    @property
    def outbox(self) -> Outbox:
        """The durable outbox (after start)."""
        assert self._outbox is not None, "the agent is not started"
        return self._outbox

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the outbox, stop orphans, bind the listener, start registering and metrics;
        raises AgentError/OSError."""
        self.state = RunState.STARTING
        config = self.config
        self._outbox = outbox = Outbox.open(
            config.agent_state_dir, max_events=config.agent_outbox_max_events
        )
        try:
            key = load_or_create_key(config.agent_state_dir)
            self.tls.start()
            outbox.prune_runids(now_us())
            # Read before the writer thread owns the database.
            desired, orphans = outbox.load_daemons(), outbox.load_processes()
            open_runs = outbox.load_open_runs()
            self._journal = journal = Journal(
                outbox,
                self.sessions.publish,
                start_delay_s=config.agent_start_report_delay_ms / 1000,
            )
            journal.start()
            control = await self._build(journal, auth.key_hash(key))
            await self._settle_unknown(orphans, open_runs)
            assert self._server is not None
            self.port = await self._server.start()
        except BaseException:
            if self._journal is not None:
                await self._journal.close()
            else:
                outbox.close()
            self.state = RunState.STOPPED
            raise
        # Daemons wanted when the agent last ran come back now, center or not; the center's
        # next complete set reconciles them.
        control.daemons.restore(desired)
        self.advertise = config.advertise_address(self.port)
        self.registrar = Registrar(config, self.advertise, control.resources, key=key, tls=self.tls)
        self._background = [
            asyncio.create_task(self.registrar.run(), name="registration"),
            asyncio.create_task(self._tick(), name="tick"),
        ]
        await self._start_metrics()
        self.state = RunState.SERVING
        log.info(
            "agent.started",
            name=config.agent_name,
            listen=str(config.agent_listen),
            port=self.port,
            advertise=str(self.advertise),
            epoch=journal.epoch,
            outbox=outbox.count,
            user=own_account().name,
            tls=config.tls_mode.value,
            certificate=not self.tls.waiting,
            metrics_port=self.metrics_port or None,
            state_dir=str(config.agent_state_dir),
        )

    async def _build(self, journal: Journal, key_hash: str) -> Control:
        """The runner (with its way to switch users), the message handlers and the listener."""
        config, metrics = self.config, self.metrics
        policy = UserPolicy(
            own_account(),
            config.agent_allow_root,
            config.agent_allowed_users,
            allow_loader_env=config.agent_allow_loader_env,
            default_limits=config.default_limits(),
        )
        if config.agent_allow_loader_env:
            log.warning(
                "agent.loader_env_allowed",
                reason="UNITEDCRON_AGENT_ALLOW_LOADER_ENV: a rule's env may set LD_PRELOAD and "
                "the like (for its own process only, after the privilege drop)",
            )
        switch = await choose_user_switch(config.agent_user_switch, policy.switches_user)
        log.info(
            "agent.user_switch",
            method=switch.method,
            setpriv=switch.setpriv or None,
            why_not_setpriv=switch.why_not_setpriv or None,
        )
        cap = max(0, config.agent_max_frame_bytes - FRAME_HEADROOM_BYTES)
        runner = Runner(
            policy,
            journal.emit,
            output_cap_bytes=cap,
            switch=switch,
            on_tracked=journal.track,
            metrics=metrics,
        )
        limits = RunLimits(
            config.agent_max_processes,
            config.agent_live_output_backlog_bytes,
            prepare_max=config.agent_prepare_max,
            prepare_ahead_us=config.agent_prepare_ahead_ms * 1000,
        )
        self._control = control = Control(
            config.agent_name,
            self.sessions,
            journal,
            runner,
            config.daemon_policy(),
            limits=limits,
            metrics=metrics,
            key_hash=key_hash,
            admission=Admission(
                config.agent_max_load, config.agent_min_free_mem_mb, config.agent_max_processes
            ),
        )
        self._server = server = AgentServer(
            config,
            self.sessions,
            control,
            tls=self.tls,
            metrics=metrics,
            on_uncertified=self._register_soon,
        )
        outbox = journal.outbox
        outbox.on_full = metrics.limit_hits.labels(limit="outbox").inc
        metrics.watch(
            processes=lambda: control.table.processes,
            outbox=lambda: outbox.count,
            open_connections=lambda: server.open_connections,
            sessions=lambda: len(self.sessions),
        )
        return control

    def _register_soon(self) -> None:
        if self.registrar is not None:
            self.registrar.register_soon()

    async def _settle_unknown(
        self, recorded: list[TrackedProcess], open_runs: list[RunFinished]
    ) -> None:
        """What a crashed agent had accepted is accounted for before any center connects: its
        processes still running are stopped, and every accepted run without a final event is
        reported `lost`, outcome unknown, with what the agent found of it (never "not
        started": it may have run)."""
        journal = self._journal
        if journal is None or not (recorded or open_runs):
            return
        stopped = await stop_orphans(recorded)
        finals = unknown_outcomes(open_runs, recorded, {e.runid for e in stopped}, now_us())
        for event in finals:
            self.control.table.finish(event)
        log.warning(
            "agent.outcomes_unknown",
            count=len(finals),
            stopped=len(stopped),
            runids=[e.ref.runid for e in finals][:50],
        )
        await journal.committed()

    async def _start_metrics(self) -> None:
        """Serve /metrics if configured; a port that cannot be bound costs the metrics only."""
        listen = self.config.agent_metrics_listen
        if listen is None:
            return
        try:
            self._metrics_server = await start_metrics_server(self.metrics.registry, *listen)
        except OSError as exc:
            log.error("agent.metrics_unavailable", listen=str(listen), error=str(exc))
            return
        self.metrics_port = int(self._metrics_server.sockets[0].getsockname()[1])

    async def stop(self, *, force: bool = False) -> None:
        """Shut down: listener, connections, runs (grace, then kill), outbox. Idempotent."""
        if self.state is not RunState.SERVING:
            return
        self.state = RunState.STOPPING
        if force:
            self._force.set()
        log.info("agent.stopping", running=len(self.control.runs))
        assert self._server is not None and self._journal is not None
        self._server.close_listener()
        if self._metrics_server is not None:
            self._metrics_server.close()
        for task in self._background:
            task.cancel()
        await asyncio.wait(self._background)
        await self._server.close_connections()
        self.control.stop_daemons("agent shut down")  # they never end by themselves
        await self._stop_runs()
        self.control.table.preparer.discard_all()  # held processes never exec
        await self._journal.close()
        self.state = RunState.STOPPED
        log.info("agent.stopped")

    async def _stop_runs(self) -> None:
        """Grace for running processes, then stop them; a forced exit kills at once."""
        control = self.control
        grace_s = self.config.agent_kill_grace_s
        if await self._wait_runs(grace_s):
            return
        control.stop_all("agent shut down")
        kill_grace_s = max((h.msg.spec.kill_grace_s for h in control.runs.values()), default=0.0)
        if await self._wait_runs(kill_grace_s + OUTPUT_DRAIN_S + 1.0):
            return
        for handle in control.runs.values():
            if handle.pid:
                signal_group(handle.pid, signal.SIGKILL)
        tasks = control.run_tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=FORCED_WAIT_S)

    async def _wait_runs(self, timeout_s: float) -> bool:
        """True once every run has ended; False on timeout or a forced exit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        force = asyncio.ensure_future(self._force.wait())
        try:
            while (tasks := self.control.run_tasks) and not force.done():
                remaining_s = deadline - loop.time()
                if remaining_s <= 0:
                    return False
                await asyncio.wait(
                    {*tasks, force}, timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            force.cancel()
        return not self.control.run_tasks

    async def __aenter__(self) -> AgentService:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _tick(self) -> None:
        """Live output every TICK_S; forget old run ids now and then."""
        loop = asyncio.get_running_loop()
        pruned_at = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            self.control.pump_output()
            self.control.daemons.partition_check(self.sessions.silent_s())
            if loop.time() - pruned_at > PRUNE_EVERY_S:
                pruned_at = loop.time()
                assert self._journal is not None
                try:
                    await self._journal.call(self.outbox.prune_runids, now_us())
                except Exception as exc:  # sqlite3.Error: keep serving, try again later
                    log.error("agent.prune_failed", error=str(exc))

    # ------------------------------------------------------------ as a process

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down; a second signal forces the exit."""
        with self._capture_signals():
            await self.start()
            try:
                await self._exit.wait()
            finally:
                await self.stop()

    def request_exit(self, signum: int = signal.SIGTERM) -> None:
        """What a signal does: first ask for a graceful stop, then force it."""
        name = signal.Signals(signum).name
        if self._exit.is_set():
            log.warning("agent.force_exit", signal=name)
            self._force.set()
            return
        log.info("agent.exit_requested", signal=name)
        self._exit.set()

    @contextlib.contextmanager
    def _capture_signals(self) -> Iterator[None]:
        # signal.signal rather than loop.add_signal_handler: the previous handlers can be put
        # back afterwards (as uvicorn does); call_soon_threadsafe wakes the loop at once.
        """SIGTERM/SIGINT ask for an exit while serving; old handlers come back after."""
        loop = asyncio.get_running_loop()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            """Runs between bytecodes: only hand the signal to the loop."""
            loop.call_soon_threadsafe(self.request_exit, signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_agent(config: AgentConfig) -> int:
    """Run an agent in this process until a signal stops it; the exit code (1: cannot start)."""
    # The default loop, never uvloop: uvloop spawns ~3x slower and refuses user=/group=.
    if type(asyncio.get_event_loop_policy()) is not asyncio.DefaultEventLoopPolicy:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    use_pidfd_child_watcher()
    try:
        asyncio.run(AgentService(config).serve())
    except (AgentError, OSError) as exc:
        log.error("agent.start_failed", error=str(exc))
        return 1
    return 0


def use_pidfd_child_watcher() -> bool:
    """On Python 3.11, wait for children through pidfds rather than one thread per child.

    3.11's default watcher starts a thread for every process and the spawning task waits for
    that thread to run: under load that costs as much as the spawn itself. 3.12+ already uses
    pidfds by default (and deprecates choosing a watcher). True if the pidfd watcher is set.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel before 5.3, or a seccomp filter: keep the default
        return False
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    return True
