"""Typed messages: one frozen dataclass per call, validated field by field on the way in."""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from protocol._fastbuild import Slow
from protocol._fastbuild import builder as fast_builder
from protocol.errors import BadParams, UnknownCall
from protocol.rlimits import Rlimits

M = TypeVar("M", bound="Message")
_Check = Callable[[Any], Any]


def make_runid(task_id: int, sched_us: int, aid: int, attempt: int = 0, instance: int = 0) -> str:
    """A run's id, the same whoever makes it: two leaders planning one fire (or an agent
    restarting a daemon instance the center also hears of) produce one id, which dedupes."""
    return f"{task_id}-{sched_us}-{aid}-{attempt}-{instance}"


class Message:
    """Base of every message; `CALL` is the envelope's "call" name."""

    CALL: ClassVar[str]
    __slots__ = ()

    def to_params(self) -> dict[str, Any]:
        return _dump_fields(self)

    @classmethod
    def from_params(cls: type[M], params: Any) -> M:
        """Validate decoded params into this message; raise BadParams naming the bad field."""
        return _build_message(cls, cls.CALL, params)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- nested values


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """What to run and how: the agent needs nothing else from the rule."""

    task_id: int
    command: str
    shell: bool = False
    run_user: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    timeout_s: float = 0.0
    kill_grace_s: float = 5.0
    output_max_bytes: int = 256 * 1024
    process_num: int = 1
    overlap: str = "skip"
    updated_us: int = 0
    # setrlimit values applied after the privilege drop; 0 = the agent's default.
    limit_mem_mb: int = 0
    limit_cpu_s: int = 0
    limit_nofile: int = 0
    limit_nproc: int = 0
    # Daemons: which instance numbers this agent runs (empty: 0 … process_num-1, a `listed`
    # rule), and how long it keeps them once no center is heard (0: for ever).
    instances: list[int] = field(default_factory=list)
    partition_stop_s: int = 0

    @property
    def limits(self) -> Rlimits:
        return Rlimits(self.limit_mem_mb, self.limit_cpu_s, self.limit_nofile, self.limit_nproc)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRef:
    """Who a run is: enough for the center to create its row if it has none yet."""

    runid: str
    task_id: int
    sched_us: int
    attempt: int = 0
    trigger: str = "schedule"
    instance: int = 0
    first_runid: str = ""
    parent_runid: str = ""
    flow_runid: str = ""  # the workflow run this run is a node of ("" when none)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """An agent's load figures, sent with every pong and registration."""

    cpu_pct: float = 0.0
    mem_pct: float = 0.0
    load1: float = 0.0
    procs: int = 0
    outbox: int = 0
    refusing: str = ""  # why it takes no new placements or strategy runs ("" when it does)


# ---------------------------------------------------------------- handshake


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    CALL = "hello"
    role: str
    name: str
    nonce: bytes
    version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge(Message):
    CALL = "challenge"
    nonce: bytes
    proofs: list[bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth(Message):
    CALL = "auth"
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome(Message):
    CALL = "welcome"
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Message):
    CALL = "error"
    code: str
    message: str
    runid: str = ""  # the run a refusal (e.g. stale_epoch on exec) is about


# ------------------------------------------------------- registration (agent -> center:9502)


@dataclass(frozen=True, slots=True, kw_only=True)
class Register(Message):
    CALL = "register"
    name: str
    host: str
    port: int
    version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    users: list[str] = field(default_factory=list)  # the users it may run as ([]: any but root)
    allow_root: bool = False
    agent_key: str = ""  # random, kept in the agent's state dir: its name is bound to it
    csr: str = ""  # built-in PKI: a PEM request for a certificate of its own key, in its name


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered(Message):
    CALL = "registered"
    agent_id: int
    status: int
    ca: str = ""  # built-in PKI: the CAs to trust (PEM bundle)
    cert: str = ""  # built-in PKI: the agent's certificate, once approved
    note: str = ""  # why no certificate came (pending approval, a refused CSR, …)


