"""Pure pieces and the outbox, tested directly: output buffers, run-spec rules, durable events."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import AgentConfig
from agent.errors import SpecError, StateDirError
from agent.identity import KEY_FILE, load_or_create_key
from agent.outbox import Outbox
from agent.output import LiveTail, OutputBuffer
from agent.runspec import Account, UserPolicy, build_env, choose_account, may_search, split_command
from protocol.messages import RunFinished, RunRef, RunSpec, RunStarted
from protocol.settings import is_wildcard

ROOT = Account("root", 0, 0, "/root", "/bin/bash", (0,))
NOBODY = Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin", (65534,))
ALICE = Account("alice", 1000, 1000, "/home/alice", "/bin/bash", (1000, 27))
USERS = {a.name: a for a in (ROOT, NOBODY, ALICE)}


def test_output_under_cap_is_kept_whole() -> None:
    """Output within the cap is returned as is, not truncated."""
    buf = OutputBuffer(10)
    for chunk in (b"abc", b"de"):
        buf.feed(chunk)
    result = buf.result()
    assert (result.data, result.total_bytes, result.truncated) == (b"abcde", 5, False)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
def test_output_over_cap_keeps_head_and_tail(chunk: int) -> None:
    """Whatever the chunking, the head, the tail and the true total are exact."""
    data = bytes(range(256)) * 4
    buf = OutputBuffer(100)
    for i in range(0, len(data), chunk):
        buf.feed(data[i : i + chunk])
    result = buf.result()
    assert result.truncated and result.total_bytes == 1024
    assert result.data == data[:50] + b"\n[... 924 bytes skipped ...]\n" + data[-50:]


def test_output_cap_zero_keeps_nothing() -> None:
    """A cap of 0 keeps no bytes but still counts them."""
    buf = OutputBuffer(0)
    buf.feed(b"xyz")
    assert buf.result().total_bytes == 3 and buf.result().truncated


def test_live_tail_coalesces_and_skips() -> None:
    """The live tail holds one contiguous chunk up to its limit; later bytes are skipped."""
    tail = LiveTail(limit=4)
    assert tail.take() is None
    tail.feed(b"ab")
    tail.feed(b"cdef")  # "ef" does not fit
    tail.feed(b"gh")  # skipped: the chunk must stay contiguous
    assert tail.take() == (0, b"abcd")
    tail.feed(b"ij")
    assert tail.take() == (8, b"ij")


@pytest.mark.parametrize(
    ("command", "shell", "argv"),
    [
        ("/usr/bin/id -un", False, ("/usr/bin/id", "-un")),
        ("echo 'a b' \"c d\"", False, ("echo", "a b", "c d")),
        ("echo $HOME | wc", True, ("/bin/sh", "-c", "echo $HOME | wc")),
    ],
)
def test_split_command(command: str, shell: bool, argv: tuple[str, ...]) -> None:
    """Commands split like a POSIX shell, or go to /bin/sh -c when the rule asks."""
    assert split_command(command, shell) == argv


@pytest.mark.parametrize(
    ("run_user", "policy", "expected"),
    [
        ("nobody", UserPolicy(ROOT), (NOBODY, True)),
        ("alice", UserPolicy(ROOT, allowed_users=("alice",)), (ALICE, True)),
        ("root", UserPolicy(ROOT, allow_root=True), (ROOT, True)),
        ("", UserPolicy(ALICE), (ALICE, False)),
        ("alice", UserPolicy(ALICE), (ALICE, False)),
        ("nobody", UserPolicy(ROOT, allowed_users=("alice",)), "ALLOWED_USERS (alice)"),
        ("root", UserPolicy(ROOT), "UNITEDCRON_AGENT_ALLOW_ROOT=true"),
        ("ghost", UserPolicy(ROOT), "run_user 'ghost': no such user on this agent"),
        ("", UserPolicy(ROOT), "run_user is empty"),
        ("nobody", UserPolicy(ALICE), "runs as 'alice' (not root)"),
    ],
)
def test_choose_account(run_user: str, policy: UserPolicy, expected: object) -> None:
    """Which account runs a rule, and each refusal with its reason."""
    if isinstance(expected, str):
        with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            choose_account(run_user, policy, USERS.get)
    else:
        assert choose_account(run_user, policy, USERS.get) == expected


@pytest.mark.parametrize(
    ("mode", "owner", "group", "account", "ok"),
    [
        (0o700, 0, 0, NOBODY, False),
        (0o700, 0, 0, ROOT, True),
        (0o711, 0, 0, NOBODY, True),
        (0o750, 0, 27, ALICE, True),
        (0o750, 0, 27, NOBODY, False),
        (0o700, 1000, 1000, ALICE, True),
    ],
)
def test_may_search(mode: int, owner: int, group: int, account: Account, ok: bool) -> None:
    """Directory search permission follows owner, then group, then other bits."""
    assert may_search(stat.S_IFDIR | mode, owner, group, account) is ok


def test_env_spec_overrides_last() -> None:
    """The rule's env is applied last; shard variables only when shard_total > 0."""
    ref = RunRef(runid="r1", task_id=3, sched_us=5, attempt=2, trigger="manual", instance=1)
    env = build_env(NOBODY, ref, RunSpec(task_id=3, command="x", env={"PATH": "/p"}), (0, 0))
    assert env["PATH"] == "/p" and env["UNITEDCRON_ATTEMPT"] == "2"
    assert env["UNITEDCRON_TRIGGER"] == "manual" and "UNITEDCRON_SHARD_TOTAL" not in env


