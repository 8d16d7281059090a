"""Discovery, system resources, volume groups and volumes, driven through krest 1.3.8."""

import io
import json
import threading

import pytest
import requests
from requests.exceptions import HTTPError


def error_of(excinfo):
    resp = excinfo.value.response
    assert resp.headers["content-type"] == "application/json"
    return resp.status_code, resp.json()


def test_discovery_lists_every_resource_the_clients_use(ep):
    needed = {"system/state", "system/capacity", "system/net_ips", "system/fc_ports", "volume_groups", "volumes",
              "snapshots", "volsnaps", "retention_policies", "vg_capacity_policies", "hosts", "host_groups",
              "host_iqns", "host_fc_ports", "mappings", "events"}
    assert needed <= set(ep.resources)
    assert ep.resources["volumes"] == "/volumes"
    with pytest.raises(ValueError):
        ep.new("no_such_resource")
    with pytest.raises(KeyError):
        ep.search("no_such_resource")


def test_every_emitted_ref_resolves_through_discovery(sim, http, mk):
    vg = mk.vg()
    vol = mk.volume(vg)
    host = mk.host()
    mk.ep.new("mappings", volume=vol, host=host).save()
    snap = mk.snapshot(vg)
    mk.snapshot(snap, exposable=True)
    disc = http.get(sim.api()).json()["resources"]
    urls = set(v["url"] for v in disc.values())
    dump = http.get(sim.api() + "/__full").json()
    seen = 0

    def walk(value):
        nonlocal seen
        if isinstance(value, dict):
            if "ref" in value:
                prefix, dummy, oid = value["ref"].rpartition("/")
                assert prefix in urls, value
                assert int(oid) > 0
                r = http.get(sim.api() + value["ref"])
                assert r.status_code == 200, value
                seen += 1
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(dump)
    assert seen > 10


def test_seed_data(ep):
    state = ep.search("system/state").hits[0]
    assert state.id == 1 and state.state == "ONLINE"
    assert tuple(int(x) for x in state.rest_api_version.split(".")) >= (2, 2, 0)
    assert state.iscsi_qualified_target_name.startswith("iqn.")
    assert state.system_id and state.current_user_role == "admin"
    assert ep.get("system/state", 1).system_name == state.system_name
    cap = ep.search("system/capacity").hits[0]
    assert cap.id == 1 and cap.total > 0 and 0 <= cap.free <= cap.total
    ips = ep.search("system/net_ips").hits
    iscsi = [ip for ip in ips if not ip.wan_port]
    wan = [ip for ip in ips if ip.wan_port]
    assert iscsi and wan
    assert wan[0].wan_port.name     # lazy ref to system/wan_ports resolves
    fc = ep.search("system/fc_ports").hits
    assert fc and all(len(p.pwwn.replace(":", "")) == 16 for p in fc)
    assert ep.search("retention_policies", name="Best_Effort_Retention").total == 1
    pol = ep.search("vg_capacity_policies", name="default_vg_capacity_policy").hits[0]
    assert pol.is_default is True
    ctrl = ep.get("volumes", 1)
    assert ctrl.name == "CTRL"


def test_ctrl_volume_is_protected(ep, mk):
    ctrl = ep.search("volumes", name="CTRL").hits[0]
    with pytest.raises(HTTPError) as exc:
        ctrl.delete()
    assert error_of(exc) == (400, {"error_code": "MC_ERR_FORBIDDEN_CHANGE", "error_msg": "CTRL is a system volume and cannot be deleted"})
    ctrl.name = "renamed"
    with pytest.raises(HTTPError):
        ctrl.save()
    with pytest.raises(HTTPError) as exc:
        ep.new("mappings", volume=ep.get("volumes", 1), host=mk.host()).save()
    assert error_of(exc)[1]["error_code"] == "MC_ERR_FORBIDDEN_CHANGE"


def test_system_state_patch_and_read_only_role(sim, ep):
    state = ep.get("system/state", 1)
    old = state.system_name
    state.system_name = "renamed-array"
    state.save()
    assert ep.get("system/state", 1).system_name == "renamed-array"
    viewer = sim.endpoint(username="viewer", password="viewpass")
    assert viewer.get("system/state", 1).current_user_role == "read_only"
    state.system_name = old
    state.save()


