"""observe_many leaves a histogram as observe() one value at a time would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from center.metrics import LATENESS_BUCKETS_S, observe_many


def _histogram(name: str) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram(name, "t", buckets=LATENESS_BUCKETS_S, registry=registry)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.name.split("_", 1)[1] + str(sorted(s.labels.items())): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@pytest.mark.parametrize(
    "amounts",
    [
        [],
        [0.0],
        [0.001],  # on a bound: counted in that bucket (le)
        [0.0010001, 0.0025, 0.003],
        [31.0, 1e9],  # past the last finite bound: +Inf only
        [0.0, 0.0, 0.5, 0.5, 0.5, 2.0, 29.9, 30.0],
    ],
)
def test_observe_many_equals_observe_one_by_one(amounts: list[float]) -> None:
    one_registry, one = _histogram("a")
    many_registry, many = _histogram("a")
    for amount in amounts:
        one.observe(amount)
    observe_many(many, amounts)
    assert _samples(many_registry) == pytest.approx(_samples(one_registry))
