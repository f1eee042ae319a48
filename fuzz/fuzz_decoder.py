"""Atheris harness: the wire decoder and the handshake's sans-IO checks, on arbitrary bytes.

    python fuzz/fuzz_decoder.py fuzz/corpus -atheris_runs=100000    # or -max_total_time=600

Each input is read three ways. As a byte stream, fed to `MessageDecoder` whole and again cut
into pseudo-random chunks: only `ProtocolError` subclasses may escape, both feedings must end
failing or not alike, with the same messages (a feed that raises drops the messages it
completed before the bad bytes), a poisoned decoder keeps raising, and every message decoded
must survive an encode/decode round trip unchanged. As handshake material (secrets, nonces,
proofs), given to `protocol.auth`: no exception, and no proof is accepted that was not made
from a shared secret. Anything else is a crash, which libFuzzer reports with its input.
"""

from __future__ import annotations

import random
import sys

import atheris

with atheris.instrument_imports():
    from protocol import auth
    from protocol.codec import MessageDecoder, encode
    from protocol.errors import ProtocolError
    from protocol.messages import Message


def _decode(chunks: list[bytes]) -> tuple[list[Message], type[ProtocolError] | None]:
    """Messages from feeding `chunks` in order, and the error that ended the stream, if any."""
    decoder, messages = MessageDecoder(), []
    for chunk in chunks:
        try:
            messages += decoder.feed(chunk)
        except ProtocolError as exc:
            try:
                decoder.feed(b"$0\r\n\r\n")
            except ProtocolError as again:
                assert type(again) is type(exc), "a poisoned decoder changed its error"
            else:
                raise AssertionError("a decoder fed after an error did not raise") from exc
            return messages, type(exc)
    return messages, None


def _chunks(data: bytes) -> list[bytes]:
    """The input cut at pseudo-random places, the same for the same input."""
    rng, out, pos = random.Random(data), [], 0
    while pos < len(data):
        size = rng.choice((1, 1, 2, 3, 7, 64, 4096))
        out.append(data[pos : pos + size])
        pos += size
    return out


def check_decoder(data: bytes) -> None:
    whole = _decode([data])
    cut = _decode(_chunks(data))
    # A feed that ends in an error returns nothing, so messages completed by the same feed
    # before the bad bytes are dropped: cut finer, the stream may yield more of them first.
    # And a feed splits all its frames before it checks their messages, so of two faults
    # (a bad message, then bad framing) the one reported depends on the cut: either way the
    # stream fails. Without an error, both ways yield the same messages.
    assert (whole[1] is None) == (cut[1] is None), f"chunking changed: {whole!r} != {cut!r}"
    if whole[1] is None:
        assert whole[0] == cut[0], f"chunking changed the messages: {whole!r} != {cut!r}"
    else:
        assert cut[0][: len(whole[0])] == whole[0], f"chunking lost messages: {whole!r} {cut!r}"
    for message in cut[0]:
        again, error = _decode([encode(message)])
        assert error is None and again == [message], f"round trip changed {message!r}"


def _hmac_key(secret: bytes) -> bytes:
    """HMAC pads a key shorter than its block with zero bytes: b"k" and b"k\\0" are one key."""
    return secret.rstrip(b"\x00")


def check_handshake(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mine = tuple(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 40)) for _ in range(2))
    theirs = tuple(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 40)) for _ in range(2))
    client_nonce, server_nonce = fdp.ConsumeBytes(32), fdp.ConsumeBytes(32)
    forged = [fdp.ConsumeBytes(32) for _ in range(fdp.ConsumeIntInRange(0, 9))]
    auth.nonce_ok(client_nonce)
    shared = {_hmac_key(s) for s in mine} & {_hmac_key(s) for s in theirs}
    # A server proving with `theirs`: the client finds a shared secret, or none.
    proofs = auth.server_proofs(theirs, client_nonce, server_nonce)
    found = auth.match_server(mine, proofs + forged, client_nonce, server_nonce)
    assert (_hmac_key(found) in shared) if found is not None else not shared or len(proofs) > 8
    # Forged proofs alone prove nothing (unless the fuzzer computed an HMAC: it cannot).
    genuine = set(proofs) | {auth.client_proof(s, client_nonce, server_nonce) for s in mine}
    if not genuine & set(forged):
        assert auth.match_server(mine, forged, client_nonce, server_nonce) is None
        for proof in forged:
            assert not auth.check_client(mine, proof, client_nonce, server_nonce)
    if found is not None:
        proof = auth.client_proof(found, client_nonce, server_nonce)
        assert auth.check_client(theirs, proof, client_nonce, server_nonce)


def test_one_input(data: bytes) -> None:
    check_decoder(data)
    check_handshake(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