def test_volume_group_lifecycle(ep, mk, uniq):
    name = uniq("vg")
    vg = ep.new("volume_groups", name=name, quota="0", is_dedup="False", description="d1").save()
    assert vg.id > 0 and vg.quota is None and vg.is_dedup is False
    assert vg.capacity_policy.name == "default_vg_capacity_policy" and vg.volumes_count == 0
    assert vg.iscsi_tgt_converted_name == name.lower().replace("_", ".")
    # names are unique
    with pytest.raises(HTTPError) as exc:
        ep.new("volume_groups", name=name).save()
    code, body = error_of(exc)
    assert code == 400 and body["error_code"] == "MC_ERR_ALREADY_EXISTS" and name in body["error_msg"]
    # rename frees the old name at once; description can change
    vg.name = name + "-r"
    vg.description = "d2"
    vg.save()
    assert vg.name == name + "-r" and vg.description == "d2"
    assert ep.search("volume_groups", name=name).total == 0
    again = ep.new("volume_groups", name=name).save()
    # is_dedup cannot change
    vg.is_dedup = True
    with pytest.raises(HTTPError) as exc:
        vg.save()
    assert error_of(exc)[1]["error_code"] == "MC_ERR_FORBIDDEN_CHANGE"
    # capacity policy ref; null puts the default back
    pol = ep.new("vg_capacity_policies", name=uniq("cp"), warning_threshold=70, error_threshold=80,
                 critical_threshold=90, full_threshold=100, snapshot_overhead_threshold=40).save()
    fresh = ep.get("volume_groups", vg.id)
    fresh.capacity_policy = pol
    fresh.save()
    assert ep.get("volume_groups", vg.id).capacity_policy.name == pol.name
    fresh.capacity_policy = None
    fresh.save()
    assert ep.get("volume_groups", vg.id).capacity_policy.name == "default_vg_capacity_policy"
    pol.delete()
    again.delete()
    fresh.delete()
    assert ep.search("volume_groups", name=name + "-r").total == 0


def test_volume_lives_in_one_vg_and_grows_only(ep, mk, uniq):
    vg = mk.vg()
    vol = ep.new("volumes", name=uniq("v"), size="2097152", volume_group=vg).save()
    assert vol.size == 2097152 and vol.volume_group.id == vg.id
    assert vol.is_dedup is True and vol.scsi_sn.endswith("%04d" % vol.scsi_suffix)
    assert vol.scsi_sn.startswith(ep.get("system/state", 1).system_id)
    # mandatory fields
    for body in ({"size": 1024, "volume_group": vg}, {"name": uniq("x"), "volume_group": vg}, {"name": uniq("x"), "size": 1024}):
        with pytest.raises(HTTPError) as exc:
            ep.new("volumes", **body).save()
        assert error_of(exc)[1]["error_code"] == "MC_ERR_INVALID_ARG"
    # invalid sizes
    for size in (0, -5, "big", True):
        with pytest.raises(HTTPError) as exc:
            ep.new("volumes", name=uniq("x"), size=size, volume_group=vg).save()
        assert error_of(exc)[1]["error_code"] == "MC_ERR_INVALID_ARG"
    # a ref to nothing
    with pytest.raises(HTTPError) as exc:
        ep.new("volumes", name=uniq("x"), size=1024, volume_group={"ref": "/volume_groups/999999"}).save()
    assert error_of(exc)[1]["error_code"] == "MC_ERR_REF_NOT_FOUND"
    # grow: ok; shrink: refused
    vol.size = 3 * 1048576
    vol.save()
    assert ep.get("volumes", vol.id).size == 3 * 1048576
    vol.size = 1048576
    with pytest.raises(HTTPError) as exc:
        vol.save()
    code, body = error_of(exc)
    assert body["error_code"] == "MC_ERR_FORBIDDEN_CHANGE" and "shrink" in body["error_msg"]
    assert ep.get("volumes", vol.id).size == 3 * 1048576


def test_vg_with_volumes_cannot_be_deleted(ep, mk):
    vg = mk.vg()
    vol = mk.volume(vg)
    with pytest.raises(HTTPError) as exc:
        vg.delete()
    code, body = error_of(exc)
    assert (code, body["error_code"]) == (400, "MC_ERR_IN_USE") and vol.name in body["error_msg"]
    vol.delete()
    vg.delete()
    with pytest.raises(HTTPError) as exc:
        ep.get("volume_groups", vg.id)
    assert exc.value.response.status_code == 404


