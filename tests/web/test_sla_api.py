"""Business hours and service levels through the API: a team's hours and reassignment time
(PATCH /teams/{id}), the shop's default hours and SLA targets (admins only, checked), whether a
team is open, and GET /reports/sla counting a customer's wait that the running server clocked."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support import CallbackServer, Running, wait_for

ALWAYS = {"timezone": "Europe/Madrid", "week": {d: [["00:00", "24:00"]] for d in
                                                  ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
NEVER = {"timezone": "America/New_York", "week": {}, "country": "US", "subdivision": "NY"}


def test_hours_targets_and_the_sla_report(omnidesk: Running, callback: CallbackServer) -> None:
    team = omnidesk.ok("POST", "/teams", json={"name": "Support"})
    patched = omnidesk.ok("PATCH", f"/teams/{team['id']}", json={"hours": NEVER, "reassign_after": 900})
    assert patched["name"] == "Support" and patched["reassign_after"] == 900
    assert patched["hours"]["timezone"] == "America/New_York" and patched["hours"]["week"]["mon"] == []
    assert omnidesk.ok("GET", f"/teams/{team['id']}/open") == {"team_id": team["id"], "open": False,
                                                               "next_open": None}
    for bad in ({"hours": {"timezone": "Nowhere/City"}}, {"hours": {"week": {"mon": [["18:00", "09:00"]]}}},
                {"hours": {"country": "ZZ"}}, {"reassign_after": -5}):
        refused = omnidesk.api("PATCH", f"/teams/{team['id']}", json=bad)
        assert refused.status_code == 422, bad
    # Leaving fields out keeps them; null sets them back to the default.
    assert omnidesk.ok("PATCH", f"/teams/{team['id']}", json={"name": "Care"})["reassign_after"] == 900
    cleared = omnidesk.ok("PATCH", f"/teams/{team['id']}", json={"hours": None, "reassign_after": None})
    assert (cleared["hours"], cleared["reassign_after"]) == (None, None)
    assert omnidesk.api("PATCH", "/teams/424242", json={"reassign_after": 60}).status_code == 404

    assert omnidesk.ok("GET", "/settings/hours") == {"hours": None}
    assert omnidesk.ok("PUT", "/settings/hours", json={"hours": ALWAYS})["hours"]["week"]["sun"] == [["00:00", "24:00"]]
    assert omnidesk.ok("GET", f"/teams/{team['id']}/open")["open"] is True  # the shop's hours apply
    assert omnidesk.api("PUT", "/settings/hours", json={"hours": {"closed": ["31/12"]}}).status_code == 422
    sla = omnidesk.ok("PUT", "/settings/sla", json={"near": 0.5, "targets": {"messaging": {"first": 120}}})
    assert sla == {"near": 0.5, "targets": {"messaging": {"first": 120.0}}}
    assert omnidesk.api("PUT", "/settings/sla", json={"targets": {"fax": {"first": 1}}}).status_code == 422
    assert omnidesk.ok("GET", "/settings/sla") == sla

    bo = omnidesk.agent("Bo", online=False)
    for method, path, body in (("GET", "/reports/sla", None), ("PUT", "/settings/sla", {"near": 0.5}),
                               ("PUT", "/settings/hours", {"hours": None})):
        assert omnidesk.api(method, path, bo["token"], json=body).status_code == 403

    channel_id, secret = omnidesk.api_channel(callback.url)
    payload = {"message_id": "m-1", "from": {"id": "c-1", "name": "Marta"}, "text": "hola"}
    assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    [conv] = wait_for(lambda: omnidesk.ok("GET", "/conversations")["items"])
    waiting = datetime.fromisoformat(conv["waiting_since"])
    assert datetime.fromisoformat(conv["first_response_due"]) - waiting == timedelta(seconds=120)
    assert conv["next_response_due"] is None
    omnidesk.ok("PUT", "/settings/sla", json={"near": 0.5, "targets": {"messaging": {"first": 120},
                                                                       "messaging:3": {"first": 60}}})
    urgent = omnidesk.ok("PATCH", f"/conversations/{conv['id']}", json={"priority": 3})
    assert datetime.fromisoformat(urgent["first_response_due"]) - waiting == timedelta(seconds=60)
    report = omnidesk.ok("GET", "/reports/sla")
    assert report["items"] == [{"channel_kind": "api", "priority": 3, "met": 0, "breached": 0, "near_breach": 0,
                                "open": 1, "unanswered": 0, "median_first_response_seconds": None}]
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": "hello Marta"})
    [row] = omnidesk.ok("GET", "/reports/sla")["items"]
    assert (row["met"], row["open"]) == (1, 0) and row["median_first_response_seconds"] >= 0
    assert omnidesk.api("GET", "/reports/sla", params={"start": "2026-12-01T00:00:00",
                                                       "end": "2026-11-01T00:00:00"}).status_code == 422
    assert omnidesk.ok("GET", "/reports/sla", params={"start": "2020-01-01T00:00:00Z",
                                                      "end": "2020-02-01T00:00:00Z"})["items"] == []
