"""Replication between two (or three) arrays of one k2sim process, through krest 1.3.8 and raw HTTP."""

import itertools
import os
import random
import signal
import threading
import time

import pytest
import requests

from k2sim_repl import (FAST, cinder_create, cinder_delete, cinder_failback, cinder_failover, digest, names,
                        pair, set_down, settings, user_snap, volume_path, wait_until, wait_user_snaps, write)
from k2sim_testlib import Sim

_ids = itertools.count(1)
MIB = 1 << 20


@pytest.fixture(scope="module")
def rs(tmp_path_factory):
    """Arrays p (primary), t (target) paired both ways, and x (paired with nobody)."""
    sim = Sim(tmp_path_factory.mktemp("repl") / "data", arrays=("p", "t", "x"),
              users=("admin:admin", "viewer:viewpass:read_only"), extra=FAST)
    sim.p, sim.t = sim.endpoint("p"), sim.endpoint("t")
    sim.peer_t, sim.peer_p = pair(sim, "p", "t", sim.p, sim.t)
    yield sim
    sim.stop()


@pytest.fixture
def vid():
    return "%d-%d" % (os.getpid() % 1000, next(_ids))


@pytest.fixture(autouse=True)
def fast_settings(rs):
    yield
    for name in ("p", "t", "x"):
        rs.admin_call("DELETE", "/arrays/%s/faults" % name)
    settings(rs, delay_seconds=0.1, transfer_seconds=0.1, rpo_scale=0)


def http(sim, array):
    return sim.session(array)


def call(sim, array, method, path, body=None):
    return http(sim, array).request(method, sim.api(array) + path, json=body, timeout=20)


def err(resp, code, status=400):
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.json()["error_code"] == code, resp.text
    return resp.json()["error_msg"]


def session(ep, name):
    return ep.search("replication/sessions", name=name).hits[0]


def converged(ep, name, state, role):
    def check():
        s = session(ep, name)
        return s.state == state and s.current_role == role
    return check


def setup_in_sync(rs, vid, size_kib=4096):
    vg, vol, ssn = cinder_create(rs.p, rs.t, rs.addr("t"), vid, size_kib=size_kib)
    n = names(vid)
    wait_until("target in_sync", converged(rs.t, n["rssn"], "in_sync", "target"))
    wait_until("initial sync", lambda: session(rs.p, n["ssn"]).generation_number >= 1)
    return vg, vol, ssn


# ----- discovery, peer arrays ------------------------------------------------------------------------------
def test_discovery_lists_replication_and_every_ref_resolves(rs, vid):
    setup_in_sync(rs, vid)
    user_snap(rs.p, session(rs.p, names(vid)["ssn"]))
    time.sleep(0.6)
    for array in ("p", "t"):
        s = http(rs, array)
        urls = [v["url"] for v in s.get(rs.api(array), timeout=10).json()["resources"].values()]
        for res in ("replication/peer_k2arrays", "replication/sessions", "replication/peer_volumes",
                    "replication/peer_volume_groups", "replication/rpo_history"):
            assert "/" + res in urls
        full = s.get(rs.api(array) + "/__full", timeout=20).json()
        refs = set()

        def collect(value):
            if isinstance(value, dict):
                if set(value) == {"ref"}:
                    refs.add(value["ref"])
                for v in value.values():
                    collect(v)
            elif isinstance(value, list):
                for v in value:
                    collect(v)
        collect(full)
        assert any(r.startswith("/replication/sessions/") for r in refs)
        assert any(r.startswith("/replication/peer_volume_groups/") for r in refs)
        assert any(r.startswith("/replication/rpo_history/") for r in refs)
        for r in refs:
            prefix = r.rsplit("/", 1)[0]
            assert prefix in urls, r
            assert s.get(rs.api(array) + r, timeout=10).status_code == 200, r
        # Cinder's KrestWrap holds a lock, so krest fails to deep-copy any answer holding a list of refs (reference 8.8)
        locked = rs.endpoint(array)
        locked.krestlock = threading.Lock()
        for res in [k for k in full if k.startswith("replication/")] + ["volume_groups", "volumes", "snapshots"]:
            for hit in locked.search(res).hits:
                hit.refresh()


def test_peer_arrays_resolve_by_mgmt_host_and_check_credentials(rs, vid):
    p = rs.p
    peer = p.search("replication/peer_k2arrays", mgmt_host=rs.addr("t")).hits[0]
    assert peer.mgmt_connectivity_state == "ok"
    assert peer.system_id == rs.admin_get("/arrays/t")["system_id"]
    assert peer.password is None and peer.capacity_total > 0
    # by array name and https:// URL as well
    byname = p.new("replication/peer_k2arrays", name="byname-" + vid, mgmt_host="t", username="admin", password="admin").save()
    assert byname.system_id == peer.system_id
    byurl = call(rs, "p", "POST", "/replication/peer_k2arrays", {"name": "byurl-" + vid, "mgmt_host": rs.url("t") + "/",
                                                                 "username": "admin", "password": "admin"})
    assert byurl.status_code == 201 and byurl.json()["system_id"] == peer.system_id
    body = {"name": "bad-" + vid, "username": "admin", "password": "admin"}
    msg = err(call(rs, "p", "POST", "/replication/peer_k2arrays", dict(body, mgmt_host="127.0.0.1")), "MC_ERR_PEER_UNREACHABLE")
    assert "ambiguous" in msg
    err(call(rs, "p", "POST", "/replication/peer_k2arrays", dict(body, mgmt_host="192.0.2.99:443")), "MC_ERR_PEER_UNREACHABLE")
    err(call(rs, "p", "POST", "/replication/peer_k2arrays", dict(body, mgmt_host=rs.addr("p"))), "MC_ERR_PEER_UNREACHABLE")
    err(call(rs, "p", "POST", "/replication/peer_k2arrays", dict(body, mgmt_host=rs.addr("t"), password="nope")), "MC_ERR_PEER_AUTH")
    viewer = dict(body, mgmt_host=rs.addr("t"), username="viewer", password="viewpass")
    err(call(rs, "p", "POST", "/replication/peer_k2arrays", viewer), "MC_ERR_PEER_AUTH")
    err(call(rs, "p", "POST", "/replication/peer_k2arrays", {"name": "m-" + vid, "mgmt_host": "t"}), "MC_ERR_INVALID_ARG")
    err(call(rs, "p", "PATCH", "/replication/peer_k2arrays/%d" % byname.id, {"password": "wrong"}), "MC_ERR_PEER_AUTH")
    set_down(rs, "t", True)
    byname.refresh()
    assert byname.mgmt_connectivity_state == "disconnected"
    err(call(rs, "p", "POST", "/replication/peer_k2arrays", dict(body, mgmt_host=rs.addr("t"))), "MC_ERR_PEER_UNREACHABLE")
    set_down(rs, "t", False)
    byname.delete()
    call(rs, "p", "DELETE", "/replication/peer_k2arrays/%d" % byurl.json()["id"])
    # a peer used by a session cannot go
    setup_in_sync(rs, vid)
    err(call(rs, "p", "DELETE", "/replication/peer_k2arrays/%d" % peer.id), "MC_ERR_IN_USE")


