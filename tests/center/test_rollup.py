"""Rollup sums (pure): what a write of run rows adds, buckets, histograms and percentiles."""

from __future__ import annotations

import pytest

from center.rollup import (
    _FIRST_MS,
    BUCKETS,
    HOUR_US,
    RunFacts,
    Sums,
    _bucket_by_log,
    add_to_hist,
    bucket_bounds,
    bucket_of,
    changes,
    combine,
    decode_hist,
    encode_hist,
    hour_of,
    inserted,
    moved_to,
    percentile_ms,
    reported,
)
from protocol import statuses

T = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, the start of an hour
GUARD = statuses.FINAL - {statuses.LOST}


def run(runid: str = "r1", status: str = "success", *, aid: int = 1, **kw: int) -> RunFacts:
    values = {"task_id": 7, "sched_us": T + 10, "start_us": T + 2_010, "end_us": T + 5_002_010}
    values |= kw
    return RunFacts(runid=runid, status=status, aid=aid, **values)


def counts(result: dict[tuple[int, int], Sums]) -> dict[tuple[int, int], dict[str, int]]:
    return {k: {s: n for s, n in v.counts.items() if n} for k, v in result.items()}


KEY = (7, T)
RUNNING = run(status="running", end_us=0)


@pytest.mark.parametrize(
    ("before", "writes", "apply", "expected"),
    [
        # A finish of a running run counts once.
        ({"r1": RUNNING}, [run()], reported(GUARD), {KEY: {"success": 1}}),
        # The same report twice in one batch (resent after a reconnect) still counts once.
        ({"r1": RUNNING}, [run(), run()], reported(GUARD), {KEY: {"success": 1}}),
        # A report of a run already final (resent in a later batch) counts nothing.
        ({"r1": run()}, [run()], reported(GUARD), {}),
        # A report of a run with no row yet inserts it: counts.
        ({}, [run(status="failed")], reported(GUARD), {KEY: {"failed": 1}}),
        # A late real end of a run the center wrote lost moves it from lost to success.
        (
            {"r1": run(status="lost", end_us=0)},
            [run()],
            reported(GUARD),
            {KEY: {"lost": -1, "success": 1}},
        ),
        # Another agent's report of the run changes nothing.
        ({"r1": RUNNING}, [run(aid=2)], reported(GUARD), {}),
        # planned -> dispatched is not a final status: nothing.
        (
            {"r1": run(status="planned")},
            [run(status="planned")],
            moved_to(statuses.DISPATCHED, frozenset({statuses.PLANNED})),
            {},
        ),
        # Killed before it was sent: counts once, and not when it was already sent.
        (
            {"r1": run(status="planned"), "r2": run("r2", status="running")},
            [run(status="planned"), run("r2", status="running")],
            moved_to(statuses.KILLED, frozenset({statuses.PLANNED})),
            {KEY: {"killed": 1}},
        ),
        # INSERT IGNORE of a missed fire: counts where no row was.
        (
            {"r1": run(status="missed")},
            [run(status="missed"), run("r2", status="missed")],
            inserted,
            {KEY: {"missed": 1}},
        ),
    ],
)
def test_changes_count_each_run_once(before, writes, apply, expected):
    """A run counts when it becomes final, once, and moves between final statuses."""
    assert counts(changes(before, writes, apply)) == expected


def test_runs_go_to_the_hour_of_their_scheduled_time():
    """Runs of one rule in two hours add to two rollup rows; another rule to its own."""
    writes = [run("a"), run("b", sched_us=T + HOUR_US + 5), run("c", task_id=8)]
    result = changes({}, writes, inserted)
    assert counts(result) == {
        (7, T): {"success": 1},
        (7, T + HOUR_US): {"success": 1},
        (8, T): {"success": 1},
    }
    assert hour_of(T + HOUR_US - 1) == T


