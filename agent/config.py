"""The agent's one frozen config, built at start from flags, env and an optional TOML file."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import NoDecode

from agent.decisions import DaemonPolicy
from protocol.framing import MAX_FRAME_BYTES
from protocol.rlimits import Rlimits
from protocol.settings import (
    HostPort,
    HostPortField,
    HostPortsField,
    OptionalHostPortField,
    ProcessSettings,
    SecretsField,
    is_wildcard,
    own_address,
    parse_host_port,
)
from protocol.tls import TlsFiles, tls_files
from protocol.vocabulary import TlsMode

MIB = 1 << 20


def _comma_list(value: Any) -> tuple[str, ...]:
    """`a, b,c` (or a list) as a tuple of non-empty stripped items."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def _labels(value: Any) -> dict[str, str]:
    """`k=v,k2=v2` (or a map) as a dict; a label without `=` is an error naming it."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for item in _comma_list(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label {item!r} is not key=value")
        out[key.strip()] = val.strip()
    return out


def _optional_host_port(value: Any) -> HostPort | None:
    """An empty or missing value means: derive it from the listen address."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_host_port(value)


# NoDecode: pydantic-settings would otherwise read tuple-typed env values as JSON.
AdvertiseField = Annotated[HostPort | None, BeforeValidator(_optional_host_port), NoDecode]
NamesField = Annotated[tuple[str, ...], BeforeValidator(_comma_list), NoDecode]
LabelsField = Annotated[dict[str, str], BeforeValidator(_labels), NoDecode]


