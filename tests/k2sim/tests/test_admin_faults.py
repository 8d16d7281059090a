"""Admin API: array listing, request log and every kind of fault (run on array "b" of the shared server)."""

import time

import pytest
import requests
from requests.exceptions import ConnectionError as RequestsConnectionError, HTTPError


@pytest.fixture
def b(sim):
    """Array b with faults reset before and after the test."""
    sim.admin_call("DELETE", "/arrays/b/faults")
    yield sim
    sim.admin_call("DELETE", "/arrays/b/faults")


def faults(sim, **values):
    return sim.admin_call("PATCH", "/arrays/b/faults", json=values)


def test_arrays_listing(sim):
    data = sim.admin_get("/arrays")["arrays"]
    assert set(data) == {"a", "b"}
    assert data["a"]["url"] == sim.url("a") and data["b"]["ca_file"] == sim.ca("b")
    assert data["a"]["sdp_id"] != data["b"]["sdp_id"]
    assert data["a"]["system_id"] != data["b"]["system_id"]
    assert sim.admin_get("/health") == {"ok": True}
    r = requests.get(sim.admin + "/arrays/zz", timeout=5)
    assert r.status_code == 404


def test_arrays_are_independent(sim, uniq):
    a, b_ep = sim.endpoint("a"), sim.endpoint("b")
    name = uniq("vg")
    a.new("volume_groups", name=name).save()
    assert a.search("volume_groups", name=name).total == 1
    assert b_ep.search("volume_groups", name=name).total == 0


def test_request_log_counts_calls_and_proves_no_writes(b, uniq):
    ep = b.endpoint("b")
    b.admin_call("DELETE", "/arrays/b/requests")
    ep.search("volumes", name="CTRL")
    ep.search("volume_groups", name=uniq("none"))
    log = b.requests_log("b")
    assert [r["method"] for r in log] == ["GET", "GET"]
    assert log[0]["path"].startswith("/api/v2/volumes?name=CTRL") and log[0]["status"] == 200
    assert all(r["user"] == "admin" and r["time"] > 0 and r["duration_ms"] >= 0 for r in log)
    assert not [r for r in log if r["method"] != "GET"]          # what a check-mode test asserts
    ep.new("volume_groups", name=uniq("vg")).save()
    writes = b.admin_get("/arrays/b/requests", params={"method": "POST"})["requests"]
    assert len(writes) == 1 and writes[0]["status"] == 201 and writes[0]["path"] == "/api/v2/volume_groups"
    assert b.admin_get("/arrays/b/requests", params={"path_prefix": "/api/v2/volume_groups"})["count"] == 2
    b.admin_call("DELETE", "/arrays/b/requests")
    assert b.requests_log("b") == []


def test_latency(b):
    ep = b.endpoint("b")
    faults(b, latency_ms=700)
    t0 = time.time()
    ep.search("volumes", __limit=1)
    assert time.time() - t0 >= 0.7
    b.admin_call("DELETE", "/arrays/b/faults")
    t0 = time.time()
    ep.search("volumes", __limit=1)
    assert time.time() - t0 < 0.5          # generous: the machine may be busy


def test_http_500_changes_nothing(b, uniq):
    ep = b.endpoint("b")
    faults(b, error_500_rate=1.0)
    name = uniq("vg")
    with pytest.raises(HTTPError) as exc:
        ep.new("volume_groups", name=name).save()
    resp = exc.value.response
    assert resp.status_code == 500 and resp.headers["content-type"] == "application/json"
    assert resp.json()["error_code"] == "MC_ERR_INTERNAL"
    faults(b, error_500_rate=0.0)
    assert ep.search("volume_groups", name=name).total == 0
    assert b.requests_log("b")[-2]["fault"] == "500"


@pytest.mark.parametrize("code", ["MC_ERR_BUSY", "MC_ERR_INPROGRESS"])
def test_busy_errors_look_like_the_array(b, uniq, code):
    ep = b.endpoint("b")
    faults(b, busy_rate=1.0, busy_code=code)
    name = uniq("vg")
    with pytest.raises(HTTPError) as exc:
        ep.new("volume_groups", name=name).save()
    resp = exc.value.response
    assert resp.status_code == 400
    assert resp.json() == {"error_code": code, "error_msg": code}      # flocker: error_msg == code
    assert code in resp.text                                            # cinder: code in body text
    assert str(exc.value).endswith("\n" + code)                         # krest shows error_msg
    faults(b, busy_rate=0.0)
    assert ep.search("volume_groups", name=name).total == 0


