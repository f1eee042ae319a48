"""The one vocabulary of UnitedCron: every status, policy and kind, shared by center, agent and
admin. The values are what the database stores and the wire carries; they never change."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class RunStatus(StrEnum):
    PLANNED = "planned"  # row written by the leader; not yet sent
    DISPATCHED = "dispatched"  # exec sent to the agent
    RUNNING = "running"  # the agent reported the process started
    SUCCESS = "success"  # exited 0
    FAILED = "failed"  # exited non-zero, or could not start (reason says why)
    TIMEOUT = "timeout"  # killed for running past timeout_s
    KILLED = "killed"  # stopped on request (kill, replace, pause, shutdown) or by a signal
    SKIPPED = "skipped"  # not started on purpose (overlap policy, rule paused before dispatch)
    MISSED = "missed"  # its time passed with nobody to plan or run it (misfire policy skip)
    LOST = "lost"  # its agent no longer knows it, or cannot tell how it ended (reason says)


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    MISFIRE = "misfire"
    DEPENDENCY = "dependency"
    DAEMON = "daemon"
    FLOW = "flow"  # a node of a workflow run


class Overlap(StrEnum):
    """A one-shot rule at its process_num cap."""

    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"
    PARALLEL = "parallel"


class Misfire(StrEnum):
    """Fires missed while no center led."""

    SKIP = "skip"
    ONCE = "once"
    ALL = "all"


class Routing(StrEnum):
    LISTED = "listed"
    LEAST_LOADED = "least_loaded"
    ROUND_ROBIN = "round_robin"
    HASH = "hash"


class DependsWhen(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ALWAYS = "always"


class RetryUnknown(StrEnum):
    """A run whose outcome is unknown: `never` retried (at most once), or `retry`."""

    NEVER = "never"
    RETRY = "retry"


class CalendarMode(StrEnum):
    """How a rule's calendar filters its fires, by the fire's local date."""

    ONLY = "only"  # fire only on the calendar's days
    EXCEPT = "except"  # fire on every day but the calendar's


class CalendarFallback(StrEnum):
    """A fire on a date the calendar has no data for (past a built-in's last year)."""

    SKIP = "skip"  # does not run
    WEEKDAYS = "weekdays"  # judged by its day of the week alone, as if no holiday were declared


class CommandKind(StrEnum):
    """What an operator asks of the leader through center_command."""

    RUN = "run"
    KILL = "kill"
    KILL_RULE = "kill_rule"
    REBALANCE = "rebalance"  # move a fleet service's instances toward an even spread
    FLOW_RUN = "flow_run"  # start a workflow run now (task_id holds the workflow id)
    FLOW_RERUN = "flow_rerun"  # re-run a node and what follows it (runid: flow run, task_id)


class CommandStatus(StrEnum):
    """Where an operator's center_command stands."""

    PENDING = "pending"  # not yet carried out by the leader
    DONE = "done"
    FAILED = "failed"


class FlowJoin(StrEnum):
    """When a workflow node with several parents starts: once all have ended as their edges
    ask, or at the first that has."""

    ALL = "all"
    ANY = "any"


class FlowStatus(StrEnum):
    """A workflow run's state; its nodes' states are their runs' (RunStatus)."""

    RUNNING = "running"
    SUCCESS = "success"  # every node ended and none failed
    FAILED = "failed"  # a node failed, timed out, was killed or lost
    SKIPPED = "skipped"  # not started (overlap skip, misfire), reason says why
    QUEUED = "queued"  # waits for the workflow's running flow run to end (overlap queue)


class RuleStatus(IntEnum):
    DELETED = -1
    PAUSED = 0
    ENABLED = 1


class AgentStatus(IntEnum):
    DELETED = -1
    PENDING = 0  # also: disabled by an operator
    ENABLED = 1
    UNREACHABLE = 2


class CertRole(StrEnum):
    """What a cluster certificate may act as (its subject's OU): a center never takes an agent's."""

    CENTER = "center"
    AGENT = "agent"


class TlsMode(StrEnum):
    """How a link is protected: the built-in PKI (default), the operator's own files, or nothing
    (only behind UNITEDCRON_INSECURE_PLAINTEXT, with a warning at every start)."""

    BUILTIN = "builtin"
    FILES = "files"
    PLAINTEXT = "plaintext"


class CaState(StrEnum):
    """A cluster CA's part: `active` signs new agent certificates; `retiring` is still trusted
    (and signs the centers' own, so agents that know only it accept them) until retired."""

    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


class AlertChannelKind(StrEnum):
    """Where an alert channel sends (alert_channel.kind): a signed JSON webhook, email, or a
    chat group's robot on one of the chat platforms, in that platform's own format."""

    WEBHOOK = "webhook"
    EMAIL = "email"
    DINGTALK = "dingtalk"
    WECOM = "wecom"
    FEISHU = "feishu"
    SLACK = "slack"