def test_volume_move_between_vgs_respects_dedup(ep, mk):
    a, b, nodedup = mk.vg(), mk.vg(), mk.vg(is_dedup=False)
    vol = mk.volume(a)
    vol.volume_group = b
    vol.save()
    assert ep.get("volumes", vol.id).volume_group.id == b.id
    assert ep.get("volume_groups", a.id).volumes_count == 0
    assert ep.get("volume_groups", b.id).volumes_count == 1
    vol.volume_group = nodedup
    with pytest.raises(HTTPError) as exc:
        vol.save()
    assert error_of(exc)[1]["error_code"] == "MC_ERR_FORBIDDEN_CHANGE"


def test_vg_quota_is_enforced(ep, mk):
    vg = mk.vg(quota=2 * 1048576)
    assert vg.quota == 2 * 1048576
    vol = mk.volume(vg, size=1048576)
    with pytest.raises(HTTPError) as exc:
        mk.volume(vg, size=2 * 1048576)
    assert error_of(exc)[1]["error_code"] == "MC_ERR_QUOTA_EXCEEDED"
    vol.size = 2 * 1048576
    vol.save()
    vol.size = 3 * 1048576
    with pytest.raises(HTTPError):
        vol.save()
    vg.quota = 0
    vg.save()
    assert vg.quota is None
    vol.size = 3 * 1048576
    vol.save()


