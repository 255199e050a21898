"""Who may see a conversation: the one visibility rule.

Admins see every conversation. An agent sees

- the conversations assigned to them,
- those of their teams (assigned to a colleague of the team or not), and
- the shared queue: unassigned conversations of no team, which anyone may take.

So an agent never sees a colleague's conversation outside their teams, with or without a team of
their own. Seeing a conversation is what lets an agent read it, reply to it, assign or take it,
retry its replies and download its attachments; everything else answers 404, as for a missing id.

This is the rule's one definition. The conversation list needs it as SQL
(``store.conversations.visible_to``); that form is tested against :func:`may_see` on both databases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class Viewer:
    """An agent as the rule needs them: who, whether an admin, and their teams."""

    id: int
    admin: bool
    team_ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, agent_id: int, role: str, team_ids: Iterable[int]) -> Viewer:
        return cls(id=agent_id, admin=role == "admin", team_ids=frozenset(team_ids))


class Visible(Protocol):
    """What the rule reads of a conversation."""

    @property
    def assignee_id(self) -> int | None: ...

    @property
    def team_id(self) -> int | None: ...


def may_see(viewer: Viewer, conversation: Visible) -> bool:
    """Whether ``viewer`` may see (and so work on) ``conversation``; see the module docstring."""
    if viewer.admin or conversation.assignee_id == viewer.id:
        return True
    if conversation.team_id is not None:
        return conversation.team_id in viewer.team_ids
    return conversation.assignee_id is None  # the shared queue
