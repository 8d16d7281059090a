"""Authentication, roles, the bearer (Flex) path, error format, X-K2-Sequence and __bulk."""

import krest
import pytest
import requests
from requests.exceptions import HTTPError

from k2sim_testlib import make_endpoint


def test_bad_credentials_give_401_and_krest_fails_fast(sim):
    r = requests.get(sim.api(), auth=("admin", "wrong"), verify=sim.ca(), timeout=5)
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error_code": "MC_ERR_AUTH", "error_msg": "wrong user name or password"}
    r = requests.get(sim.api(), verify=sim.ca(), timeout=5)
    assert r.status_code == 401
    with pytest.raises(HTTPError) as exc:
        make_endpoint(sim.addr(), sim.ca(), username="nobody", password="x")
    assert exc.value.response.status_code == 401
    assert "wrong user name or password" in str(exc.value)


def test_read_only_user_may_read_but_not_write(sim, uniq):
    viewer = sim.endpoint(username="viewer", password="viewpass")
    assert viewer.search("volumes", name="CTRL").total == 1
    name = uniq("vg")
    with pytest.raises(HTTPError) as exc:
        viewer.new("volume_groups", name=name).save()
    resp = exc.value.response
    assert resp.status_code == 403 and resp.json()["error_code"] == "MC_ERR_PERMISSION_DENIED"
    assert "read_only" in resp.json()["error_msg"]
    ctrl = viewer.get("volumes", 1)
    with pytest.raises(HTTPError) as exc:
        ctrl.delete()
    assert exc.value.response.status_code == 403
    # nothing was written
    assert sim.endpoint().search("volume_groups", name=name).total == 0
    assert sim.endpoint().search("volumes", name="CTRL").total == 1


def test_bearer_token_on_the_flex_path(sim, uniq):
    tok = sim.admin_call("POST", "/arrays/a/tokens", json={"user": "admin"})
    ep = make_endpoint(sim.addr(), sim.ca(), auth=krest.KrestBearerAuth(tok["token"]), sdp_id=tok["sdp_id"])
    assert ep.api_prefix == "/rest/sdps/%d/api/v2" % tok["sdp_id"]
    vg = ep.new("volume_groups", name=uniq("vg")).save()
    vol = ep.new("volumes", name=uniq("v"), size=1024, volume_group=vg).save()
    assert vol.volume_group.name == vg.name          # refs are the same as on the direct path
    assert ep.search("volumes", volume_group=vg).total == 1
    logged = [r for r in sim.requests_log() if r["path"].startswith("/rest/sdps/")]
    assert logged and logged[-1]["user"] == "admin"
    # wrong token, wrong sdp id
    r = requests.get(sim.url() + tok["prefix"], headers={"authorization": "Bearer nope"}, verify=sim.ca(), timeout=5)
    assert r.status_code == 401
    r = requests.get(sim.url() + "/rest/sdps/1/api/v2", headers={"authorization": "Bearer " + tok["token"]}, verify=sim.ca(), timeout=5)
    assert r.status_code == 404
    # a read_only user's token is read only
    ro = sim.admin_call("POST", "/arrays/a/tokens", json={"user": "viewer"})
    r = requests.post(sim.url() + ro["prefix"] + "/volume_groups", json={"name": uniq("vg")},
                      headers={"authorization": "Bearer " + ro["token"]}, verify=sim.ca(), timeout=5)
    assert r.status_code == 403


def test_error_bodies_hold_only_strings(sim, http):
    for method, path, body in (("GET", "/volumes/999999", None), ("POST", "/volumes", {"name": "x"}),
                               ("DELETE", "/volumes/1", None), ("GET", "/volumes?bad=1", None)):
        r = http.request(method, sim.api() + path, json=body)
        assert r.status_code >= 400
        assert r.headers["content-type"] == "application/json"
        data = r.json()
        assert set(data) == {"error_code", "error_msg"}
        assert all(isinstance(v, str) for v in data.values())


