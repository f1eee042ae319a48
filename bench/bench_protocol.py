"""Protocol throughput: encode and decode per message, and frames per second over loopback.

Run with `.venv/bin/python bench/bench_protocol.py`. Prints figures, asserts nothing. Each figure
is the best of a few rounds: the question is what the code can do, not what the machine's
neighbours did meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from center import pki
from protocol import certs
from protocol.codec import MessageDecoder, decode_payload, encode, encode_many
from protocol.framing import FrameDecoder
from protocol.messages import Exec, Message, RunFinished, RunRef, RunSpec
from protocol.stream import Connection, accept_handshake, open_handshake
from protocol.tls import TlsMaterial, material_context

ROUNDS = 3
BATCH = 100
SECRETS = (b"bench-cluster-secret-0123456789",)

REF = RunRef(
    runid="01J9Z8X7W6V5T4S3R2Q1P0N9M8",
    task_id=4242,
    sched_us=1_767_225_600_000_000,
    attempt=0,
    trigger="schedule",
)
EXEC = Exec(
    epoch=17,
    ref=REF,
    spec=RunSpec(
        task_id=4242,
        command="/usr/bin/php /srv/app/artisan schedule:run --env=production",
        run_user="www-data",
        env={"APP_ENV": "production", "PATH": "/usr/local/bin:/usr/bin:/bin", "TZ": "UTC"},
        cwd="/srv/app",
        timeout_s=300.0,
        output_max_bytes=256 * 1024,
        updated_us=1_767_000_000_000_000,
    ),
)
FINISHED = RunFinished(
    seq=123_456,
    ref=REF,
    status="success",
    start_us=1_767_225_600_001_000,
    end_us=1_767_225_601_250_000,
    pid=31337,
    code=0,
    output=os.urandom(2048).hex().encode(),  # 4 KiB of text-like output
    output_bytes=4096,
    run_user="www-data",
    uid=33,
    gid=33,
)


def _best_rate(count: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def bench_codec(name: str, message: Message, count: int) -> None:
    frame = encode(message)
    (payload,) = FrameDecoder().feed(frame)
    batch = frame * BATCH

    def encode_all() -> None:
        for _ in range(count):
            encode(message)

    def decode_payloads() -> None:
        for _ in range(count):
            decode_payload(payload)

    def decode_stream() -> None:
        decoder = MessageDecoder()
        for _ in range(count // BATCH):
            decoder.feed(batch)

    print(f"{name:<26} frame {len(frame):>5} B")
    print(f"  encode                   {_best_rate(count, encode_all):>10,.0f} msg/s")
    print(f"  decode (payload only)    {_best_rate(count, decode_payloads):>10,.0f} msg/s")
    print(f"  decode (stream, {BATCH}/feed) {_best_rate(count, decode_stream):>10,.0f} msg/s")


def _tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext, bytes]:
    """Server and client contexts of the built-in PKI (TLS 1.3, mutual), and the binding."""
    now = time.time_ns() // 1000
    cert_pem, key_pem = pki.new_ca("bench", now)
    info = certs.inspect_cert(cert_pem)
    ca = pki.ClusterCa(
        1, cert_pem, key_pem, "active", info, certs.key_id(certs.load_cert(cert_pem))
    )
    server = TlsMaterial(*pki.center_identity(ca, "center", now), cert_pem)
    agent_key = certs.new_key_pem()
    agent_cert = pki.sign_csr(ca, certs.make_csr(agent_key, "bench"), "bench", now, 86400)
    client = TlsMaterial(agent_cert.encode(), agent_key, cert_pem)
    return (
        material_context(server, cert_pem, server=True),
        material_context(client, cert_pem, server=False),
        certs.channel_binding(certs.first_der(server.cert_pem)),
    )


async def _loopback_rate(message: Message, total: int, tls: bool = False) -> float:
    """Frames/s from one writer task (batches of BATCH) to one reader, handshakes excluded."""
    finished: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    server_ctx, client_ctx, binding = _tls_pair() if tls else (None, None, b"")

    async def reader(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if server_ctx is not None:
            await w.start_tls(server_ctx)
        conn = Connection(r, w)
        try:
            await accept_handshake(
                conn, SECRETS, name="center", expect_role="agent", binding=binding
            )
            for _ in range(total):
                await conn.recv()
            finished.set_result(time.perf_counter())
        finally:
            await conn.close()

    server = await asyncio.start_server(reader, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
    conn = Connection(r, w)
    try:
        await open_handshake(conn, SECRETS, role="agent", name="bench")
        batch = [message] * BATCH
        start = time.perf_counter()
        for _ in range(total // BATCH):
            conn.send_many(batch)  # encodes each time, as a real sender would
            await conn.drain()
        async with asyncio.timeout(120):
            end = await finished
        return total / (end - start)
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


def bench_loopback(loop_name: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """Plain text (the baseline) and mutual TLS 1.3 of the built-in PKI, side by side."""
    for name, message, total in (("exec", EXEC, 100_000), ("run_finished 4 KiB", FINISHED, 30_000)):
        rates = []
        # uvloop's start_tls on the server side does not finish its handshake with a uvloop
        # client in the same loop (production pairs a uvloop center with asyncio agents).
        for tls in (False, True) if loop_name == "asyncio" else (False,):
            best = 0.0
            for _ in range(ROUNDS):
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    best = max(best, runner.run(_loopback_rate(message, total, tls)))
            rates.append(best)
        plain, tls_rate = rates[0], rates[-1] if len(rates) > 1 else 0.0
        shown = f"{tls_rate:>10,.0f} TLS 1.3  ({tls_rate / plain:.2f}×)" if tls_rate else ""
        print(f"  {loop_name:<8} {name:<20} {plain:>10,.0f} plain  {shown} frames/s")


def main() -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {ROUNDS} rounds")
    bench_codec("exec", EXEC, 50_000)
    bench_codec("run_finished (4 KiB out)", FINISHED, 50_000)
    print(f"loopback, one writer task sending batches of {BATCH}, one reader:")
    bench_loopback("asyncio", asyncio.new_event_loop)
    bench_loopback("uvloop", uvloop.new_event_loop)
    print(f"(encode_many of {BATCH} exec: {len(encode_many([EXEC] * BATCH)):,} bytes per write)")


if __name__ == "__main__":
    main()
