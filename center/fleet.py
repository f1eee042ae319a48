"""The leader's fleet services: each service's placement kept and written (fenced), instances
moved when their agent is lost, drains and rebalances carried out make-before-break."""

from __future__ import annotations

import time
from collections import deque

import structlog

from center.leader_context import LeaderContext
from center.placement import Host, Slot, by_agent, place_service, spread_move
from center.routing import AgentInfo, candidates
from center.rules import Rule
from center.store import placement as placement_store
from protocol.clock import now_us
from protocol.messages import DaemonStatus
from protocol.vocabulary import AgentStatus

log = structlog.get_logger("center.fleet")
RECENT_S = 10.0  # a placement counts against its agent this long, heartbeat or not
Move = tuple[int, int]  # (task_id, instance)


class Fleet:
    """Placement of every fleet service for one term."""

    def __init__(self, ctx: LeaderContext, offline_after_s: float) -> None:
        self._ctx = ctx
        self._offline_after_s = offline_after_s
        self.slots: dict[int, list[Slot]] = {}
        self._moves: dict[Move, int] = {}  # instance -> the agent it is moving to
        self._running: dict[tuple[int, int], int] = {}  # (task_id, aid) -> instances up
        self._refusing: dict[int, str] = {}  # aid -> why it refuses new work (its pongs)
        self._recent: deque[tuple[float, int]] = deque()  # (monotonic, aid) of placements
        self._rebalancing: set[int] = set()
        self._dirty: dict[int, list[Slot]] = {}
        self._turn = 0
        self._states: dict[int, tuple[str, bool]] = {}  # aid -> (why not, connected)
        self._versions: dict[int, int] = {}

    async def load(self) -> None:
        """Take over the placement the last leader wrote: nothing moves at a failover."""
        self.slots = await placement_store.load_placement(self._ctx.engine)

    # ------------------------------------------------------------ what agents say

    def note_status(self, aid: int, status: DaemonStatus) -> None:
        self._running[(status.task_id, aid)] = status.running

    def note_refusing(self, aid: int, reason: str) -> None:
        self._refusing[aid] = reason

    def rebalance(self, task_id: int) -> str:
        rule = self._ctx.rulebook.rules.get(task_id)
        if rule is None or not rule.is_service:
            return f"rule {task_id} is not a fleet service"
        self._rebalancing.add(task_id)
        return f"rebalancing rule {task_id}, one instance at a time"

    # ------------------------------------------------------------ placing

    def _hosts(self, agents: dict[int, AgentInfo]) -> dict[int, Host]:
        now_mono, links = time.monotonic(), self._ctx.pool.links
        hosts = {}
        for aid, info in agents.items():
            link = links.get(aid)
            if link is None or info.status not in (AgentStatus.ENABLED, AgentStatus.UNREACHABLE):
                continue
            down_s = 0.0 if link.connected else now_mono - link.down_since_mono
            hosts[aid] = Host(aid, down_s, self._why_not(info, link.connected))
        return hosts

    def _why_not(self, info: AgentInfo, connected: bool) -> str:
        """Why the agent takes no new instances ("" when it does); its latest pong's word on
        its own limits wins over the stored heartbeat's."""
        if info.drain:
            return "draining"
        refusing = self._refusing.get(info.id, info.refusing)
        return refusing or ("" if connected else "offline")

    def _counts(self) -> dict[int, int]:
        cutoff = time.monotonic() - RECENT_S
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()
        counts = {
            aid: sum(len(instances) for instances in tasks.values())
            for aid, tasks in by_agent(self.slots).items()
        }
        for _, aid in self._recent:
            counts[aid] = counts.get(aid, 0) + 1
        return counts

    def step(self) -> bool:
        """Place every service again (a no-op where nothing changed); True when an agent's set
        of instances changed and the daemons must be synced."""
        agents = dict(self._ctx.agents())
        hosts, daemons, now = self._hosts(agents), self._ctx.rulebook.daemons, now_us()
        services = {
            tid: r for tid, r in daemons.items() if r.is_service and r.enabled and not r.error
        }
        stale = self._stale(hosts, services)
        draining = any(h.why_not == "draining" for h in hosts.values())
        if not stale and not self._moves and not self._rebalancing and not draining:
            return False  # at rest: a tick costs a scan, not a placement
        before = self.wanted()
        for task_id in stale - services.keys():
            self.slots.pop(task_id, None)
            self._dirty[task_id] = []
        counts = self._counts()
        for task_id in sorted(stale & services.keys()):
            self._place(services[task_id], hosts, agents, counts, now)
        if self._moves or self._rebalancing or draining:
            self._advance_moves(hosts, agents, services)
        self._turn += 1
        return self.wanted() != before

    def _stale(self, hosts: dict[int, Host], services: dict[int, Rule]) -> set[int]:
        """Services to place again: those edited or gone; those with an instance on an agent
        that came, went, or changed whether it takes work or is connected; those short of
        instances when any agent changed; and those with an instance on a down agent (kept
        until the bound, then moved). Nothing moves when an agent joins."""
        states = {aid: (h.why_not, h.down_s == 0) for aid, h in hosts.items()}
        changed = {
            a for a in states.keys() | self._states.keys() if states.get(a) != self._states.get(a)
        }
        down = {aid for aid, host in hosts.items() if host.down_s}
        versions = {task_id: rule.update_time for task_id, rule in services.items()}
        stale = {t for t, v in versions.items() if self._versions.get(t) != v}
        stale |= set(self.slots) - set(services)
        if changed or down:
            touched = changed | down | ({0} if changed else set())
            stale |= {t for t, slots in self.slots.items() if any(s.aid in touched for s in slots)}
        self._states, self._versions = states, versions
        return stale

    def _place(
        self,
        rule: Rule,
        hosts: dict[int, Host],
        agents: dict[int, AgentInfo],
        counts: dict[int, int],
        now: int,
    ) -> None:
        current = {s.instance: s for s in self.slots.get(rule.id, [])}
        slots = place_service(
            rule,
            current,
            hosts,
            agents,
            counts,
            now_us=now,
            offline_after_s=self._offline_after_s,
            turn=self._turn,
        )
        if slots == list(current.values()):
            return
        for slot in slots:
            old = current.get(slot.instance)
            if slot.aid and (old is None or old.aid != slot.aid):
                self._recent.append((time.monotonic(), slot.aid))
                self._moves.pop((rule.id, slot.instance), None)
                log.info("service.placed", task_id=rule.id, instance=slot.instance, aid=slot.aid)
            elif not slot.aid and (old is None or old.aid):
                log.warning(
                    "service.unplaced", task_id=rule.id, instance=slot.instance, reason=slot.reason
                )
        self.slots[rule.id] = slots
        self._dirty[rule.id] = slots

    def _advance_moves(
        self, hosts: dict[int, Host], agents: dict[int, AgentInfo], services: dict[int, Rule]
    ) -> None:
        """Start a move off each draining agent and one step of each rebalance; end a move once
        its new agent runs the instance (then the old one is told to stop it)."""
        for (task_id, instance), target in list(self._moves.items()):
            self._finish_move(task_id, instance, target, services)
        for task_id, rule in services.items():
            slots = self.slots.get(task_id, [])
            if any(key[0] == task_id for key in self._moves):
                continue  # one move at a time per service
            pool = {a: hosts[a] for a in candidates(rule, agents) if a in hosts}
            draining = [s for s in slots if s.aid in pool and pool[s.aid].why_not == "draining"]
            if draining:
                self._start_move(rule, draining[0], pool, agents)
            elif task_id in self._rebalancing:
                step = spread_move(rule, slots, {a: h for a, h in pool.items()})
                if step is None:
                    self._rebalancing.discard(task_id)
                    log.info("service.rebalanced", task_id=task_id)
                else:
                    self._moves[(task_id, step[0])] = step[1]

    def _start_move(
        self, rule: Rule, slot: Slot, pool: dict[int, Host], agents: dict[int, AgentInfo]
    ) -> None:
        slots = self.slots.get(rule.id, [])
        cap = rule.max_per_agent or rule.process_num
        load = {a: sum(1 for s in slots if s.aid == a) for a in pool}
        targets = [a for a, h in pool.items() if h.takes_new and load[a] < cap]
        if targets:
            target = min(targets, key=lambda a: (load[a], a))
            self._moves[(rule.id, slot.instance)] = target
            log.info("service.moving", task_id=rule.id, instance=slot.instance, to_aid=target)

    def _finish_move(
        self, task_id: int, instance: int, target: int, services: dict[int, Rule]
    ) -> None:
        slots = self.slots.get(task_id)
        if task_id not in services or not slots or instance >= len(slots):
            self._moves.pop((task_id, instance), None)
            return
        wanted_there = sum(1 for s in slots if s.aid == target) + 1
        if self._running.get((task_id, target), 0) >= wanted_there:
            slots[instance] = Slot(instance, target, "", now_us())
            self._dirty[task_id] = slots
            self._moves.pop((task_id, instance))
            self._recent.append((time.monotonic(), target))
            log.info("service.moved", task_id=task_id, instance=instance, aid=target)

    def wanted(self) -> dict[int, dict[int, list[int]]]:
        """aid -> task_id -> instances to run there (a moving instance runs on both)."""
        out = by_agent(self.slots)
        for (task_id, instance), target in self._moves.items():
            out.setdefault(target, {}).setdefault(task_id, []).append(instance)
        return out

    async def persist(self) -> None:
        """Write the services whose placement changed (fenced by the term's epoch)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        try:
            await placement_store.save_placement(self._ctx.engine, self._ctx.lease, dirty, now_us())
        except BaseException:
            self._dirty = dirty | self._dirty
            raise

    async def finish_drains(self) -> None:
        """A draining agent with nothing placed, nothing moving off it and no run in flight is
        disabled, its drain done."""
        placed = by_agent(self.slots)
        for aid, info in self._ctx.agents().items():
            if not info.drain or placed.get(aid):
                continue
            if await placement_store.busy_runs(self._ctx.engine, aid):
                continue
            if await placement_store.finish_drain(self._ctx.engine, aid, now_us()):
                log.info("agent.drained", aid=aid, agent=info.name)

    def figures(self) -> dict[int, tuple[int, int, int]]:
        """task_id -> (wanted, placed, running) for the Prometheus gauges."""
        rules, running = self._ctx.rulebook.rules, self._running
        out = {}
        for task_id, slots in self.slots.items():
            if task_id in rules:
                aids = {s.aid for s in slots if s.aid}
                up = sum(running.get((task_id, aid), 0) for aid in aids)
                out[task_id] = (rules[task_id].process_num, sum(1 for s in slots if s.aid), up)
        return out
