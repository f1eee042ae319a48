"""Pure process-model decisions: overlap at the cap, daemon backoff and health, desired state."""

from __future__ import annotations

import dataclasses
import enum
import signal
from dataclasses import dataclass

from protocol import statuses
from protocol.messages import DaemonsWanted, Exec, RunFinished, RunRef, RunSpec, make_runid
from protocol.vocabulary import Trigger

DAEMON_TRIGGER = Trigger.DAEMON
LAST_LINE_CHARS = 200

# ---------------------------------------------------------------- one-shot overlap


class Overlap(enum.Enum):
    """What to do with a newly accepted one-shot run of a rule."""

    START = "start"  # a slot is free: start now
    SKIP = "skip"  # record it as skipped, never start it
    QUEUE = "queue"  # wait for the next free slot
    REPLACE_RUNNING = "replace_running"  # stop the oldest running run, take its slot
    REPLACE_WAITING = "replace_waiting"  # the newest waiting run gives its place to this one


@dataclass(frozen=True, slots=True)
class RuleLoad:
    """A rule's one-shot runs on this agent when a new one arrives."""

    active: int  # runs holding a slot (running, starting, or being stopped)
    stoppable: int  # active runs nobody has asked to stop yet
    waiting: int  # accepted runs waiting for a slot (queued, or replacing a stopping run)


def decide_overlap(spec: RunSpec, load: RuleLoad) -> tuple[Overlap, str]:
    """The decision for a new run of `spec`'s rule, and the reason when it is skipped.

    `process_num` is the cap on concurrent runs of the rule on this agent. At the cap:
    `skip` records a skipped run; `queue` keeps at most one run waiting for a slot;
    `replace` stops the oldest running run and starts the new one in its slot;
    `parallel` is the explicit spelling for rules meant to overlap: up to `process_num`
    at once, and beyond that it skips exactly like `skip` (an unbounded fan-out of a
    runaway rule is never what an operator wants). An unknown policy behaves as `skip`.
    """
    cap = max(1, spec.process_num)
    if load.active + load.waiting < cap:  # waiting runs exist only at the cap, unless it rose
        return Overlap.START, ""
    at_cap = (
        f"{load.active} runs of rule {spec.task_id} already running "
        f"(process_num={spec.process_num})"
    )
    if spec.overlap == "queue":
        if load.waiting:
            return Overlap.SKIP, f"a run of rule {spec.task_id} is already queued"
        return Overlap.QUEUE, ""
    if spec.overlap == "replace":
        if load.stoppable:
            return Overlap.REPLACE_RUNNING, ""
        if load.waiting:
            return Overlap.REPLACE_WAITING, ""
    return Overlap.SKIP, at_cap


# ---------------------------------------------------------------- daemons: backoff and health


@dataclass(frozen=True, slots=True)
class DaemonPolicy:
    """Restart timing of daemon instances (from the agent_daemon_* settings)."""

    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    stable_s: float = 30.0
    crashloop_after: int = 3


@dataclass(frozen=True, slots=True)
class Health:
    """One instance's recent history: deaths in a row, and the delay before its restart."""

    failures: int = 0  # deaths in a row without staying up stable_s
    delay_s: float = 0.0  # the last restart delay (0: none yet, the next one is the first)

    def crash_looping(self, policy: DaemonPolicy) -> bool:
        """Whether this instance counts as crash-looping."""
        return self.failures >= max(1, policy.crashloop_after)


def after_exit(health: Health, uptime_s: float, requested: bool, policy: DaemonPolicy) -> Health:
    """The health after an exit; its `delay_s` is how long to wait before the restart.

    An instance that stayed up `stable_s` starts over (one short delay, no failure counted);
    one stopped on request restarts after the first delay and its failures stay as they were;
    any other exit is a failure and doubles the delay up to the cap.
    """
    if uptime_s >= policy.stable_s:
        return Health(0, policy.backoff_s)
    if requested:
        return Health(health.failures, policy.backoff_s)
    delay_s = policy.backoff_s if not health.delay_s else health.delay_s * 2
    return Health(health.failures + 1, min(delay_s, max(policy.backoff_s, policy.backoff_max_s)))


# ---------------------------------------------------------------- daemons: desired state