def test_durations_and_lateness_only_of_runs_that_ran():
    """A success gives its duration and lateness; lost, missed and skipped runs give neither."""
    writes = [
        run("a", start_us=T + 10 + 3_000, end_us=T + 10 + 3_000 + 2_500_000),
        run("b", status="lost", end_us=0),
        run("c", status="missed", start_us=0, end_us=0),
    ]
    sums = changes({}, writes, inserted)[KEY]
    assert (sums.duration.n, sums.duration.sum_ms, sums.duration.max_ms) == (1, 2500, 2500)
    assert (sums.lateness.n, sums.lateness.sum_ms) == (1, 3)
    assert sums.runs == 3


@pytest.mark.parametrize(
    ("ms", "bucket"), [(0, 0), (1, 1), (2, 2), (1000, 15), (3_600_000, 33), (10**12, BUCKETS - 1)]
)
def test_buckets_are_logarithmic(ms, bucket):
    """Bucket i ≥ 1 holds [2^((i-1)/1.5), 2^(i/1.5)) ms; the last one takes everything longer."""
    assert bucket_of(ms) == bucket
    low, high = bucket_bounds(bucket)
    assert low <= ms < high or bucket == BUCKETS - 1


@pytest.mark.parametrize("first", [-(2**40), 0, 1, 1_000_000, 2**31 - 500_000, 2**40 - 1000])
def test_the_bucket_table_equals_the_logarithm(first):
    """`bucket_of` (a search in a table of bucket starts) gives the logarithm's bucket for
    every ms in a stretch, and at each bucket's start and the ms before it."""
    for ms in range(first, first + 500_000, 1 if first < 2**20 else 997):
        assert bucket_of(ms) == _bucket_by_log(ms)
    for start in _FIRST_MS:
        assert (bucket_of(start - 1), bucket_of(start)) == (
            _bucket_by_log(start - 1),
            _bucket_by_log(start),
        )


def test_histogram_text_round_trips_and_ignores_garbage():
    """Only the non-empty buckets are stored; a bad part is skipped, not an error."""
    hist = [0] * BUCKETS
    hist[3], hist[40] = 12, 1
    assert encode_hist(hist) == "3:12,40:1"
    assert decode_hist("3:12,40:1") == hist
    assert decode_hist("") == [0] * BUCKETS
    assert decode_hist("99:4,x:1,3:12,40:1") == hist


@pytest.mark.parametrize(
    "text", ["", "3:12,40:1", "40:1,3:2,3:1", "5:-1", "99:4,x:1,3:12", "3:1,,4", "7", "2:1,2:-1"]
)
def test_adding_to_a_histogram_text_equals_adding_the_histograms(text):
    """What the store's fold writes (sparse) is what decoding, adding and encoding gives."""
    delta = [0] * BUCKETS
    delta[3], delta[5], delta[47] = 2, 1, 4
    for added in (delta, [0] * BUCKETS):
        dense = [a + b for a, b in zip(decode_hist(text), added, strict=True)]
        assert add_to_hist(text, added) == encode_hist(dense)


@pytest.mark.parametrize(
    ("values", "q", "low", "high"),
    [
        # (the bucket of the true value, capped at the largest value seen)
        ([1000] * 100, 0.5, 645, 1000),
        ([100] * 50 + [10_000] * 50, 0.95, 6502, 10_000),
        ([100] * 96 + [10_000] * 4, 0.95, 64, 102),
        ([5] * 10, 0.5, 4, 5),
    ],
)
def test_percentiles_from_the_histogram(values, q, low, high):
    """A percentile read back from the buckets lands within the bucket of the true value."""
    sums = Sums()
    for i, ms in enumerate(values):
        sums.add(run(str(i), start_us=T, end_us=T + ms * 1000), +1)
    got = percentile_ms(sums.duration.hist, q, sums.duration.max_ms)
    assert got is not None and low <= got <= high


def test_no_percentile_of_nothing_and_sums_combine():
    """An empty histogram has no percentile; combine adds several change sets."""
    assert percentile_ms([0] * BUCKETS, 0.5, 0) is None
    one = changes({}, [run("a")], inserted)
    two = changes({}, [run("b", status="failed")], inserted)
    assert counts(combine(one, two)) == {KEY: {"success": 1, "failed": 1}}
