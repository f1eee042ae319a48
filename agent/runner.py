"""Spawn and supervise one process: user switch, own session, timeout, kill, capped output."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import structlog

from agent.accounts import AccountCache, cwd_problem, lookup_account, resolve_command
from agent.descendants import end_tree
from agent.errors import SpecError
from agent.gate import Go, Prepared, gate_argv, verdict_socket
from agent.handle import RunHandle
from agent.metrics import AgentMetrics
from agent.orphans import TrackedProcess, track
from agent.outcomes import exit_outcome, not_started
from agent.output import CapturedOutput, LiveTail, OutputBuffer
from agent.process import RunProtocol, exited_already, signal_group, terminate_group
from agent.runspec import Account, Launch, UserPolicy, plan_launch, spawn_failure_reason
from agent.spawned import ProcessTransport, ThreadSpawner
from agent.userswitch import (
    FORK_SWITCH,
    SETPRIV,
    UserSwitch,
    launcher_failure,
    post_drop_argv,
    setpriv_argv,
)
from protocol import statuses
from protocol.clock import now_us
from protocol.messages import Exec, RunFinished, RunStarted
from protocol.rlimits import limit_reason

# After the main process exits, wait this long for the pipe to close (background children
# may still hold it), then stop reading: the run is over when its main process is.
OUTPUT_DRAIN_S = 1.0
log = structlog.get_logger("agent.runner")


@dataclasses.dataclass(frozen=True, slots=True)
class _Spawn:
    """The argv, environment and credential options of one spawn."""

    argv: list[str]
    env: dict[str, str]
    creds: dict[str, Any] = dataclasses.field(default_factory=dict)


class Runner:
    """Runs one exec at a time per call: plan, spawn, supervise, report.

    `switch` is how a root agent becomes the run's user (see agent.userswitch); `on_tracked`
    gets each spawned process to remember until its run ends (see agent.orphans).

    The process gets its own session (`start_new_session=True`), so its process group holds it
    and everything it forks; stopping a run signals the whole group: TERM, a grace, then KILL.
    Output is read through a `SubprocessProtocol` rather than `Process.wait()`, because on
    Python 3.11 `wait()` only returns once every pipe is closed, which a background grandchild
    holding stdout can delay forever.
    """

    def __init__(
        self,
        policy: UserPolicy,
        on_started: Callable[[RunStarted], None],
        *,
        lookup: Callable[[str], Account | None] = lookup_account,
        output_cap_bytes: int = 1 << 30,
        switch: UserSwitch = FORK_SWITCH,
        on_tracked: Callable[[TrackedProcess], None] | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self._policy = policy
        self._on_started = on_started
        self._accounts = AccountCache(lookup)
        self._output_cap_bytes = output_cap_bytes
        self._switch = switch
        self._on_tracked = on_tracked
        self._metrics = metrics or AgentMetrics()
        self._spawner: ThreadSpawner | None = None  # made at the first preparation

    async def run(self, handle: RunHandle, prepared: Prepared | None = None) -> RunFinished:
        """Run to the end and return the RunFinished (seq 0: the outbox numbers it); with a
        process `prepared` for it, open its gate rather than spawning."""
        if prepared is not None:
            return await self._run_prepared(handle, prepared)
        msg = handle.msg
        try:
            launch, spawn = await self._plan(msg)
        except SpecError as exc:
            return not_started(msg, statuses.FAILED, exc.reason, now_us())
        if handle.stop_status:
            return not_started(msg, handle.stop_status, handle.stop_reason, now_us())
        output = OutputBuffer(min(msg.spec.output_max_bytes, self._output_cap_bytes))
        protocol = RunProtocol(output, handle.tail)
        try:
            transport = await self._spawn(spawn, protocol)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return not_started(msg, statuses.FAILED, spawn_failure_reason(exc, launch), now_us())
        return await self._carry(handle, launch, transport, protocol, output)

    async def prepare(self, msg: Exec, go: Go) -> Prepared:
        """Spawn `msg`'s process up to its gate (agent.gate); SpecError if it cannot start,
        OSError (or SubprocessError) if the spawn failed: the run then spawns at its second."""
        launch, spawn = await self._plan(msg, gated=True)
        output = OutputBuffer(min(msg.spec.output_max_bytes, self._output_cap_bytes))
        protocol = RunProtocol(output, LiveTail())
        ours, theirs = verdict_socket()
        if self._spawner is None:
            self._spawner = ThreadSpawner()
        try:
            transport = await self._spawner.spawn(
                spawn.argv,
                spawn.env,
                spawn.creds,
                protocol,
                stdin=go.read_fd,
                stderr=theirs.fileno(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return Prepared(
            msg, launch, transport=transport, protocol=protocol, output=output, sock=ours, go=go
        )

    async def _run_prepared(self, handle: RunHandle, prepared: Prepared) -> RunFinished:
        """Carry a held process let through its gate (`Prepared.admit`); its start is the
        kernel's stamp of its exec. One never admitted (asked to stop before) never execs;
        one that died at its gate is spawned afresh."""
        if not prepared.admitted:
            prepared.discard()
            status = handle.stop_status or statuses.KILLED
            return not_started(handle.msg, status, handle.stop_reason, now_us())
        try:
            start_us = await prepared.exec_instant()
        except BaseException:  # forced shutdown: leave nothing behind
            prepared.discard()
            raise
        if start_us is None:
            if handle.stop_status:  # killed at its gate: stopped before its commit landed
                prepared.discard()
                return not_started(handle.msg, handle.stop_status, handle.stop_reason, now_us())
            log.warning("run.prepared_lost", pid=prepared.pid)
            self._metrics.held_starts.labels(how="lost").inc()
            prepared.discard()
            return await self.run(handle)
        self._metrics.held_starts.labels(how="prepared").inc()
        handle.start_us = start_us
        return await self._carry(
            handle, prepared.launch, prepared.transport, prepared.protocol, prepared.output
        )

    async def _carry(
        self,
        handle: RunHandle,
        launch: Launch,
        transport: ProcessTransport,
        protocol: RunProtocol,
        output: OutputBuffer,
    ) -> RunFinished:
        """A started process: report it, supervise it, clean up after it, say how it ended."""
        pid = transport.get_pid()
        self._started(handle, pid, launch.account)
        returncode = await self._supervise(transport, protocol, handle)
        if handle.msg.spec.timeout_s > 0 or handle.stop_status:
            # A run with a time limit, or one stopped, owns its whole tree: nothing it started
            # (in its group, or gone to a session of its own) outlives it.
            await end_tree(handle.runid, launch.account.uid, pid, handle.msg.spec.kill_grace_s)
        return self._finished(handle, launch, returncode, output.result())

    async def _plan(self, msg: Exec, *, gated: bool = False) -> tuple[Launch, _Spawn]:
        """The launch and its spawn (held at a gate before the command if `gated`); SpecError
        if the run cannot start. A user not looked up lately is looked up (with the path
        checks) on a thread, off the loop."""
        user = msg.spec.run_user
        if not self._policy.switches_user or not user or self._accounts.cached(user):
            return self._plan_now(msg, gated)
        return await asyncio.to_thread(self._plan_now, msg, gated)

    def _plan_now(self, msg: Exec, gated: bool = False) -> tuple[Launch, _Spawn]:
        launch = plan_launch(msg, self._policy, self._accounts, cwd_problem)
        return launch, self._command(launch, gated)

    def _command(self, launch: Launch, gated: bool = False) -> _Spawn:
        """What to spawn: the privilege drop when switching, then, already as the run's user,
        prlimit, `env -C cwd` and the command. The rule's environment and directory reach only
        processes that run as that user: nothing running as root reads LD_PRELOAD or enters
        a directory for it. SpecError if the command cannot run as the user."""
        account, switch = launch.account, self._switch
        path_env = launch.env.get("PATH", os.defpath)
        executable = resolve_command(launch.argv[0], path_env, launch.cwd, account)
        if "=" in executable:  # env would take it for NAME=VALUE
            raise SpecError(f"command {executable!r}: a path with '=' in it cannot be started")
        argv, carrier = post_drop_argv(
            switch,
            launch.cwd,
            launch.env,
            [executable, *launch.argv[1:]],
            launch.limits,
            rule_env=launch.rule_env,
            gate=gate_argv("PWD" in launch.env) if gated else (),
        )
        if not launch.switch:
            return _Spawn(argv, carrier)
        if switch.method == SETPRIV:
            return _Spawn(setpriv_argv(switch.setpriv, account, argv), carrier)
        # CPython drops supplementary groups, then gid, then uid in the child: the safe order.
        creds = {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}
        return _Spawn(argv, carrier, creds)

    async def _spawn(
        self,
        spawn: _Spawn,
        protocol: RunProtocol,
        *,
        stdin: int = subprocess.DEVNULL,
        stderr: int = subprocess.STDOUT,
    ) -> asyncio.SubprocessTransport:
        """Start the process in its own session, in `/`: the run's directory is entered by the
        post-drop env, as the run's user (entering it as root raced the permission check)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            *spawn.argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd="/",
            env=spawn.env,
            start_new_session=True,
            **spawn.creds,
        )
        return transport

    def _started(self, handle: RunHandle, pid: int, account: Account) -> None:
        """The process exists: time it, report it, remember it until it ends."""
        start_us = handle.mark_started(pid)
        self._metrics.spawn_s.observe(time.monotonic() - handle.ready_mono)
        started = RunStarted(
            seq=0,
            ref=handle.msg.ref,
            pid=pid,
            start_us=start_us,
            run_user=account.name,
            uid=account.uid,
            gid=account.gid,
        )
        if self._on_tracked is not None:
            tracked = track(started, handle.msg.spec.kill_grace_s)
            if tracked is not None:
                self._on_tracked(tracked)
        self._on_started(started)

    def _finished(
        self, handle: RunHandle, launch: Launch, returncode: int, captured: CapturedOutput
    ) -> RunFinished:
        """The RunFinished of a process that ran."""
        status, code, signum, reason = exit_outcome(returncode, handle)
        if status == statuses.FAILED:
            failure = launcher_failure(code, captured.data, self._switch)
            limit = limit_reason(launch.limits, signum, captured.data)
            if failure is not None:
                reason = f"cannot start {launch.argv[0]!r}: {failure}"
            elif limit is not None:
                reason = f"{reason}: {limit}"
        account = launch.account
        return RunFinished(
            seq=0,
            ref=handle.msg.ref,
            status=status,
            end_us=now_us(),
            start_us=handle.start_us,
            pid=handle.pid,
            code=code,
            signal=signum,
            reason=reason,
            output=captured.data,
            output_bytes=captured.total_bytes,
            truncated=captured.truncated,
            run_user=account.name,
            uid=account.uid,
            gid=account.gid,
        )

    async def _supervise(
        self, transport: ProcessTransport, protocol: RunProtocol, handle: RunHandle
    ) -> int:
        """Wait for exit, a stop request or the timeout; always leaves the group dead or done."""
        pgid = transport.get_pid()
        timeout_s = handle.msg.spec.timeout_s
        stop_wait = asyncio.ensure_future(handle.stop_requested())
        try:
            await asyncio.wait(
                {protocol.exited, stop_wait},
                timeout=timeout_s if timeout_s > 0 else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if protocol.exited.done() or exited_already(pgid):
                # It ended on its own, before any signal of ours: that is its outcome, even if
                # a stop was asked meanwhile. (A frozen agent, SIGCONT'd, meets its timers and
                # frames before the exit the kernel queued for it: the exit came first.)
                handle.withdraw_stop()
                await protocol.exited
            else:
                handle.request_stop(statuses.TIMEOUT, f"timed out after {timeout_s:g} s")
                await terminate_group(pgid, protocol.exited, handle.msg.spec.kill_grace_s)
                await protocol.exited
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTPUT_DRAIN_S):
                    await asyncio.shield(protocol.eof)
        finally:
            stop_wait.cancel()
            if not protocol.exited.done():  # cancelled (forced shutdown): leave nothing behind
                signal_group(pgid, signal.SIGKILL)
            transport.close()
        returncode = transport.get_returncode()
        return returncode if returncode is not None else -signal.SIGKILL
