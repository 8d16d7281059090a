"""Helpers of the replication tests: pairing, data through the backing files, and the Cinder driver's
replication sequences replayed step by step through krest (written from ../shared/k2-rest-api.md section 5.5,
with the driver's unbounded polling loops given a deadline so that a bug fails the test instead of hanging it).
"""

import hashlib
import os
import time

FAST = ("--replication-delay", "0.1", "--replication-transfer", "0.1", "--rpo-scale", "0")
POLL = 0.05


def wait_until(what, fn, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(POLL)


def pair(sim, a, b, ea=None, eb=None):
    """Peer objects on both arrays, each naming the other by its HOST:PORT (as cinder's backend_id / san_ip)."""
    ea = ea or sim.endpoint(a)
    eb = eb or sim.endpoint(b)
    pa = ea.new("replication/peer_k2arrays", name="peer-" + b, mgmt_host=sim.addr(b), username="admin", password="admin").save()
    pb = eb.new("replication/peer_k2arrays", name="peer-" + a, mgmt_host=sim.addr(a), username="admin", password="admin").save()
    return pa, pb


def volume_path(sim, array, name):
    return sim.admin_get("/arrays/%s/volume_file" % array, params={"volume": name})["path"]


def write(sim, array, name, offset, data):
    """Write into a volume the way a lab host does: through its backing file."""
    with open(volume_path(sim, array, name), "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def digest(sim, array, name):
    h = hashlib.sha256()
    with open(volume_path(sim, array, name), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def set_down(sim, array, down):
    sim.admin_call("PATCH", "/arrays/%s/faults" % array, json={"down": down})


def settings(sim, **values):
    return sim.admin_call("PATCH", "/replication", json=values)["settings"]


# ----- cinder's sequences -------------------------------------------------------------------------------
def check_for_status(obj, state, timeout=15.0):
    """Cinder's _check_for_status (refresh until state matches), with a deadline."""
    deadline = time.time() + timeout
    while obj.state != state:
        if time.time() > deadline:
            raise AssertionError("session %s stayed %s, never %s" % (obj.name, obj.state, state))
        obj.refresh()
        time.sleep(POLL)


def user_snap(ep, sess):
    """Cinder's replication user snapshot: only is_application_consistent and replication_session are sent."""
    snap = ep.new("snapshots")
    snap.is_application_consistent = "False"
    snap.replication_session = sess
    snap.save()
    return snap.generation_number


def wait_user_snaps(pending, timeout=15.0):
    """Cinder's _is_user_snap_sync_finished: every (session, gno) until gno done, progress 100, no current snapshot."""
    deadline = time.time() + timeout
    pending = list(pending)
    while pending:
        for item in list(pending):
            sess, gno = item
            sess.refresh()
            if sess.generation_number == gno and sess.current_snapshot_progress == 100 and sess.current_snapshot_id is None:
                pending.remove(item)
        if pending and time.time() > deadline:
            raise AssertionError("user snapshots not synced: %s" % [(s.name, g, s.generation_number) for s, g in pending])
        time.sleep(POLL)


def names(vid):
    return {"vg": "cvg-%s" % vid, "vol": "cv-%s" % vid, "ssn": "ssn-%s" % vid,
            "rvg": "rcvg-%s" % vid, "rvol": "rcv-%s" % vid, "rssn": "rssn-%s" % vid}


def delete_by_name(ep, res, name):
    for hit in ep.search(res, name=name).hits:
        hit.delete()


def cinder_create(client, target, backend_id, vid, size_kib=4096, rpo=300):
    """create_volume + _create_volume_replica, with its rollback."""
    n = names(vid)
    vg = client.new("volume_groups", name=n["vg"], quota=0, is_dedup=True).save()
    vol = client.new("volumes", name=n["vol"], size=size_kib, volume_group=vg).save()
    peers = client.search("replication/peer_k2arrays", mgmt_host=backend_id)
    if peers.total == 0:
        raise RuntimeError("Unable to find K2peer in source K2:")
    try:
        ssn = client.new("replication/sessions")
        ssn.replication_peer_k2array = peers.hits[0]
        ssn.auto_configure_peer_volumes = "False"
        ssn.local_volume_group = vg
        ssn.replication_peer_volume_group_name = n["rvg"]
        ssn.remote_replication_session_name = n["rssn"]
        ssn.name = n["ssn"]
        ssn.rpo = str(rpo)
        ssn.save()
        client.new("replication/peer_volumes", local_volume=vol, name=n["rvol"], replication_session=ssn).save()
        ssn.state = "in_sync"
        ssn.save()
    except Exception:
        delete_by_name(client, "replication/sessions", n["ssn"])
        delete_by_name(target, "replication/sessions", n["rssn"])
        delete_by_name(target, "volumes", n["rvol"])
        delete_by_name(client, "volumes", n["vol"])
        delete_by_name(target, "volume_groups", n["rvg"])
        delete_by_name(client, "volume_groups", n["vg"])
        raise
    return vg, vol, ssn


def cinder_delete(client, target, vid):
    """delete_volume with _delete_volume_replica."""
    n = names(vid)
    src = client.search("replication/sessions", name=n["ssn"]).hits[0]
    tgt = target.search("replication/sessions", name=n["rssn"]).hits[0]
    src.state = "suspended"
    src.save()
    check_for_status(tgt, "suspended")
    src.state = "idle"
    src.save()
    check_for_status(tgt, "idle")
    tgt.delete()
    src.delete()
    vg = client.search("volume_groups", name=n["vg"]).hits
    rvg = target.search("volume_groups", name=n["rvg"]).hits
    for snap in client.search("snapshots", volume_group=vg).hits:
        snap.delete()
    for snap in target.search("snapshots", volume_group=rvg).hits:
        snap.delete()
    delete_by_name(target, "volumes", n["rvol"])
    delete_by_name(target, "volume_groups", n["rvg"])
    for res, name in (("volumes", n["vol"]), ("volume_groups", n["vg"])):
        rs = client.search(res, name=name)
        if rs.total:
            rs.hits[0].delete()


def cinder_failover(target, vids):
    """failover_host towards the target: the primary is not contacted."""
    updates = {}
    for vid in vids:
        n = names(vid)
        if target.search("volumes", name=n["rvol"]).total:
            tgt = target.search("replication/sessions", name=n["rssn"]).hits[0]
            if tgt.state == "in_sync":
                tgt.state = "failed_over"
                tgt.save()
            updates[vid] = "failed-over"
        else:
            updates[vid] = "error"
    return updates


def _sessions(client, target, n):
    tgt = target.search("replication/sessions", name=n["rssn"]).hits[0]
    src = client.search("replication/sessions", name=n["ssn"]).hits[0]
    return src, tgt


def cinder_failback(client, target, vids):
    """failover_host back to the primary, its three phases with the user-snapshot waits between them."""
    pending = []
    for vid in vids:
        n = names(vid)
        vol = client.search("volumes", name=n["vol"])
        rvol = target.search("volumes", name=n["rvol"])
        src, tgt = _sessions(client, target, n)
        if tgt.state == "failed_over" and tgt.current_role == "target" and vol.total and src:
            maps = client.search("mappings", volume=vol.hits[0])
            if maps.total:
                maps.hits[0].delete()
            tgt.state = "in_sync"
            tgt.save()
            check_for_status(src, "in_sync")
        if rvol.total and src.state == "in_sync" and src.current_role == "target":
            pending.append((tgt, user_snap(target, tgt)))
    wait_user_snaps(pending)
    pending = []
    for vid in vids:
        n = names(vid)
        rvol = target.search("volumes", name=n["rvol"])
        src, tgt = _sessions(client, target, n)
        if rvol.total and src.state == "in_sync" and src.current_role == "target":
            maps = target.search("mappings", volume=rvol.hits[0])
            if maps.total:
                maps.hits[0].delete()
            pending.append((tgt, user_snap(target, tgt)))
    wait_user_snaps(pending)
    updates = {}
    for vid in vids:
        n = names(vid)
        rvol = target.search("volumes", name=n["rvol"])
        src, tgt = _sessions(client, target, n)
        if rvol.total and src.state == "in_sync" and src.current_role == "target":
            src.state = "failed_over"
            src.save()
            check_for_status(tgt, "suspended")
            src.state = "in_sync"
            src.save()
            updates[vid] = "disabled"
    return updates