# ----- sessions: creation --------------------------------------------------------------------------------------
def test_cinder_create_makes_the_peer_objects(rs, vid):
    n = names(vid)
    vg, vol, ssn = cinder_create(rs.p, rs.t, rs.addr("t"), vid)
    assert (ssn.state, ssn.current_role) == ("in_sync", "source")
    for field in ("generation_number", "current_snapshot_progress", "current_snapshot_id", "rpo", "local_volume_group"):
        assert hasattr(ssn, field)
    assert ssn.rpo == 300 and ssn.retention_policy is not None and ssn.external_retention_policy is not None
    rvg = rs.t.search("volume_groups", name=n["rvg"]).hits[0]
    rvol = rs.t.search("volumes", name=n["rvol"]).hits[0]
    rssn = session(rs.t, n["rssn"])
    assert rvol.size == vol.size and rvol.volume_group.id == rvg.id and rvg.is_dedup is True
    assert rssn.current_role == "target" and rssn.local_volume_group.id == rvg.id
    assert rssn.remote_replication_session_name == n["ssn"] and rssn.replication_peer_volume_group_name == n["vg"]
    assert rssn.replication_peer_k2array.id == rs.peer_p.id
    wait_until("target in_sync", converged(rs.t, n["rssn"], "in_sync", "target"))
    vg.refresh()
    vol.refresh()
    assert vg.replication_session.id == ssn.id and vg.replication_peer_volume_group is not None
    assert vol.replication_peer_volume is not None
    pv = rs.p.search("replication/peer_volumes", local_volume=vol).hits[0]
    assert pv.name == n["rvol"] and pv.remote_volume_id == rvol.id and pv.replication_session.id == ssn.id
    pvg = rs.p.search("replication/peer_volume_groups", replication_session=ssn).hits[0]
    assert pvg.name == n["rvg"] and pvg.remote_volume_group_id == rvg.id and pvg.fullname.endswith("_" + n["rvg"])
    # the target side mirrors the pairing
    assert rs.t.search("replication/peer_volumes", local_volume=rvol).hits[0].remote_volume_id == vol.id
    assert rs.p.search("replication/sessions", local_volume_group=vg).total == 1    # cinder's _get_replica_status
    wait_until("initial sync", lambda: session(rs.p, n["ssn"]).generation_number == 1)


def test_session_creation_is_validated(rs, vid):
    p = rs.p
    vg = p.new("volume_groups", name="vg-" + vid, quota=0).save()
    base = {"name": "s-" + vid, "replication_peer_k2array": {"ref": "/replication/peer_k2arrays/%d" % rs.peer_t.id},
            "local_volume_group": {"ref": "/volume_groups/%d" % vg.id}, "rpo": 300,
            "replication_peer_volume_group_name": "rvg-" + vid, "remote_replication_session_name": "rs-" + vid}
    for rpo in (0, 59, 120, 301, -300):
        err(call(rs, "p", "POST", "/replication/sessions", dict(base, rpo=rpo)), "MC_ERR_INVALID_ARG")
    err(call(rs, "p", "POST", "/replication/sessions", dict(base, rpo="abc")), "MC_ERR_INVALID_ARG")
    err(call(rs, "p", "POST", "/replication/sessions", dict(base, target_exposure="everything")), "MC_ERR_INVALID_ARG")
    err(call(rs, "p", "POST", "/replication/sessions", dict(base, local_volume_group={"ref": "/volume_groups/99999"})),
        "MC_ERR_REF_NOT_FOUND")
    rs.t.new("volume_groups", name="rvg-" + vid, quota=0).save()
    err(call(rs, "p", "POST", "/replication/sessions", base), "MC_ERR_ALREADY_EXISTS")
    # x is not paired with p: p may name it, but x has no peer object pointing back
    px = p.new("replication/peer_k2arrays", name="px-" + vid, mgmt_host=rs.addr("x"), username="admin", password="admin").save()
    msg = err(call(rs, "p", "POST", "/replication/sessions", dict(base, replication_peer_k2array={"ref": "/replication/peer_k2arrays/%d" % px.id},
                                                                  replication_peer_volume_group_name="ok-" + vid)), "MC_ERR_PEER_NOT_PAIRED")
    assert "x" in msg
    set_down(rs, "t", True)
    err(call(rs, "p", "POST", "/replication/sessions", dict(base, replication_peer_volume_group_name="ok-" + vid)), "MC_ERR_PEER_UNREACHABLE")
    set_down(rs, "t", False)
    ok = call(rs, "p", "POST", "/replication/sessions", dict(base, rpo="60", replication_peer_volume_group_name="ok-" + vid))
    assert ok.status_code == 201, ok.text
    assert ok.json()["state"] == "idle" and ok.json()["rpo"] == 60 and ok.json()["target_exposure"] == "unmapped"
    again = dict(base, name="s2-" + vid, replication_peer_volume_group_name="ok2-" + vid, remote_replication_session_name="rs2-" + vid)
    err(call(rs, "p", "POST", "/replication/sessions", again), "MC_ERR_IN_USE")    # one session per VG
    # nothing half-made on t by the refused attempts
    assert rs.t.search("volume_groups", name="ok2-" + vid).total == 0
    assert rs.t.search("replication/sessions", name="rs2-" + vid).total == 0
    px.delete()


