"""The atheris harness over the wire decoder and the handshake, for a bounded number of runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
RUNS = 20_000  # about 10 s; `python fuzz/fuzz_decoder.py fuzz/corpus` runs for as long as asked

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_the_decoder_fuzzer_finds_no_crash(tmp_path: Path):
    """libFuzzer mutates the committed frames for RUNS runs: no input makes the decoder raise
    anything but a ProtocolError, or break a property of the harness."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"  # libFuzzer adds what it finds to its first folder
    shutil.copytree(FUZZ / "corpus", corpus)
    command = [
        sys.executable,
        str(FUZZ / "fuzz_decoder.py"),
        str(corpus),
        f"-atheris_runs={RUNS}",
        f"-artifact_prefix={tmp_path}/",
        "-max_total_time=120",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=150, check=False)
    output = done.stdout + done.stderr
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*"))
    assert done.returncode == 0 and not crashes, output[-4000:]
    assert f"Done {RUNS} in " in output, output[-2000:]
