"""Writes fuzz/corpus/: one valid frame per call of the wire protocol, the fuzzers' seeds."""

from __future__ import annotations

import sys
from pathlib import Path

from protocol.codec import encode
from protocol.messages import (
    Ack,
    AgentState,
    Auth,
    Challenge,
    DaemonStatus,
    DaemonsWanted,
    Error,
    Exec,
    Hello,
    Kill,
    Message,
    Ping,
    Pong,
    Register,
    Registered,
    Resources,
    RunFinished,
    RunOutput,
    RunRef,
    RunSpec,
    RunStarted,
    Welcome,
)

REF = RunRef(runid="7-1700000000000000-3-0-0", task_id=7, sched_us=1_700_000_000_000_000)
SPEC = RunSpec(task_id=7, command="/bin/echo hi", run_user="nobody", env={"A": "1"}, timeout_s=5)
NONCE = bytes(range(32))
MESSAGES: list[Message] = [
    Hello(role="agent", name="web-1", nonce=NONCE, version="0.1.0"),
    Challenge(nonce=NONCE[::-1], proofs=[b"\x01" * 32, b"\x02" * 32]),
    Auth(proof=b"\x03" * 32),
    Welcome(name="center-1"),
    Error(code="auth", message="failed authentication"),
    Register(
        name="web-1",
        host="10.0.0.5",
        port=9501,
        labels={"role": "web"},
        resources=Resources(cpu_pct=1.5, procs=3),
        users=["nobody"],
    ),
    Registered(agent_id=3, status=1),
    Ping(epoch=2, sent_ms=1_700_000_000_000),
    Exec(epoch=2, ref=REF, spec=SPEC, shard_index=1, shard_total=2),
    Kill(epoch=2, task_id=7, runid=REF.runid, reason="asked"),
    DaemonsWanted(epoch=2, specs=[SPEC], complete=True, stopped=[9], aid=3),
    Ack(seqs=[1, 2, 3]),
    Pong(sent_ms=1_700_000_000_000, resources=Resources(load1=0.5)),
    AgentState(epoch=2, running=[REF.runid], agent_name="web-1"),
    RunStarted(seq=1, ref=REF, pid=4242, start_us=1_700_000_000_000_100, uid=65534, gid=65534),
    RunOutput(runid=REF.runid, offset=0, data=b"hello\n"),
    RunFinished(seq=2, ref=REF, status="success", end_us=1_700_000_001_000_000, code=0),
    DaemonStatus(task_id=9, wanted=2, running=1, crash_looping=True, last_exit="exit 1"),
]


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for message in MESSAGES:
        (folder / f"{message.CALL}.frame").write_bytes(encode(message))
    # Several frames in one read, as a connection delivers them.
    (folder / "batch.frame").write_bytes(b"".join(encode(m) for m in MESSAGES[7:12]))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus")