def test_auto_configure_peer_volumes_and_default_names(rs, vid):
    p = rs.p
    vg = p.new("volume_groups", name="avg-" + vid, quota=0, is_dedup=False).save()
    v1 = p.new("volumes", name="av1-" + vid, size=1024, volume_group=vg).save()
    p.new("volumes", name="av2-" + vid, size=2048, volume_group=vg).save()
    s = p.new("replication/sessions", name="as-" + vid, replication_peer_k2array=rs.peer_t, local_volume_group=vg, rpo=60,
              auto_configure_peer_volumes=True).save()
    rvg = rs.t.search("volume_groups", name="avg-" + vid).hits[0]
    assert rvg.is_dedup is False
    assert sorted((v.name, v.size) for v in rs.t.search("volumes", volume_group=rvg).hits) == [("av1-" + vid, 1024), ("av2-" + vid, 2048)]
    assert session(rs.t, "as-" + vid).current_role == "target"
    assert p.search("replication/peer_volumes", replication_session=s).total == 2
    # a peer volume for a volume of another VG, or a second one for the same volume, is refused
    other = p.new("volumes", name="ov-" + vid, size=1024, volume_group=p.new("volume_groups", name="ovg-" + vid, quota=0).save()).save()
    ref_s = {"ref": "/replication/sessions/%d" % s.id}
    err(call(rs, "p", "POST", "/replication/peer_volumes", {"name": "x-" + vid, "local_volume": {"ref": "/volumes/%d" % other.id},
                                                            "replication_session": ref_s}), "MC_ERR_INVALID_ARG")
    err(call(rs, "p", "POST", "/replication/peer_volumes", {"name": "y-" + vid, "local_volume": {"ref": "/volumes/%d" % v1.id},
                                                            "replication_session": ref_s}), "MC_ERR_ALREADY_EXISTS")
    # peer volumes leave an idle session only; the peer's volume stays (as for a session delete)
    pv = p.search("replication/peer_volumes", local_volume=v1).hits[0]
    s.state = "in_sync"
    s.save()
    err(call(rs, "p", "DELETE", "/replication/peer_volumes/%d" % pv.id), "MC_ERR_INVALID_STATE")
    s.state = "suspended"
    s.save()
    s.state = "idle"
    s.save()
    assert call(rs, "p", "DELETE", "/replication/peer_volumes/%d" % pv.id).status_code == 204
    rv1 = rs.t.search("volumes", name="av1-" + vid).hits[0]
    assert rs.t.search("replication/peer_volumes", local_volume=rv1).total == 0
    v1.refresh()
    assert v1.replication_peer_volume is None
    v1.delete()                                                    # no longer replicated: free to go


