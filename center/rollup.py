"""Run rollups (per rule per hour): what a change of run rows adds, and how sums merge.

A rollup holds, for one rule and one hour of scheduled time, how many runs ended in each
final status, and the durations and start lateness of the runs that started, as sums, maxima
and histograms in fixed log buckets (so that p50/p95 can be read back from any set of hours).
Only runs in a final status count; a run that moves from one final status to another (a run
the center wrote `lost` whose agent reports its real end later) moves from one count to the
other. Pure: rows in, sums out.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import compress

from protocol import statuses

HOUR_US = 3_600_000_000
BUCKETS = 48
# Bucket i ≥ 1 holds [2^((i-1)/STEPS), 2^(i/STEPS)) ms, bucket 0 less than 1 ms: a step of
# ×1.59, and 48 buckets reach 2^31.3 ms (29 days), longer than any run is let go on.
STEPS = 1.5
# The counted statuses, each a column `n_<status>` of run_rollup.
COUNTED: tuple[str, ...] = (
    statuses.SUCCESS,
    statuses.FAILED,
    statuses.TIMEOUT,
    statuses.KILLED,
    statuses.LOST,
    statuses.MISSED,
    statuses.SKIPPED,
)
# A lost run's times are the center's guess, not a measure: it gives neither figure.
_TIMED = frozenset(COUNTED) - {statuses.LOST, statuses.MISSED, statuses.SKIPPED}


def hour_of(us: int) -> int:
    """The start of the hour (µs) that a time falls in."""
    return us - us % HOUR_US


def _bucket_by_log(ms: int) -> int:
    """The bucket of `ms`, by its definition (`bucket_of` finds the same in a table)."""
    if ms < 1:
        return 0
    return min(BUCKETS - 1, int(math.log2(ms) * STEPS) + 1)


def _first_ms(bucket: int) -> int:
    """The least ms that `_bucket_by_log` puts in `bucket` or a later one (it only grows)."""
    low, high = 0, 2**40
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if _bucket_by_log(mid) < bucket else (low, mid)
    return low


# Where buckets 1.. begin, in ms: a binary search in C costs less than the logarithm.
_FIRST_MS = [_first_ms(i) for i in range(1, BUCKETS)]


def bucket_of(ms: int) -> int:
    return bisect_right(_FIRST_MS, ms)


def bucket_bounds(i: int) -> tuple[float, float]:
    """[low, high) of bucket i, in ms."""
    if i == 0:
        return 0.0, 1.0
    return 2 ** ((i - 1) / STEPS), 2 ** (i / STEPS)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What one run row says that rollups count."""

    runid: str
    task_id: int
    sched_us: int
    status: str
    start_us: int = 0
    end_us: int = 0
    aid: int = 0

    def key(self) -> tuple[int, int]:
        return self.task_id, hour_of(self.sched_us)

    def duration_ms(self) -> int | None:
        if self.status not in _TIMED or not self.start_us or self.end_us < self.start_us:
            return None
        return (self.end_us - self.start_us) // 1000

    def lateness_ms(self) -> int | None:
        if self.status not in _TIMED or not self.start_us:
            return None
        return max(self.start_us - self.sched_us, 0) // 1000


@dataclass(slots=True)
class Figure:
    """Sums of one measure (duration or lateness): count, sum, max, histogram."""

    n: int = 0
    sum_ms: int = 0
    max_ms: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, ms: int, sign: int) -> None:
        self.n += sign
        self.sum_ms += sign * ms
        if sign > 0:
            self.max_ms = max(self.max_ms, ms)  # a maximum cannot be taken back: kept
        self.hist[bucket_of(ms)] += sign

    def merge(self, other: Figure) -> None:
        self.n += other.n
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]


