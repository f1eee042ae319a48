"""Which agent may report which run: the table of the pure guard."""

from __future__ import annotations

import pytest

from center.output_budget import OutputBudget
from center.report_guard import Verdict, judge_report, names_run, parse_runid
from center.routing import AgentInfo
from center.rules import Rule
from protocol.messages import DaemonStatus, RunFinished, RunOutput, RunRef, make_runid

AGENTS = {
    1: AgentInfo(id=1, name="a", ip="127.0.0.1", port=1, status=1, gid=10),
    2: AgentInfo(id=2, name="b", ip="127.0.0.1", port=2, status=1, gid=20),
    3: AgentInfo(id=3, name="c", ip="127.0.0.1", port=3, status=1, gid=10),
}
LISTED = Rule(id=7, gid=10, rule="* * * * *", execute="true", agents=(1,))
ROUTED = Rule(id=8, gid=10, rule="* * * * *", execute="true", routing="hash")
RULES = {7: LISTED, 8: ROUTED}


def _finished(task_id: int, aid_in_id: int, trigger: str = "schedule") -> RunFinished:
    runid = make_runid(task_id, 5, aid_in_id)
    ref = RunRef(runid=runid, task_id=task_id, sched_us=5, trigger=trigger)
    return RunFinished(seq=1, ref=ref, status="success", end_us=6)


@pytest.mark.parametrize(
    ("message", "aid", "verdict"),
    [
        (_finished(7, 1), 1, Verdict.ACCEPT),  # its own run of a rule that lists it
        (_finished(7, 1), 2, Verdict.REFUSE),  # another agent's run id
        (_finished(7, 2), 2, Verdict.CHECK),  # its id, but the rule does not list it
        (_finished(7, 2, "daemon"), 2, Verdict.REFUSE),  # a daemon it does not run
        (_finished(8, 3), 3, Verdict.ACCEPT),  # a routed rule's group member
        (_finished(8, 2), 2, Verdict.CHECK),  # another group
        (_finished(99, 1), 1, Verdict.CHECK),  # rule deleted: only if planned there
        (RunOutput(runid=make_runid(7, 5, 1), offset=0, data=b"x"), 1, Verdict.ACCEPT),
        (RunOutput(runid=make_runid(7, 5, 1), offset=0, data=b"x"), 2, Verdict.REFUSE),
        (RunOutput(runid="not-a-run-id", offset=0, data=b"x"), 2, Verdict.REFUSE),
        (DaemonStatus(task_id=7, wanted=1, running=1), 1, Verdict.ACCEPT),
        (DaemonStatus(task_id=7, wanted=1, running=1), 2, Verdict.REFUSE),
    ],
)
def test_judge_report(message, aid, verdict):
    """A report is accepted from the agent its run id names, for a rule that uses it."""
    assert judge_report(message, aid, RULES, AGENTS).verdict is verdict


def test_forged_ref_fields_do_not_match_the_id():
    """A ref whose fields differ from what its id says is refused."""
    msg = _finished(7, 1)
    forged = RunFinished(
        seq=1, ref=RunRef(runid=msg.ref.runid, task_id=8, sched_us=5), status="success", end_us=6
    )
    assert judge_report(forged, 1, RULES, AGENTS).verdict is Verdict.REFUSE
    assert parse_runid("1-2-3-4-5") == (1, 2, 3, 4, 5)
    assert parse_runid("1-2-3") is None


@pytest.mark.parametrize(
    ("runid", "ids", "named"),
    [
        ("7-5-1-0-0", (7, 5, 1, 0, 0), True),  # as make_runid writes it: compared as text
        ("7-5-1-0-0", (7, 5, 2, 0, 0), False),
        ("07-5-1-0-0", (7, 5, 1, 0, 0), True),  # another spelling: parsed, as before
        ("7-5-1-0", (7, 5, 1, 0, 0), False),
        ("-7-5-1-0-0", (-7, 5, 1, 0, 0), False),  # a sign: never an id's, text equal or not
        ("7-5-1-0-1", (7, 5, 1, 0, 1), True),
    ],
)
def test_names_run_is_parse_runid_compared(runid, ids, named):
    """The text comparison's shortcut decides as comparing the parsed id does."""
    assert names_run(runid, ids) is named
    assert (parse_runid(runid) == ids) is named


def test_output_budget_bounds_each_run_and_each_agent():
    """A run's live output stops at its bound; an agent's at its rate, refilled with time."""
    budget = OutputBudget(rate_bytes_s=100)  # bursts of 400 bytes
    assert budget.admit(1, "r1", 60, run_limit=100, now_s=0.0)
    assert not budget.admit(1, "r1", 60, run_limit=100, now_s=0.0)  # over the run's bound
    assert budget.admit(1, "r2", 300, run_limit=1000, now_s=0.0)
    assert not budget.admit(1, "r3", 100, run_limit=1000, now_s=0.0)  # agent's burst spent
    assert budget.admit(2, "r4", 100, run_limit=1000, now_s=0.0)  # another agent's own
    assert budget.admit(1, "r3", 100, run_limit=1000, now_s=1.0)  # refilled
