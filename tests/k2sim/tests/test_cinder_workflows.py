"""The request sequences of the OpenStack Cinder K2 driver (reference section 7), replayed with krest.

Cinder's KrestWrap endpoint holds a threading.Lock, and krest 1.3.8 deep-copies every non-ref attribute
it receives, so a JSON array of refs in any answer would make cinder's reads fail (reference 8.8):
test_answers_survive_a_locked_endpoint reads every object through such an endpoint.
"""

import threading

import krest

from k2sim_testlib import make_endpoint

GIB = 2 ** 20   # KiB


class LockedEndPoint(krest.EndPoint):
    """Like cinder's KrestWrap: an endpoint that carries a lock (which cannot be deep-copied)."""

    def __init__(self, *args, **kwargs):
        self.krestlock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _request(self, *args, **kwargs):
        with self.krestlock:
            return super()._request(*args, **kwargs)


def locked_endpoint(sim):
    ep = LockedEndPoint(sim.addr(), "admin", "admin", ssl_validate=sim.ca(), autodiscover=False, validate_endpoints=False)
    ep.retry_cfg.on_connect_errors = ep.retry_cfg.on_5xx_errors = ep.retry_cfg.on_other_errors = False
    ep.discover()
    return ep


def create_volume(ep, vid, gib=1, dedup=True):
    vg = ep.new("volume_groups", name="cvg-" + vid, quota=0, is_dedup=dedup).save()
    return ep.new("volumes", name="cv-" + vid, size=gib * GIB, volume_group=vg).save()


def initialize_connection(ep, vol, host_name, iqn):
    rs = ep.search("hosts", name=host_name)
    if rs.total == 0:
        host = ep.new("hosts", name=host_name, type="Linux").save()
        ep.new("host_iqns", iqn=iqn, host=host).save()
    else:
        host = rs.hits[0]
    mapping = ep.new("mappings", volume=vol, host=host).save()
    portals = ["%s:3260" % ip.ip_address for ip in ep.search("system/net_ips").hits if not ip.wan_port]
    target_iqn = ep.search("system/state").hits[0].iscsi_qualified_target_name
    return {"target_lun": mapping.lun, "target_portal": portals[0], "target_iqn": target_iqn}


def view_lun(ep, view, host):
    vs = ep.search("volsnaps", snapshot=view).hits[0]
    return ep.search("mappings", volume=vs, host=host).hits[0].lun


def terminate_connection(ep, vol, host_name):
    host = ep.search("hosts", name=host_name).hits[0]
    ep.search("mappings", volume=vol, host=host).hits[0].delete()
    if ep.search("mappings", host=host).total == 0:
        host.delete()


def test_setup_check(sim):
    ep = locked_endpoint(sim)
    state = ep.search("system/state")
    assert state.total == 1
    version = tuple(int(x) for x in state.hits[0].rest_api_version.split("."))
    assert version >= (2, 2, 0)


def test_answers_survive_a_locked_endpoint(sim, http, mk):
    vg = mk.vg()
    vol = mk.volume(vg, size=1024)
    host = mk.host()
    mk.ep.new("mappings", volume=vol, host=host).save()
    snap = mk.snapshot(vg)
    mk.snapshot(snap, exposable=True)
    dump = http.get(sim.api() + "/__full").json()
    for objs in dump.values():
        for obj in objs:
            for value in obj.values():
                assert not (isinstance(value, list) and any(isinstance(x, dict) and "ref" in x for x in value)), obj
    ep = locked_endpoint(sim)
    for res in dump:
        for hit in ep.search(res, __limit=1000).hits:
            ep.get(res, hit.id)
    fresh = ep.search("volumes", name=vol.name).hits[0]
    fresh.description = "patched through a locked endpoint"
    fresh.save()
    assert fresh.volume_group.name == vg.name


