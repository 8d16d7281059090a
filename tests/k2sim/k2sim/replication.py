"""Replication between arrays served by one k2sim process.

Two halves:

* ``ReplicationMixin`` is part of ``Array``: the REST behaviour of
  ``replication/peer_k2arrays``, ``replication/sessions``,
  ``replication/peer_volumes`` (plus the read-only ``peer_volume_groups`` and
  ``rpo_history``), replication snapshots, and the checks other resources make
  (a VG or volume in a session cannot go, a target volume cannot be mapped).
  Everything a request changes on the *local* array is committed with that
  request; objects it creates on the peer (peer VG, volumes, session) are
  committed on the peer in their own transaction, undone if the local commit
  fails.

* ``ReplicationEngine`` runs in the background of the process (an asyncio task
  calling ``tick()``).  It mirrors state changes onto the peer session after
  ``delay_seconds``, runs replication cycles (a queue per source session:
  initial sync, user snapshots, RPO cycles), copies the data and completes
  generations.  All of its decisions are derived from stored state (the last
  command time of each side, the queue, the cycle start time), so a restart
  resumes where it stopped.

The session state machine (see the README, "Replication") in short: the side
whose state was last set by a client (``_cmd_time``) drives; its peer takes
the derived state: same state and the opposite role, except that a
``failed_over`` target makes its peer (the source) ``suspended``.
"""

import asyncio
import hmac
import logging
import time

from k2sim import dataplane
from k2sim.errors import ApiError

LOG = logging.getLogger("k2sim.replication")

SESS = "replication/sessions"
PEERS = "replication/peer_k2arrays"
PVOLS = "replication/peer_volumes"
PVGS = "replication/peer_volume_groups"
HIST = "replication/rpo_history"
STATES = ("idle", "in_sync", "suspended", "failed_over")
TARGET_EXPOSURES = ("unmapped", "Mapped - Not Exposed", "Read Only")
RPO_REPLICAS_KEPT = 3          # replicas of RPO cycles kept on the target per session
HISTORY_KEPT = 50              # rpo_history rows kept per session
REPL_USER = "replication"


def _ref(res, oid):
    return "/%s/%d" % (res, oid)


def _split(value):
    res, dummy, oid = value.rpartition("/")
    return res[1:], int(oid)


def _state_error(msg):
    return ApiError("MC_ERR_INVALID_STATE", msg)


def _unreachable(msg):
    return ApiError("MC_ERR_PEER_UNREACHABLE", msg)


def derive_peer(state, role):
    """(state, role) a peer session takes when this side drives."""
    if state == "failed_over":
        return "suspended", "source"
    return state, ("target" if role == "source" else "source")


def follower_wants(driver, follower):
    """(state, role) the follower session should take from the driver, or None to leave it as it is.

    A failed_over session serves the data: its peer never changes it (only its own PATCH does)."""
    if follower["state"] == "failed_over":
        return None
    want = derive_peer(driver["state"], driver["current_role"])
    return None if (follower["state"], follower["current_role"]) == want else want


def valid_rpo(rpo):
    return rpo == 60 or (rpo > 0 and rpo % 300 == 0)


class ReplicationSettings(object):
    """Timing of the simulated replication (process-wide, in memory; CLI flags and admin API PATCH /replication)."""

    FIELDS = ("delay_seconds", "transfer_seconds", "rpo_scale")

    def __init__(self, delay_seconds=0.5, transfer_seconds=0.5, rpo_scale=1.0):
        self.delay_seconds = float(delay_seconds)
        self.transfer_seconds = float(transfer_seconds)
        self.rpo_scale = float(rpo_scale)

    def as_dict(self):
        return dict((k, getattr(self, k)) for k in self.FIELDS)

    def update(self, values):
        new = self.as_dict()
        for key, value in values.items():
            if key not in self.FIELDS:
                raise ValueError("unknown replication setting %r (known: %s)" % (key, ", ".join(self.FIELDS)))
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError("%s must be a number, got %r" % (key, value))
            if value < 0 or value > 3600:
                raise ValueError("%s must be between 0 and 3600, got %r" % (key, value))
            new[key] = value
        for key, value in new.items():
            setattr(self, key, value)