@dataclass(slots=True)
class Sums:
    """One rollup row's figures (or the sum of several)."""

    counts: dict[str, int] = field(default_factory=dict)
    duration: Figure = field(default_factory=Figure)
    lateness: Figure = field(default_factory=Figure)

    @property
    def runs(self) -> int:
        return sum(self.counts.values())

    def add(self, run: RunFacts, sign: int) -> None:
        self.add_times(run.status, run.sched_us, run.start_us, run.end_us, sign)

    def add_times(self, status: str, sched_us: int, start_us: int, end_us: int, sign: int) -> None:
        """`add` of a run with these facts (without making them: once per finished run)."""
        self.counts[status] = self.counts.get(status, 0) + sign
        # `run.duration_ms()` and `run.lateness_ms()`, inline.
        if status in _TIMED and start_us:
            if end_us >= start_us:
                self.duration.add((end_us - start_us) // 1000, sign)
            self.lateness.add(max(start_us - sched_us, 0) // 1000, sign)

    def merge(self, other: Sums) -> None:
        for status, n in other.counts.items():
            self.counts[status] = self.counts.get(status, 0) + n
        self.duration.merge(other.duration)
        self.lateness.merge(other.lateness)


def sums_for(sums: dict[tuple[int, int], Sums], key: tuple[int, int]) -> Sums:
    """`sums[key]`, made empty if missing (not `setdefault(key, Sums())`: that makes two
    48-bucket histograms per call even when the key is there, once per finished run)."""
    found = sums.get(key)
    if found is None:
        found = sums[key] = Sums()
    return found


Apply = Callable[[RunFacts | None, RunFacts], RunFacts | None]


def changes(
    before: Mapping[str, RunFacts], writes: Iterable[RunFacts], apply: Apply
) -> dict[tuple[int, int], Sums]:
    """What the rollups gain when `writes` are applied in order to rows that were `before`
    (runid → row; absent: no row), `apply(old, write)` giving each row after its write: a
    run counts once it is final, and moves if its final status changes."""
    state = dict(before)
    out: dict[tuple[int, int], Sums] = {}
    for write in writes:
        old = state.get(write.runid)
        new = apply(old, write)
        if new is not None:
            state[write.runid] = new
        if new is None or (old is not None and old.status == new.status):
            continue  # a repeat, or no row to change
        for run, sign in ((old, -1), (new, +1)):
            if run is not None and run.status in statuses.FINAL:
                sums_for(out, run.key()).add(run, sign)
    return out


def inserted(old: RunFacts | None, write: RunFacts) -> RunFacts | None:
    """INSERT IGNORE: the row is written only where there was none."""
    return write if old is None else old


def moved_to(status: str, only_from: frozenset[str]) -> Apply:
    """UPDATE … SET status WHERE status IN only_from."""

    def apply(old: RunFacts | None, _write: RunFacts) -> RunFacts | None:
        if old is None or old.status not in only_from:
            return old
        return replace(old, status=status)

    return apply


def reported(guard: frozenset[str]) -> Apply:
    """An agent's report (store.runs._upsert): written unless the row's status is in `guard`
    or the row belongs to another agent."""

    def apply(old: RunFacts | None, write: RunFacts) -> RunFacts | None:
        if old is None or (old.status not in guard and old.aid == write.aid):
            return write
        return old

    return apply


def encode_hist(hist: list[int]) -> str:
    """A histogram as text, its non-empty buckets only: "3:12,4:80"."""
    return ",".join(f"{i}:{n}" for i, n in enumerate(hist) if n)


def decode_hist(text: str) -> list[int]:
    """A histogram from its text, or from several joined by commas (GROUP_CONCAT of many
    rows: their buckets add up). Bad parts are skipped."""
    hist = [0] * BUCKETS
    # Fast path (a group's 30 days are some 200,000 pairs): "i:n,i:n" as one flat list.
    fields = [f for f in text.replace(":", ",").split(",") if f]
    try:
        pairs = zip(map(int, fields[0::2]), map(int, fields[1::2]), strict=True)
        for i, n in pairs:
            hist[i if 0 <= i < BUCKETS else _BAD] += n
    except (ValueError, IndexError):
        return _decode_slowly(text)
    return hist


def add_to_hist(text: str, hist: list[int]) -> str:
    """A stored histogram's text with `hist` added: `encode_hist` of the two summed, working
    on the non-empty buckets only (a rule's runs fill a few of the 48)."""
    pairs: dict[int, int] = {}
    if text:
        fields = text.replace(":", ",").split(",")
        try:
            for i, n in zip(map(int, fields[0::2]), map(int, fields[1::2]), strict=True):
                if not 0 <= i < BUCKETS:
                    raise ValueError(i)
                pairs[i] = pairs.get(i, 0) + n
        except ValueError:  # odd text: the slow path, which skips bad parts
            return encode_hist([a + b for a, b in zip(decode_hist(text), hist, strict=True)])
    # compress: the non-empty buckets' indexes, found in C (a report batch merges thousands).
    for i in compress(_INDEXES, hist):
        pairs[i] = pairs.get(i, 0) + hist[i]
    return ",".join([f"{i}:{n}" for i, n in sorted(pairs.items()) if n])


_INDEXES = range(BUCKETS)
_BAD = BUCKETS  # an index past the end: raises, so that a bad bucket takes the slow path


def _decode_slowly(text: str) -> list[int]:
    hist = [0] * BUCKETS
    for part in text.split(","):
        i, _, n = part.partition(":")
        if i.isdigit() and int(i) < BUCKETS and n.isdigit():
            hist[int(i)] += int(n)
    return hist


def percentile_ms(hist: list[int], q: float, max_ms: int) -> float | None:
    """The q-quantile (0..1) read from a histogram, interpolated within its bucket on a log
    scale and capped at the largest value seen; None when empty."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if n <= 0 or seen + n < rank:
            seen += max(n, 0)
            continue
        low, high = bucket_bounds(i)
        part = (rank - seen) / n
        value = low + (high - low) * part if i == 0 else low * (high / low) ** part
        return min(value, float(max_ms)) if max_ms else value
    return float(max_ms)


def combine(*parts: Mapping[tuple[int, int], Sums]) -> dict[tuple[int, int], Sums]:
    """Several `changes` results as one."""
    out: dict[tuple[int, int], Sums] = {}
    for part in parts:
        for key, sums in part.items():
            sums_for(out, key).merge(sums)
    return out
