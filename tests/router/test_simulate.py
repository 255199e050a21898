"""bench/simulate.py drives the real router: a short day keeps every capacity, serves everyone,
and its Erlang C formula gives the textbook values."""

from __future__ import annotations

import math

from bench.simulate import Day, curve, day_staff, erlang_c_wait


def test_erlang_c_formula() -> None:
    # Two servers, one arrival a second, one second of handling: P(wait) = 1/3, Wq = 1/3 s.
    assert math.isclose(erlang_c_wait(1.0, 1.0, 2), 1 / 3)
    assert math.isclose(erlang_c_wait(0.5, 1.0, 1), 1.0)  # M/M/1 at 50%: rho / (mu - lambda)
    assert erlang_c_wait(3.0, 1.0, 2) == math.inf


def test_a_day_keeps_capacity_and_the_blind_baseline_does_not() -> None:
    ours = Day(3, "least_loaded", hours=24, rate=curve, peak=320.0, agents=day_staff()).run()
    blind = Day(3, None, hours=24, rate=curve, peak=320.0, agents=day_staff()).run()
    assert ours.over == 0 and ours.max_load <= 6 and ours.unserved == 0
    assert len(ours.waits) == len(blind.waits) > 1000
    assert blind.over > 0  # load-blind: agents are given more than they can hold