def test_volume_snapshot_view_clone_lifecycle(sim, uniq):
    ep = make_endpoint(sim.addr(), sim.ca())
    vid, vid2 = uniq("c"), uniq("c")
    host_name = uniq("node")
    iqn = "iqn.1993-08.org.debian:01:%s" % host_name
    vol = create_volume(ep, vid)
    # extend
    found = ep.search("volumes", name="cv-" + vid).hits[0]
    found.size = 2 * GIB
    found.save()
    assert ep.get("volumes", vol.id).size == 2 * GIB
    # attach
    info = initialize_connection(ep, found, host_name, iqn)
    assert info["target_lun"] == 1 and info["target_portal"].endswith(":3260") and info["target_iqn"].startswith("iqn.")
    # clone of an attached volume is refused by the driver after this check
    assert ep.search("mappings", volume=[found]).total == 1
    # snapshot
    rp = ep.search("retention_policies", name="Best_Effort_Retention")
    assert rp.total == 1
    cvg = ep.search("volume_groups", name="cvg-" + vid).hits[0]
    snap = ep.new("snapshots", short_name="cs-" + vid, source=cvg, retention_policy=rp.hits[0], is_auto_deleteable=False).save()
    # create volume from snapshot: a view, attached to the node, data copied, then torn down
    snap = ep.search("snapshots", short_name="cs-" + vid).hits[0]
    view = ep.new("snapshots", short_name="cview-" + vid2, source=snap, retention_policy=rp.hits[0], is_exposable=True).save()
    host = ep.search("hosts", name=host_name).hits[0]
    ep.new("mappings", volume=view, host=host).save()
    assert view_lun(ep, view, host) == 2
    new = create_volume(ep, vid2)
    assert initialize_connection(ep, new, host_name, iqn)["target_lun"] == 3
    src = sim.admin_get("/arrays/a/backing", params={"host": host_name, "view": view.name})["path"]
    dst = sim.admin_get("/arrays/a/backing", params={"host": host_name, "volume": new.name})["path"]
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        fout.write(fin.read(1024 * 1024))
    ep.search("mappings", volume=view, host=host).hits[0].delete()
    ep.get("snapshots", view.id).delete()
    terminate_connection(ep, new, host_name)
    # stats
    cap = ep.search("system/capacity").hits[0]
    assert cap.total > 0 and cap.free <= cap.total and cap.provisioned_volumes >= 3 * GIB
    assert ep.search("volumes").total - 1 == ep.search("volumes", name__neq="CTRL").total
    # detach: the host goes with its last mapping, its IQN with it
    terminate_connection(ep, found, host_name)
    assert ep.search("hosts", name=host_name).total == 0
    assert ep.search("host_iqns", iqn=iqn).total == 0
    # delete snapshot, then the volumes and their VGs
    for s in ep.search("snapshots", short_name="cs-" + vid).hits:
        s.delete()
    for v in (vid, vid2):
        ep.search("volumes", name="cv-" + v).hits[0].delete()
        ep.search("volume_groups", name="cvg-" + v).hits[0].delete()
    assert ep.search("volume_groups", name__in="cvg-%s,cvg-%s" % (vid, vid2)).total == 0


def test_manage_existing_and_migration_rename_swap(sim, uniq):
    ep = make_endpoint(sim.addr(), sim.ca())
    legacy_vg = ep.new("volume_groups", name=uniq("legacy"), quota=0, is_dedup=True).save()
    legacy = ep.new("volumes", name=uniq("lvol"), size=GIB, volume_group=legacy_vg).save()
    vol = ep.search("volumes", name=legacy.name).hits[0]
    vg = vol.volume_group
    assert vg.is_dedup is True
    assert ep.search("volumes", volume_group=vg).total == 1
    assert ep.search("mappings", volume=vol).total == 0
    assert -(-vol.size // GIB) == 1                       # manage_existing_get_size
    cid = uniq("m")
    vg.name = "cvg-" + cid
    vg.save()
    vol.name = "cv-" + cid
    vol.save()
    assert ep.search("volumes", name="cv-" + cid).hits[0].volume_group.name == "cvg-" + cid
    # after_volume_copy: delete the old pair, rename the new pair to the old names at once
    nid = uniq("m")
    create_volume(ep, nid, dedup=False)
    ep.search("volumes", name="cv-" + cid).hits[0].delete()
    ep.search("volume_groups", name="cvg-" + cid).hits[0].delete()
    g = ep.search("volume_groups", name="cvg-" + nid).hits[0]
    g.name = "cvg-" + cid
    g.save()
    v = ep.search("volumes", name="cv-" + nid).hits[0]
    v.name = "cv-" + cid
    v.save()
    assert ep.search("volumes", name="cv-" + cid).hits[0].is_dedup is False


def test_create_volume_rollback_frees_the_name(sim, uniq):
    ep = make_endpoint(sim.addr(), sim.ca())
    vid = uniq("r")
    ep.new("volume_groups", name="cvg-" + vid, quota=0, is_dedup=True).save()
    taken = create_volume(ep, uniq("r"))
    try:
        vg = ep.search("volume_groups", name="cvg-" + vid).hits[0]
        ep.new("volumes", name=taken.name, size=GIB, volume_group=vg).save()
        raise AssertionError("duplicate volume name accepted")
    except krest.HTTPError:
        rs = ep.search("volume_groups", name="cvg-" + vid)
        assert rs.total == 1
        rs.hits[0].delete()
    assert ep.search("volume_groups", name="cvg-" + vid).total == 0
