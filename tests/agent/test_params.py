"""A manual run's params and env overrides at the agent (pure): how they join the command and
the rule's env, and that the overrides take the rule env's confined way past the drop."""

from __future__ import annotations

import pytest

from agent.errors import SpecError
from agent.runspec import Account, UserPolicy, plan_launch, split_command
from agent.userswitch import CARRIER, UserSwitch, post_drop_argv
from protocol.codec import decode_payload, encode
from protocol.framing import FrameDecoder
from protocol.messages import Exec, RunRef, RunSpec
from protocol.rlimits import NO_LIMITS

ROOT = Account("root", 0, 0, "/root", "/bin/sh")
NOBODY = Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin")


@pytest.mark.parametrize(
    ("command", "shell", "params", "argv"),
    [
        ("/bin/echo x", False, "", ("/bin/echo", "x")),
        ("/bin/echo x", False, "'a b' c", ("/bin/echo", "x", "a b", "c")),
        ("/bin/echo x", False, "$(id);ls", ("/bin/echo", "x", "$(id);ls")),
        ("echo $A", True, "", ("/bin/sh", "-c", "echo $A")),
        ("echo $A", True, "'a b' c", ("/bin/sh", "-c", "echo $A 'a b' c")),
        ("echo", True, "$(id) ;ls `x`", ("/bin/sh", "-c", "echo '$(id)' ';ls' '`x`'")),
    ],
)
def test_params_are_split_like_the_command(
    command: str, shell: bool, params: str, argv: tuple[str, ...]
) -> None:
    """Appended as arguments, never as shell code: a shell rule gets each one quoted."""
    assert split_command(command, shell, params) == argv


def test_unsplittable_params_are_refused() -> None:
    with pytest.raises(SpecError, match="params cannot be split"):
        split_command("/bin/echo", False, "'open")


def _exec(env_override: dict[str, str], **spec: object) -> Exec:
    ref = RunRef(runid="1-2-3-0-0", task_id=1, sched_us=2, trigger="manual")
    values = {"task_id": 1, "command": "/bin/true", "run_user": "nobody"} | spec
    return Exec(epoch=1, ref=ref, spec=RunSpec(**values), params="x", env_override=env_override)  # type: ignore[arg-type]


def _launch(msg: Exec, **policy: object):  # type: ignore[no-untyped-def]
    return plan_launch(msg, UserPolicy(ROOT, **policy), lambda name: NOBODY, lambda p, a: None)  # type: ignore[arg-type]


def test_overrides_win_over_the_rule_env_and_travel_as_the_rule_env() -> None:
    """The override beats the rule's value, keeps the others, and makes the launch carry
    the rule's variables past the privilege drop under carrier names only."""
    launch = _launch(_exec({"MODE": "manual"}, env={"MODE": "rule", "KEEP": "1"}))
    assert launch.argv == ("/bin/true", "x")
    assert (launch.env["MODE"], launch.env["KEEP"], launch.rule_env) == ("manual", "1", True)
    switch = UserSwitch("setpriv", "/usr/bin/setpriv")
    argv, carrier = post_drop_argv(switch, "/", launch.env, list(launch.argv), NO_LIMITS)
    assert "manual" not in " ".join(argv) and "MODE" not in carrier
    assert set(carrier) == {f"{CARRIER}{i}" for i in range(len(launch.env))}
    assert _launch(_exec({"MODE": "m"})).rule_env, "an override alone takes the same way"


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_AUDIT", "GCONV_PATH"])
def test_a_loader_variable_in_an_override_is_refused_like_in_the_rule(name: str) -> None:
    with pytest.raises(SpecError, match="dynamic loader"):
        _launch(_exec({name: "/tmp/evil.so"}))
    assert _launch(_exec({name: "/x"}), allow_loader_env=True).env[name] == "/x"


@pytest.mark.parametrize("name", ["UNITEDCRON_RUNID", "1X", "A-B", "É"])
def test_an_override_no_rule_could_set_is_refused(name: str) -> None:
    with pytest.raises(SpecError, match="not a variable a run may set"):
        _launch(_exec({name: "x"}))


def test_an_exec_of_an_older_center_decodes_without_extras() -> None:
    """Frames without the new fields (an older center) decode with none."""
    msg = _exec({})
    params = msg.to_params()
    del params["params"], params["env_override"]
    old = Exec.from_params(params)
    assert (old.params, old.env_override) == ("", {})
    (frame,) = FrameDecoder().feed(encode(msg))
    assert decode_payload(frame) == msg
