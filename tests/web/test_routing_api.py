"""The routing core through the API: team routing settings, agents' capacities per group and
skills, priority names, and a waiting conversation's place and expected wait."""

from __future__ import annotations

from sqlalchemy import select

from store.sql import conversations
from tests.support import CallbackServer, Running, wait_for


def _needing_routing(running: Running) -> list[int]:
    with running.engine.connect() as conn:
        return list(conn.execute(select(conversations.c.id).where(conversations.c.needs_routing.is_(True))).scalars())


def test_team_settings_and_agent_capacities(omnidesk: Running) -> None:
    team = omnidesk.ok("POST", "/teams", json={"name": "Chat"})
    assert (team["policy"], team["capacities"], team["skill_wait_seconds"], team["return_on_away"]) == (
        "least_loaded", {}, 120, False)
    changed = omnidesk.ok("PATCH", f"/teams/{team['id']}", json={
        "policy": "sticky", "capacities": {"chat": 3, "email": 8}, "skill_wait_seconds": 60,
        "sticky_seconds": 3600, "return_on_away": True})
    assert changed == {**team, "policy": "sticky", "capacities": {"chat": 3, "email": 8}, "skill_wait_seconds": 60,
                       "sticky_seconds": 3600, "return_on_away": True}
    assert omnidesk.ok("GET", f"/teams/{team['id']}") == changed
    kept = omnidesk.ok("PATCH", f"/teams/{team['id']}", json={"name": "Live chat"})
    assert kept == {**changed, "name": "Live chat"}  # what is left out stays
    for wrong in ({"policy": "random"}, {"capacities": {"fax": 2}}, {"capacities": {"chat": -1}},
                  {"skill_wait_seconds": -5}):
        assert omnidesk.api("PATCH", f"/teams/{team['id']}", json=wrong).status_code == 422, wrong
    assert omnidesk.ok("PATCH", f"/teams/{team['id']}", json={"policy": None, "capacities": {}})["policy"] == (
        "least_loaded")
    assert omnidesk.api("GET", "/teams/999999").status_code == 404

    ana = omnidesk.agent("Ana", online=False, capacities={"email": 8, "chat": 3}, skills=["returns", "b2b"])
    assert (ana["capacities"], ana["skills"]) == ({"email": 8, "chat": 3}, ["b2b", "returns"])
    patched = omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"capacities": {"messaging": 5}, "skills": []})
    assert (patched["capacities"], patched["skills"]) == ({"messaging": 5}, [])
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["capacities"] == {"messaging": 5}
    assert omnidesk.api("PATCH", f"/agents/{ana['id']}", json={"capacities": {"chat": "lots"}}).status_code == 422
    bo = omnidesk.agent("Bo", online=False)
    assert omnidesk.api("PATCH", f"/teams/{team['id']}", token=bo["token"],
                        json={"policy": "round_robin"}).status_code == 403


def test_priority_names_and_queue_place(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    for n in range(3):
        payload = {"message_id": f"q-{n}", "from": {"id": f"c-{n}"}, "text": "hola", "thread": f"t-{n}"}
        assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    items = wait_for(lambda: (lambda i: i if len(i) == 3 else None)(omnidesk.ok("GET", "/conversations")["items"]))
    first, second, third = sorted(i["id"] for i in items)
    # Their routing jobs have run (nobody online: each waits in the queue), so an agent coming online
    # below pulls them in queue order. (A job still to run then would offer her its own conversation,
    # whatever its priority: as a new conversation is offered to whoever has room when it arrives.)
    wait_for(lambda: not _needing_routing(omnidesk), what="the three conversations' routing jobs")
    detail = omnidesk.ok("GET", f"/conversations/{second}")
    assert (detail["queue_position"], detail["expected_wait_seconds"]) == (2, None)  # nobody online
    assert detail["priority_name"] == "normal" and detail["skills"] == []
    urgent = omnidesk.ok("PATCH", f"/conversations/{third}", json={"priority": "urgent"})
    assert (urgent["priority"], urgent["priority_name"], urgent["queue_position"]) == (3, "urgent", 1)
    assert omnidesk.ok("GET", f"/conversations/{first}")["queue_position"] == 2
    low = omnidesk.ok("PATCH", f"/conversations/{first}", json={"priority": "low"})
    assert (low["priority"], low["priority_name"], low["queue_position"]) == (-1, "low", 3)
    assert omnidesk.api("PATCH", f"/conversations/{first}", json={"priority": "asap"}).status_code == 422
    assert omnidesk.api("PATCH", f"/conversations/{first}", json={"priority": 11}).status_code == 422

    # One agent online with room for one: it takes the urgent one; the rest wait, with an estimate.
    ana = omnidesk.agent("Ana", capacity=1)
    wait_for(lambda: omnidesk.ok("GET", f"/conversations/{third}")["assignee_id"] == ana["id"])
    after = omnidesk.ok("GET", f"/conversations/{second}")
    assert after["queue_position"] == 1
    assert after["expected_wait_seconds"] == 900.0  # one slot, the messaging group's default handling time
    mine = omnidesk.ok("GET", f"/conversations/{third}")
    assert (mine["queue_position"], mine["expected_wait_seconds"]) == (None, None)