class AgentConfig(ProcessSettings):
    """Settings of `unitedcron agent`; each is also UNITEDCRON_<NAME> and a TOML key.

    Daemon rules (`is_daemon = 1`):
    * `agent_daemon_backoff_s` [1]: the delay before restarting an instance that exited;
      it doubles with every exit in a row, up to
    * `agent_daemon_backoff_max_s` [60].
    * `agent_daemon_stable_s` [30]: an instance up this long starts over: the next restart
      waits `agent_daemon_backoff_s` and its failure count goes back to 0.
    * `agent_daemon_crashloop_after` [3]: this many exits in a row, each before
      `agent_daemon_stable_s`, mark the rule crash-looping (it keeps being restarted).

    Limits (each hit is one `agent.limit_reached` line and `unitedcron_agent_limit_hits_total`):
    * `agent_max_connections` [64]: open connections to the agent port, authenticated or not;
      one more is closed at once, before any handshake.
    * `agent_max_processes` [512]: runs with a process at once (one-shots and daemon instances);
      a run beyond it ends `skipped` with the reason.
    * `agent_live_output_backlog_bytes` [1 MiB]: unsent bytes on the leader's connection above
      which live output chunks wait (the final result still has head and tail).
    * `agent_outbox_max_events` [100000]: unacked events kept; above it the oldest `run_started`
      events are dropped (a `run_finished` never is).
    * `agent_max_frame_bytes` [1 MiB]: a larger frame closes the connection.

    Per-run limits (applied with prlimit after the privilege drop, for rules that set none):
    `agent_limit_mem_mb`, `agent_limit_cpu_s`, `agent_limit_nofile`, `agent_limit_nproc` [0: none].
    `agent_allow_loader_env` [false]: let a rule's env set loader variables (LD_PRELOAD…); they
    reach only the process already running as the rule's user. Logged as a warning at start.

    Starting on the second (agent.prepared): a run the center sent ahead of its time gets its
    process ready (forked as its user, held before exec) up to `agent_prepare_ahead_ms`
    [2000] before its second, at most `agent_prepare_max` [2000] at once (0 turns it off;
    also capped by the open-file limit, three descriptors each).

    `agent_start_report_delay_ms` [500]: a run's `run_started` waits this long before it is
    sent; a run that ends meanwhile sends only its `run_finished` (most cron runs are that
    short: one event per run for the outbox, the link and the center). 0 sends each at once.

    `agent_user_switch` [auto]: how a root agent starts a run as its user: `setpriv` (exec
    through util-linux setpriv, which keeps CPython's fast vfork), `fork` (CPython's own
    user=/group= switch, a full fork of the agent per run), or `auto` (setpriv when it is
    present and works, else fork).
    """

    secret: SecretsField = Field(repr=False)
    agent_listen: HostPortField = HostPort("0.0.0.0", 9501)
    agent_center: HostPortsField = (HostPort("127.0.0.1", 9502),)
    agent_advertise: AdvertiseField = None
    agent_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=255)
    agent_state_dir: Path = Path("./unitedcron-agent")
    agent_allow_root: bool = False
    agent_allowed_users: NamesField = ()
    agent_register_interval_s: float = Field(default=10.0, gt=0.05, le=3600)
    agent_labels: LabelsField = Field(default_factory=dict)
    agent_max_frame_bytes: int = Field(default=MAX_FRAME_BYTES, ge=1024, le=64 << 20)
    agent_kill_grace_s: float = Field(default=5.0, ge=0, le=600)
    agent_daemon_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    agent_daemon_backoff_max_s: float = Field(default=60.0, gt=0, le=86400)
    agent_daemon_stable_s: float = Field(default=30.0, gt=0, le=86400)
    agent_daemon_crashloop_after: int = Field(default=3, ge=1, le=1000)
    agent_max_connections: int = Field(default=64, ge=1, le=100_000)
    agent_max_processes: int = Field(default=512, ge=1, le=1_000_000)
    # Admission for fleet services and strategy runs: past either, the agent says so in its
    # heartbeat and gets no new placements (0 turns each off).
    agent_max_load: float = Field(default=0.0, ge=0, le=1000)  # 1-minute load per core
    agent_min_free_mem_mb: int = Field(default=0, ge=0, le=1 << 24)
    agent_live_output_backlog_bytes: int = Field(default=MIB, ge=0, le=1 << 30)
    agent_outbox_max_events: int = Field(default=100_000, ge=10, le=100_000_000)
    agent_user_switch: Literal["auto", "setpriv", "fork"] = "auto"
    agent_prepare_max: int = Field(default=2000, ge=0, le=100_000)
    agent_prepare_ahead_ms: int = Field(default=2000, ge=0, le=60_000)
    agent_start_report_delay_ms: int = Field(default=500, ge=0, le=2000)
    # Per-run limits for rules that set none (0 = none): address space, CPU, files, processes.
    agent_limit_mem_mb: int = Field(default=0, ge=0, le=1 << 24)
    agent_limit_cpu_s: int = Field(default=0, ge=0, le=366 * 86400)
    agent_limit_nofile: int = Field(default=0, ge=0, le=1 << 20)
    agent_limit_nproc: int = Field(default=0, ge=0, le=1 << 22)
    # Loader variables (LD_PRELOAD, GCONV_PATH, …) in a rule's env: refused unless this is on.
    agent_allow_loader_env: bool = False
    # Prometheus /metrics; empty turns it off. Loopback by default: figures are not public.
    agent_metrics_listen: OptionalHostPortField = HostPort("127.0.0.1", 9601)
    # Mutual TLS 1.3 on the agent port and towards the centers, from the cluster's built-in PKI
    # (a key made here, a certificate signed once approved), unless the operator's own PEM files
    # are given (all three), or plain text is asked for by name (a warning at every start).
    insecure_plaintext: bool = False
    agent_tls_ca: Path | None = None
    agent_tls_cert: Path | None = None
    agent_tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_complete(self) -> AgentConfig:
        """All three TLS files or none, said with the settings' names."""
        try:
            files = tls_files(self.agent_tls_ca, self.agent_tls_cert, self.agent_tls_key)
        except ValueError as exc:
            raise ValueError(f"agent_tls_ca, agent_tls_cert, agent_tls_key: {exc}") from None
        if files and self.insecure_plaintext:
            raise ValueError("insecure_plaintext and agent_tls_* exclude each other")
        return self

    @property
    def tls(self) -> TlsFiles | None:
        """The operator's TLS files, or None (the built-in PKI, or plain text)."""
        return tls_files(self.agent_tls_ca, self.agent_tls_cert, self.agent_tls_key)

    @property
    def tls_mode(self) -> TlsMode:
        if self.insecure_plaintext:
            return TlsMode.PLAINTEXT
        return TlsMode.FILES if self.tls else TlsMode.BUILTIN

    def default_limits(self) -> Rlimits:
        """The per-run limits for rules that leave theirs at 0."""
        return Rlimits(
            self.agent_limit_mem_mb,
            self.agent_limit_cpu_s,
            self.agent_limit_nofile,
            self.agent_limit_nproc,
        )

    def daemon_policy(self) -> DaemonPolicy:
        """The daemon restart timing these settings ask for."""
        return DaemonPolicy(
            backoff_s=self.agent_daemon_backoff_s,
            backoff_max_s=max(self.agent_daemon_backoff_s, self.agent_daemon_backoff_max_s),
            stable_s=self.agent_daemon_stable_s,
            crashloop_after=self.agent_daemon_crashloop_after,
        )

    def advertise_address(self, bound_port: int) -> HostPort:
        """What the center should dial: the setting, else the listen host (own address for a
        wildcard), with the actually bound port when the setting's port is 0."""
        if self.agent_advertise is not None:
            host, port = self.agent_advertise
        else:
            host, port = self.agent_listen.host, 0
            if is_wildcard(host):
                host = own_address()
        return HostPort(host, port or bound_port)