def test_too_many_requests(b):
    ep = b.endpoint("b")
    faults(b, toofast_rate=1.0)
    with pytest.raises(HTTPError) as exc:
        ep.search("volumes", __limit=1)
    resp = exc.value.response
    assert resp.status_code == 429 and resp.json()["error_code"] == "MC_ERR_TOO_MANY_REQUESTS"
    faults(b, toofast_rate=0.0)
    assert ep.search("volumes", __limit=1).total >= 1


def test_dropped_connections(b):
    ep = b.endpoint("b")
    faults(b, drop_rate=1.0)
    with pytest.raises(RequestsConnectionError):
        ep.search("volumes", __limit=1)
    faults(b, drop_rate=0.0)
    entry = [r for r in b.requests_log("b") if r["fault"] == "drop"][-1]
    assert entry["status"] == 0
    assert ep.search("volumes", __limit=1).total >= 1


def test_lose_the_response_of_the_next_create(b, uniq):
    ep = b.endpoint("b")
    faults(b, lose_next_create_response=True)
    ep.search("volumes", __limit=1)                     # GETs are not affected
    name = uniq("vg")
    with pytest.raises(RequestsConnectionError):
        ep.new("volume_groups", name=name).save()
    # the create happened: a client that retries blindly now gets a name conflict
    assert ep.search("volume_groups", name=name).total == 1
    assert b.admin_get("/arrays/b/faults")["lose_next_create_response"] is False
    assert [r for r in b.requests_log("b") if r["fault"] == "lost_response"][-1]["status"] == 201
    ep.new("volume_groups", name=uniq("vg")).save()     # one-shot: the next create answers


def test_lose_response_waits_for_a_successful_create(b, uniq):
    ep = b.endpoint("b")
    faults(b, lose_next_create_response=True)
    with pytest.raises(HTTPError):
        ep.new("volume_groups", name="bad name").save()     # refused creates are answered normally
    assert b.admin_get("/arrays/b/faults")["lose_next_create_response"] is True


def test_array_down_refuses_connections_and_comes_back(b, uniq):
    ep = b.endpoint("b")
    name = uniq("vg")
    ep.new("volume_groups", name=name).save()
    faults(b, down=True)
    assert b.admin_get("/arrays")["arrays"]["b"]["down"] is True
    t0 = time.time()
    with pytest.raises(RequestsConnectionError):
        requests.get(b.api("b"), auth=("admin", "admin"), verify=b.ca("b"), timeout=5)
    assert time.time() - t0 < 2
    assert b.endpoint("a").search("volumes", name="CTRL").total == 1        # other arrays stay up
    b.admin_call("DELETE", "/arrays/b/faults")
    again = b.endpoint("b")                                                  # same URL, same port
    assert again.search("volume_groups", name=name).total == 1


def test_seeded_fault_rates_are_reproducible(b):
    s = b.session("b")

    def pattern():
        return [s.get(b.api("b") + "/system/state").status_code for dummy in range(30)]
    faults(b, busy_rate=0.5, seed=42)
    first = pattern()
    faults(b, busy_rate=0.5, seed=42)
    second = pattern()
    assert first == second
    assert set(first) == {200, 400}


def test_fault_settings_are_validated(b):
    for bad in ({"nosuch": 1}, {"busy_rate": 2}, {"drop_rate": 0.6, "busy_rate": 0.6}, {"down": "yes"},
                {"busy_code": "MC_ERR_OTHER"}, {"latency_ms": -1}):
        r = requests.patch(b.admin + "/arrays/b/faults", json=bad, timeout=5)
        assert r.status_code == 400, bad
        assert r.json()["error_msg"]
    r = requests.put(b.admin + "/arrays/b/faults", json={"latency_ms": 5}, timeout=5)
    assert r.status_code == 200 and r.json()["latency_ms"] == 5 and r.json()["busy_rate"] == 0.0