# ---------------------------------------------------------------- control (center -> agent:9501)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Message):
    CALL = "ping"
    epoch: int
    sent_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Exec(Message):
    CALL = "exec"
    epoch: int
    ref: RunRef
    spec: RunSpec
    shard_index: int = 0
    shard_total: int = 0
    # A manual run's extras: arguments appended to the command (split like it), and variables
    # over the rule's env. Empty for any other run, and in frames from older centers.
    params: str = ""
    env_override: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Kill(Message):
    """Stop one run (`runid`) or every run of a rule (`runid` empty)."""

    CALL = "kill"
    epoch: int
    task_id: int
    runid: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonsWanted(Message):
    """Desired daemon rules; `complete` means any daemon not listed must stop."""

    CALL = "daemons"
    epoch: int
    specs: list[RunSpec]
    complete: bool = False
    stopped: list[int] = field(default_factory=list)
    aid: int = 0  # the agent's id at the center: daemon instance run ids are made with it


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    CALL = "ack"
    seqs: list[int]


# ------------------------------------------------- reports (agent -> center, same connection)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Message):
    CALL = "pong"
    sent_ms: int
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState(Message):
    """Sent once after the handshake: what the agent still runs, what epoch it obeys."""

    CALL = "state"
    epoch: int
    running: list[str]
    agent_name: str = ""
    key_proof: bytes = b""  # auth.identity_proof: who answers at this address


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Message):
    CALL = "run_started"
    seq: int
    ref: RunRef
    pid: int
    start_us: int
    run_user: str = ""
    uid: int = -1
    gid: int = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutput(Message):
    """A live chunk of output; best effort, the final result carries head and tail."""

    CALL = "run_output"
    runid: str
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Message):
    CALL = "run_finished"
    seq: int
    ref: RunRef
    status: str
    end_us: int
    start_us: int = 0
    pid: int = 0
    code: int | None = None
    signal: int | None = None
    reason: str = ""
    output: bytes = b""
    output_bytes: int = 0
    truncated: bool = False
    run_user: str = ""
    uid: int = -1
    gid: int = -1
    # The agent accepted the run, then restarted before it could tell how it ended: the run may
    # have run, wholly or in part. `reason` says what the agent found of it.
    outcome_unknown: bool = False
    # The run ended before its RunStarted was due to be sent (`agent_start_report_delay_ms`):
    # none was or will be, and this frame stands for the start too (it has start_us and pid).
    start_unsent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStatus(Message):
    CALL = "daemon_status"
    task_id: int
    wanted: int
    running: int
    crash_looping: bool = False
    last_exit: str = ""


MESSAGES: dict[str, type[Message]] = {
    cls.CALL: cls
    for cls in (
        Hello,
        Challenge,
        Auth,
        Welcome,
        Error,
        Register,
        Registered,
        Ping,
        Exec,
        Kill,
        DaemonsWanted,
        Ack,
        Pong,
        AgentState,
        RunStarted,
        RunOutput,
        RunFinished,
        DaemonStatus,
    )
}


def message_from_envelope(call: Any, params: Any) -> Message:
    """Build the typed message for a decoded envelope, or raise a ProtocolError."""
    if not isinstance(call, str):
        raise UnknownCall(repr(call)[:64])
    cls = MESSAGES.get(call)
    if cls is None:
        raise UnknownCall(call[:64])
    return cls.from_params(params)


# ---------------------------------------------------------------- validation
#
# Hot path: the center encodes an `exec` per fire and decodes a report per run, thousands per
# tick. So per class the field list is compiled once into (name, check) pairs, checks take the
# value alone, and the dotted path of a bad field is assembled only when one is found.


