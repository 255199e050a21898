"""Who may take a conversation: the one eligibility rule of routing.

An agent may take work when they are active, online and below their capacity (``available``); a
conversation when they have room in its capacity group (``has_room``: e.g. 8 email + 3 chat + 5
messaging, see ``connectors.CAPACITY_GROUPS``) and it asks for no team or one of theirs, for no
language, one they speak or any when they list none, and for skills they all have, unless it has waited long enough for
such an agent (``widened``) (``fits``). The store's SQL that filters agents and pulls the queue
for one agent (``store.assignment_batch.AVAILABLE``, ``fits_agent`` and ``queue_for_agent``) is
this rule's database form, tested against it.

A manual assignment may put an agent over a group's capacity; they then get nothing new of that
group until back under it (``has_room`` is a strict comparison).
"""

from __future__ import annotations

from store.assignment_batch import AgentState, ConversationState


def available(agent: AgentState) -> bool:
    """The agent may take more work now: active, online, with spare capacity in all."""
    return agent.active and agent.presence == "online" and agent.active_count < agent.capacity


def group_capacity(agent: AgentState, group: str) -> int:
    """The most conversations of ``group`` the agent may hold: their group capacity, else ``capacity``."""
    return agent.capacities.get(group, agent.capacity)


def has_room(agent: AgentState, group: str) -> bool:
    """The agent holds fewer conversations of ``group`` than its capacity for it."""
    return agent.loads.get(group, 0) < group_capacity(agent, group)


def fits(agent: AgentState, conversation: ConversationState) -> bool:
    """The agent has what the conversation asks for: its team (if any), its language (if any;
    an agent who lists no languages is not sorted by language: with the customer's language
    detected on every conversation, they would otherwise get nothing) and its skills (all of them,
    unless the conversation was widened to any agent)."""
    return ((conversation.team_id is None or conversation.team_id in agent.teams)
            and (not conversation.language or not agent.languages or conversation.language in agent.languages)
            and (conversation.widened or conversation.skills <= agent.skills))


def eligible(agent: AgentState, conversation: ConversationState) -> bool:
    """The agent may take the conversation now."""
    return available(agent) and has_room(agent, conversation.group) and fits(agent, conversation)
