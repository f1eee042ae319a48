"""The registration rate limit: a token bucket per address, refilled over a minute."""

from __future__ import annotations

from center.limits import Buckets


def test_bucket_allows_the_budget_then_refills():
    """60 per minute: 60 at once, the 61st refused, one more after a second."""
    b = Buckets(per_minute=60)
    assert all(b.allow("10.0.0.1", 100.0) for _ in range(60))
    assert not b.allow("10.0.0.1", 100.0)
    assert b.allow("10.0.0.2", 100.0), "other addresses are not affected"
    assert b.allow("10.0.0.1", 101.0) and not b.allow("10.0.0.1", 101.0)


def test_zero_means_unlimited_and_memory_is_bounded():
    """per_minute 0 turns the limit off; remembered keys never exceed max_keys for long."""
    assert all(Buckets(per_minute=0).allow("x", 0.0) for _ in range(1000))
    b = Buckets(per_minute=5, max_keys=100)
    for i in range(1000):
        b.allow(f"k{i}", float(i) * 61)
    assert len(b._tokens) <= 101
