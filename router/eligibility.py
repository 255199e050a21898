"""Who may take a conversation: the one eligibility rule of routing.

An agent may take work when they are active, online and below their capacity (``available``),
and a conversation when it asks for no team or one of theirs, and for no language or one they
speak (``fits``). The store's SQL that filters agents and pulls the queue for one agent
(``store.assignment_batch.AVAILABLE`` and ``fits_agent``) is this rule's database form, tested
against it.
"""

from __future__ import annotations

from store.assignment_batch import AgentState, ConversationState


def available(agent: AgentState) -> bool:
    """The agent may take more work now: active, online, with spare capacity."""
    return agent.active and agent.presence == "online" and agent.active_count < agent.capacity


def fits(agent: AgentState, conversation: ConversationState) -> bool:
    """The agent has what the conversation asks for: its team (if any) and its language (if any)."""
    return ((conversation.team_id is None or conversation.team_id in agent.teams)
            and (not conversation.language or conversation.language in agent.languages))


def eligible(agent: AgentState, conversation: ConversationState) -> bool:
    """The agent may take the conversation now."""
    return available(agent) and fits(agent, conversation)
