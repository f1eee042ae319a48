"""Keeping each connected agent's daemons as the rules say: everything after a connect, then
only what changed."""

from __future__ import annotations

from collections.abc import Callable

from center.daemons import Placed, Wanted, diff_daemons, wanted_daemons
from center.leader_context import LeaderContext
from protocol.messages import DaemonsWanted


class DaemonSync:
    """What each connected agent was last told of its daemons."""

    def __init__(self, ctx: LeaderContext, placed: Callable[[], Placed] = dict) -> None:
        self._ctx = ctx
        self._placed = placed  # where the fleet services' instances are
        self._told: Wanted = {}

    def sync(self, *, restart_aid: int | None = None) -> None:
        """Tell each connected agent what changed in its daemons (all of them after a connect:
        `restart_aid` has just connected)."""
        ctx = self._ctx
        wanted = wanted_daemons(ctx.rulebook.daemons, ctx.agents(), self._placed())
        if restart_aid is not None:
            self._told.pop(restart_aid, None)
        for aid, link in ctx.pool.links.items():
            if not link.connected:
                self._told.pop(aid, None)
                continue
            want = wanted.get(aid, {})
            if aid not in self._told:
                msg = DaemonsWanted(
                    epoch=ctx.epoch, specs=list(want.values()), complete=True, aid=aid
                )
            elif change := diff_daemons(self._told[aid], want):
                msg = DaemonsWanted(
                    epoch=ctx.epoch, specs=change.specs, stopped=change.stopped, aid=aid
                )
            else:
                continue
            if link.send([msg]):
                self._told[aid] = want
