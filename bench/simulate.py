"""A shop's day of routing, simulated: the real router decides, time is simulated.

Discrete events (arrivals, ends of handling, shift starts and ends) drive the router's own code:
``router.picks.pick`` with the real policies (``router.policies``) and eligibility
(``router.eligibility``: online, team, language, room in the conversation's capacity group) over
``AgentState`` / ``ConversationState`` held in memory instead of loaded from the store. The calls
are the ones the store's two routing transactions make: a new conversation is routed among the
agents (``assign_batch``), an agent with room freed (a conversation ended, a shift started) pulls
from the queue (``pull_for_agent``).

Two scenarios, each with a fixed seed:

- **day**: 08:00-20:00 with a midday curve of arrivals, five languages, three channel kinds (email,
  chat, messaging) with their own handling times and capacities, sixteen agents on two shifts,
  each speaking two or three of the languages, a quarter of the customers coming back. Each
  omnidesk policy beside the load-blind round robin of Chatwoot (the least recently assigned
  online agent who speaks the language takes the conversation whatever their load, and works it
  when one of their places frees).
- **erlang**: every agent shares every skill, one channel kind, a constant rate: omnidesk's average
  wait beside the Erlang C formula's for the same rate, handling time and places (M/M/N).

    python -m bench.simulate [--seed 7] [--days 1]

Prints a table per scenario, then the JSON line (keys in /work/shared/API.md's bench.simulate).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router.eligibility import group_capacity
from router.picks import pick
from router.policies import POLICIES
from store.assignment_batch import AgentState, ConversationState

START = datetime(2026, 3, 2, 0, 0)  # a Monday; only differences of times matter
LANGUAGES = {"es": 0.35, "ca": 0.2, "en": 0.2, "fr": 0.15, "de": 0.1}
KINDS = {"email": 0.3, "chat": 0.4, "messaging": 0.3}  # capacity groups
HANDLE_MEAN = {"email": 600.0, "chat": 420.0, "messaging": 480.0}  # seconds, exponential
TARGET = {"email": 3600.0, "chat": 60.0, "messaging": 300.0}  # answered within, for the service level
CAPACITIES = {"email": 3, "chat": 2, "messaging": 2}
CAPACITY = 6  # in all: less than the groups' sum, so a busy agent is full before every group is
# Shifts (start hour, end hour) and each agent's languages.
SPEAKS = [("es", "ca", "en"), ("es", "en"), ("ca", "es"), ("fr", "en"), ("de", "en"), ("es", "fr"),
          ("en", "de", "fr"), ("es", "ca")]
SHIFTS = [(8, 16), (12, 20)]
LOAD = 1.0  # the curve's scale (--load)
RETURNING = 0.25  # of arrivals: a customer seen earlier today
STICKY_SECONDS = 4 * 3600


def curve(hour: float) -> float:
    """Arrivals per hour over the day: a morning rise, a lunch dip, an afternoon peak."""
    if not 8 <= hour < 20:
        return 0.0
    return LOAD * (150 + 70 * math.exp(-((hour - 11) / 1.5) ** 2) + 90 * math.exp(-((hour - 16) / 1.6) ** 2) \
        - 40 * math.exp(-((hour - 13.5) / 0.6) ** 2))


@dataclasses.dataclass
class Waiting:
    state: ConversationState
    arrived: float
    contact: int


@dataclasses.dataclass
class Result:
    waits: list[float] = dataclasses.field(default_factory=list)
    within: int = 0
    busy: float = 0.0  # place-seconds worked
    offered: float = 0.0  # place-seconds of agents on shift
    max_load: int = 0
    over: int = 0  # an agent seen over a capacity after a pick
    unserved: int = 0
    seconds: float = 0.0

    def row(self, name: str) -> dict[str, object]:
        waits = sorted(self.waits)
        return {"policy": name, "served": len(waits), "unserved": self.unserved,
                "avg_wait_s": round(statistics.fmean(waits), 1) if waits else None,
                "p90_wait_s": round(waits[int(0.9 * (len(waits) - 1))], 1) if waits else None,
                "service_level": round(self.within / len(waits), 3) if waits else None,
                "occupancy": round(self.busy / self.offered, 3) if self.offered else None,
                "max_agent_load": self.max_load, "over_capacity": self.over, "seconds": round(self.seconds, 2)}


def arrivals(rng: random.Random, rate: Callable[[float], float], hours: float, peak: float,
             kinds: dict[str, float]) -> list[tuple[float, str, str, int]]:
    """(second, kind, language, priority) of each arrival: a Poisson process of ``rate`` per hour
    at each hour of the day, by thinning."""
    out = []
    t = 0.0
    while True:
        t += rng.expovariate(peak / 3600)
        if t >= hours * 3600:
            return out
        if rng.random() * peak <= rate((t / 3600) % 24):
            kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
            lang = rng.choices(list(LANGUAGES), weights=list(LANGUAGES.values()))[0]
            prio = rng.choices([3, 1, 0], weights=[0.03, 0.1, 0.87])[0]
            out.append((t, kind, lang, prio))


class Day:
    """One simulated run under one policy (a name of ``router.policies.POLICIES``) or the
    load-blind baseline (``policy=None``)."""

    def __init__(self, seed: int, policy: str | None, *, hours: float, rate: Callable[[float], float], peak: float,
                 agents: list[tuple[tuple[str, ...], float, float]], kinds: dict[str, float] | None = None,
                 capacities: dict[str, int] | None = None, capacity: int = CAPACITY, returning: float = RETURNING,
                 warmup: float = 0.0) -> None:
        self.policy = policy
        self.hours = hours
        self.warmup = warmup
        self.arrivals = arrivals(random.Random(seed), rate, hours, peak, kinds or KINDS)
        # Each arrival's handling time and returning customer drawn apart, so every policy sees the same day.
        draw = random.Random(seed + 1)
        self.handle = [draw.expovariate(1 / HANDLE_MEAN[a[1]]) for a in self.arrivals]
        self.back = [draw.random() < returning for _ in self.arrivals]
        self.pickc = [draw.random() for _ in self.arrivals]
        self.caps = capacities if capacities is not None else CAPACITIES
        self.pool = [AgentState(i + 1, capacity, 0, None, presence="offline", languages=set(speaks),
                                capacities=dict(self.caps)) for i, (speaks, _, _) in enumerate(agents)]
        self.shifts = [(start, end) for _, start, end in agents]
        self.result = Result()

    def now(self, t: float) -> datetime:
        return START + timedelta(seconds=t)

    def run(self) -> Result:
        began = time.perf_counter()
        events: list[tuple[float, int, str, int]] = []  # (time, order, what, index)
        order = itertools.count()
        for i, (t, *_rest) in enumerate(self.arrivals):
            heapq.heappush(events, (t, next(order), "arrive", i))
        for agent, (start, end) in zip(self.pool, self.shifts, strict=True):
            for day in range(math.ceil(self.hours / 24)):
                heapq.heappush(events, (day * 86400 + start * 3600, next(order), "on", agent.id))
                heapq.heappush(events, (day * 86400 + end * 3600, next(order), "off", agent.id))
        self.by_id = {a.id: a for a in self.pool}
        self.queue: dict[int, Waiting] = {}
        self.last_agent: dict[int, tuple[int, float]] = {}  # contact -> (agent, when their conversation ended)
        self.backlog: dict[int, list[int]] = {a.id: [] for a in self.pool}  # baseline: each agent's own line
        self.group_of: dict[int, str] = {}
        self.contacts: list[int] = []
        self.on_since: dict[int, float] = {}
        self.holder: dict[int, tuple[int, int]] = {}  # conversation -> (agent, contact)
        self.waiting_blind: dict[int, Waiting] = {}
        self.events = events
        self.order = order
        while events:
            t, _, what, index = heapq.heappop(events)
            getattr(self, what)(t, index)
        self.result.unserved = len(self.queue) + sum(len(v) for v in self.backlog.values())
        self.result.seconds = time.perf_counter() - began
        return self.result

    # -- events

    def arrive(self, t: float, i: int) -> None:
        _, kind, lang, prio = self.arrivals[i]
        if self.back[i] and self.contacts:
            contact = self.contacts[int(self.pickc[i] * len(self.contacts))]
        else:
            contact = len(self.contacts) + 1
            self.contacts.append(contact)
        previous = self.last_agent.get(contact)
        state = ConversationState(i, prio, self.now(t), language=lang, group=kind, policy=self.policy,
                                  previous_agent_id=previous[0] if previous else None,
                                  previous_at=self.now(previous[1]) if previous else None,
                                  sticky_seconds=STICKY_SECONDS)
        self.group_of[i] = kind
        item = Waiting(state, t, contact)
        if self.policy is None:
            self.blind(t, item)
            return
        self.queue[i] = item
        self.route(t, [item.state], [a for a in self.pool if a.presence == "online"])

    def done(self, t: float, i: int) -> None:
        agent_id, contact = self.holder.pop(i)
        agent = self.by_id[agent_id]
        agent.active_count -= 1
        agent.loads[self.group_of[i]] -= 1
        self.last_agent[contact] = (agent_id, t)
        self.work(t, agent)

    def on(self, t: float, agent_id: int) -> None:
        agent = self.by_id[agent_id]
        agent.presence = "online"
        self.on_since[agent_id] = t
        self.work(t, agent)

    def off(self, t: float, agent_id: int) -> None:
        self.by_id[agent_id].presence = "offline"  # keeps what they hold until done; nothing new
        since = self.on_since.pop(agent_id)
        start = max(since, self.warmup)
        if t > start:
            self.result.offered += (t - start) * self.by_id[agent_id].capacity

    # -- omnidesk: the router's picks

    def route(self, t: float, states: list[ConversationState], agents: list[AgentState]) -> None:
        if not agents or not states:
            return
        for chosen in pick(states, agents, self.now(t), default=POLICIES[self.policy or "least_loaded"]):
            self.begin(t, self.queue.pop(chosen.conversation_id), chosen.agent_id)
        for agent in agents:
            self.check(agent)

    def work(self, t: float, agent: AgentState) -> None:
        """An agent freed room: omnidesk pulls the queue for them; the baseline's agent takes the
        next of their own line."""
        if agent.presence != "online" and self.policy is not None:
            return
        if self.policy is not None:
            self.route(t, [w.state for w in self.queue.values()], [agent])
            return
        line = self.backlog[agent.id]
        for i in list(line):
            group = self.group_of[i]
            if agent.loads.get(group, 0) < group_capacity(agent, group) and agent.active_count < agent.capacity:
                line.remove(i)
                item = self.waiting_blind.pop(i)
                agent.active_count += 1
                agent.loads[group] = agent.loads.get(group, 0) + 1
                self.begin(t, item, agent.id)

    def begin(self, t: float, item: Waiting, agent_id: int) -> None:
        i = item.state.id
        self.holder[i] = (agent_id, item.contact)
        wait = t - item.arrived
        if item.arrived >= self.warmup:
            self.result.waits.append(wait)
            self.result.within += wait <= TARGET[self.group_of[i]]
            self.result.busy += self.handle[i]
        heapq.heappush(self.events, (t + self.handle[i], next(self.order), "done", i))

    def check(self, agent: AgentState) -> None:
        load = agent.active_count
        self.result.max_load = max(self.result.max_load, load)
        if load > agent.capacity or any(n > group_capacity(agent, g) for g, n in agent.loads.items()):
            self.result.over += 1

    # -- the load-blind baseline (Chatwoot's round robin)

    def blind(self, t: float, item: Waiting) -> None:
        speakers = [a for a in self.pool if a.presence == "online" and item.state.language in a.languages]
        if not speakers:  # nobody on shift speaks it: any online agent (as a shop would do)
            speakers = [a for a in self.pool if a.presence == "online"]
        if not speakers:
            self.queue[item.state.id] = item
            return
        agent = min(speakers, key=lambda a: (a.last_assigned_at or datetime.min, a.id))
        agent.last_assigned_at = self.now(t)
        self.waiting_blind[item.state.id] = item
        self.backlog[agent.id].append(item.state.id)
        held = agent.active_count + len(self.backlog[agent.id])
        self.result.max_load = max(self.result.max_load, held)
        if held > agent.capacity:
            self.result.over += 1
        self.work(t, agent)


def erlang_c_wait(rate: float, handle: float, servers: int) -> float:
    """The average wait in queue of M/M/N (Erlang C): ``rate`` arrivals per second, ``handle``
    seconds of mean handling, ``servers`` places."""
    load = rate * handle
    if load >= servers:
        return math.inf
    blocking = 1.0  # Erlang B by its recursion, then C from B
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    waiting = servers * blocking / (servers - load * (1 - blocking))
    return waiting / (servers / handle - rate)


def day_staff() -> list[tuple[tuple[str, ...], float, float]]:
    return [(speaks, start, end) for start, end in SHIFTS for speaks in SPEAKS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=20, help="days of the Erlang C scenario")
    parser.add_argument("--load", type=float, default=1.5, help="scale of the day's arrival curve")
    args = parser.parse_args()
    global LOAD
    LOAD = args.load

    print("day: 08:00-20:00, 5 languages, email/chat/messaging, 16 agents on two shifts, "
          f"capacities {CAPACITIES} (in all {CAPACITY})")
    rows = {}
    for policy in [*POLICIES, None]:
        name = policy or "round_robin_blind"
        rows[name] = Day(args.seed, policy, hours=24, rate=curve, peak=320.0 * LOAD, agents=day_staff()).run().row(name)
    header = list(next(iter(rows.values())))
    print("  ".join(f"{h:>14}" for h in header))
    for row in rows.values():
        print("  ".join(f"{v!s:>14}" for v in row.values()))

    # Erlang C: 10 agents sharing every language, chat only, 3 places each, 80% occupancy.
    servers, handle = 30, HANDLE_MEAN["chat"]
    rate = 0.8 * servers / handle
    per_hour = rate * 3600
    erlang = erlang_c_wait(rate, handle, servers)
    staff = [(tuple(LANGUAGES), 0.0, 24.0)] * 10
    flat = {}
    for policy in POLICIES:
        flat[policy] = Day(args.seed, policy, hours=24 * args.days, rate=lambda _h: per_hour, peak=per_hour,
                           agents=staff, kinds={"chat": 1.0}, capacities={"chat": 3}, capacity=3, returning=0.25,
                           warmup=3600.0).run().row(policy)
    print(f"\nerlang: {args.days} days at {per_hour:.0f}/h, {servers} places (10 agents x 3 chats), "
          f"{handle:.0f} s handling: Erlang C average wait {erlang:.1f} s")
    for policy, row in flat.items():
        print(f"  {policy:>14}: average wait {row['avg_wait_s']} s (ratio {row['avg_wait_s'] / erlang:.3f}), "
              f"p90 {row['p90_wait_s']} s, occupancy {row['occupancy']}, over capacity {row['over_capacity']}")

    blind = rows["round_robin_blind"]
    ours = [rows[p] for p in POLICIES]
    print(json.dumps({
        "bench": "simulate",
        "seed": args.seed,
        "p90_wait_ratio_to_round_robin": round(max(r["p90_wait_s"] for r in ours) / blind["p90_wait_s"], 3),
        # The policy farthest from the formula (all three are one pooled queue there: they agree).
        "avg_wait_ratio_to_erlang_c": round(max((r["avg_wait_s"] / erlang for r in flat.values()),
                                                key=lambda x: abs(x - 1)), 3),
        "over_capacity": sum(r["over_capacity"] for r in [*ours, *flat.values()]),
        "detection_accuracy": None,  # measured by the language detection bench, not here
        "seconds": max(r["seconds"] for r in ours),
        "policies": {r["policy"]: {k: r[k] for k in ("avg_wait_s", "p90_wait_s", "service_level", "occupancy",
                                                      "max_agent_load")} for r in [*ours, blind]},
        "erlang_c_avg_wait_s": round(erlang, 1),
        "erlang_avg_wait_s": {p: r["avg_wait_s"] for p, r in flat.items()},
        "baseline_over_capacity": blind["over_capacity"],
    }))


if __name__ == "__main__":
    main()