def test_success_responses_have_exact_content_type(sim, http, uniq):
    r = http.post(sim.api() + "/volume_groups", json={"name": uniq("vg"), "quota": 0})
    assert r.status_code == 201 and r.headers["content-type"] == "application/json"
    assert r.json()["id"] > 0
    r = http.get(sim.api())
    assert r.headers["content-type"] == "application/json"


def test_sequence_header(sim, ep, uniq):
    key = uniq("seq")
    ep.search("volumes", options={"sequence": {key + "a": 1, key + "b": 1}}, __limit=1)
    for bad in ({key + "a": 1, key + "b": 1}, {key + "a": 1, key + "b": 2}):
        with pytest.raises(HTTPError) as exc:
            ep.search("volumes", options={"sequence": bad}, __limit=1)
        assert exc.value.response.status_code == 409
        assert exc.value.response.json()["error_code"] == "MC_ERR_SEQUENCE"
    ep.search("volumes", options={"sequence": {key + "a": 2, key + "b": 2}}, __limit=1)


def test_bulk_post_patch_delete(ep, mk, uniq):
    vg = mk.vg()
    bulk = ep.new("volumes", bulk=True)
    for i in range(5):
        bulk.add(ep.new("volumes", name=uniq("bv"), size=1024 * (i + 1), volume_group=vg))
    rs = bulk.post()
    assert rs.total == 5 and all(h.id for h in rs.hits)
    assert ep.search("volumes", volume_group=vg).total == 5
    # PATCH: krest sends every attribute of each object, changed or not
    found = ep.search("volumes", volume_group=vg)
    for h in found.hits:
        h.description = "bulk-patched"
    patch = ep.new("volumes", bulk=True)
    patch.add(found)
    rs = patch.patch()
    assert rs.total == 5 and all(h.description == "bulk-patched" for h in rs.hits)
    assert ep.search("volumes", volume_group=vg, description="bulk-patched").total == 5
    delete = ep.new("volumes", bulk=True)
    delete.add(ep.search("volumes", volume_group=vg))
    delete.delete()
    assert ep.search("volumes", volume_group=vg).total == 0


def test_bulk_is_all_or_nothing(ep, mk, uniq):
    vg = mk.vg()
    taken = mk.volume(vg, size=1024)
    bulk = ep.new("volumes", bulk=True)
    bulk.add(ep.new("volumes", name=uniq("ok"), size=1024, volume_group=vg))
    bulk.add(ep.new("volumes", name=taken.name, size=1024, volume_group=vg))
    with pytest.raises(HTTPError) as exc:
        bulk.post()
    body = exc.value.response.json()
    assert body["error_code"] == "MC_ERR_ALREADY_EXISTS" and body["error_msg"].startswith("bulk element 1:")
    assert ep.search("volumes", volume_group=vg).total == 1


def test_bulk_snapshots(ep, mk, uniq):
    vgs = [mk.vg() for dummy in range(3)]
    for vg in vgs:
        mk.volume(vg, size=1024)
    rp = mk.retention()
    bulk = ep.new("snapshots", bulk=True)
    for vg in vgs:
        bulk.add(ep.new("snapshots", short_name=uniq("bs"), source=vg, retention_policy=rp))
    rs = bulk.post()
    assert rs.total == 3
    assert sorted(h.volume_group.id for h in rs.hits) == sorted(v.id for v in vgs)
    dele = ep.new("snapshots", bulk=True)
    dele.add(rs)
    dele.delete()
    assert ep.search("snapshots", volume_group=vgs).total == 0


def test_bulk_errors(sim, http):
    r = http.post(sim.api() + "/volumes/__bulk", json={"name": "x"})
    assert r.status_code == 400
    r = http.patch(sim.api() + "/volumes/__bulk", json=[{"name": "x"}])
    assert r.status_code == 400 and "id" in r.json()["error_msg"]
    r = http.get(sim.api() + "/volumes/__bulk")
    assert r.status_code == 405


def test_unknown_body_keys_are_ignored(sim, http, uniq):
    r = http.post(sim.api() + "/volume_groups", json={"name": uniq("vg"), "is_dedupe": True, "capacityPolicy": "x"})
    assert r.status_code == 201 and "is_dedupe" not in r.json()