class ReplicationMixin(object):
    """Replication behaviour of an Array (hooks found by name, see Array._hook)."""

    # Set by the server: shared settings, this array's faults (for "down"), users, listener address.
    repl = ReplicationSettings()
    faults = None
    users = None
    netloc = None
    listen_host = None

    # ----- reachability ------------------------------------------------------------------------
    def is_down(self):
        return bool(self.faults is not None and self.faults.down)

    def _resolve_mgmt_host(self, mgmt_host):
        """The array of this process that mgmt_host names (see the README for the rule)."""
        text = (mgmt_host or "").strip()
        for prefix in ("https://", "http://"):
            if text.lower().startswith(prefix):
                text = text[len(prefix):]
        text = text.rstrip("/")
        if text in (self.netloc, self.name):
            raise _unreachable("mgmt_host %r is this array (%s) itself, not a peer" % (mgmt_host, self.name))
        others = sorted(self.peers.values(), key=lambda a: a.name)
        for arr in others:
            if arr.netloc is not None and arr.netloc == text:
                return arr
        for arr in others:
            if arr.name == text:
                return arr
        by_host = [a for a in others if a.listen_host is not None and text in (a.listen_host, "[%s]" % a.listen_host)]
        if len(by_host) == 1:
            return by_host[0]
        if len(by_host) > 1:
            raise _unreachable("mgmt_host %r is ambiguous: arrays %s all listen on that host; give HOST:PORT"
                               % (mgmt_host, ", ".join(a.name for a in by_host)))
        known = ", ".join("%s (%s)" % (a.name, a.netloc) for a in others) or "none"
        raise _unreachable("no array answers at mgmt_host %r (arrays of this k2sim process: %s)" % (mgmt_host, known))

    def _check_peer_credentials(self, peer, username, password):
        known = (peer.users or {}).get(username)
        if known is None or not hmac.compare_digest(known[0].encode("utf-8"), (password or "").encode("utf-8")):
            raise ApiError("MC_ERR_PEER_AUTH", "peer array %s refused the credentials of user %r" % (peer.name, username))
        if known[1] != "admin":
            raise ApiError("MC_ERR_PEER_AUTH", "user %r has role %s on peer array %s; replication needs an admin user"
                           % (username, known[1], peer.name))

    def _peer_array(self, peer_obj, need_up=True):
        """The Array a peer_k2arrays object stands for; raises MC_ERR_PEER_UNREACHABLE when it is gone or down."""
        arr = self.peers.get(peer_obj.get("_peer_name"))
        if arr is None:
            raise _unreachable("peer array %s (mgmt_host %s) is not served by this k2sim process"
                               % (peer_obj["name"], peer_obj["mgmt_host"]))
        if need_up and arr.is_down():
            raise _unreachable("peer array %s (mgmt_host %s) does not answer (it is down)" % (peer_obj["name"], peer_obj["mgmt_host"]))
        return arr

    def _back_peer(self, peer):
        """The peer_k2arrays object on peer that points back at this array, or None."""
        for obj in peer.store.all(PEERS):
            if obj.get("_peer_name") == self.name:
                return obj
        return None

    def session_peer(self, sess):
        """(peer Array, peer session) of a session, or (None, None) if either is gone; ignores "down"."""
        peer_obj = self.store.get(PEERS, _split(sess["replication_peer_k2array"])[1])
        arr = self.peers.get(peer_obj.get("_peer_name")) if peer_obj else None
        if arr is None or sess.get("remote_replication_session_id") is None:
            return None, None
        other = arr.store.get(SESS, sess["remote_replication_session_id"])
        if other is None or other.get("remote_replication_session_id") != sess["id"]:
            return arr, None
        other_peer = arr.store.get(PEERS, _split(other["replication_peer_k2array"])[1])
        if other_peer is None or other_peer.get("_peer_name") != self.name:
            return arr, None
        return arr, other

    def _best_effort(self):
        pol = self.store.by_ukey("retention_policies", "Best_Effort_Retention")
        return _ref("retention_policies", pol["id"]) if pol else None

    def _session_of_vg(self, vg_id):
        hits = self.store.by_ref(SESS, "local_volume_group", _ref("volume_groups", vg_id))
        return hits[0] if hits else None

    def _repl_event(self, name, message, user=REPL_USER):
        self._event(name, "INFO", "REPLICATION", message, user)

    # ----- peer_k2arrays ------------------------------------------------------------------------------
    def _create_replication_peer_k2arrays(self, values, user):
        self._check_name("peer array name", values["name"])
        self._check_unique(PEERS, values["name"], "peer array")
        peer = self._resolve_mgmt_host(values["mgmt_host"])
        if peer.is_down():
            raise _unreachable("peer array %s at mgmt_host %s does not answer (it is down)" % (peer.name, values["mgmt_host"]))
        self._check_peer_credentials(peer, values["username"], values["password"])
        obj = self._put_new(PEERS, system_id=peer.system_id, _peer_name=peer.name, **values)
        self._repl_event("REPLICATION_PEER_CREATED", "Peer array %s (%s) was added by %s." % (obj["name"], obj["mgmt_host"], user), user)
        return obj

    def _patch_replication_peer_k2arrays(self, obj, changes, user):
        if "name" in changes:
            self._check_name("peer array name", changes["name"])
            self._check_unique(PEERS, changes["name"], "peer array", obj["id"])
        merged = dict(obj)
        merged.update(changes)
        if "mgmt_host" in changes:
            peer = self._resolve_mgmt_host(changes["mgmt_host"])
            if obj["_peer_name"] != peer.name and self.store.by_ref(SESS, "replication_peer_k2array", _ref(PEERS, obj["id"])):
                raise ApiError("MC_ERR_IN_USE", "peer array %s is used by replication sessions; mgmt_host %s names another array (%s)"
                               % (obj["name"], changes["mgmt_host"], peer.name))
            changes["_peer_name"], changes["system_id"] = peer.name, peer.system_id
        else:
            peer = self._peer_array(obj, need_up=False)
        if ("username" in changes or "password" in changes or "mgmt_host" in changes) and not peer.is_down():
            self._check_peer_credentials(peer, merged["username"], merged["password"])
        new = self._update(PEERS, obj, **changes)
        self._repl_event("REPLICATION_PEER_UPDATED", "Peer array %s was updated by %s." % (new["name"], user), user)
        return new

    def _delete_replication_peer_k2arrays(self, obj, user):
        used = self.store.by_ref(SESS, "replication_peer_k2array", _ref(PEERS, obj["id"]))
        if used:
            raise ApiError("MC_ERR_IN_USE", "peer array %s is used by replication session(s) %s; delete them first"
                           % (obj["name"], ", ".join(s["name"] for s in used[:5])))
        self.store.delete(PEERS, obj["id"])
        self._repl_event("REPLICATION_PEER_DELETED", "Peer array %s was removed by %s." % (obj["name"], user), user)

    def _render_replication_peer_k2arrays(self, obj, out, ctx):
        out["password"] = None           # secrets are write-only
        out["local_password"] = None
        arr = self.peers.get(obj.get("_peer_name"))
        state = "disconnected"
        if arr is not None and not arr.is_down():
            try:
                self._check_peer_credentials(arr, obj["username"], obj["password"])
                state = "ok"
            except ApiError:
                state = "authentication_failed"
        out["mgmt_connectivity_state"] = state
        if state == "ok":
            cap = arr.capacity_numbers()
            out.update({"capacity_state": "ok", "capacity_total": cap["total"], "capacity_free": cap["free"],
                        "capacity_allocated": cap["allocated"], "capacity_provisioned": cap["provisioned"],
                        "capacity_physical": cap["physical"], "capacity_reserved": cap["reserved"]})

    # ----- sessions ------------------------------------------------------------------------------------
    def _check_rpo(self, rpo):
        if not valid_rpo(rpo):
            raise ApiError("MC_ERR_INVALID_ARG", "rpo must be 60 or a multiple of 300 seconds, got %d" % rpo)

    def _check_exposure(self, value):
        if value is not None and value not in TARGET_EXPOSURES:
            raise ApiError("MC_ERR_INVALID_ARG", "target_exposure must be one of %s, got %r" % (", ".join(TARGET_EXPOSURES), value))

    def _create_replication_sessions(self, values, user):
        self._check_name("session name", values["name"])
        self._check_unique(SESS, values["name"], "replication session")
        self._check_rpo(values["rpo"])
        self._check_exposure(values.get("target_exposure"))
        vg = self.store.get("volume_groups", _split(values["local_volume_group"])[1])
        other = self._session_of_vg(vg["id"])
        if other is not None:
            raise ApiError("MC_ERR_IN_USE", "volume group %s is already replicated by session %s" % (vg["name"], other["name"]))
        peer_obj = self.store.get(PEERS, _split(values["replication_peer_k2array"])[1])
        peer = self._peer_array(peer_obj)
        self._check_peer_credentials(peer, peer_obj["username"], peer_obj["password"])
        back = self._back_peer(peer)
        if back is None:
            raise ApiError("MC_ERR_PEER_NOT_PAIRED", "peer array %s has no replication/peer_k2arrays entry for this array (%s, %s); "
                           "create one there first" % (peer.name, self.name, self.netloc))
        rvg_name = values.get("replication_peer_volume_group_name") or vg["name"]
        rsess_name = values.get("remote_replication_session_name") or values["name"]
        self._check_name("replication_peer_volume_group_name", rvg_name)
        self._check_name("remote_replication_session_name", rsess_name)
        if peer.store.by_ukey("volume_groups", rvg_name) is not None:
            raise ApiError("MC_ERR_ALREADY_EXISTS", "peer array %s already has a volume group named %r" % (peer.name, rvg_name))
        if peer.store.by_ukey(SESS, rsess_name) is not None:
            raise ApiError("MC_ERR_ALREADY_EXISTS", "peer array %s already has a replication session named %r" % (peer.name, rsess_name))
        auto = bool(values.get("auto_configure_peer_volumes"))
        vols = self._vg_volumes(vg["id"]) if auto else []
        for vol in vols:
            if peer.store.by_ukey("volumes", vol["name"]) is not None:
                raise ApiError("MC_ERR_ALREADY_EXISTS", "auto_configure_peer_volumes: peer array %s already has a volume named %r"
                               % (peer.name, vol["name"]))
        exposure = values.get("target_exposure") or self.store.get("system/state", 1)["replication_default_target_exposure"]
        now = time.time()
        values.update({"replication_peer_volume_group_name": rvg_name, "remote_replication_session_name": rsess_name,
                       "auto_configure_peer_volumes": auto, "target_exposure": exposure})
        values.setdefault("retention_policy", self._best_effort())
        values.setdefault("external_retention_policy", values["retention_policy"])
        sess = self._put_new(SESS, state="idle", current_role="source", generation_number=0, creation_time=now, **values)
        pvg = self._put_new(PVGS, name=rvg_name, fullname="%s_%s" % (peer.system_id, rvg_name),
                            local_volume_group=values["local_volume_group"], replication_peer_k2array=values["replication_peer_k2array"],
                            replication_session=_ref(SESS, sess["id"]), replication_session_id=sess["id"])
        created = {}

        def undo_peer():
            if not created:
                return
            with peer.store.txn():
                for res, oid in reversed(created["objs"]):
                    if peer.store.get(res, oid) is not None:
                        if res == "volumes":
                            path = peer.volume_path(oid)
                            peer._after_commit(lambda p=path: dataplane.remove(p))
                        peer.store.delete(res, oid)

        with peer.store.txn():
            objs = created["objs"] = []
            rvg = peer._put_new("volume_groups", name=rvg_name, quota=None, is_dedup=vg["is_dedup"],
                                capacity_policy=peer._default_capacity_policy(), creation_time=now,
                                description="Replication target of %s on %s" % (vg["name"], self.name))
            objs.append(("volume_groups", rvg["id"]))
            rsess = peer._put_new(SESS, name=rsess_name, replication_peer_k2array=_ref(PEERS, back["id"]),
                                  local_volume_group=_ref("volume_groups", rvg["id"]), rpo=values["rpo"],
                                  retention_policy=peer._best_effort(), external_retention_policy=peer._best_effort(),
                                  replication_peer_volume_group_name=vg["name"], remote_replication_session_name=values["name"],
                                  auto_configure_peer_volumes=auto, target_exposure=exposure, state="idle",
                                  current_role="target", generation_number=0, creation_time=now,
                                  remote_replication_session_id=sess["id"])
            objs.append((SESS, rsess["id"]))
            rpvg = peer._put_new(PVGS, name=vg["name"], fullname="%s_%s" % (self.system_id, vg["name"]),
                                 local_volume_group=_ref("volume_groups", rvg["id"]), remote_volume_group_id=vg["id"],
                                 replication_peer_k2array=_ref(PEERS, back["id"]), replication_session=_ref(SESS, rsess["id"]),
                                 replication_session_id=rsess["id"])
            objs.append((PVGS, rpvg["id"]))
            peer._update(SESS, rsess, replication_peer_volume_group=_ref(PVGS, rpvg["id"]))
            peer._event("VG_CREATED", "INFO", "VG, CONFIGURE, REPLICATION", "Volume group %s was created by replication from %s:%s."
                        % (rvg_name, self.name, vg["name"]), REPL_USER)
            peer._repl_event("REPLICATION_SESSION_CREATED", "Replication session %s (target of %s:%s) was created."
                             % (rsess_name, self.name, values["name"]))
        self._on_rollback(undo_peer)
        self._update(PVGS, pvg, remote_volume_group_id=rvg["id"])
        sess = self._update(SESS, sess, remote_replication_session_id=rsess["id"], replication_peer_volume_group=_ref(PVGS, pvg["id"]))
        self._repl_event("REPLICATION_SESSION_CREATED", "Replication session %s of volume group %s to %s:%s was created by %s."
                         % (sess["name"], vg["name"], peer.name, rvg_name, user), user)
        for vol in vols:
            self._add_peer_volume(sess, vol, vol["name"], user)
        return self.store.get(SESS, sess["id"])

    def _patch_replication_sessions(self, obj, changes, user):
        new_state = changes.pop("state", None)
        restored = changes.pop("restored_snapshot", None)
        if "name" in changes:
            self._check_name("session name", changes["name"])
            self._check_unique(SESS, changes["name"], "replication session", obj["id"])
        if "rpo" in changes:
            self._check_rpo(changes["rpo"])
        if "target_exposure" in changes:
            self._check_exposure(changes["target_exposure"])
        if restored is not None and new_state != "failed_over":
            raise ApiError("MC_ERR_INVALID_ARG", "restored_snapshot goes with state=failed_over")
        if new_state is not None:
            obj = self._transition(obj, new_state, restored, user)
        if changes:
            obj = self._update(SESS, obj, **changes)
            self._repl_event("REPLICATION_SESSION_UPDATED", "Replication session %s was updated by %s: %s."
                             % (obj["name"], user, ", ".join(sorted(changes))), user)
        return obj

    def _peer_for_start(self, obj):
        """Peer Array and session for a change that needs the peer (start, resume, reverse)."""
        peer_obj = self.store.get(PEERS, _split(obj["replication_peer_k2array"])[1])
        peer = self._peer_array(peer_obj)
        dummy, other = self.session_peer(obj)
        if other is None:
            raise _state_error("session %s has no peer session on %s any more (%s was deleted?); delete this session and create it again"
                               % (obj["name"], peer.name, obj["remote_replication_session_name"]))
        return peer, other

    def alloc_generation(self, sess):
        """Next generation number of a session: returns (number, updated session)."""
        gen = max(sess.get("generation_number") or 0, sess.get("_gen_alloc") or 0) + 1
        return gen, self._update(SESS, sess, _gen_alloc=gen)

    def _queue_cycle(self, sess, kind, snap_id=None):
        gen, sess = self.alloc_generation(sess)
        queue = list(sess.get("_queue") or []) + [{"gen": gen, "kind": kind, "snap": snap_id, "queued": time.time()}]
        return gen, self._update(SESS, sess, _queue=queue)

    def _transition(self, obj, new, restored, user):
        if new not in STATES:
            raise ApiError("MC_ERR_INVALID_ARG", "state must be one of %s, got %r" % (", ".join(STATES), new))
        role, cur = obj["current_role"], obj["state"]
        where = "session %s (role %s, state %s)" % (obj["name"], role, cur)
        peer_label = "%s on its peer array" % obj["remote_replication_session_name"]
        now = time.time()
        changes = {"state": new, "_cmd_time": now}
        if role == "source":
            if new == "failed_over":
                raise _state_error("%s: only the target side of a session fails over; PATCH %s instead" % (where, peer_label))
            if (cur, new) == ("in_sync", "idle"):
                raise _state_error("%s: suspend the session before stopping it (state=suspended, then idle)" % where)
            if (cur, new) == ("idle", "suspended"):
                raise _state_error("%s: an idle session cannot be suspended; start it first (state=in_sync)" % where)
            if cur == "failed_over":
                raise _state_error("%s: unexpected state" % where)
            if new == "in_sync":
                dummy, other = self._peer_for_start(obj)
                if other["state"] == "failed_over":
                    raise _state_error("%s: the peer session %s is failed_over and serves the data; fail back from there "
                                       "(PATCH it to in_sync) instead of resuming here" % (where, other["name"]))
                changes["_cycle_start"] = None
                obj = self._update(SESS, obj, **changes)
                if not obj.get("_queue"):
                    dummy, obj = self._queue_cycle(obj, "initial" if cur == "idle" else "resync")
            elif new == "suspended":
                changes["_cycle_start"] = None
                obj = self._update(SESS, obj, **changes)
            else:   # suspended -> idle
                changes.update(_queue=[], _cycle_start=None)
                obj = self._update(SESS, obj, **changes)
        else:
            if new == "failed_over":
                if cur not in ("in_sync", "suspended"):
                    raise _state_error("%s: only an in_sync or suspended target session can fail over" % where)
                if restored is not None:
                    snap = self.store.get("snapshots", _split(restored)[1])
                    if snap["volume_group"] != obj["local_volume_group"]:
                        raise ApiError("MC_ERR_INVALID_ARG", "restored_snapshot %s is not a snapshot of this session's volume group"
                                       % snap["name"])
                    vg = self.store.get("volume_groups", _split(obj["local_volume_group"])[1])
                    self._restore(vg, restored, user)
                    changes["restored_snapshot"] = restored
                changes.update(_queue=[], _cycle_start=None)
                obj = self._update(SESS, obj, **changes)
            elif cur == "failed_over" and new == "in_sync":
                dummy, other = self._peer_for_start(obj)
                # generations stay increasing across the pair, whichever side handed them out
                changes.update(current_role="source", _queue=[], _cycle_start=None,
                               _gen_alloc=max(obj.get("_gen_alloc") or 0, other.get("_gen_alloc") or 0, other.get("generation_number") or 0))
                obj = self._update(SESS, obj, **changes)
                dummy, obj = self._queue_cycle(obj, "resync")
            elif cur == "failed_over" and new == "idle":
                obj = self._update(SESS, obj, **changes)
            else:
                raise _state_error("%s: a target session follows its source; change the state of %s (or fail this one over)"
                                   % (where, peer_label))
        self._repl_event("REPLICATION_SESSION_STATE_CHANGED", "Replication session %s went from %s to %s (role %s), by %s."
                         % (obj["name"], cur, new, obj["current_role"], user), user)
        return obj

    def _delete_replication_sessions(self, obj, user):
        if obj["state"] != "idle":
            raise _state_error("session %s is %s; only an idle session can be deleted (suspend it, then set it idle)"
                               % (obj["name"], obj["state"]))
        sref = _ref(SESS, obj["id"])
        for pv in self.store.by_ref(PVOLS, "replication_session", sref):
            self.store.delete(PVOLS, pv["id"])
        for pvg in self.store.by_ref(PVGS, "replication_session", sref):
            self.store.delete(PVGS, pvg["id"])
        for row in self.store.by_ref(HIST, "session", sref):
            self.store.delete(HIST, row["id"])
        for snap in self.store.by_ref("snapshots", "replication_session", sref):
            self._update("snapshots", snap, replication_session=None)
        self.store.delete(SESS, obj["id"])
        self._repl_event("REPLICATION_SESSION_DELETED", "Replication session %s was deleted by %s." % (obj["name"], user), user)

    def session_progress(self, obj, now=None):
        """(current snapshot id or None, progress 0-100, seconds left or None) of a session's running cycle."""
        queue = obj.get("_queue") or []
        if obj["current_role"] != "source" or obj["state"] != "in_sync" or not queue:
            return None, 100, None
        head = queue[0]
        snap_id = head.get("snap")
        if snap_id is not None and self.store.get("snapshots", snap_id) is None:
            snap_id = None
        start = obj.get("_cycle_start")
        transfer = self.repl.transfer_seconds
        if start is None:
            return snap_id, 0, int(transfer) + 1
        elapsed = (now or time.time()) - start
        if transfer <= 0:
            return snap_id, 99, 0
        return snap_id, max(0, min(99, int(100 * elapsed / transfer))), max(0, int(transfer - elapsed + 0.999))

    def _render_replication_sessions(self, obj, out, ctx):
        snap_id, progress, left = self.session_progress(obj)
        queue = obj.get("_queue") or []
        hist = self.store.by_ref(HIST, "session", _ref(SESS, obj["id"]))
        nxt = queue[1].get("snap") if len(queue) > 1 else None
        sref = _ref(SESS, obj["id"])
        out.update({
            "primary": obj["current_role"] == "source",
            "replication_rpo_history": _ref(HIST, hist[-1]["id"]) if hist else None,
            "current_snapshot": _ref("snapshots", snap_id) if snap_id else None,
            "next_snapshot": _ref("snapshots", nxt) if nxt and self.store.get("snapshots", nxt) else None,
            "current_snapshot_id": snap_id,
            "current_snapshot_progress": progress,
            "estimated_remaining_time": left,
            "common_snapshots_count": sum(1 for s in self.store.by_ref("snapshots", "replication_session", sref)
                                          if s.get("_exist_on_peer") or s.get("_from_peer")),
            "stopped": obj["state"] == "idle",
            "suspend_reason": "",
            "suspend_reason_code": "none",
        })

    # ----- peer volumes ---------------------------------------------------------------------------
    def _add_peer_volume(self, sess, vol, name, user):
        """Create the peer volume on the other array and the peer_volumes rows on both sides."""
        peer_obj = self.store.get(PEERS, _split(sess["replication_peer_k2array"])[1])
        peer = self._peer_array(peer_obj)
        dummy, other = self.session_peer(sess)
        if other is None:
            raise _state_error("session %s has no peer session on %s any more; it cannot take volumes" % (sess["name"], peer.name))
        self._check_name("peer volume name", name)
        if peer.store.by_ukey("volumes", name) is not None:
            raise ApiError("MC_ERR_ALREADY_EXISTS", "peer array %s already has a volume named %r" % (peer.name, name))
        pvg_ref = sess["replication_peer_volume_group"]
        row = self._put_new(PVOLS, name=name, local_volume=_ref("volumes", vol["id"]), replication_session=_ref(SESS, sess["id"]),
                            replication_peer_volume_group=pvg_ref)
        created = []
        with peer.store.txn():
            suffix = peer._next_scsi_suffix()
            rvol = peer._put_new("volumes", name=name, size=vol["size"], volume_group=other["local_volume_group"],
                                 creation_time=time.time(), scsi_suffix=suffix, scsi_sn="%s%04d" % (peer.system_id, suffix),
                                 description="Synced by %s source machine" % self.system_id)
            path = peer.volume_path(rvol["id"])
            dataplane.create(path, rvol["size"] * 1024)
            peer._on_rollback(lambda: dataplane.remove(path))
            mirror = peer._put_new(PVOLS, name=vol["name"], local_volume=_ref("volumes", rvol["id"]),
                                   replication_session=_ref(SESS, other["id"]), remote_volume_id=vol["id"],
                                   replication_peer_volume_group=other["replication_peer_volume_group"])
            peer._event("VOLUME_CREATED", "INFO", "VOLUME, CONFIGURE, REPLICATION", "Volume %s of size %d KiB was created by replication "
                        "of %s:%s." % (name, rvol["size"], self.name, vol["name"]), REPL_USER)
            created.extend([(PVOLS, mirror["id"]), ("volumes", rvol["id"])])

        def undo_peer():
            with peer.store.txn():
                for res, oid in created:
                    if peer.store.get(res, oid) is not None:
                        peer.store.delete(res, oid)
                        if res == "volumes":
                            vpath = peer.volume_path(oid)
                            peer._after_commit(lambda p=vpath: dataplane.remove(p))
        self._on_rollback(undo_peer)
        row = self._update(PVOLS, row, remote_volume_id=rvol["id"])
        self._repl_event("REPLICATION_PEER_VOLUME_CREATED", "Volume %s is replicated to %s:%s by session %s (%s)."
                         % (vol["name"], peer.name, name, sess["name"], user), user)
        return row

    def _create_replication_peer_volumes(self, values, user):
        sess = self.store.get(SESS, _split(values["replication_session"])[1])
        vol = self.store.get("volumes", _split(values["local_volume"])[1])
        if vol["volume_group"] != sess["local_volume_group"]:
            raise ApiError("MC_ERR_INVALID_ARG", "volume %s is not in the volume group of session %s" % (vol["name"], sess["name"]))
        if sess["current_role"] != "source":
            raise _state_error("session %s has role target; add peer volumes on its source side" % sess["name"])
        existing = self.store.by_ref(PVOLS, "local_volume", values["local_volume"])
        if existing:
            raise ApiError("MC_ERR_ALREADY_EXISTS", "volume %s is already replicated (%s)" % (vol["name"], _ref(PVOLS, existing[0]["id"])))
        return self._add_peer_volume(sess, vol, values["name"], user)

    def _patch_replication_peer_volumes(self, obj, changes, user):
        if "name" in changes:
            self._check_name("peer volume name", changes["name"])
        return self._update(PVOLS, obj, **changes)

    def _delete_replication_peer_volumes(self, obj, user):
        sess = self.store.get(SESS, _split(obj["replication_session"])[1])
        if sess["state"] != "idle":
            raise _state_error("session %s is %s; peer volumes can only be removed from an idle session" % (sess["name"], sess["state"]))
        self.store.delete(PVOLS, obj["id"])
        peer, other = self.session_peer(sess)
        if other is not None and not peer.is_down():
            with peer.store.txn():
                for pv in peer.store.by_ref(PVOLS, "replication_session", _ref(SESS, other["id"])):
                    if pv["remote_volume_id"] == _split(obj["local_volume"])[1]:
                        peer.store.delete(PVOLS, pv["id"])
        self._repl_event("REPLICATION_PEER_VOLUME_DELETED", "Peer volume %s was removed from session %s by %s."
                         % (obj["name"], sess["name"], user), user)

    def _render_replication_peer_volume_groups(self, obj, out, ctx):
        arr = self.peers.get((self.store.get(PEERS, _split(obj["replication_peer_k2array"])[1]) or {}).get("_peer_name"))
        vg = arr.store.get("volume_groups", obj["remote_volume_group_id"]) if arr is not None and obj["remote_volume_group_id"] else None
        if vg is not None:
            alloc = sum(dataplane.allocated_kib(arr.volume_path(v["id"])) for v in arr._vg_volumes(vg["id"]))
            out.update({"capacity_state": "ok", "logical_capacity": alloc, "volumes_logical_capacity": alloc,
                        "snapshots_logical_capacity": 0})

    # ----- replication snapshots -----------------------------------------------------------------------
    def _create_replication_snapshot(self, values, user):
        sess = self.store.get(SESS, _split(values["replication_session"])[1])
        if sess["current_role"] != "source" or sess["state"] != "in_sync":
            raise _state_error("session %s is %s with role %s; replication snapshots are taken on an in_sync source session"
                               % (sess["name"], sess["state"], sess["current_role"]))
        src = values.get("source") or sess["local_volume_group"]
        if src != sess["local_volume_group"]:
            raise ApiError("MC_ERR_INVALID_ARG", "a replication snapshot's source must be the session's volume group %s" % sess["local_volume_group"])
        gen, sess = self.alloc_generation(sess)
        values.update({"source": src, "retention_policy": values.get("retention_policy") or sess["retention_policy"] or self._best_effort()})
        values.setdefault("short_name", "r%d-g%d" % (sess["id"], gen))
        values.setdefault("is_auto_deleteable", False)
        values["is_exposable"] = False
        snap = self._create_plain_snapshot(values, user)
        snap = self._update("snapshots", snap, generation_number=gen, triggered_by="api")
        queue = list(sess.get("_queue") or []) + [{"gen": gen, "kind": "snapshot", "snap": snap["id"], "queued": time.time()}]
        self._update(SESS, sess, _queue=queue)
        return snap

    # ----- checks used by the core resources ------------------------------------------------------------
    def repl_check_vg_delete(self, vg):
        sess = self._session_of_vg(vg["id"])
        if sess is not None:
            raise ApiError("MC_ERR_IN_USE", "volume group %s is replicated by session %s; delete the session first" % (vg["name"], sess["name"]))

    def repl_check_volume_free(self, vol, action):
        rows = self.store.by_ref(PVOLS, "local_volume", _ref("volumes", vol["id"]))
        if rows:
            sess = self.store.get(SESS, _split(rows[0]["replication_session"])[1])
            raise ApiError("MC_ERR_IN_USE", "volume %s is replicated by session %s (%s); it cannot be %s until its peer volume "
                           "or session is deleted" % (vol["name"], sess["name"], _ref(PVOLS, rows[0]["id"]), action))

    def repl_check_mappable(self, vol):
        if not vol.get("volume_group"):
            return
        sess = self._session_of_vg(_split(vol["volume_group"])[1])
        if sess is not None and sess["current_role"] == "target" and sess["state"] != "failed_over":
            raise _state_error("volume %s is a replication target (session %s is %s); it can be mapped after a failover"
                               % (vol["name"], sess["name"], sess["state"]))

    def repl_forget_snapshot(self, sref):
        for sess in self.store.all(SESS):
            changes = {}
            if sess.get("latest_replicated_snapshot") == sref:
                changes["latest_replicated_snapshot"] = None
            if sess.get("restored_snapshot") == sref:
                changes["restored_snapshot"] = None
            if changes:
                self._update(SESS, sess, **changes)
        for row in self.store.all(HIST):
            if row.get("snapshot") == sref:
                self._update(HIST, row, snapshot=None)

    def repl_render_vg(self, obj, out):
        sess = self._session_of_vg(obj["id"])
        if sess is not None:
            hist = self.store.by_ref(HIST, "session", _ref(SESS, sess["id"]))
            out["replication_session"] = _ref(SESS, sess["id"])
            out["replication_peer_volume_group"] = sess.get("replication_peer_volume_group")
            out["replication_rpo_history"] = _ref(HIST, hist[-1]["id"]) if hist else None

    def repl_render_volume(self, obj, out):
        rows = self.store.by_ref(PVOLS, "local_volume", _ref("volumes", obj["id"]))
        if rows:
            out["replication_peer_volume"] = _ref(PVOLS, rows[0]["id"])

    # ----- engine side: applied by ReplicationEngine on each tick ---------------------------------------
    def add_history(self, sess, gen, start, end, nbytes, snap_ref):
        sref = _ref(SESS, sess["id"])
        if any(row["generation_number"] == gen for row in self.store.by_ref(HIST, "session", sref)):
            return      # completed again after a crash between the two arrays' commits
        self._put_new(HIST, session=sref, generation_number=gen, role=sess["current_role"], round_start=start, round_end=end,
                      target_rpo=sess["rpo"], bytes_transmitted_logical=nbytes, bytes_transmitted_physical=nbytes, snapshot=snap_ref)
        rows = self.store.by_ref(HIST, "session", sref)
        for row in rows[:-HISTORY_KEPT]:
            self.store.delete(HIST, row["id"])

    def make_replica(self, sess, short, gen, data_time, triggered_by):
        """The copy of a completed generation in the target VG (idempotent: an existing one is reused)."""
        vg = self.store.get("volume_groups", _split(sess["local_volume_group"])[1])
        base, n = short, 0
        while True:
            snap = self.store.by_ukey("snapshots", "%s:%s" % (vg["name"], short))
            if snap is None or (snap.get("_from_peer") and snap.get("generation_number") == gen):
                break
            n += 1     # the name is taken by a snapshot of this array: the replica gets another one
            short = "%s-%d" % (base, n)
        if snap is None:
            snap = self._create_plain_snapshot({"short_name": short, "source": sess["local_volume_group"],
                                                "retention_policy": sess["retention_policy"] or self._best_effort(),
                                                "is_auto_deleteable": True, "is_exposable": False}, REPL_USER)
        snap = self._update("snapshots", snap, generation_number=gen, triggered_by=triggered_by, replication_session=_ref(SESS, sess["id"]),
                            data_creation_time=data_time, _from_peer=True)
        if triggered_by == "Replication":
            olds = [s for s in self.store.by_ref("snapshots", "replication_session", _ref(SESS, sess["id"]))
                    if s.get("triggered_by") == "Replication" and s["id"] != snap["id"]]
            for old in olds[:max(0, len(olds) - (RPO_REPLICAS_KEPT - 1))]:
                sref = _ref("snapshots", old["id"])
                if not self.store.by_ref("snapshots", "source", sref) and not self.store.by_ref("mappings", "volume", sref):
                    self._drop_snapshot(old)
        return snap