class _Invalid(Exception):
    """A value failed its check; `parts` gains ".name" / "[i]" as it leaves nested values."""

    def __init__(self, reason: str, *parts: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts = list(parts)  # innermost first

    def bad_params(self, call: str) -> BadParams:
        path = "".join(reversed(self.parts)).removeprefix(".")
        return BadParams(call, path or "params", self.reason)


_MISSING: Any = object()
_PLAIN = (int, float, str, bool, bytes)
_NONE = type(None)
_Dumper = Callable[[Any], Any]
_DUMPERS: dict[type, tuple[tuple[str, _Dumper | None], ...]] = {}
_CHECKS: dict[type, tuple[tuple[str, _Check, bool], ...]] = {}


def _build_message(cls: type, call: str, params: Any) -> Any:
    try:
        return fast_builder(cls)(params)
    except Slow:
        pass  # not plainly well-formed: the generic path accepts it or names the problem
    try:
        return _build(cls, params)
    except _Invalid as exc:
        raise exc.bad_params(call) from None


def params_of(value: Any) -> dict[str, Any]:
    """A message's or nested value's (RunSpec, RunRef) params, as `to_params` gives them."""
    return _dump_fields(value)


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dump_fields(value)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _dump_fields(obj: Any) -> dict[str, Any]:
    dumpers = _DUMPERS.get(type(obj))
    if dumpers is None:
        dumpers = _DUMPERS[type(obj)] = _compile_dumpers(type(obj))
    return {
        name: getattr(obj, name) if dump is None else dump(getattr(obj, name))
        for name, dump in dumpers
    }


def _compile_dumpers(cls: type) -> tuple[tuple[str, _Dumper | None], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _dumper(hints[f.name])) for f in dataclasses.fields(cls))


def _dumper(tp: Any) -> _Dumper | None:
    """How to make a field's value msgpack-ready; None when it already is."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _PLAIN or (origin is dict and args[1] in _PLAIN):
        return None
    if origin is list and args[0] in _PLAIN:
        return list  # a copy: params never alias a message's own list
    if origin in (types.UnionType, typing.Union) and all(a in _PLAIN or a is _NONE for a in args):
        return None
    return _dump


def _build(cls: type, params: Any) -> Any:
    if not isinstance(params, dict):
        raise _Invalid(f"must be a map, got {type(params).__name__}")
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = _compile(cls)
    kwargs = {}
    for name, check, required in checks:
        value = params.get(name, _MISSING)
        if value is not _MISSING:
            try:
                kwargs[name] = check(value)
            except _Invalid as exc:
                exc.parts.append(f".{name}")
                raise
        elif required:
            raise _Invalid("is missing", f".{name}")
    return cls(**kwargs)


def _compile(cls: type) -> tuple[tuple[str, _Check, bool], ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, _checker(hints[f.name]), required))
    return tuple(out)


# Every integer on the wire ends in a signed 64-bit column or a C long somewhere; msgpack itself
# carries uint64, so 2**64 - 1 would decode fine and then break a BIGINT insert far from here.
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _scalar(expected: type) -> _Check:
    if expected is int:
        return _check_int
    if expected is float:
        return _check_float
    label = expected.__name__

    # Only int and float need care with bool (an int subclass): a flag is never a count.
    def check(value: Any) -> Any:
        if isinstance(value, expected):
            return value
        raise _Invalid(f"must be {label}, got {type(value).__name__}")

    return check


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and type(value) is not bool:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        raise _Invalid("is out of the signed 64-bit range")
    raise _Invalid(f"must be int, got {type(value).__name__}")


def _check_float(value: Any) -> Any:
    if type(value) is float and math.isfinite(value):
        return value
    if not isinstance(value, int | float) or type(value) is bool:
        raise _Invalid(f"must be float, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    # NaN and infinities compare and sort oddly and MySQL refuses them: never let one in.
    if not math.isfinite(number):
        raise _Invalid("must be a finite number")
    return number


def _checker(tp: Any) -> _Check:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp in _PLAIN:
        return _scalar(tp)
    if dataclasses.is_dataclass(tp):
        return functools.partial(_build, typing.cast(type, tp))
    if origin is list:
        return _list_checker(_checker(args[0]))
    if origin is dict:
        return _dict_checker(_checker(args[1]))
    if origin in (types.UnionType, typing.Union) and _NONE in args:
        inner = _checker(next(a for a in args if a is not _NONE))
        return lambda value: None if value is None else inner(value)
    raise TypeError(f"unsupported message field type {tp!r}")


def _list_checker(item: _Check) -> _Check:
    def check_list(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Invalid(f"must be a list, got {type(value).__name__}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except _Invalid as exc:
                exc.parts.append(f"[{i}]")
                raise
        return out

    return check_list


def _dict_checker(val: _Check) -> _Check:
    def check_dict(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(f"must be a map, got {type(value).__name__}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Invalid("must have string keys")
            try:
                out[k] = val(v)
            except _Invalid as exc:
                exc.parts.append(f".{k}")
                raise
        return out

    return check_dict