def launch_key(spec: RunSpec) -> tuple[object, ...]:
    """What a running instance was started with: a change here replaces instances.
    process_num, timeouts, output cap and updated_us apply without a restart."""
    return (spec.command, spec.shell, spec.run_user, tuple(sorted(spec.env.items())), spec.cwd)


def plan_wanted(current: dict[int, RunSpec], msg: DaemonsWanted) -> dict[int, RunSpec]:
    """The daemon rules wanted after `msg`: a complete set replaces everything; otherwise
    its specs are added or changed, then its `stopped` rules removed (stopped wins)."""
    wanted = {} if msg.complete else dict(current)
    for spec in msg.specs:
        wanted[spec.task_id] = spec
    for task_id in msg.stopped:
        wanted.pop(task_id, None)
    return wanted


def daemon_exec(spec: RunSpec, index: int, aid: int, start_us: int, epoch: int) -> Exec:
    """The run of one daemon instance start: its start time is its scheduled time, and daemons
    have no timeout (they are meant to run until stopped)."""
    ref = RunRef(
        runid=make_runid(spec.task_id, start_us, aid, 0, index),
        task_id=spec.task_id,
        sched_us=start_us,
        attempt=0,
        trigger=DAEMON_TRIGGER,
        instance=index,
    )
    return Exec(epoch=epoch, ref=ref, spec=dataclasses.replace(spec, timeout_s=0.0))


def exit_summary(event: RunFinished) -> str:
    """`exit 1: <last output line>`, `signal SIGKILL`, `cannot start: <reason>`."""
    if not event.start_us:
        head = (
            f"cannot start: {event.reason}"
            if event.status == statuses.FAILED
            else f"{event.status}: {event.reason}"
        )
    elif event.code is not None:
        head = f"exit {event.code}"
    elif event.signal is not None:
        head = f"signal {_signal_name(event.signal)}"
    else:
        head = event.status
    line = last_line(event.output)
    return f"{head}: {line}" if line else head


def last_line(output: bytes) -> str:
    """The last non-blank line of some output, decoded leniently and cut to a sane length."""
    for raw in reversed(output.splitlines()):
        text = raw.decode("utf-8", "replace").strip()
        if text:
            return text[:LAST_LINE_CHARS]
    return ""


def _signal_name(signum: int) -> str:
    """SIGKILL for 9; the number for one that names no signal."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


# ---------------------------------------------------------------- epoch fencing

# A lease's epoch grows by one per takeover. Any holder of the cluster secret can pose as a
# center, so a jump this large is taken for a forgery: obeying it would lock the real leader out.
MAX_EPOCH_STEP = 1_000_000


def epoch_refusal(epoch: int, highest: int) -> str:
    """Why a center's `epoch` is refused given the highest seen (-1: none yet), or ''."""
    if epoch < highest:
        return f"epoch {epoch} is below {highest}"
    if highest >= 0 and epoch - highest > MAX_EPOCH_STEP:
        return f"epoch {epoch} jumps more than {MAX_EPOCH_STEP} above {highest}"
    return ""


# ---------------------------------------------------------------- preparing held runs


class PrepareStep(enum.Enum):
    """What to do now with a run held until its second."""

    PREPARE = "prepare"  # fork it now and hold the process at its gate
    WAIT = "wait"  # too early: come back `wait_us` later
    SPAWN = "spawn"  # too late (or no room) to prepare: spawn it at its second as before


# Closer to its second than this, a preparation (two execs, a few ms under load) might not
# be ready in time; spawning at the second is then no slower.
PREPARE_MIN_LEAD_US = 20_000


def decide_prepare(
    now_us: int, due_us: int, ahead_us: int, held: int, max_held: int
) -> tuple[PrepareStep, int]:
    """(step, wait_us) for a held run due at `due_us`: prepared at most `ahead_us` early,
    never when `max_held` processes are held already (0 turns preparing off)."""
    lead_us = due_us - now_us
    if max_held <= 0 or ahead_us <= 0 or lead_us < PREPARE_MIN_LEAD_US:
        return PrepareStep.SPAWN, 0
    if lead_us > ahead_us:
        return PrepareStep.WAIT, lead_us - ahead_us
    if held >= max_held:
        return PrepareStep.SPAWN, 0
    return PrepareStep.PREPARE, 0
