"""Making a million long-lived objects at once (rules at a start) without the cyclic GC."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