def _ref(runid: str) -> RunRef:
    return RunRef(runid=runid, task_id=1, sched_us=0)


def _started(runid: str) -> RunStarted:
    return RunStarted(seq=0, ref=_ref(runid), pid=1, start_us=1)


def _finished(runid: str) -> RunFinished:
    return RunFinished(seq=0, ref=_ref(runid), status="success", end_us=2, output=b"\x00out")


def test_outbox_seq_is_monotonic_across_reopen(tmp_path: Path) -> None:
    """Seqs keep growing after acks and reopening; unacked events come back in order."""
    box = Outbox.open(tmp_path)
    first = box.commit([_started("a"), _finished("a")], epoch=3, runids=[("a", 1)])
    assert [e.seq for e in first] == [1, 2]
    box.ack([1, 2])
    later = box.commit([_started("b")])
    box.close()
    box = Outbox.open(tmp_path)
    assert box.epoch == 3 and box.seen("a") and box.count == 1
    assert box.unacked() == later
    assert [e.seq for e in box.commit([_finished("b")])] == [4]
    assert [e.ref.runid for e in box.unacked()] == ["b", "b"]
    box.close()


def test_outbox_full_drops_oldest_started_never_finished(tmp_path: Path) -> None:
    """Above the cap the oldest RunStarted events go first; RunFinished events are kept."""
    box = Outbox.open(tmp_path, max_events=3)
    box.commit([_started("a"), _finished("a"), _started("b")])
    box.commit([_started("c")])
    assert [type(e).__name__ + e.ref.runid for e in box.unacked()] == [
        "RunFinisheda",
        "RunStartedb",
        "RunStartedc",
    ]
    box.commit([_finished("b"), _finished("c")])
    kinds = [type(e).__name__ for e in box.unacked()]
    assert kinds == ["RunFinished"] * 3 and box.count == 3
    box.close()


def test_outbox_forgets_old_run_ids(tmp_path: Path) -> None:
    """Run ids older than the window are forgotten; newer ones are kept."""
    box = Outbox.open(tmp_path)
    box.commit([], runids=[("old", 100), ("new", 5_000)])
    assert box.prune_runids(now_us=6_000, ttl_us=2_000) == 1
    assert not box.seen("old") and box.seen("new")
    box.close()
    assert Outbox.open(tmp_path).seen("new")


def test_config_lists_labels_and_advertise() -> None:
    """Comma lists and labels parse; advertise defaults to the listen host and bound port."""
    config = AgentConfig(
        secret="0123456789abcdef",
        agent_listen="127.0.0.1:0",
        agent_labels="a=1, b = x=y",
        agent_allowed_users=" nobody ,daemon,",
        agent_center="h1:1,h2:2",
    )
    assert config.agent_labels == {"a": "1", "b": "x=y"}
    assert config.agent_allowed_users == ("nobody", "daemon")
    assert [str(c) for c in config.agent_center] == ["h1:1", "h2:2"]
    assert str(config.advertise_address(4321)) == "127.0.0.1:4321"
    wildcard = AgentConfig(secret="0123456789abcdef", agent_listen="0.0.0.0:9501")
    assert not is_wildcard(wildcard.advertise_address(9501).host)
    assert "0123456789abcdef" not in repr(config)


def test_config_bad_label_names_it() -> None:
    """A label without `=` is refused with the label named."""
    with pytest.raises(ValidationError, match="label 'oops' is not key=value"):
        AgentConfig(secret="0123456789abcdef", agent_labels="a=1,oops")


def test_agent_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    """The first start makes a 64-hex key readable by the agent alone; later starts read it;
    a state dir that cannot hold it is a StateDirError naming the folder."""
    key = load_or_create_key(tmp_path)
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path) == key
    with pytest.raises(StateDirError) as refused:
        load_or_create_key(tmp_path / KEY_FILE)  # a file, not a folder
    assert str(tmp_path / KEY_FILE) in str(refused.value)


def test_account_cache_looks_each_user_up_once_per_ttl():
    """A burst of runs as one user costs one NSS lookup; an unknown user is asked again soon."""
    from agent.accounts import AccountCache

    asked: list[str] = []

    def lookup(name: str) -> Account | None:
        asked.append(name)
        return NOBODY if name == "nobody" else None

    cache = AccountCache(lookup, ttl_s=60, miss_ttl_s=0)
    assert not cache.cached("nobody")
    assert [cache("nobody") for _ in range(1000)] == [NOBODY] * 1000
    assert cache.cached("nobody") and asked == ["nobody"]
    assert cache("ghost") is None and cache("ghost") is None
    assert asked == ["nobody", "ghost", "ghost"]
