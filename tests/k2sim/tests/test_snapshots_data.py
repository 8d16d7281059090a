"""Snapshots, views, volsnaps, restore, retention policies and the data plane."""

import os

import pytest
import requests
from requests.exceptions import HTTPError

MIB = 1024 * 1024


def code_of(excinfo):
    return excinfo.value.response.status_code, excinfo.value.response.json()["error_code"]


def backing(sim, host, volume=None, view=None, array="a"):
    params = {"host": host.name}
    if volume is not None:
        params["volume"] = volume.name
    else:
        params["view"] = view.name
    return sim.admin_get("/arrays/%s/backing" % array, params=params)


def write(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read(path, offset, n):
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


def test_snapshot_view_restore_keep_and_expose_content(sim, ep, mk):
    vg = mk.vg()
    vol = mk.volume(vg, size=64 * 1024)           # 64 MiB
    other = mk.volume(vg, size=64 * 1024)
    host = mk.host()
    ep.new("mappings", volume=vol, host=host).save()
    ep.new("mappings", volume=other, host=host).save()
    info = backing(sim, host, volume=vol)
    path = info["path"]
    assert info["lun"] == 1 and os.path.getsize(path) == 64 * MIB
    write(path, 5 * MIB, b"before-snapshot")
    write(backing(sim, host, volume=other)["path"], 0, b"other-volume")

    snap = mk.snapshot(vg, is_auto_deleteable=False)
    assert snap.name == "%s:%s" % (vg.name, snap.short_name)
    assert snap.volume_group.id == vg.id and snap.is_exposable is False and snap.is_auto_deleteable is False
    vss = ep.search("volsnaps", snapshot=snap)
    assert vss.total == 2
    assert sorted(v.short_name for v in vss.hits) == sorted([vol.name, other.name])
    assert all(v.name == "%s:%s" % (snap.name, v.short_name) for v in vss.hits)
    assert all(v.source.id in (vol.id, other.id) for v in vss.hits)

    write(path, 5 * MIB, b"after--snapshot")

    # a snapshot cannot be mapped, a view can
    with pytest.raises(HTTPError) as exc:
        ep.new("mappings", volume=snap, host=host).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    view = mk.snapshot(snap, exposable=True)
    assert view.is_exposable is True and view.source.id == snap.id and view.volume_group.id == vg.id
    vm = ep.new("mappings", volume=view, host=host).save()
    assert vm.lun == 3
    # cinder finds the view's LUN through its volsnap
    vs = ep.search("volsnaps", snapshot=view).hits[0]
    assert ep.search("mappings", volume=vs, host=host).hits[0].lun == 3
    assert ep.search("mappings", volume=view, host=host).hits[0].id == vm.id
    vinfo = backing(sim, host, view=view)
    by_name = dict((d["name"].rsplit(":", 1)[1], d["path"]) for d in vinfo["devices"])
    assert read(by_name[vol.name], 5 * MIB, 15) == b"before-snapshot"
    assert read(by_name[other.name], 0, 12) == b"other-volume"
    # views are writable copies: writing one does not touch the snapshot or the volume
    write(by_name[vol.name], 0, b"view-write")
    assert read(path, 0, 10) == b"\0" * 10

    # counts
    fresh = ep.get("volume_groups", vg.id)
    assert (fresh.snapshots_count, fresh.views_count, fresh.volumes_count, fresh.mapped_hosts_count) == (1, 1, 2, 1)
    assert ep.get("hosts", host.id).views_count == 1

    # restore rewrites the group's volumes from the snapshot
    fresh.last_restored_from = snap
    fresh.save()
    assert read(path, 5 * MIB, 15) == b"before-snapshot"
    restored = ep.get("volume_groups", vg.id)
    assert restored.last_restored_from.id == snap.id and restored.last_restored_time
    assert ep.get("volumes", vol.id).last_restored_from.id == snap.id

    # dependencies: mapped view, snapshot with views
    with pytest.raises(HTTPError) as exc:
        view.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    with pytest.raises(HTTPError) as exc:
        snap.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    view_paths = [d["path"] for d in vinfo["devices"]]
    vm.delete()
    view.delete()
    assert not any(os.path.exists(p) for p in view_paths)
    snap.delete()
    assert ep.search("volsnaps", snapshot__in="/snapshots/%d" % snap.id).total == 0


def test_restore_again_from_the_same_snapshot(sim, ep, mk, http):
    vg = mk.vg()
    vol = mk.volume(vg, size=1024)
    host = mk.host()
    ep.new("mappings", volume=vol, host=host).save()
    path = backing(sim, host, volume=vol)["path"]
    write(path, 0, b"v1")
    snap = mk.snapshot(vg)
    for dummy in range(2):
        write(path, 0, b"v2")
        r = http.patch(sim.api() + "/volume_groups/%d" % vg.id, json={"last_restored_from": {"ref": "/snapshots/%d" % snap.id}})
        assert r.status_code == 200
        assert read(path, 0, 2) == b"v1"


def test_restore_from_foreign_snapshot_refused(ep, mk):
    a, b = mk.vg(), mk.vg()
    mk.volume(a, size=1024)
    snap = mk.snapshot(a)
    b.last_restored_from = snap
    with pytest.raises(HTTPError) as exc:
        b.save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")


def test_snapshot_rules(ep, mk, uniq):
    vg = mk.vg()
    mk.volume(vg, size=1024)
    snap = mk.snapshot(vg)
    with pytest.raises(HTTPError) as exc:
        mk.snapshot(vg, short_name=snap.short_name)
    assert code_of(exc) == (400, "MC_ERR_ALREADY_EXISTS")
    with pytest.raises(HTTPError) as exc:
        ep.new("snapshots", short_name=uniq("s"), source=vg).save()          # no retention policy
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    with pytest.raises(HTTPError) as exc:
        mk.snapshot(vg, short_name="bad:name")
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    with pytest.raises(HTTPError) as exc:
        ep.new("snapshots", short_name=uniq("s"), source={"ref": "/volumes/1"}, retention_policy=mk.retention()).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    # cinder's searches
    assert ep.search("snapshots", short_name=snap.short_name).hits[0].id == snap.id
    assert ep.search("snapshots", volume_group=[vg]).total == 1
    latest = ep.search("snapshots", volume_group=vg, __sort="creation_time", __sort_order="desc").hits[0]
    assert latest.id == snap.id
    # rename: short_name and the full name follow, as do volsnap names; VG rename renames its snapshots
    snap.short_name = snap.short_name + "-r"
    snap.save()
    assert snap.name == "%s:%s" % (vg.name, snap.short_name)
    vg.name = vg.name + "-r"
    vg.save()
    fresh = ep.get("snapshots", snap.id)
    assert fresh.name == "%s:%s" % (vg.name, snap.short_name)
    assert ep.search("volsnaps", snapshot=fresh).hits[0].name.startswith(fresh.name + ":")
    # is_exposable and source cannot change
    fresh.is_exposable = True
    with pytest.raises(HTTPError) as exc:
        fresh.save()
    assert code_of(exc) == (400, "MC_ERR_FORBIDDEN_CHANGE")


def test_vg_with_only_snapshots_is_deleted_with_them(ep, mk):
    vg = mk.vg()
    vol = mk.volume(vg, size=1024)
    snap = mk.snapshot(vg)
    view = mk.snapshot(snap, exposable=True)
    vol.delete()
    # the volsnaps stay, their source becomes null
    assert all(v.source is None for v in ep.search("volsnaps", snapshot=snap).hits)
    vg.delete()
    for obj in (snap, view):
        with pytest.raises(HTTPError) as exc:
            ep.get("snapshots", obj.id)
        assert exc.value.response.status_code == 404


def test_retention_policies(ep, uniq):
    name = uniq("rp")
    rp = ep.new("retention_policies", name=name, num_snapshots="3", weeks=0, days=1, hours=2).save()
    assert (rp.num_snapshots, rp.days, rp.hours, rp.snapshots_usage_count) == (3, 1, 2, 0)
    with pytest.raises(HTTPError) as exc:
        ep.new("retention_policies", name=uniq("rp"), num_snapshots=3).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    with pytest.raises(HTTPError) as exc:
        ep.new("retention_policies", name=name, num_snapshots=3, weeks=0, days=1, hours=2).save()
    assert code_of(exc) == (400, "MC_ERR_ALREADY_EXISTS")
    vg = ep.new("volume_groups", name=uniq("vg")).save()
    snap = ep.new("snapshots", short_name="s", source=vg, retention_policy=rp).save()
    assert ep.get("retention_policies", rp.id).snapshots_usage_count == 1
    with pytest.raises(HTTPError) as exc:
        rp.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    snap.delete()
    rp.hours = 5
    rp.save()
    rp.delete()
    best = ep.search("retention_policies", name="Best_Effort_Retention").hits[0]
    with pytest.raises(HTTPError) as exc:
        best.delete()
    assert code_of(exc) == (400, "MC_ERR_FORBIDDEN_CHANGE")


def test_vg_capacity_policies(ep, uniq):
    pol = ep.new("vg_capacity_policies", name=uniq("cp"), warning_threshold=70, error_threshold=80,
                 critical_threshold=90, full_threshold=100, snapshot_overhead_threshold=40).save()
    assert pol.num_snapshots == 3 and pol.is_default is False
    with pytest.raises(HTTPError) as exc:
        ep.new("vg_capacity_policies", name=uniq("cp"), warning_threshold=95, error_threshold=80,
               critical_threshold=90, full_threshold=100, snapshot_overhead_threshold=40).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    vg = ep.new("volume_groups", name=uniq("vg"), capacity_policy=pol).save()
    with pytest.raises(HTTPError) as exc:
        pol.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    vg.delete()
    pol.delete()


def test_capacity_follows_create_write_delete(sim, ep, mk):
    def cap():
        return ep.search("system/capacity").hits[0]
    before = cap()
    vg = mk.vg()
    vol = mk.volume(vg, size=256 * 1024)
    after_create = cap()
    assert after_create.provisioned_volumes == before.provisioned_volumes + 256 * 1024
    assert after_create.provisioned == after_create.provisioned_volumes + after_create.provisioned_snapshots + after_create.provisioned_views
    host = mk.host()
    ep.new("mappings", volume=vol, host=host).save()
    path = backing(sim, host, volume=vol)["path"]
    write(path, 0, b"x" * (8 * MIB))
    after_write = cap()
    assert after_write.allocated_volumes >= before.allocated_volumes + 8 * 1024
    assert after_write.free <= before.free - 8 * 1024
    assert ep.get("volumes", vol.id).logical_capacity >= 8 * 1024
    assert ep.get("volume_groups", vg.id).volumes_logical_capacity >= 8 * 1024
    snap = mk.snapshot(vg)
    after_snap = cap()
    assert after_snap.provisioned_snapshots == after_write.provisioned_snapshots + 256 * 1024
    assert after_snap.allocated_snapshots_and_views >= after_write.allocated_snapshots_and_views + 8 * 1024
    snap.delete()
    for m in ep.search("mappings", volume=vol).hits:
        m.delete()
    vol.delete()
    assert not os.path.exists(path)
    final = cap()
    assert final.provisioned_volumes == before.provisioned_volumes
    assert final.allocated_volumes <= after_write.allocated_volumes - 8 * 1024


def test_volume_grow_grows_the_file(sim, ep, mk):
    vol = mk.volume(size=1024)
    host = mk.host()
    ep.new("mappings", volume=vol, host=host).save()
    path = backing(sim, host, volume=vol)["path"]
    assert os.path.getsize(path) == MIB
    vol.size = 4096
    vol.save()
    assert os.path.getsize(path) == 4 * MIB


def test_backing_api_errors(sim, ep, mk):
    vol = mk.volume(size=1024)
    host = mk.host()
    r = requests.get(sim.admin + "/arrays/a/backing", params={"host": host.name, "volume": vol.name}, timeout=5)
    assert r.status_code == 404 and "not mapped" in r.json()["error_msg"]
    r = requests.get(sim.admin + "/arrays/a/backing", params={"host": host.name}, timeout=5)
    assert r.status_code == 400
    r = requests.get(sim.admin + "/arrays/nosuch/backing", params={"host": "h", "volume": "v"}, timeout=5)
    assert r.status_code == 404
