"""Whether someone is there to answer a chat now: the one place that decides it (the web chat
widget says so, and asks for an email, when nobody is): within the team's business hours (or the
shop's, ``router.hours``) and with an agent of the team online."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine

from router.opening import open_now
from store.agents import online_agents


def someone_there(online: Iterable[frozenset[int]], team_id: int | None, *, open_: bool = True) -> bool:
    """``online``: the teams of each active agent who is online now; ``open_``: whether the team
    (or the shop) is within its business hours. Someone is there when it is open and one of them
    is online (in the channel's team, when it names one)."""
    return open_ and any(team_id is None or team_id in teams for teams in online)


def someone_there_now(engine: Engine, team_id: int | None) -> bool:
    return someone_there(online_agents(engine), team_id, open_=open_now(engine, team_id))