# ----- the state machine -----------------------------------------------------------------------------------
def test_every_transition_of_the_state_machine(rs, vid):
    n = names(vid)
    vg, vol, ssn = cinder_create(rs.p, rs.t, rs.addr("t"), vid)
    ssn.state = "suspended"
    ssn.save()
    ssn.state = "idle"
    ssn.save()
    sid = ssn.id
    rid = session(rs.t, n["rssn"]).id
    P = "/replication/sessions/%d" % sid
    T = "/replication/sessions/%d" % rid
    wait_until("target idle", converged(rs.t, n["rssn"], "idle", "target"))
    # invalid from idle
    err(call(rs, "p", "PATCH", P, {"state": "suspended"}), "MC_ERR_INVALID_STATE")
    err(call(rs, "p", "PATCH", P, {"state": "failed_over"}), "MC_ERR_INVALID_STATE")
    err(call(rs, "p", "PATCH", P, {"state": "running"}), "MC_ERR_INVALID_ARG")
    err(call(rs, "t", "PATCH", T, {"state": "in_sync"}), "MC_ERR_INVALID_STATE")
    err(call(rs, "t", "PATCH", T, {"state": "failed_over"}), "MC_ERR_INVALID_STATE")
    # idle -> in_sync (source), the target follows
    r = call(rs, "p", "PATCH", P, {"state": "in_sync"})
    assert r.status_code == 200 and r.json()["state"] == "in_sync"
    wait_until("target in_sync", converged(rs.t, n["rssn"], "in_sync", "target"))
    assert call(rs, "p", "PATCH", P, {"state": "in_sync"}).status_code == 200      # same state: nothing to do
    # while in_sync: no stop without suspend, no failover on the source, no delete, the VG and volume stay
    err(call(rs, "p", "PATCH", P, {"state": "idle"}), "MC_ERR_INVALID_STATE")
    msg = err(call(rs, "p", "PATCH", P, {"state": "failed_over"}), "MC_ERR_INVALID_STATE")
    assert n["rssn"] in msg
    err(call(rs, "p", "DELETE", P), "MC_ERR_INVALID_STATE")
    err(call(rs, "t", "DELETE", T), "MC_ERR_INVALID_STATE")
    err(call(rs, "p", "DELETE", "/volume_groups/%d" % vg.id), "MC_ERR_IN_USE")
    err(call(rs, "p", "DELETE", "/volumes/%d" % vol.id), "MC_ERR_IN_USE")
    other_vg = rs.p.new("volume_groups", name="mv-" + vid, quota=0).save()
    err(call(rs, "p", "PATCH", "/volumes/%d" % vol.id, {"volume_group": {"ref": "/volume_groups/%d" % other_vg.id}}), "MC_ERR_IN_USE")
    rvol = rs.t.search("volumes", name=n["rvol"]).hits[0]
    err(call(rs, "t", "DELETE", "/volumes/%d" % rvol.id), "MC_ERR_IN_USE")
    err(call(rs, "t", "DELETE", "/volume_groups/%d" % rvol.volume_group.id), "MC_ERR_IN_USE")
    host_t = rs.t.new("hosts", name="ht-" + vid, type="Linux").save()
    err(call(rs, "t", "POST", "/mappings", {"volume": {"ref": "/volumes/%d" % rvol.id}, "host": {"ref": "/hosts/%d" % host_t.id}}),
        "MC_ERR_INVALID_STATE")
    err(call(rs, "t", "PATCH", T, {"state": "suspended"}), "MC_ERR_INVALID_STATE")
    err(call(rs, "t", "PATCH", T, {"state": "idle"}), "MC_ERR_INVALID_STATE")
    err(call(rs, "t", "PATCH", T, {"state": "failed_over", "restored_snapshot": {"ref": "/snapshots/999999"}}), "MC_ERR_REF_NOT_FOUND")
    # in_sync -> suspended -> in_sync -> suspended -> idle on the source, each mirrored
    for state in ("suspended", "in_sync", "suspended", "idle"):
        assert call(rs, "p", "PATCH", P, {"state": state}).status_code == 200
        wait_until("target " + state, converged(rs.t, n["rssn"], state, "target"))
    err(call(rs, "p", "PATCH", P, {"state": "suspended"}), "MC_ERR_INVALID_STATE")
    # failover of the target: from in_sync, and again from suspended
    call(rs, "p", "PATCH", P, {"state": "in_sync"})
    wait_until("target in_sync", converged(rs.t, n["rssn"], "in_sync", "target"))
    r = call(rs, "t", "PATCH", T, {"state": "failed_over"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["current_role"]) == ("failed_over", "target")
    wait_until("source suspended", converged(rs.p, n["ssn"], "suspended", "source"))
    m = call(rs, "t", "POST", "/mappings", {"volume": {"ref": "/volumes/%d" % rvol.id}, "host": {"ref": "/hosts/%d" % host_t.id}})
    assert m.status_code == 201, m.text                                 # mappable once failed over
    # the old source may stop its side; the failed-over target is not changed by that
    assert call(rs, "p", "PATCH", P, {"state": "idle"}).status_code == 200
    time.sleep(0.4)
    assert session(rs.t, n["rssn"]).state == "failed_over"
    msg = err(call(rs, "p", "PATCH", P, {"state": "in_sync"}), "MC_ERR_INVALID_STATE")
    assert "fail back" in msg
    err(call(rs, "p", "PATCH", P, {"state": "failed_over"}), "MC_ERR_INVALID_STATE")
    err(call(rs, "t", "PATCH", T, {"state": "suspended"}), "MC_ERR_INVALID_STATE")
    # failed_over -> in_sync reverses the direction: t becomes the source, p the target
    r = call(rs, "t", "PATCH", T, {"state": "in_sync"})
    assert (r.json()["state"], r.json()["current_role"]) == ("in_sync", "source")
    wait_until("p in_sync target", converged(rs.p, n["ssn"], "in_sync", "target"))
    err(call(rs, "p", "POST", "/snapshots", {"replication_session": {"ref": P}}), "MC_ERR_INVALID_STATE")
    # p (target now) fails over; t (source) reads suspended; p in_sync swaps the roles back
    assert call(rs, "p", "PATCH", P, {"state": "failed_over"}).status_code == 200
    wait_until("t suspended", converged(rs.t, n["rssn"], "suspended", "source"))
    assert call(rs, "p", "PATCH", P, {"state": "in_sync"}).json()["current_role"] == "source"
    wait_until("t in_sync target", converged(rs.t, n["rssn"], "in_sync", "target"))
    # failed_over -> idle on the target (cinder's removal while failed over); the source follows to idle
    call(rs, "t", "DELETE", "/mappings/%d" % m.json()["id"])
    assert call(rs, "t", "PATCH", T, {"state": "failed_over"}).status_code == 200
    wait_until("p suspended", converged(rs.p, n["ssn"], "suspended", "source"))
    assert call(rs, "t", "PATCH", T, {"state": "idle"}).status_code == 200
    wait_until("p idle", converged(rs.p, n["ssn"], "idle", "source"))
    assert call(rs, "t", "DELETE", T).status_code == 204
    # the p session lost its peer session: it can be deleted, not started
    msg = err(call(rs, "p", "PATCH", P, {"state": "in_sync"}), "MC_ERR_INVALID_STATE")
    assert "no peer session" in msg
    assert call(rs, "p", "DELETE", P).status_code == 204
    vg.refresh()
    assert vg.replication_session is None
    assert rs.p.search("replication/peer_volumes", local_volume=vol).total == 0


def test_state_changes_show_on_the_peer_after_the_configured_delay(rs, vid):
    n = names(vid)
    setup_in_sync(rs, vid)
    settings(rs, delay_seconds=1.5)
    ssn = session(rs.p, n["ssn"])
    t0 = time.time()
    ssn.state = "suspended"
    ssn.save()
    assert session(rs.t, n["rssn"]).state == "in_sync"      # not yet
    wait_until("target suspended", converged(rs.t, n["rssn"], "suspended", "target"))
    elapsed = time.time() - t0
    assert 1.4 <= elapsed <= 6.0, elapsed
    status = rs.admin_get("/replication")
    assert status["settings"]["delay_seconds"] == 1.5
    row = [s for s in status["arrays"]["p"]["sessions"] if s["name"] == n["ssn"]][0]
    assert row["converged"] is True and row["peer_session"] == n["rssn"]
    r = requests.patch(rs.admin + "/replication", json={"delay_seconds": -1}, timeout=10)
    assert r.status_code == 400


# ----- replication snapshots and data -------------------------------------------------------------------------
def test_user_snapshot_progress_generation_and_point_in_time_data(rs, vid):
    n = names(vid)
    setup_in_sync(rs, vid)
    settings(rs, transfer_seconds=1.0)
    write(rs, "p", n["vol"], 0, b"A" * 65536)
    write(rs, "p", n["vol"], 3 * MIB, b"tail")
    at_snapshot = digest(rs, "p", n["vol"])
    ssn = session(rs.p, n["ssn"])
    r = call(rs, "p", "POST", "/snapshots", {"is_application_consistent": "False", "replication_session": {"ref": "/replication/sessions/%d" % ssn.id}})
    assert r.status_code == 201, r.text
    snap = r.json()
    gno = snap["generation_number"]
    assert gno == ssn.generation_number + 1 and snap["triggered_by"] == "api" and snap["is_exist_on_peer"] is False
    assert snap["source"]["ref"] == ssn.local_volume_group._obj_ref and snap["name"].startswith(n["vg"] + ":")
    write(rs, "p", n["vol"], 0, b"B" * 65536)           # after the snapshot: must not reach this generation
    seen = set()
    deadline = time.time() + 10
    while True:
        ssn.refresh()
        seen.add((ssn.current_snapshot_id, ssn.current_snapshot_progress))
        if ssn.generation_number == gno and ssn.current_snapshot_progress == 100 and ssn.current_snapshot_id is None:
            break
        assert time.time() < deadline
        time.sleep(0.05)
    assert any(sid == snap["id"] and 0 < prog < 100 for sid, prog in seen), seen
    assert digest(rs, "t", n["rvol"]) == at_snapshot
    s2 = call(rs, "p", "GET", "/snapshots/%d" % snap["id"]).json()
    assert s2["is_exist_on_peer"] is True
    replica = rs.t.search("snapshots", name="%s:%s" % (n["rvg"], snap["short_name"])).hits[0]
    assert (replica.triggered_by, replica.generation_number, replica.is_originating_from_peer) == ("Replication_API", gno, True)
    rssn = session(rs.t, n["rssn"])
    assert rssn.generation_number == gno and rssn.latest_replicated_snapshot.id == replica.id
    hist = rs.t.search("replication/rpo_history", session=rssn, generation_number=gno).hits[0]
    assert hist.role == "target" and hist.round_end >= hist.round_start and hist.bytes_transmitted_logical >= 65536
    # not on a target session, not from another VG
    err(call(rs, "t", "POST", "/snapshots", {"replication_session": {"ref": "/replication/sessions/%d" % rssn.id}}), "MC_ERR_INVALID_STATE")
    other = rs.p.new("volume_groups", name="o-" + vid, quota=0).save()
    err(call(rs, "p", "POST", "/snapshots", {"replication_session": {"ref": "/replication/sessions/%d" % ssn.id},
                                             "source": {"ref": "/volume_groups/%d" % other.id}}), "MC_ERR_INVALID_ARG")
    # plain snapshots still need their mandatory fields
    err(call(rs, "p", "POST", "/snapshots", {"source": {"ref": "/volume_groups/%d" % other.id}}), "MC_ERR_INVALID_ARG")


def test_rpo_cycles_by_admin_trigger_and_time_scale(rs, vid):
    n = names(vid)
    vg, vol, ssn = cinder_create(rs.p, rs.t, rs.addr("t"), vid, rpo=60)
    wait_until("initial sync", lambda: session(rs.p, n["ssn"]).generation_number == 1)
    write(rs, "p", n["vol"], MIB, b"rpo-data" * 100)
    assert digest(rs, "t", n["rvol"]) != digest(rs, "p", n["vol"])
    q = rs.admin_call("POST", "/arrays/p/replication/cycle", json={"session": n["ssn"]})
    assert q["queued"] == [{"session": n["ssn"], "generation_number": 2}]
    wait_until("cycle 2", lambda: session(rs.p, n["ssn"]).generation_number == 2)
    assert digest(rs, "t", n["rvol"]) == digest(rs, "p", n["vol"])
    # a grown source volume grows its peer at the next cycle
    vol.size = 8192
    vol.save()
    rs.admin_call("POST", "/arrays/p/replication/cycle", json={})
    wait_until("cycle 3", lambda: session(rs.p, n["ssn"]).generation_number == 3)
    assert rs.t.search("volumes", name=n["rvol"]).hits[0].size == 8192
    assert digest(rs, "t", n["rvol"]) == digest(rs, "p", n["vol"])
    r = requests.post(rs.admin + "/arrays/t/replication/cycle", json={"session": n["rssn"]}, timeout=10)
    assert r.status_code == 400          # target side
    # rpo 60 s x 0.01 = a cycle every 0.6 s
    settings(rs, rpo_scale=0.01)
    wait_until("two RPO cycles", lambda: session(rs.p, n["ssn"]).generation_number >= 5, timeout=15)
    settings(rs, rpo_scale=0)
    time.sleep(0.5)
    rvg = rs.t.search("volume_groups", name=n["rvg"]).hits[0]
    replicas = [s for s in rs.t.search("snapshots", volume_group=rvg).hits if s.triggered_by == "Replication"]
    assert 1 <= len(replicas) <= 3, [s.name for s in replicas]         # older RPO replicas are pruned
    assert max(s.generation_number for s in replicas) == session(rs.t, n["rssn"]).generation_number


# ----- cinder's sequences ------------------------------------------------------------------------------------
def test_cinder_delete_sequence(rs, vid):
    n = names(vid)
    setup_in_sync(rs, vid)
    user_snap(rs.p, session(rs.p, n["ssn"]))
    time.sleep(0.5)
    cinder_delete(rs.p, rs.t, vid)
    for ep, keys in ((rs.p, ("vg", "vol", "ssn")), (rs.t, ("rvg", "rvol", "rssn"))):
        for key in keys:
            res = {"vg": "volume_groups", "rvg": "volume_groups", "vol": "volumes", "rvol": "volumes"}.get(key, "replication/sessions")
            assert ep.search(res, name=n[key]).total == 0, (key, n[key])
    for ep in (rs.p, rs.t):
        for res in ("replication/peer_volumes", "replication/peer_volume_groups"):
            assert not [o for o in ep.search(res).hits if o.name in (n["vol"], n["rvol"], n["vg"], n["rvg"])]


def test_cinder_create_rollback_when_the_peer_volume_name_is_taken(rs, vid):
    n = names(vid)
    blocker_vg = rs.t.new("volume_groups", name="blk-" + vid, quota=0).save()
    rs.t.new("volumes", name=n["rvol"], size=1024, volume_group=blocker_vg).save()
    with pytest.raises(requests.exceptions.HTTPError):
        cinder_create(rs.p, rs.t, rs.addr("t"), vid)
    assert rs.p.search("volume_groups", name=n["vg"]).total == 0
    assert rs.t.search("volume_groups", name=n["rvg"]).total == 0
    assert rs.t.search("replication/sessions", name=n["rssn"]).total == 0


def test_cinder_failover_with_the_primary_down_and_failback_with_data(rs, vid):
    n = names(vid)
    setup_in_sync(rs, vid)
    write(rs, "p", n["vol"], 0, os.urandom(256 * 1024))
    wait_user_snaps([(session(rs.p, n["ssn"]), user_snap(rs.p, session(rs.p, n["ssn"])))])
    synced = digest(rs, "p", n["vol"])
    write(rs, "p", n["vol"], 2 * MIB, b"lost with the primary")           # never replicated
    set_down(rs, "p", True)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(rs.api("p"), verify=rs.ca("p"), timeout=5)
    assert cinder_failover(rs.t, [vid]) == {vid: "failed-over"}
    rssn = session(rs.t, n["rssn"])
    assert (rssn.state, rssn.current_role) == ("failed_over", "target")
    assert digest(rs, "t", n["rvol"]) == synced                              # data of the last completed cycle
    # the secondary serves: map rcv to a host and write through it
    host = rs.t.new("hosts", name="dr-" + vid, type="Linux").save()
    rvol = rs.t.search("volumes", name=n["rvol"]).hits[0]
    rs.t.new("mappings", volume=rvol, host=host).save()
    path = rs.admin_get("/arrays/t/backing", params={"host": host.name, "volume": n["rvol"]})["path"]
    with open(path, "r+b") as fh:
        fh.seek(MIB)
        fh.write(b"written at the DR site" * 1000)
    at_dr = digest(rs, "t", n["rvol"])
    time.sleep(0.5)
    assert session(rs.t, n["rssn"]).state == "failed_over"                   # nothing moves while p is down
    set_down(rs, "p", False)
    wait_until("primary sees suspended", converged(rs.p, n["ssn"], "suspended", "source"))
    assert cinder_failback(rs.p, rs.t, [vid]) == {vid: "disabled"}
    wait_until("roles back", converged(rs.t, n["rssn"], "in_sync", "target"))
    ssn = session(rs.p, n["ssn"])
    assert (ssn.state, ssn.current_role) == ("in_sync", "source")
    assert digest(rs, "p", n["vol"]) == at_dr                                  # the DR writes came home
    # and replication runs p -> t again
    write(rs, "p", n["vol"], 0, b"after failback")
    wait_user_snaps([(ssn, user_snap(rs.p, ssn))])
    assert digest(rs, "t", n["rvol"]) == digest(rs, "p", n["vol"])
    cinder_delete(rs.p, rs.t, vid)


def test_target_down_stalls_cycles_and_state_changes_resume(rs, vid):
    n = names(vid)
    setup_in_sync(rs, vid)
    ssn = session(rs.p, n["ssn"])
    set_down(rs, "t", True)
    gno = user_snap(rs.p, ssn)
    time.sleep(0.8)
    ssn.refresh()
    assert ssn.generation_number == gno - 1 and ssn.current_snapshot_progress < 100
    extra = rs.p.new("volumes", name="nv-" + vid, size=1024, volume_group=ssn.local_volume_group).save()
    err(call(rs, "p", "POST", "/replication/peer_volumes", {"name": "rnv-" + vid, "replication_session": {"ref": "/replication/sessions/%d" % ssn.id},
                                                            "local_volume": {"ref": "/volumes/%d" % extra.id}}), "MC_ERR_PEER_UNREACHABLE")
    set_down(rs, "t", False)
    wait_user_snaps([(ssn, gno)])
    set_down(rs, "t", True)
    ssn.state = "suspended"                 # accepted while the peer is down ...
    ssn.save()
    err(call(rs, "p", "PATCH", "/replication/sessions/%d" % ssn.id, {"state": "in_sync"}), "MC_ERR_PEER_UNREACHABLE")
    time.sleep(0.5)
    set_down(rs, "t", False)
    wait_until("target suspended once up", converged(rs.t, n["rssn"], "suspended", "target"))   # ... and mirrored when it is back


def test_failover_with_restored_snapshot(rs, vid):
    n = names(vid)
    setup_in_sync(rs, vid)
    ssn = session(rs.p, n["ssn"])
    write(rs, "p", n["vol"], 0, b"first" * 1000)
    g1 = user_snap(rs.p, ssn)
    wait_user_snaps([(ssn, g1)])
    first = digest(rs, "p", n["vol"])
    write(rs, "p", n["vol"], 0, b"second" * 1000)
    wait_user_snaps([(ssn, user_snap(rs.p, ssn))])
    assert digest(rs, "t", n["rvol"]) != first
    rvg = rs.t.search("volume_groups", name=n["rvg"]).hits[0]
    replica = [s for s in rs.t.search("snapshots", volume_group=rvg).hits if s.generation_number == g1][0]
    rssn = session(rs.t, n["rssn"])
    url = "/replication/sessions/%d" % rssn.id
    other_vg = rs.t.new("volume_groups", name="ov-" + vid, quota=0).save()
    rs.t.new("volumes", name="ovv-" + vid, size=1024, volume_group=other_vg).save()
    foreign = rs.t.new("snapshots", source=other_vg, short_name="s", retention_policy=rssn.retention_policy).save()
    err(call(rs, "t", "PATCH", url, {"state": "failed_over", "restored_snapshot": {"ref": "/snapshots/%d" % foreign.id}}), "MC_ERR_INVALID_ARG")
    assert session(rs.t, n["rssn"]).state == "in_sync"           # refused as a whole
    err(call(rs, "t", "PATCH", url, {"restored_snapshot": {"ref": "/snapshots/%d" % replica.id}}), "MC_ERR_INVALID_ARG")
    r = call(rs, "t", "PATCH", url, {"state": "failed_over", "restored_snapshot": {"ref": "/snapshots/%d" % replica.id}})
    assert r.status_code == 200, r.text
    assert r.json()["restored_snapshot"]["ref"] == "/snapshots/%d" % replica.id
    assert digest(rs, "t", n["rvol"]) == first


# ----- persistence -------------------------------------------------------------------------------------------------
def test_replication_state_survives_sigkill_and_in_flight_work_resumes(tmp_path):
    data = tmp_path / "data"
    vid = "k1"
    n = names(vid)
    sim = Sim(data, arrays=("p", "t"), extra=FAST)
    try:
        p, t = sim.endpoint("p"), sim.endpoint("t")
        pair(sim, "p", "t", p, t)
        cinder_create(p, t, sim.addr("t"), vid)
        wait_until("initial sync", lambda: session(p, n["ssn"]).generation_number == 1)
        write(sim, "p", n["vol"], 0, b"persist" * 4096)
        expected = digest(sim, "p", n["vol"])
        settings(sim, delay_seconds=600, transfer_seconds=600)
        gno = user_snap(p, session(p, n["ssn"]))
        wait_until("cycle started", lambda: session(p, n["ssn"]).current_snapshot_id is not None)
    finally:
        sim.stop(sig=signal.SIGKILL)
    sim = Sim(data, arrays=("p", "t"), extra=FAST)
    try:
        p, t = sim.endpoint("p"), sim.endpoint("t")
        wait_user_snaps([(session(p, n["ssn"]), gno)])
        assert digest(sim, "t", n["rvol"]) == expected
        peer = p.search("replication/peer_k2arrays", name="peer-t").hits[0]
        assert peer.mgmt_connectivity_state == "ok"          # remembered by array name across new ports
        settings(sim, delay_seconds=600)
        ssn = session(p, n["ssn"])
        ssn.state = "suspended"
        ssn.save()
        assert session(t, n["rssn"]).state == "in_sync"
    finally:
        sim.stop(sig=signal.SIGKILL)
    sim = Sim(data, arrays=("p", "t"), extra=FAST)
    try:
        p, t = sim.endpoint("p"), sim.endpoint("t")
        wait_until("mirrored after restart", converged(t, n["rssn"], "suspended", "target"))
        assert session(p, n["ssn"]).generation_number == gno
        assert p.search("replication/peer_volumes", name=n["rvol"]).total == 1
        assert volume_path(sim, "t", n["rvol"])
        cinder_delete(p, t, vid)
    finally:
        sim.stop(sig=signal.SIGKILL)       # quicker than a graceful stop with krest's keep-alive connections open


def test_generations_and_replica_names_stay_unique_across_a_reversal(tmp_path):
    """Fresh arrays, so both sides' first session has id 1: generation numbers must not be reused after a
    failover, and a replica must never take over a snapshot of the same name on the other array."""
    vid = "u1"
    n = names(vid)
    sim = Sim(tmp_path / "data", arrays=("p", "t"), extra=FAST)
    try:
        p, t = sim.endpoint("p"), sim.endpoint("t")
        pair(sim, "p", "t", p, t)
        vg, vol, ssn = cinder_create(p, t, sim.addr("t"), vid)
        wait_until("initial sync", lambda: session(p, n["ssn"]).generation_number == 1)
        assert ssn.id == session(t, n["rssn"]).id == 1
        keep = p.new("snapshots", source=vg, short_name="keep", retention_policy=ssn.retention_policy).save()
        settings(sim, transfer_seconds=600)
        stuck = user_snap(p, session(p, n["ssn"]))                 # generation 2, never completes
        assert stuck == 2
        set_down(sim, "p", True)
        assert cinder_failover(t, [vid]) == {vid: "failed-over"}
        rvol = t.search("volumes", name=n["rvol"]).hits[0]
        host = t.new("hosts", name="h-" + vid, type="Linux").save()
        t.new("mappings", volume=rvol, host=host).save()
        write(sim, "t", n["rvol"], 0, b"dr" * 5000)
        set_down(sim, "p", False)
        settings(sim, transfer_seconds=0.1)
        wait_until("p suspended", converged(p, n["ssn"], "suspended", "source"))
        rssn = session(t, n["rssn"])
        rssn.state = "in_sync"
        rssn.save()
        wait_until("p target", converged(p, n["ssn"], "in_sync", "target"))
        rs_gen = session(t, n["rssn"]).generation_number
        assert rs_gen == 1
        snap = t.new("snapshots", replication_session=rssn, short_name="keep").save()
        assert snap.generation_number == 4                          # after the resync (3), past p's stuck 2
        wait_user_snaps([(rssn, snap.generation_number)])
        assert rs_gen < session(p, n["ssn"]).generation_number == 4
        assert digest(sim, "p", n["vol"]) == digest(sim, "t", n["rvol"])
        keep.refresh()
        assert keep.generation_number is None and keep.is_originating_from_peer is False
        replica = p.search("snapshots", name=n["vg"] + ":keep-1").hits[0]
        assert replica.generation_number == 4 and replica.triggered_by == "Replication_API"
        gens = [s.generation_number for s in p.search("snapshots", volume_group=vg).hits if s.is_originating_from_peer]
        assert sorted(gens) == [3, 4]
    finally:
        sim.stop(sig=signal.SIGKILL)


SOURCE_MOVES = {("idle", "in_sync"), ("in_sync", "suspended"), ("suspended", "in_sync"), ("suspended", "idle")}
TARGET_MOVES = {("in_sync", "failed_over"), ("suspended", "failed_over"), ("failed_over", "in_sync"), ("failed_over", "idle")}


def expected_move(role, cur, new, peer_state):
    """The documented state machine as a pure function: the (state, role) after PATCH, or None if refused."""
    if new == cur:
        return cur, role
    if role == "source":
        if (cur, new) not in SOURCE_MOVES or (new == "in_sync" and peer_state == "failed_over"):
            return None
        return new, role
    if (cur, new) not in TARGET_MOVES:
        return None
    return new, ("source" if (cur, new) == ("failed_over", "in_sync") else role)


def test_random_walk_over_the_state_machine_matches_the_documented_table(rs, vid):
    n = names(vid)
    cinder_create(rs.p, rs.t, rs.addr("t"), vid)
    url = {"p": "/replication/sessions/%d" % session(rs.p, n["ssn"]).id, "t": "/replication/sessions/%d" % session(rs.t, n["rssn"]).id}
    rng = random.Random(20)             # a seed whose 40 steps take every move and many refusals
    seen, refused = set(), set()
    for step in range(40):
        side = rng.choice("pt")
        other = "t" if side == "p" else "p"
        mine, theirs = call(rs, side, "GET", url[side]).json(), call(rs, other, "GET", url[other]).json()
        new = rng.choice(("idle", "in_sync", "suspended", "failed_over"))
        want = expected_move(mine["current_role"], mine["state"], new, theirs["state"])
        r = call(rs, side, "PATCH", url[side], {"state": new})
        where = "step %d: %s %s/%s -> %s" % (step, side, mine["current_role"], mine["state"], new)
        if want is None:
            assert r.status_code == 400 and r.json()["error_code"] == "MC_ERR_INVALID_STATE", (where, r.text)
            refused.add((mine["current_role"], mine["state"], new))
            continue
        assert r.status_code == 200, (where, r.text)
        assert (r.json()["state"], r.json()["current_role"]) == want, where
        if want[0] != mine["state"]:
            seen.add((mine["current_role"], mine["state"], new))
            peer_want = ("suspended", "source") if want[0] == "failed_over" else (want[0], "target" if want[1] == "source" else "source")
            if theirs["state"] == "failed_over":
                peer_want = ("failed_over", theirs["current_role"])        # a failed_over session is never changed by its peer

            def follows():
                got = call(rs, other, "GET", url[other]).json()
                return (got["state"], got["current_role"]) == peer_want
            wait_until(where + ": peer takes %s" % (peer_want,), follows)
    assert seen == set(("source",) + m for m in SOURCE_MOVES) | set(("target",) + m for m in TARGET_MOVES), seen
    assert len(refused) >= 8, refused


def test_sigkill_during_running_cycles_leaves_both_sides_consistent(tmp_path):
    """Kill the process at arbitrary points while RPO cycles run back to back; after each restart the pair
    converges, with one history row and one replica per generation and the same data on both sides."""
    vid = "kc"
    n = names(vid)
    data = tmp_path / "data"
    sim = Sim(data, arrays=("p", "t"), extra=FAST)
    rng = random.Random(7)
    try:
        p, t = sim.endpoint("p"), sim.endpoint("t")
        pair(sim, "p", "t", p, t)
        cinder_create(p, t, sim.addr("t"), vid, rpo=60)
        wait_until("initial sync", lambda: session(p, n["ssn"]).generation_number == 1)
    finally:
        sim.stop(sig=signal.SIGKILL)
    for round_no in range(3):
        sim = Sim(data, arrays=("p", "t"), extra=("--replication-delay", "0.05", "--replication-transfer", "0.02", "--rpo-scale", "0.002"))
        try:
            write(sim, "p", n["vol"], round_no * 8192, os.urandom(8192))
            time.sleep(0.2 + rng.random() * 0.4)            # several cycles of 0.12 s each, killed somewhere
        finally:
            sim.stop(sig=signal.SIGKILL)
    sim = Sim(data, arrays=("p", "t"), extra=FAST)
    try:
        p, t = sim.endpoint("p"), sim.endpoint("t")
        gen = sim.admin_call("POST", "/arrays/p/replication/cycle", json={"session": n["ssn"]})["queued"][0]["generation_number"]
        assert gen >= 5, gen                               # cycles did run in the killed rounds
        wait_until("the last cycle", lambda: session(p, n["ssn"]).generation_number == gen)
        wait_until("the target too", lambda: session(t, n["rssn"]).generation_number == gen)
        assert digest(sim, "p", n["vol"]) == digest(sim, "t", n["rvol"])
        for ep, name in ((p, n["ssn"]), (t, n["rssn"])):
            gens = [h.generation_number for h in ep.search("replication/rpo_history", session=session(ep, name), __limit=1000).hits]
            assert len(gens) == len(set(gens)) and max(gens) == gen, gens
        rvg = t.search("volume_groups", name=n["rvg"]).hits[0]
        replica_gens = [s.generation_number for s in t.search("snapshots", volume_group=rvg).hits]
        assert len(replica_gens) == len(set(replica_gens)) and gen in replica_gens
    finally:
        sim.stop(sig=signal.SIGKILL)