def test_patch_accepts_id_in_body_and_strings(sim, http, mk):
    vol = mk.volume()
    r = http.patch(sim.api() + "/volumes/%d" % vol.id, json={"id": vol.id, "size": str(vol.size * 2), "read_only": "True"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["size"] == vol.size * 2 and body["read_only"] is True
    # krest's ep.new(res, id=N, ...).save() sends PATCH with the id inside
    obj = mk.ep.new("volumes", id=vol.id, description="in place")
    obj.save()
    assert mk.ep.get("volumes", vol.id).description == "in place"
    r = http.patch(sim.api() + "/volumes/%d" % vol.id, json={"id": vol.id + 1, "description": "x"})
    assert r.status_code == 400 and r.json()["error_code"] == "MC_ERR_INVALID_ARG"


def test_delete_accepts_a_body(sim, http, mk):
    vg = mk.vg()
    r = http.delete(sim.api() + "/volume_groups/%d" % vg.id, json={"name": vg.name})
    assert r.status_code == 204 and r.content == b""


def test_single_get_returns_bare_object_and_fields(ep, mk):
    vol = mk.volume()
    got = ep.get("volumes", vol.id)
    assert got.id == vol.id and got.name == vol.name
    only = ep.get("volumes", vol.id, __fields=["id", "name"])
    assert set(only._current) == {"id", "name"}


def test_unknown_id_and_path_give_404(sim, http):
    r = http.get(sim.api() + "/volumes/987654")
    assert r.status_code == 404 and r.json()["error_code"] == "MC_ERR_NOT_FOUND"
    r = http.get(sim.api() + "/no/such/thing")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    r = http.get(sim.url() + "/elsewhere")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"


def test_method_not_allowed(sim, http):
    r = http.delete(sim.api() + "/system/capacity/1")
    assert r.status_code == 405 and r.json()["error_code"] == "MC_ERR_METHOD_NOT_ALLOWED"
    r = http.post(sim.api() + "/volsnaps", json={})
    assert r.status_code == 405


def test_invalid_json_body(sim, http):
    r = http.post(sim.api() + "/volume_groups", data="{not json")
    assert r.status_code == 400 and r.json()["error_code"] == "MC_ERR_INVALID_ARG"
    r = http.post(sim.api() + "/volume_groups", json=["a"])
    assert r.status_code == 400


def test_events_record_changes(ep, mk):
    vg = mk.vg()
    ev = ep.search("events", message__contains=vg.name, name="VG_CREATED")
    assert ev.total == 1
    hit = ev.hits[0]
    assert hit.level == "INFO" and hit.user == "admin" and hit.event_id == 249
    with pytest.raises(HTTPError) as exc:
        ep.get("events", 0)
    assert exc.value.response.status_code == 404
    assert ep.search("events", level="INFO", __limit=1).total >= 1


def test_plain_requests_without_tls_trust_fail(sim):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sim.api(), auth=("admin", "admin"), verify=True, timeout=5)


def test_dump_all(ep, mk):
    vol = mk.volume(size=1024)
    buf = io.BytesIO()
    ep.dump_all(buf, pretty=True)
    data = json.loads(buf.getvalue())
    assert vol.name in [v["name"] for v in data["volumes"]]
    assert set(data) >= {"volumes", "volume_groups", "system/state"}
    assert b"\n  " in buf.getvalue()


def test_backing_through_a_host_group(sim, ep, mk, uniq):
    group = ep.new("host_groups", name=uniq("hg")).save()
    host = mk.host(host_group=group)
    vg = mk.vg()
    mk.volume(vg, size=1024)
    view = mk.snapshot(mk.snapshot(vg), exposable=True)
    m = ep.new("mappings", volume=view, host=group).save()
    info = sim.admin_get("/arrays/a/backing", params={"host": host.name, "view": view.name})
    assert info["lun"] == m.lun and info["mapping"] == "/mappings/%d" % m.id
    assert len(info["devices"]) == 1 and info["path"] == info["devices"][0]["path"]


@pytest.mark.parametrize("res, field", [("volumes", "size"), ("volumes", "name"), ("volumes", "volume_group"),
                                        ("volumes", "read_only"), ("volume_groups", "name")])
def test_mandatory_fields_cannot_be_patched_to_null(sim, http, mk, res, field):
    vol = mk.volume(size=1024)
    oid = vol.id if res == "volumes" else vol.volume_group.id
    r = http.patch(sim.api() + "/%s/%d" % (res, oid), json={field: None})
    assert r.status_code == 400 and r.json() == {"error_code": "MC_ERR_INVALID_ARG", "error_msg": "%s.%s cannot be null" % (res, field)}


def test_nullable_fields_can_be_cleared(sim, http, mk):
    vg = mk.vg(quota=2048, description="x")
    r = http.patch(sim.api() + "/volume_groups/%d" % vg.id, json={"quota": None, "description": None})
    assert r.status_code == 200 and r.json()["quota"] is None and r.json()["description"] is None


def test_stats_resources(sim, http, ep, mk):
    vol = mk.volume(size=1024)
    rs = ep.search("stats/system", __fields=["iops_avg", "throughput_avg"])
    assert rs.total == 1 and set(rs.hits[0]._current) == {"iops_avg", "throughput_avg"}
    raw = http.get(sim.api() + "/stats/system", params={"__datapoints": "10", "__resolution": "5m"}).json()
    assert set(raw) == {"hits", "total"}                     # stats answers carry no limit/offset
    assert raw["hits"][0]["iops_avg"] == 0 and raw["hits"][0]["resolution"] == 5
    per_vol = ep.search("stats/volumes", volume_name=vol.name)
    assert per_vol.total == 1 and per_vol.hits[0].volume.id == vol.id
    assert ep.search("stats/volumes", volume_name="").total == ep.search("volumes", __limit=0).total
    assert ep.get("stats/volumes", vol.id).volume_name == vol.name
    r = http.get(sim.api() + "/stats/volumes/999999")
    assert r.status_code == 404


def test_unusual_methods_answer_json(sim, http):
    r = http.request("TRACE", sim.api() + "/volumes")
    assert r.status_code == 405 and r.headers["content-type"] == "application/json"
    assert r.json()["error_code"] == "MC_ERR_METHOD_NOT_ALLOWED"


def test_concurrent_creates_of_the_same_names(sim, mk, uniq):
    vg = mk.vg()
    names = [uniq("race") for dummy in range(15)]
    results = []
    lock = threading.Lock()

    def worker():
        http = sim.session()
        for name in names:
            r = http.post(sim.api() + "/volumes", json={"name": name, "size": 1024, "volume_group": {"ref": "/volume_groups/%d" % vg.id}})
            with lock:
                results.append((name, r.status_code, r.json().get("error_code")))
    threads = [threading.Thread(target=worker) for dummy in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        statuses = sorted((s, c) for n, s, c in results if n == name)
        assert statuses[0] == (201, None) and statuses[1:] == [(400, "MC_ERR_ALREADY_EXISTS")] * 5
    assert mk.ep.search("volumes", volume_group=vg, __limit=0).total == len(names)