class ReplicationEngine(object):
    """Background convergence and data transfer of every session of the process."""

    def __init__(self, arrays, settings=None, tick_seconds=0.05):
        self.arrays = arrays              # name -> Array
        self.settings = settings or ReplicationSettings()
        self.tick_seconds = tick_seconds
        for arr in arrays.values():
            arr.repl = self.settings
        self.last_error = None

    async def run(self):
        while True:
            self.tick()
            await asyncio.sleep(self.tick_seconds)

    def tick(self, now=None):
        now = time.time() if now is None else now
        for arr in list(self.arrays.values()):
            if arr.is_down():
                continue
            for sess in list(arr.store.all(SESS)):
                try:
                    current = arr.store.get(SESS, sess["id"])
                    if current is not None:
                        self._reconcile(arr, current, now)
                    current = arr.store.get(SESS, sess["id"])
                    if current is not None:
                        self._advance(arr, current, now)
                except Exception as err:  # one broken session must not stop the others; retried next tick
                    msg = "%s:%s: %s: %s" % (arr.name, sess["name"], type(err).__name__, err)
                    if msg != self.last_error:
                        LOG.exception("replication of session %s on %s failed", sess["name"], arr.name)
                    self.last_error = msg

    def _reconcile(self, arr, sess, now):
        peer, other = arr.session_peer(sess)
        if other is None or peer.is_down():
            return
        mine, theirs = sess.get("_cmd_time") or 0, other.get("_cmd_time") or 0
        if mine <= theirs or now < mine + self.settings.delay_seconds:
            return
        want = follower_wants(sess, other)
        if want is None:
            return
        state, role = want
        with peer.store.txn():
            changes = {"state": state, "current_role": role, "_cycle_start": None}
            if role == "target" or state == "idle":
                changes["_queue"] = []
            peer._update(SESS, other, **changes)
            peer._repl_event("REPLICATION_SESSION_STATE_CHANGED", "Replication session %s went from %s to %s (role %s), following %s:%s."
                             % (other["name"], other["state"], state, role, arr.name, sess["name"]))

    def queue_cycle(self, arr, sess, kind="rpo"):
        with arr.store.txn():
            gen, sess = arr._queue_cycle(sess, kind)
        return gen

    def _advance(self, arr, sess, now):
        if sess["current_role"] != "source" or sess["state"] != "in_sync":
            return
        peer, other = arr.session_peer(sess)
        if other is None or peer.is_down() or (other["state"], other["current_role"]) != ("in_sync", "target"):
            return
        queue = sess.get("_queue") or []
        if not queue:
            scale = self.settings.rpo_scale
            last = sess.get("_last_cycle_end") or sess.get("_cmd_time") or now
            if scale > 0 and now >= last + sess["rpo"] * scale:
                self.queue_cycle(arr, sess, "rpo")
            return
        if sess.get("_cycle_start") is None:
            with arr.store.txn():
                arr._update(SESS, sess, _cycle_start=now)
            return
        if now < sess["_cycle_start"] + self.settings.transfer_seconds:
            return
        self._complete(arr, sess, peer, other, queue[0], now)

    def _complete(self, arr, sess, peer, other, head, now):
        gen = head["gen"]
        snap = arr.store.get("snapshots", head["snap"]) if head.get("snap") else None
        snap_ref = _ref("snapshots", snap["id"]) if snap else None
        copies = []
        for pv in arr.store.by_ref(PVOLS, "replication_session", _ref(SESS, sess["id"])):
            vol = arr.store.get("volumes", _split(pv["local_volume"])[1])
            dst = peer.store.get("volumes", pv["remote_volume_id"]) if pv["remote_volume_id"] else None
            if vol is None or dst is None:
                continue
            src_path, size = arr.volume_path(vol["id"]), vol["size"]
            if snap is not None:
                for vs in arr.store.by_ref("volsnaps", "snapshot", snap_ref):
                    if vs["source"] == pv["local_volume"]:
                        src_path, size = arr.volsnap_path(vs["id"]), vs["size"]
            copies.append((src_path, size, dst))
        start = sess.get("_cycle_start") or now
        data_time = snap["creation_time"] if snap is not None else now
        nbytes = 0
        with peer.store.txn():
            for src_path, size, dst in copies:
                if dst["size"] < size:
                    dst = peer._update("volumes", dst, size=size)
                dataplane.copy(src_path, peer.volume_path(dst["id"]), dst["size"] * 1024, in_place=True)
                nbytes += dataplane.allocated_kib(src_path) * 1024
            if snap is not None:
                replica = peer.make_replica(other, snap["short_name"], gen, data_time, "Replication_API")
            else:
                replica = peer.make_replica(other, "r%d-g%d" % (sess["id"], gen), gen, data_time, "Replication")
            replica_ref = _ref("snapshots", replica["id"])
            other = peer._update(SESS, other, generation_number=max(other.get("generation_number") or 0, gen),
                                 latest_replicated_snapshot=replica_ref, _last_cycle_end=now)
            peer.add_history(other, gen, start, now, nbytes, replica_ref)
        with arr.store.txn():
            current = arr.store.get(SESS, sess["id"])
            queue = [q for q in (current.get("_queue") or []) if q["gen"] != gen]
            current = arr._update(SESS, current, _queue=queue, _cycle_start=None, _last_cycle_end=now,
                                  generation_number=max(current.get("generation_number") or 0, gen),
                                  latest_replicated_snapshot=snap_ref or current.get("latest_replicated_snapshot"))
            if snap is not None:
                arr._update("snapshots", snap, _exist_on_peer=True)
            arr.add_history(current, gen, start, now, nbytes, snap_ref)

    def describe(self):
        """Admin API view: settings and every session with its queue and whether its peer has converged."""
        out = {}
        for name, arr in self.arrays.items():
            rows = []
            for sess in arr.store.all(SESS):
                peer, other = arr.session_peer(sess)
                converged = None
                if other is not None:
                    mine, theirs = sess.get("_cmd_time") or 0, other.get("_cmd_time") or 0
                    if mine > theirs:
                        converged = follower_wants(sess, other) is None
                    elif theirs > mine:
                        converged = follower_wants(other, sess) is None
                    else:
                        converged = True
                snap_id, progress, dummy = arr.session_progress(sess)
                rows.append({"id": sess["id"], "name": sess["name"], "state": sess["state"], "current_role": sess["current_role"],
                             "generation_number": sess["generation_number"], "current_snapshot_id": snap_id,
                             "current_snapshot_progress": progress, "queue": sess.get("_queue") or [],
                             "peer_array": peer.name if peer is not None else None,
                             "peer_session": other["name"] if other is not None else None, "converged": converged})
            out[name] = {"down": arr.is_down(), "sessions": rows}
        return {"settings": self.settings.as_dict(), "last_error": self.last_error, "arrays": out}
