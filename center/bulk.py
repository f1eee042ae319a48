"""Long-lived objects and the cyclic GC: a million made at once (rules at a start), and a
collector tuned for a process whose heap is mostly such objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Container objects allocated (net) between two young-generation passes; CPython's default is
# 700. A fire allocates a few dozen (its run, its frame, its report, its rollup sums), so the
# default runs a pass every ~20 fires and a full pass (every object made since the start-up
# freeze: the planner's entries, run rows in flight, cached specs) every few seconds: 14 % of
# the main thread's CPU at 810 fires/s with 100k rules (60 ms a full pass). Young objects
# are freed by reference counting anyway; this only delays freeing reference cycles.
YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    """Run the cyclic collector's passes far less often (see YOUNG_THRESHOLD)."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


@contextmanager
def many_objects() -> Iterator[None]:
    """Pause the cyclic garbage collector while the block makes objects that live on (rules,
    their schedules, the planner's heap), then move everything alive into the collector's
    permanent generation.

    Each full collection walks every tracked object: loading 1M rules with the collector on
    triggers several, a third of the load's CPU; and afterwards every full collection would
    walk the rule book again. Frozen objects are still freed by reference counting (a rule
    replaced or deleted); only a reference cycle among them would outlive its use, and
    rules, schedules and heap entries hold none.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
