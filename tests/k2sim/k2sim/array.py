"""Behaviour of one simulated K2 array: validation, side effects, rendering.

Everything here runs synchronously on the event loop (one request at a time
per process), inside a store transaction opened by the API layer.
"""

import fcntl
import hashlib
import operator
import os
import re
import time

from k2sim import __version__, dataplane
from k2sim.errors import ApiError
from k2sim.query import parse, match, sort_key
from k2sim.replication import ReplicationMixin
from k2sim.schema import BOOL, CONNECTIVITY_TYPES, FLOAT, HOST_TYPES, INT, REF, RESOURCES, STR
from k2sim.store import Store

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,42}$")
IQN_RE = re.compile(r"^(iqn\.\d{4}-\d{2}\.[^\s]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$")
DEFAULT_TOTAL_KIB = 10 * 2 ** 30          # 10 TiB
MAX_VOLUME_KIB = 2 ** 40                  # 1 PiB
MAX_LUN = 254
BUILTIN_RETENTION = ("Best_Effort_Retention", "CDP")
DEFAULT_CAPACITY_POLICY = "default_vg_capacity_policy"

EVENT_IDS = {
    "VG_CREATED": 249, "VG_UPDATED": 250, "VG_DELETED": 251, "VG_RESTORED": 252,
    "VOLUME_CREATED": 260, "VOLUME_UPDATED": 261, "VOLUME_DELETED": 262,
    "SNAPSHOT_CREATED": 270, "SNAPSHOT_UPDATED": 271, "SNAPSHOT_DELETED": 272,
    "VIEW_CREATED": 273, "VIEW_DELETED": 274,
    "HOST_CREATED": 280, "HOST_UPDATED": 281, "HOST_DELETED": 282,
    "HOST_GROUP_CREATED": 283, "HOST_GROUP_UPDATED": 284, "HOST_GROUP_DELETED": 285,
    "HOST_IQN_CREATED": 286, "HOST_IQN_UPDATED": 287, "HOST_IQN_DELETED": 288,
    "HOST_FC_PORT_CREATED": 289, "HOST_FC_PORT_UPDATED": 290, "HOST_FC_PORT_DELETED": 291,
    "MAPPING_CREATED": 292, "MAPPING_UPDATED": 293, "MAPPING_DELETED": 294,
    "RETENTION_POLICY_CREATED": 300, "RETENTION_POLICY_UPDATED": 301, "RETENTION_POLICY_DELETED": 302,
    "VG_CAPACITY_POLICY_CREATED": 303, "VG_CAPACITY_POLICY_UPDATED": 304, "VG_CAPACITY_POLICY_DELETED": 305,
    "SYSTEM_UPDATED": 310, "SYSTEM_INITIALIZED": 311,
    "REPLICATION_PEER_CREATED": 320, "REPLICATION_PEER_UPDATED": 321, "REPLICATION_PEER_DELETED": 322,
    "REPLICATION_SESSION_CREATED": 323, "REPLICATION_SESSION_UPDATED": 324, "REPLICATION_SESSION_DELETED": 325,
    "REPLICATION_SESSION_STATE_CHANGED": 326, "REPLICATION_PEER_VOLUME_CREATED": 327, "REPLICATION_PEER_VOLUME_DELETED": 328,
}


_by_id = operator.itemgetter("id")


def ref(res, oid):
    return "/%s/%d" % (res, oid)


def split_ref(value):
    res, dummy, oid = value.rpartition("/")
    return res[1:], int(oid)


def converted_name(name):
    return (name or "").lower().replace("_", ".")


def invalid(msg):
    return ApiError("MC_ERR_INVALID_ARG", msg)


class Array(ReplicationMixin):
    def __init__(self, name, data_dir):
        self.name = name
        self.data_dir = data_dir
        self.blob_dir = os.path.join(data_dir, "data")
        os.makedirs(self.blob_dir, exist_ok=True)
        self._lock_data_dir()
        self.db_path = os.path.join(data_dir, "k2sim.sqlite3")
        self.store = Store(self.db_path, RESOURCES)
        self.sequence_floor = {}
        # Every other array of the process by name, set by the server: replication reaches its peers through it.
        self.peers = {}
        if self.store.meta.get("seeded") != "1":
            with self.store.txn():
                self._seed()
        self._repair_files()

    def _lock_data_dir(self):
        """One process per array directory: a second one would serve a stale cache of the same database."""
        self._lock_file = open(os.path.join(self.data_dir, "k2sim.lock"), "a+")  # pylint: disable=consider-using-with
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.seek(0)
            owner = self._lock_file.read().strip() or "unknown"
            self._lock_file.close()
            raise OSError("the data directory %s is in use by another k2sim process (pid %s)" % (self.data_dir, owner))
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    # ----- files ---------------------------------------------------------------
    def volume_path(self, vid):
        return "%s/vol-%d.img" % (self.blob_dir, vid)       # os.path.join(blob_dir, ...), once per rendered volume

    def volsnap_path(self, vsid):
        return "%s/vs-%d.img" % (self.blob_dir, vsid)

    def _repair_files(self):
        """After a crash: drop files of uncommitted objects, recreate missing ones empty."""
        wanted = {}
        for vol in self.store.all("volumes"):
            if vol["name"] != "CTRL":
                wanted[os.path.basename(self.volume_path(vol["id"]))] = vol["size"] * 1024
        for vs in self.store.all("volsnaps"):
            wanted[os.path.basename(self.volsnap_path(vs["id"]))] = vs["size"] * 1024
        for fname in os.listdir(self.blob_dir):
            if fname not in wanted:
                dataplane.remove(os.path.join(self.blob_dir, fname))
        for fname, size in wanted.items():
            path = os.path.join(self.blob_dir, fname)
            if not os.path.exists(path):
                dataplane.create(path, size)
            else:
                dataplane.grow(path, size)

    # ----- seed ----------------------------------------------------------------
    @property
    def system_id(self):
        return self.store.meta["system_id"]

    @property
    def sdp_id(self):
        return int(self.store.meta["sdp_id"])

    def _put_new(self, res, **values):
        spec = RESOURCES[res]
        obj = {"id": self.store.next_id(res)}
        for fname, fspec in spec.fields.items():
            if fname != "id" and not fspec.computed:
                obj[fname] = fspec.default
        obj.update(values)
        self.store.put(res, obj)
        return obj

    def _seed(self):
        digest = hashlib.sha1(self.name.encode("utf-8")).hexdigest()
        system_id = "d" + digest[:3]
        self.store.set_meta("system_id", system_id)
        self.store.set_meta("sdp_id", str(10000 + int(digest[3:9], 16) % 90000))
        self.store.set_meta("capacity_total_kib", str(DEFAULT_TOTAL_KIB))
        now = time.time()
        self._put_new("system/state", system_name=self.name, system_id=system_id,
                      system_version="k2sim-%s" % __version__, rest_api_version="2.2.0",
                      iscsi_qualified_target_name="iqn.2009-01.com.kaminario:storage.k2.%d" % int(digest[:5], 16),
                      last_online_time=now, serial="K2SIM-%s" % digest[:8].upper())
        self._put_new("system/capacity")
        for i in (1, 2):
            self._put_new("system/net_ports", name="knode%02d-dataport01" % i, port_type="dataport",
                          mac_addr="02:00:00:%02x:00:%02x" % (int(digest[:2], 16), i))
        wan = self._put_new("system/wan_ports", name="knode01-wan01", ip_address="192.0.2.21")
        self._put_new("system/net_ips", ip_address="192.0.2.11", network_mask="255.255.255.0", service="iscsi",
                      net_port=ref("system/net_ports", 1))
        self._put_new("system/net_ips", ip_address="192.0.2.12", network_mask="255.255.255.0", service="iscsi",
                      net_port=ref("system/net_ports", 2))
        self._put_new("system/net_ips", ip_address="192.0.2.21", network_mask="255.255.255.0", service="replication",
                      wan_port=ref("system/wan_ports", wan["id"]))
        for i in (1, 2):
            self._put_new("system/fc_ports", name="kblock01-knode%02d-fc01" % i,
                          pwwn="50:02:4f:40:%s:%s:01:%02x" % (digest[:2], digest[2:4], i))
        self._put_new("retention_policies", name="Best_Effort_Retention", num_snapshots=255, weeks=0, days=0, hours=0)
        self._put_new("retention_policies", name="CDP", num_snapshots=20, weeks=0, days=1, hours=0)
        self._put_new("vg_capacity_policies", name=DEFAULT_CAPACITY_POLICY, warning_threshold=80, error_threshold=90,
                      critical_threshold=95, full_threshold=100, snapshot_overhead_threshold=50, num_snapshots=3,
                      is_default=True)
        # The CTRL system volume: id 1, no volume group, size 0, cannot be changed, deleted or mapped.
        self._put_new("volumes", name="CTRL", size=0, volume_group=None, scsi_suffix=0,
                      scsi_sn="%s%04d" % (system_id, 0), creation_time=now)
        self._event("SYSTEM_INITIALIZED", "INFO", "SYSTEM", "System %s was initialized by k2sim." % self.name, "system")
        self.store.set_meta("seeded", "1")

    # ----- helpers ---------------------------------------------------------------
    def _event(self, name, level, labels, message, user):
        self._put_new("events", event_id=EVENT_IDS[name], name=name, level=level, labels=labels,
                      message=message, timestamp=time.time(), user=user)

    def _coerce(self, res, fname, spec, value):
        """Convert a body value to the field's type, accepting string forms of numbers and booleans."""
        where = "%s.%s" % (res, fname)
        if value is None:
            return None
        kind = spec.kind
        if kind == STR:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise invalid("%s must be a string, got %r" % (where, value))
            return str(value)
        if kind == INT:
            if isinstance(value, bool):
                raise invalid("%s must be an integer, got %r" % (where, value))
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            raise invalid("%s must be an integer, got %r" % (where, value))
        if kind == FLOAT:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise invalid("%s must be a number, got %r" % (where, value))
        if kind == BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise invalid("%s must be true or false, got %r" % (where, value))
        if kind == REF:
            if value == "":
                return None
            if isinstance(value, dict) and "ref" in value:
                value = value["ref"]
            if not isinstance(value, str) or not re.match(r"^/[a-z0-9_/]+/\d+$", value):
                raise invalid('%s must be a reference like {"ref": "/%s/1"}, got %r'
                              % (where, (spec.targets or ("resource",))[0], value))
            target, oid = split_ref(value)
            if target not in spec.targets:
                raise invalid("%s must point to %s, not %s" % (where, " or ".join(spec.targets), value))
            if self.store.get(target, oid) is None:
                raise ApiError("MC_ERR_REF_NOT_FOUND", "%s points to %s, which does not exist" % (where, value))
            return value
        return value

    def _check_name(self, label, name):
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise invalid("%s %r is not valid: use 1 to 42 characters from A-Z a-z 0-9 _ . -" % (label, name))

    def _check_unique(self, res, key, label, own_id=None):
        other = self.store.by_ukey(res, str(key))
        if other is not None and other["id"] != own_id:
            raise ApiError("MC_ERR_ALREADY_EXISTS", "%s %r already exists (%s)" % (label, key, ref(res, other["id"])))

    def _must_get(self, res, oid):
        obj = self.store.get(res, oid)
        if obj is None:
            raise ApiError("MC_ERR_NOT_FOUND", "%s has no object with id %s" % (res, oid))
        return obj

    def _update(self, res, obj, **changes):
        new = dict(obj)
        new.update(changes)
        self.store.put(res, new)
        return new

    def _after_commit(self, fn):
        self.store._need_txn().after_commit.append(fn)

    def _on_rollback(self, fn):
        self.store._need_txn().on_rollback.append(fn)

    def _next_scsi_suffix(self):
        return self.store.next_id("scsi_suffix")

    # ----- generic CRUD entry points -----------------------------------------------------
    def _hook(self, kind, res, required=True):
        """The behaviour of one resource: method _<kind>_<res> with "/" as "_" (e.g. _create_volumes).

        A new resource (replication/sessions: _create_replication_sessions ...) is a schema entry plus these methods.
        """
        hook = getattr(self, "_%s_%s" % (kind, res.replace("/", "_")), None)
        if hook is None and required:
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "k2sim does not implement %s on %s" % (kind, res))
        return hook

    def create(self, res, body, user):
        spec = RESOURCES[res]
        if "POST" not in spec.methods:
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "%s does not support POST" % res)
        if not isinstance(body, dict):
            raise invalid("POST %s needs a JSON object body" % res)
        values = {}
        for fname, fspec in spec.fields.items():
            if fspec.post is None:
                continue
            raw = body.get(fname)
            if raw is None or (raw == "" and fspec.kind == REF):
                if fspec.post == "M":
                    raise invalid("POST %s: the field %r is mandatory" % (res, fname))
                continue
            values[fname] = self._coerce(res, fname, fspec, raw)
        return self._hook("create", res)(values, user)

    def patch(self, res, oid, body, user, bulk=False):
        spec = RESOURCES[res]
        if "PATCH" not in spec.methods:
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "%s does not support PATCH" % res)
        obj = self._must_get(res, oid)
        if not isinstance(body, dict):
            raise invalid("PATCH %s/%s needs a JSON object body" % (res, oid))
        changes = {}
        for fname, raw in body.items():
            fspec = spec.fields.get(fname)
            if fspec is None or fspec.computed:
                continue
            if fname == "id":
                if str(raw) != str(oid):
                    raise invalid("the id %r in the body does not match the id %s in the URL" % (raw, oid))
                continue
            if fspec.patch:
                value = self._coerce(res, fname, fspec, raw)
                if value is None and (fspec.post == "M" or fspec.kind == BOOL):
                    raise invalid("%s.%s cannot be null" % (res, fname))
                # A restore is an action: naming the same snapshot again restores again (except in a
                # bulk PATCH, where krest sends every attribute of the object, changed or not).
                if value != obj.get(fname) or (fname == "last_restored_from" and value is not None and not bulk):
                    changes[fname] = value
            elif fspec.immutable:
                if fspec.kind == REF:
                    value = raw.get("ref") if isinstance(raw, dict) else raw
                else:
                    value = self._coerce(res, fname, fspec, raw)
                if value != obj.get(fname):
                    raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "%s.%s cannot be changed after creation" % (res, fname))
        if not changes:
            return obj
        return self._hook("patch", res)(obj, changes, user)

    def delete(self, res, oid, user):
        spec = RESOURCES[res]
        if "DELETE" not in spec.methods:
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "%s does not support DELETE" % res)
        obj = self._must_get(res, oid)
        self._hook("delete", res)(obj, user)

    # ----- search and render ---------------------------------------------------------------
    def _rewrite_filter(self, res):
        def rewrite(field, values):
            if res == "mappings" and field == "volume":
                out = []
                for v in values:
                    # A view is mapped as /snapshots/N; its volsnaps' refs find that mapping too.
                    if isinstance(v, str) and v.startswith("/volsnaps/"):
                        vs = self.store.get("volsnaps", split_ref(v)[1])
                        v = vs["snapshot"] if vs else v
                    out.append(v)
                return out
            if res == "host_fc_ports" and field == "pwwn":
                return [normalize_pwwn(v, strict=False) if isinstance(v, str) else v for v in values]
            return values
        return rewrite

    def search(self, res, params, ctx):
        spec = RESOURCES[res]
        q = parse(params, spec, self._rewrite_filter(res))
        candidates = None
        for flt in ([] if spec.virtual else q.filters):
            if flt.field == "id" and flt.op in ("eq", "in", "m_eq"):
                ids = [int(v) for v in flt.values if isinstance(v, float) and v.is_integer()]
                candidates = [o for o in (self.store.get(res, i) for i in sorted(set(ids))) if o is not None]
                break
            if flt.field == spec.unique and flt.op == "eq" and flt.values[0] is not None:
                o = self.store.by_ukey(res, str(flt.values[0]))
                candidates = [o] if o is not None else []
                break
            if flt.field == spec.unique and flt.op == "in" and all(isinstance(v, str) for v in flt.values):
                # name__in=a,b,c: one index lookup per name instead of a scan of the whole collection
                found = (self.store.by_ukey(res, v) for v in set(flt.values))
                candidates = sorted((o for o in found if o is not None), key=lambda o: o["id"])
                break
            if flt.kind == REF and flt.op in ("eq", "in", "m_eq") and flt.field in spec.ref_fields:
                seen = {}
                for v in flt.values:
                    if v is not None:
                        for o in self.store.by_ref(res, flt.field, v):
                            seen[o["id"]] = o
                if any(v is None for v in flt.values):
                    for o in self.store.all(res):
                        if o.get(flt.field) is None:
                            seen[o["id"]] = o
                candidates = [seen[i] for i in sorted(seen)]
                break
        if spec.virtual:
            candidates = self._hook("rows", res)()
        elif candidates is None:
            candidates = self.store.all(res)
        needs_render = any(spec.fields[flt.field].computed for flt in q.filters) or \
            any(spec.fields[s].computed for s in q.sort)
        if q.filters or needs_render:
            rows = []
            for obj in candidates:
                view = self.render(res, obj, ctx) if needs_render else obj
                if all(match(flt, view.get(flt.field)) for flt in q.filters):
                    rows.append(view)
        else:
            rows = list(candidates)
        if q.sort == ["id"] and (not spec.virtual or all(isinstance(o.get("id"), int) for o in rows)):
            # the usual paging order: plain int keys (sort_key tuples cost ten times more per page of a large list);
            # stored objects always have an int id (the store's key)
            rows.sort(key=_by_id, reverse=q.desc)
        elif q.sort:
            rows.sort(key=lambda o: tuple(sort_key(o.get(s)) for s in q.sort), reverse=q.desc)
        elif q.desc:
            rows.reverse()
        total = len(rows)
        page = rows[q.offset:q.offset + q.limit]
        hits = [p if needs_render else self.render(res, p, ctx) for p in page]
        if q.fields:
            hits = [select_fields(h, q.fields) for h in hits]
        if spec.virtual:
            return {"hits": hits, "total": total}, q       # stats answers carry no limit/offset
        return {"hits": hits, "total": total, "limit": q.limit, "offset": q.offset}, q

    def get_one(self, res, oid, params, ctx):
        if RESOURCES[res].virtual:
            obj = next((row for row in self._hook("rows", res)() if row["id"] == oid), None)
            if obj is None:
                raise ApiError("MC_ERR_NOT_FOUND", "%s has no object with id %s" % (res, oid))
        else:
            obj = self._must_get(res, oid)
        out = self.render(res, obj, ctx)
        fields = [v for k, v in params if k == "__fields"]
        if fields:
            out = select_fields(out, [s for s in fields[-1].split(",") if s])
        return out

    def render(self, res, obj, ctx):
        # Runs once per object of every page (10,000 times for a page of volumes): field list and hook are looked up once.
        spec = RESOURCES[res]
        if obj.keys() <= spec.stored_set:
            # the usual case (an object holds only stored fields): defaults, then the object's values, in field order
            out = spec.render_template.copy()
            out.update(obj)
        else:
            get = obj.get
            out = {fname: None if computed else get(fname, default) for fname, default, computed in spec.render_plan}
        hooks = self.__dict__.setdefault("_render_hooks", {})
        if res not in hooks:
            hooks[res] = self._hook("render", res, required=False)
        hook = hooks[res]
        if hook is not None:
            hook(obj, out, ctx)
        for fname in spec.ref_names:
            value = out[fname]
            if value is not None:
                out[fname] = {"ref": value}
        return out

    # ----- system --------------------------------------------------------------------------
    def _render_system_state(self, obj, out, ctx):
        out["current_user_role"] = ctx.get("role", "admin")
        out["system_time"] = time.time()

    def _patch_system_state(self, obj, changes, user):
        if "system_name" in changes:
            self._check_name("system_name", changes["system_name"])
        new = self._update("system/state", obj, **changes)
        self._event("SYSTEM_UPDATED", "INFO", "SYSTEM", "System settings were changed by %s." % user, user)
        return new

    def capacity_numbers(self):
        total = int(self.store.meta.get("capacity_total_kib", DEFAULT_TOTAL_KIB))
        prov_vol = alloc_vol = prov_snap = prov_view = alloc_snap = 0
        for vol in self.store.all("volumes"):
            if vol["name"] == "CTRL":
                continue
            prov_vol += vol["size"]
            alloc_vol += dataplane.allocated_kib(self.volume_path(vol["id"]))
        for vs in self.store.all("volsnaps"):
            snap = self.store.get("snapshots", split_ref(vs["snapshot"])[1])
            if snap is not None and snap["is_exposable"]:
                prov_view += vs["size"]
            else:
                prov_snap += vs["size"]
            alloc_snap += dataplane.allocated_kib(self.volsnap_path(vs["id"]))
        allocated = alloc_vol + alloc_snap
        return {"total": total, "free": max(total - allocated, 0),
                "provisioned": prov_vol + prov_snap + prov_view, "provisioned_volumes": prov_vol,
                "provisioned_snapshots": prov_snap, "provisioned_views": prov_view,
                "allocated": allocated, "allocated_volumes": alloc_vol, "allocated_snapshots_and_views": alloc_snap,
                "physical": total, "logical": total, "reserved": 0, "curr_dt_chunk": 0,
                "is_reclamation_in_progress": False}

    def _render_system_capacity(self, obj, out, ctx):
        out.update(self.capacity_numbers())
        used = 100.0 * out["allocated"] / out["total"] if out["total"] else 0
        out["state"] = "ok" if used < 80 else "warning" if used < 90 else "error" if used < 96 else "critical"

    def _rows_stats_system(self):
        return [{"id": 1, "timestamp": time.time()}]

    def _rows_stats_volumes(self):
        now = time.time()
        return [{"id": v["id"], "timestamp": now, "volume": ref("volumes", v["id"]), "volume_name": v["name"], "peer_k2_name": None}
                for v in self.store.all("volumes")]

    # ----- policies ------------------------------------------------------------------------
    def _check_retention_values(self, values):
        for k in ("num_snapshots", "weeks", "days", "hours"):
            if k in values and values[k] < 0:
                raise invalid("retention_policies.%s must be 0 or more, got %d" % (k, values[k]))

    def _create_retention_policies(self, values, user):
        self._check_name("retention policy name", values["name"])
        self._check_unique("retention_policies", values["name"], "retention policy")
        self._check_retention_values(values)
        obj = self._put_new("retention_policies", **values)
        self._event("RETENTION_POLICY_CREATED", "INFO", "RETENTION_POLICY",
                    "Retention policy %s was created by %s." % (obj["name"], user), user)
        return obj

    def _patch_retention_policies(self, obj, changes, user):
        if obj["name"] in BUILTIN_RETENTION:
            raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "retention policy %s is built in and cannot be changed" % obj["name"])
        if "name" in changes:
            self._check_name("retention policy name", changes["name"])
            self._check_unique("retention_policies", changes["name"], "retention policy", obj["id"])
        self._check_retention_values(changes)
        new = self._update("retention_policies", obj, **changes)
        self._event("RETENTION_POLICY_UPDATED", "INFO", "RETENTION_POLICY",
                    "Retention policy %s was updated by %s." % (new["name"], user), user)
        return new

    def _delete_retention_policies(self, obj, user):
        if obj["name"] in BUILTIN_RETENTION:
            raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "retention policy %s is built in and cannot be deleted" % obj["name"])
        n = self.store.count_ref("snapshots", "retention_policy", ref("retention_policies", obj["id"]))
        if n:
            raise ApiError("MC_ERR_IN_USE", "retention policy %s is used by %d snapshot(s)" % (obj["name"], n))
        self.store.delete("retention_policies", obj["id"])
        self._event("RETENTION_POLICY_DELETED", "INFO", "RETENTION_POLICY",
                    "Retention policy %s was deleted by %s." % (obj["name"], user), user)

    def _render_retention_policies(self, obj, out, ctx):
        out["snapshots_usage_count"] = self.store.count_ref("snapshots", "retention_policy", ref("retention_policies", obj["id"]))

    def _check_thresholds(self, obj):
        keys = ("warning_threshold", "error_threshold", "critical_threshold", "full_threshold")
        vals = [obj[k] for k in keys]
        for k in keys + ("snapshot_overhead_threshold",):
            if not 0 <= obj[k] <= 100:
                raise invalid("vg_capacity_policies.%s must be between 0 and 100, got %d" % (k, obj[k]))
        if vals != sorted(vals):
            raise invalid("vg_capacity_policies thresholds must not decrease: warning <= error <= critical <= full")
        if obj["num_snapshots"] is not None and obj["num_snapshots"] < 0:
            raise invalid("vg_capacity_policies.num_snapshots must be 0 or more")

    def _create_vg_capacity_policies(self, values, user):
        self._check_name("capacity policy name", values["name"])
        self._check_unique("vg_capacity_policies", values["name"], "capacity policy")
        values.setdefault("num_snapshots", 3)
        self._check_thresholds(values)
        obj = self._put_new("vg_capacity_policies", **values)
        self._event("VG_CAPACITY_POLICY_CREATED", "INFO", "CAPACITY_POLICY",
                    "Capacity policy %s was created by %s." % (obj["name"], user), user)
        return obj

    def _patch_vg_capacity_policies(self, obj, changes, user):
        if obj["is_default"]:
            raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "capacity policy %s is the default and cannot be changed" % obj["name"])
        if "name" in changes:
            self._check_name("capacity policy name", changes["name"])
            self._check_unique("vg_capacity_policies", changes["name"], "capacity policy", obj["id"])
        merged = dict(obj)
        merged.update(changes)
        self._check_thresholds(merged)
        new = self._update("vg_capacity_policies", obj, **changes)
        self._event("VG_CAPACITY_POLICY_UPDATED", "INFO", "CAPACITY_POLICY",
                    "Capacity policy %s was updated by %s." % (new["name"], user), user)
        return new

    def _delete_vg_capacity_policies(self, obj, user):
        if obj["is_default"]:
            raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "capacity policy %s is the default and cannot be deleted" % obj["name"])
        n = self.store.count_ref("volume_groups", "capacity_policy", ref("vg_capacity_policies", obj["id"]))
        if n:
            raise ApiError("MC_ERR_IN_USE", "capacity policy %s is used by %d volume group(s)" % (obj["name"], n))
        self.store.delete("vg_capacity_policies", obj["id"])
        self._event("VG_CAPACITY_POLICY_DELETED", "INFO", "CAPACITY_POLICY",
                    "Capacity policy %s was deleted by %s." % (obj["name"], user), user)

    # ----- volume groups -----------------------------------------------------------------------
    def _vg_volumes(self, vg_id):
        return self.store.by_ref("volumes", "volume_group", ref("volume_groups", vg_id))

    def _vg_snapshots(self, vg_id):
        return self.store.by_ref("snapshots", "volume_group", ref("volume_groups", vg_id))

    def _check_quota(self, vg, extra_kib, label):
        quota = vg.get("quota")
        if not quota:
            return
        used = sum(v["size"] for v in self._vg_volumes(vg["id"]))
        if used + extra_kib > quota:
            raise ApiError("MC_ERR_QUOTA_EXCEEDED", "%s: volume group %s has a quota of %d KiB; %d KiB are provisioned and %d more were asked"
                           % (label, vg["name"], quota, used, extra_kib))

    def _default_capacity_policy(self):
        """The policy flagged is_default: every VG has a capacity policy, this one unless told otherwise."""
        for pol in self.store.all("vg_capacity_policies"):
            if pol["is_default"]:
                return ref("vg_capacity_policies", pol["id"])
        return None

    def _create_volume_groups(self, values, user):
        self._check_name("volume group name", values["name"])
        self._check_unique("volume_groups", values["name"], "volume group")
        quota = values.get("quota")
        if quota is not None and quota < 0:
            raise invalid("volume_groups.quota must be 0 (unlimited) or a positive size in KiB, got %d" % quota)
        values["quota"] = quota or None
        values.setdefault("is_dedup", True)
        if values.get("capacity_policy") is None:
            values["capacity_policy"] = self._default_capacity_policy()
        obj = self._put_new("volume_groups", creation_time=time.time(), **values)
        self._event("VG_CREATED", "INFO", "VG, CONFIGURE",
                    "Volume group %s was created by %s.Quota-%s, capacity policy-%s, dedup-%s"
                    % (obj["name"], user, obj["quota"], obj["capacity_policy"], obj["is_dedup"]), user)
        return obj

    def _patch_volume_groups(self, obj, changes, user):
        if "name" in changes:
            self._check_name("volume group name", changes["name"])
            self._check_unique("volume_groups", changes["name"], "volume group", obj["id"])
        if "quota" in changes:
            quota = changes["quota"]
            if quota is not None and quota < 0:
                raise invalid("volume_groups.quota must be 0 (unlimited) or a positive size in KiB, got %d" % quota)
            changes["quota"] = quota or None
            if changes["quota"]:
                self._check_quota(dict(obj, quota=changes["quota"]), 0, "PATCH quota")
        if "capacity_policy" in changes and changes["capacity_policy"] is None:
            changes["capacity_policy"] = self._default_capacity_policy()
        restore_from = changes.pop("last_restored_from", None)
        new = self._update("volume_groups", obj, **changes) if changes else obj
        if restore_from is not None:
            new = self._restore(new, restore_from, user)
        if changes:
            self._event("VG_UPDATED", "INFO", "VG, CONFIGURE", "Volume group %s was updated by %s." % (new["name"], user), user)
        # Renaming a VG renames its snapshots and volsnaps ("<vg>:<snap>").
        if "name" in changes:
            for snap in self._vg_snapshots(obj["id"]):
                self._rename_snapshot(snap, new["name"], snap["short_name"])
        return new

    def _restore(self, vg, snap_ref, user):
        snap = self.store.get("snapshots", split_ref(snap_ref)[1])
        if snap["volume_group"] != ref("volume_groups", vg["id"]):
            raise invalid("snapshot %s belongs to another volume group; a volume group can only be restored from its own snapshots"
                          % snap["name"])
        now = time.time()
        for vs in self.store.by_ref("volsnaps", "snapshot", snap_ref):
            if vs["source"] is None:
                continue
            vol = self.store.get("volumes", split_ref(vs["source"])[1])
            if vol is None or vol["volume_group"] != ref("volume_groups", vg["id"]):
                continue
            dataplane.copy(self.volsnap_path(vs["id"]), self.volume_path(vol["id"]), vol["size"] * 1024, in_place=True)
            self._update("volumes", vol, last_restored_from=snap_ref, last_restored_time=now)
        new = self._update("volume_groups", vg, last_restored_from=snap_ref, last_restored_time=now)
        self._event("VG_RESTORED", "INFO", "VG, SNAPSHOT",
                    "Volume group %s was restored from snapshot %s by %s." % (vg["name"], snap["name"], user), user)
        return new

    def _delete_volume_groups(self, obj, user):
        self.repl_check_vg_delete(obj)
        vols = self._vg_volumes(obj["id"])
        if vols:
            raise ApiError("MC_ERR_IN_USE", "volume group %s still holds %d volume(s) (%s); delete them first"
                           % (obj["name"], len(vols), ", ".join(v["name"] for v in vols[:5])))
        snaps = self._vg_snapshots(obj["id"])
        for snap in snaps:
            self._check_snapshot_unmapped(snap)
        # Snapshots and views of an empty VG go with it; views first, as they depend on snapshots.
        for snap in sorted(snaps, key=lambda s: not s["is_exposable"]):
            self._drop_snapshot(snap)
        self.store.delete("volume_groups", obj["id"])
        self._event("VG_DELETED", "INFO", "VG, CONFIGURE", "Volume group %s was deleted by %s." % (obj["name"], user), user)

    def _render_volume_groups(self, obj, out, ctx):
        vg_ref = ref("volume_groups", obj["id"])
        vols = self.store.by_ref("volumes", "volume_group", vg_ref)
        snaps = self.store.by_ref("snapshots", "volume_group", vg_ref)
        vol_alloc = sum(dataplane.allocated_kib(self.volume_path(v["id"])) for v in vols)
        snap_alloc = 0
        hosts = set()
        for v in vols:
            for m in self.store.by_ref("mappings", "volume", ref("volumes", v["id"])):
                hosts.add(m["host"])
        for s in snaps:
            for vs in self.store.by_ref("volsnaps", "snapshot", ref("snapshots", s["id"])):
                snap_alloc += dataplane.allocated_kib(self.volsnap_path(vs["id"]))
            for m in self.store.by_ref("mappings", "volume", ref("snapshots", s["id"])):
                hosts.add(m["host"])
        out.update({
            "capacity_state": "ok", "snapshots_overhead_state": "ok", "is_default": False,
            "iscsi_tgt_converted_name": converted_name(obj["name"]),
            "logical_capacity": vol_alloc + snap_alloc, "volumes_logical_capacity": vol_alloc,
            "snapshots_logical_capacity": snap_alloc,
            "volumes_provisioned_capacity": sum(v["size"] for v in vols),
            "mapped_hosts_count": len(hosts),
            "snapshots_count": sum(1 for s in snaps if not s["is_exposable"]),
            "views_count": sum(1 for s in snaps if s["is_exposable"]),
            "volumes_count": len(vols),
        })
        self.repl_render_vg(obj, out)

    # ----- volumes -------------------------------------------------------------------------------
    def _check_size(self, size):
        if size <= 0 or size > MAX_VOLUME_KIB:
            raise invalid("volume size must be a positive number of KiB up to %d, got %d" % (MAX_VOLUME_KIB, size))

    def _create_volumes(self, values, user):
        self._check_name("volume name", values["name"])
        self._check_unique("volumes", values["name"], "volume")
        self._check_size(values["size"])
        vg = self.store.get("volume_groups", split_ref(values["volume_group"])[1])
        self._check_quota(vg, values["size"], "POST volumes")
        suffix = self._next_scsi_suffix()
        obj = self._put_new("volumes", creation_time=time.time(), scsi_suffix=suffix,
                            scsi_sn="%s%04d" % (self.system_id, suffix), **values)
        path = self.volume_path(obj["id"])
        dataplane.create(path, obj["size"] * 1024)
        self._on_rollback(lambda: dataplane.remove(path))
        self._event("VOLUME_CREATED", "INFO", "VOLUME, CONFIGURE",
                    "Volume %s of size %d KiB was created in volume group %s by %s." % (obj["name"], obj["size"], vg["name"], user), user)
        return obj

    def _patch_volumes(self, obj, changes, user):
        if obj["name"] == "CTRL":
            raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "CTRL is a system volume and cannot be changed")
        if "name" in changes:
            self._check_name("volume name", changes["name"])
            self._check_unique("volumes", changes["name"], "volume", obj["id"])
        if "size" in changes:
            size = changes["size"]
            self._check_size(size)
            if size < obj["size"]:
                raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "volume %s cannot shrink from %d KiB to %d KiB; volumes only grow"
                               % (obj["name"], obj["size"], size))
        vg = self.store.get("volume_groups", split_ref(obj["volume_group"])[1])
        if "volume_group" in changes:
            self.repl_check_volume_free(obj, "moved to another volume group")
            target = self.store.get("volume_groups", split_ref(changes["volume_group"])[1])
            if target["is_dedup"] != vg["is_dedup"]:
                raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "volume %s cannot move from %s volume group %s to %s volume group %s"
                               % (obj["name"], "dedup" if vg["is_dedup"] else "non-dedup", vg["name"],
                                  "dedup" if target["is_dedup"] else "non-dedup", target["name"]))
            self._check_quota(target, changes.get("size", obj["size"]), "PATCH volume_group")
        elif "size" in changes:
            self._check_quota(vg, changes["size"] - obj["size"], "PATCH size")
        new = self._update("volumes", obj, **changes)
        if "size" in changes:
            path, nbytes = self.volume_path(obj["id"]), new["size"] * 1024
            self._after_commit(lambda: dataplane.grow(path, nbytes))
        self._event("VOLUME_UPDATED", "INFO", "VOLUME, CONFIGURE", "Volume %s was updated by %s: %s."
                    % (new["name"], user, ", ".join(sorted(changes))), user)
        return new

    def _delete_volumes(self, obj, user):
        if obj["name"] == "CTRL":
            raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "CTRL is a system volume and cannot be deleted")
        self.repl_check_volume_free(obj, "deleted")
        vref = ref("volumes", obj["id"])
        maps = self.store.by_ref("mappings", "volume", vref)
        if maps:
            raise ApiError("MC_ERR_IN_USE", "volume %s is mapped to %s; unmap it first"
                           % (obj["name"], ", ".join(self._host_label(m["host"]) for m in maps)))
        for vs in self.store.by_ref("volsnaps", "source", vref):
            self._update("volsnaps", vs, source=None)
        self.store.delete("volumes", obj["id"])
        path = self.volume_path(obj["id"])
        self._after_commit(lambda: dataplane.remove(path))
        self._event("VOLUME_DELETED", "INFO", "VOLUME, CONFIGURE", "Volume %s was deleted by %s." % (obj["name"], user), user)

    def _render_volumes(self, obj, out, ctx):
        vg = self.store.get("volume_groups", split_ref(obj["volume_group"])[1]) if obj["volume_group"] else None
        alloc = dataplane.allocated_kib(self.volume_path(obj["id"])) if obj["name"] != "CTRL" else 0
        out.update({"is_dedup": vg["is_dedup"] if vg else False, "iscsi_tgt_converted_name": converted_name(obj["name"]),
                    "is_new": False, "marked_for_deletion": False, "logical_capacity": alloc,
                    "snapshots_logical_capacity": 0, "no_dedup": alloc, "dedup_source": 0, "dedup_target": 0,
                    "avg_compressed_ratio": 1.0, "node_id": 1 + obj["id"] % 2,
                    "current_stats": ref("stats/volumes", obj["id"])})
        self.repl_render_volume(obj, out)

    def _host_label(self, host_ref):
        res, oid = split_ref(host_ref)
        o = self.store.get(res, oid)
        return "%s %s" % ("host" if res == "hosts" else "host group", o["name"] if o else host_ref)

    # ----- snapshots, views, volsnaps ------------------------------------------------------
    def _create_snapshots(self, values, user):
        if values.get("replication_session"):
            return self._create_replication_snapshot(values, user)
        for fname in ("short_name", "source", "retention_policy"):
            if values.get(fname) is None:
                raise invalid("POST snapshots: the field %r is mandatory (except for replication snapshots)" % fname)
        return self._create_plain_snapshot(values, user)

    def _create_plain_snapshot(self, values, user):
        short = values["short_name"]
        self._check_name("snapshot short_name", short)
        src_res, src_id = split_ref(values["source"])
        if src_res == "volume_groups":
            vg = self.store.get("volume_groups", src_id)
            sources = [(v["name"], ref("volumes", v["id"]), v["size"], self.volume_path(v["id"])) for v in self._vg_volumes(src_id)]
        else:
            base = self.store.get("snapshots", src_id)
            vg = self.store.get("volume_groups", split_ref(base["volume_group"])[1])
            sources = [(vs["short_name"], vs["source"], vs["size"], self.volsnap_path(vs["id"]))
                       for vs in self.store.by_ref("volsnaps", "snapshot", values["source"])]
        full = "%s:%s" % (vg["name"], short)
        self._check_unique("snapshots", full, "snapshot")
        now = time.time()
        values.setdefault("is_exposable", False)
        values.setdefault("is_auto_deleteable", True)
        snap = self._put_new("snapshots", name=full, volume_group=ref("volume_groups", vg["id"]),
                             creation_time=now, data_creation_time=now,
                             last_exposed_time=now if values["is_exposable"] else None, **values)
        snap_ref = ref("snapshots", snap["id"])
        for vol_name, vol_ref, size, src_path in sources:
            suffix = self._next_scsi_suffix()
            vs = self._put_new("volsnaps", name="%s:%s" % (full, vol_name), short_name=vol_name, snapshot=snap_ref,
                               source=vol_ref, size=size, scsi_suffix=suffix, scsi_sn="%s%04d" % (self.system_id, suffix),
                               creation_time=now)
            dst = self.volsnap_path(vs["id"])
            self._on_rollback(lambda p=dst: dataplane.remove(p))
            dataplane.copy(src_path, dst, size * 1024)
        self._update("volume_groups", vg, last_snapshot_creation_time=now)
        kind = "VIEW" if values["is_exposable"] else "SNAPSHOT"
        self._event(kind + "_CREATED", "INFO", "VG, SNAPSHOT", "%s %s of %s was created by %s."
                    % (kind.capitalize(), full, values["source"], user), user)
        return snap

    def _rename_snapshot(self, snap, vg_name, short):
        full = "%s:%s" % (vg_name, short)
        if full != snap["name"]:
            self._check_unique("snapshots", full, "snapshot", snap["id"])
        new = self._update("snapshots", snap, name=full, short_name=short)
        for vs in self.store.by_ref("volsnaps", "snapshot", ref("snapshots", snap["id"])):
            self._update("volsnaps", vs, name="%s:%s" % (full, vs["short_name"]))
        return new

    def _patch_snapshots(self, obj, changes, user):
        if "short_name" in changes:
            self._check_name("snapshot short_name", changes["short_name"])
            vg = self.store.get("volume_groups", split_ref(obj["volume_group"])[1])
            obj = self._rename_snapshot(obj, vg["name"], changes.pop("short_name"))
        new = self._update("snapshots", obj, **changes)
        self._event("SNAPSHOT_UPDATED", "INFO", "VG, SNAPSHOT", "Snapshot %s was updated by %s." % (new["name"], user), user)
        return new

    def _check_snapshot_unmapped(self, snap):
        maps = self.store.by_ref("mappings", "volume", ref("snapshots", snap["id"]))
        if maps:
            raise ApiError("MC_ERR_IN_USE", "view %s is mapped to %s; unmap it first"
                           % (snap["name"], ", ".join(self._host_label(m["host"]) for m in maps)))

    def _drop_snapshot(self, snap):
        sref = ref("snapshots", snap["id"])
        for vs in self.store.by_ref("volsnaps", "snapshot", sref):
            self.store.delete("volsnaps", vs["id"])
            path = self.volsnap_path(vs["id"])
            self._after_commit(lambda p=path: dataplane.remove(p))
        for vg in self.store.by_ref("volume_groups", "last_restored_from", sref):
            self._update("volume_groups", vg, last_restored_from=None)
        for vol in self.store.by_ref("volumes", "last_restored_from", sref):
            self._update("volumes", vol, last_restored_from=None)
        for view in self.store.by_ref("snapshots", "source", sref):
            self._update("snapshots", view, source=None)
        self.repl_forget_snapshot(sref)
        self.store.delete("snapshots", snap["id"])

    def _delete_snapshots(self, obj, user):
        self._check_snapshot_unmapped(obj)
        views = self.store.by_ref("snapshots", "source", ref("snapshots", obj["id"]))
        if views:
            raise ApiError("MC_ERR_IN_USE", "snapshot %s has view(s) %s; delete them first"
                           % (obj["name"], ", ".join(v["name"] for v in views[:5])))
        self._drop_snapshot(obj)
        kind = "VIEW" if obj["is_exposable"] else "SNAPSHOT"
        self._event(kind + "_DELETED", "INFO", "VG, SNAPSHOT", "%s %s was deleted by %s." % (kind.capitalize(), obj["name"], user), user)

    def _render_snapshots(self, obj, out, ctx):
        vss = self.store.by_ref("volsnaps", "snapshot", ref("snapshots", obj["id"]))
        out.update({"is_deleted": False, "is_exist_on_peer": bool(obj.get("_exist_on_peer") or obj.get("_from_peer")),
                    "is_external": False, "is_originating_from_peer": bool(obj.get("_from_peer")),
                    "volsnaps_provisioned_capacity": sum(v["size"] for v in vss), "wwn": None,
                    "iscsi_tgt_converted_name": obj["name"]})

    def _render_volsnaps(self, obj, out, ctx):
        snap = self.store.get("snapshots", split_ref(obj["snapshot"])[1])
        out.update({"is_exposable": bool(snap and snap["is_exposable"]), "is_deleted": False,
                    "iscsi_tgt_converted_name": obj["name"],
                    "logical_capacity": dataplane.allocated_kib(self.volsnap_path(obj["id"]))})

    # ----- hosts and host groups -----------------------------------------------------------
    def _check_host_type(self, htype):
        if htype not in HOST_TYPES:
            raise invalid("host type %r is not supported; use one of %s" % (htype, ", ".join(HOST_TYPES)))

    def _check_connectivity(self, value):
        if value is not None and value not in CONNECTIVITY_TYPES:
            raise invalid("connectivity_type %r is not supported; use one of %s" % (value, ", ".join(CONNECTIVITY_TYPES)))

    def _check_group_type(self, group_ref, htype, host_id=None):
        group = self.store.get("host_groups", split_ref(group_ref)[1])
        if group["allow_different_host_types"]:
            return
        for member in self.store.by_ref("hosts", "host_group", group_ref):
            if member["id"] != host_id and member["type"] != htype:
                raise invalid("host group %s does not allow different host types: it holds %s host %s, and this host is %s"
                              % (group["name"], member["type"], member["name"], htype))

    def _create_hosts(self, values, user):
        self._check_name("host name", values["name"])
        self._check_unique("hosts", values["name"], "host")
        self._check_host_type(values["type"])
        self._check_connectivity(values.get("connectivity_type"))
        if values.get("host_group"):
            self._check_group_type(values["host_group"], values["type"])
        obj = self._put_new("hosts", **values)
        self._event("HOST_CREATED", "INFO", "HOST, CONFIGURE", "Host %s of type %s was created by %s." % (obj["name"], obj["type"], user), user)
        return obj

    def _patch_hosts(self, obj, changes, user):
        if "name" in changes:
            self._check_name("host name", changes["name"])
            self._check_unique("hosts", changes["name"], "host", obj["id"])
        htype = changes.get("type", obj["type"])
        self._check_host_type(htype)
        group = changes["host_group"] if "host_group" in changes else obj["host_group"]
        if "host_group" in changes and group is not None:
            own = self.store.by_ref("mappings", "host", ref("hosts", obj["id"]))
            if own:
                raise ApiError("MC_ERR_IN_USE", "host %s has %d mapping(s) of its own; unmap them before it joins a host group"
                               % (obj["name"], len(own)))
        if group is not None and ("host_group" in changes or "type" in changes):
            self._check_group_type(group, htype, obj["id"])
        new = self._update("hosts", obj, **changes)
        self._event("HOST_UPDATED", "INFO", "HOST, CONFIGURE", "Host %s was updated by %s." % (new["name"], user), user)
        return new

    def _delete_hosts(self, obj, user):
        href = ref("hosts", obj["id"])
        maps = self.store.by_ref("mappings", "host", href)
        if maps:
            raise ApiError("MC_ERR_IN_USE", "host %s still has %d mapping(s); unmap them first" % (obj["name"], len(maps)))
        # Initiators go with their host (cinder relies on this).
        for iqn in self.store.by_ref("host_iqns", "host", href):
            self.store.delete("host_iqns", iqn["id"])
        for port in self.store.by_ref("host_fc_ports", "host", href):
            self.store.delete("host_fc_ports", port["id"])
        self.store.delete("hosts", obj["id"])
        self._event("HOST_DELETED", "INFO", "HOST, CONFIGURE", "Host %s was deleted by %s." % (obj["name"], user), user)

    def _mapping_counts(self, target_ref):
        vols = views = 0
        for m in self.store.by_ref("mappings", "host", target_ref):
            if m["volume"].startswith("/volumes/"):
                vols += 1
            else:
                views += 1
        return vols, views

    def _render_hosts(self, obj, out, ctx):
        target = obj["host_group"] or ref("hosts", obj["id"])
        vols, views = self._mapping_counts(target)
        out.update({"is_part_of_group": obj["host_group"] is not None, "volumes_count": vols, "views_count": views})

    def _create_host_groups(self, values, user):
        self._check_name("host group name", values["name"])
        self._check_unique("host_groups", values["name"], "host group")
        self._check_connectivity(values.get("connectivity_type"))
        values.setdefault("allow_different_host_types", False)
        obj = self._put_new("host_groups", **values)
        self._event("HOST_GROUP_CREATED", "INFO", "HOST, CONFIGURE", "Host group %s was created by %s." % (obj["name"], user), user)
        return obj

    def _patch_host_groups(self, obj, changes, user):
        if "name" in changes:
            self._check_name("host group name", changes["name"])
            self._check_unique("host_groups", changes["name"], "host group", obj["id"])
        if changes.get("allow_different_host_types") is False:
            types = set(h["type"] for h in self.store.by_ref("hosts", "host_group", ref("host_groups", obj["id"])))
            if len(types) > 1:
                raise invalid("host group %s holds hosts of types %s; allow_different_host_types must stay true"
                              % (obj["name"], ", ".join(sorted(types))))
        new = self._update("host_groups", obj, **changes)
        self._event("HOST_GROUP_UPDATED", "INFO", "HOST, CONFIGURE", "Host group %s was updated by %s." % (new["name"], user), user)
        return new

    def _delete_host_groups(self, obj, user):
        gref = ref("host_groups", obj["id"])
        members = self.store.by_ref("hosts", "host_group", gref)
        if members:
            raise ApiError("MC_ERR_IN_USE", "host group %s still has %d host(s) (%s); move them out first"
                           % (obj["name"], len(members), ", ".join(h["name"] for h in members[:5])))
        maps = self.store.by_ref("mappings", "host", gref)
        if maps:
            raise ApiError("MC_ERR_IN_USE", "host group %s still has %d mapping(s); unmap them first" % (obj["name"], len(maps)))
        self.store.delete("host_groups", obj["id"])
        self._event("HOST_GROUP_DELETED", "INFO", "HOST, CONFIGURE", "Host group %s was deleted by %s." % (obj["name"], user), user)

    def _render_host_groups(self, obj, out, ctx):
        gref = ref("host_groups", obj["id"])
        vols, views = self._mapping_counts(gref)
        out.update({"hosts_count": self.store.count_ref("hosts", "host_group", gref), "volumes_count": vols, "views_count": views})

    # ----- initiators -------------------------------------------------------------------------
    def _check_iqn(self, iqn):
        if not IQN_RE.match(iqn):
            raise invalid("%r is not an iSCSI name: expected iqn.YYYY-MM.reverse.domain[:id], eui.<16 hex> or naa.<hex>" % iqn)

    def _create_host_iqns(self, values, user):
        self._check_iqn(values["iqn"])
        self._check_unique("host_iqns", values["iqn"], "IQN")
        obj = self._put_new("host_iqns", **values)
        self._event("HOST_IQN_CREATED", "INFO", "HOST, CONFIGURE", "IQN %s was added to %s by %s." % (obj["iqn"], obj["host"], user), user)
        return obj

    def _patch_host_iqns(self, obj, changes, user):
        if "iqn" in changes:
            self._check_iqn(changes["iqn"])
            self._check_unique("host_iqns", changes["iqn"], "IQN", obj["id"])
        new = self._update("host_iqns", obj, **changes)
        self._event("HOST_IQN_UPDATED", "INFO", "HOST, CONFIGURE", "IQN %s was updated by %s." % (new["iqn"], user), user)
        return new

    def _delete_host_iqns(self, obj, user):
        self.store.delete("host_iqns", obj["id"])
        self._event("HOST_IQN_DELETED", "INFO", "HOST, CONFIGURE", "IQN %s was deleted by %s." % (obj["iqn"], user), user)

    def _create_host_fc_ports(self, values, user):
        values["pwwn"] = normalize_pwwn(values["pwwn"])
        self._check_unique("host_fc_ports", values["pwwn"], "PWWN")
        obj = self._put_new("host_fc_ports", **values)
        self._event("HOST_FC_PORT_CREATED", "INFO", "HOST, CONFIGURE", "PWWN %s was added to %s by %s." % (obj["pwwn"], obj["host"], user), user)
        return obj

    def _patch_host_fc_ports(self, obj, changes, user):
        if "pwwn" in changes:
            changes["pwwn"] = normalize_pwwn(changes["pwwn"])
            if changes["pwwn"] == obj["pwwn"]:
                del changes["pwwn"]
            else:
                self._check_unique("host_fc_ports", changes["pwwn"], "PWWN", obj["id"])
        new = self._update("host_fc_ports", obj, **changes)
        self._event("HOST_FC_PORT_UPDATED", "INFO", "HOST, CONFIGURE", "PWWN %s was updated by %s." % (new["pwwn"], user), user)
        return new

    def _delete_host_fc_ports(self, obj, user):
        self.store.delete("host_fc_ports", obj["id"])
        self._event("HOST_FC_PORT_DELETED", "INFO", "HOST, CONFIGURE", "PWWN %s was deleted by %s." % (obj["pwwn"], user), user)

    # ----- mappings -------------------------------------------------------------------------------
    def _used_luns(self, target_ref, except_id=None):
        return set(m["lun"] for m in self.store.by_ref("mappings", "host", target_ref) if m["id"] != except_id)

    def _check_map_target(self, host_ref):
        res, oid = split_ref(host_ref)
        if res == "hosts":
            host = self.store.get("hosts", oid)
            if host["host_group"] is not None:
                group = self.store.get("host_groups", split_ref(host["host_group"])[1])
                raise invalid("host %s is a member of host group %s and cannot be mapped on its own; map the host group"
                              % (host["name"], group["name"]))

    def _pick_lun(self, target_ref, lun, except_id=None):
        used = self._used_luns(target_ref, except_id)
        if lun is not None:
            if not 1 <= lun <= MAX_LUN:
                raise invalid("lun must be between 1 and %d, got %d" % (MAX_LUN, lun))
            if lun in used:
                raise ApiError("MC_ERR_LUN_IN_USE", "LUN %d is already used on %s" % (lun, self._host_label(target_ref)))
            return lun
        for candidate in range(1, MAX_LUN + 1):
            if candidate not in used:
                return candidate
        raise ApiError("MC_ERR_LUN_IN_USE", "no free LUN left on %s (1 to %d are used)" % (self._host_label(target_ref), MAX_LUN))

    def _create_mappings(self, values, user):
        vol_res, vol_id = split_ref(values["volume"])
        if vol_res == "volumes":
            vol = self.store.get("volumes", vol_id)
            if vol["name"] == "CTRL":
                raise ApiError("MC_ERR_FORBIDDEN_CHANGE", "CTRL is a system volume and cannot be mapped")
            self.repl_check_mappable(vol)
        else:
            snap = self.store.get("snapshots", vol_id)
            if not snap["is_exposable"]:
                raise invalid("snapshot %s is not a view (is_exposable is false); only views can be mapped" % snap["name"])
        self._check_map_target(values["host"])
        for m in self.store.by_ref("mappings", "volume", values["volume"]):
            if m["host"] == values["host"]:
                raise ApiError("MC_ERR_ALREADY_EXISTS", "%s is already mapped to %s (%s, LUN %d)"
                               % (values["volume"], self._host_label(values["host"]), ref("mappings", m["id"]), m["lun"]))
        values["lun"] = self._pick_lun(values["host"], values.get("lun"))
        values.setdefault("unique_target", False)
        obj = self._put_new("mappings", **values)
        self._event("MAPPING_CREATED", "INFO", "HOST, MAPPING", "%s was mapped to %s with LUN %d by %s."
                    % (obj["volume"], self._host_label(obj["host"]), obj["lun"], user), user)
        return obj

    def _patch_mappings(self, obj, changes, user):
        target = changes.get("host", obj["host"])
        if "host" in changes:
            self._check_map_target(target)
            for m in self.store.by_ref("mappings", "volume", obj["volume"]):
                if m["host"] == target and m["id"] != obj["id"]:
                    raise ApiError("MC_ERR_ALREADY_EXISTS", "%s is already mapped to %s" % (obj["volume"], self._host_label(target)))
        if "lun" in changes or "host" in changes:
            wanted = changes.get("lun", obj["lun"])
            used = self._used_luns(target, obj["id"])
            if "lun" not in changes and wanted in used:
                wanted = None   # moving to another host: keep the LUN if free there, else take the lowest free
            changes["lun"] = self._pick_lun(target, wanted, obj["id"])
        new = self._update("mappings", obj, **changes)
        self._event("MAPPING_UPDATED", "INFO", "HOST, MAPPING", "Mapping %d was updated by %s: LUN %d on %s."
                    % (new["id"], user, new["lun"], self._host_label(new["host"])), user)
        return new

    def _delete_mappings(self, obj, user):
        self.store.delete("mappings", obj["id"])
        self._event("MAPPING_DELETED", "INFO", "HOST, MAPPING", "%s was unmapped from %s by %s."
                    % (obj["volume"], self._host_label(obj["host"]), user), user)

    # ----- lab hosts -------------------------------------------------------------------------------
    def backing(self, host_name, volume_name=None, view_name=None):
        """Backing files of a volume or view mapped to host_name (directly or via its host group)."""
        host = self.store.by_ukey("hosts", host_name)
        if host is None:
            raise ApiError("MC_ERR_NOT_FOUND", "no host named %r" % host_name)
        targets = [ref("hosts", host["id"])] + ([host["host_group"]] if host["host_group"] else [])
        if volume_name is not None:
            vol = self.store.by_ukey("volumes", volume_name)
            if vol is None:
                raise ApiError("MC_ERR_NOT_FOUND", "no volume named %r" % volume_name)
            obj_ref = ref("volumes", vol["id"])
            devices = [{"name": vol["name"], "size": vol["size"], "scsi_sn": vol["scsi_sn"], "path": self.volume_path(vol["id"])}]
        else:
            snap = self.store.by_ukey("snapshots", view_name)
            if snap is None:
                raise ApiError("MC_ERR_NOT_FOUND", "no view named %r (use the full name <vg>:<view>)" % view_name)
            obj_ref = ref("snapshots", snap["id"])
            devices = [{"name": vs["name"], "size": vs["size"], "scsi_sn": vs["scsi_sn"], "path": self.volsnap_path(vs["id"])}
                       for vs in self.store.by_ref("volsnaps", "snapshot", obj_ref)]
        for m in self.store.by_ref("mappings", "volume", obj_ref):
            if m["host"] in targets:
                return {"host": host_name, "object": obj_ref, "lun": m["lun"], "mapping": ref("mappings", m["id"]),
                        "devices": devices, "path": devices[0]["path"] if devices else None}
        raise ApiError("MC_ERR_NOT_FOUND", "%s is not mapped to host %s" % (volume_name or view_name, host_name))

    # ----- X-K2-Sequence ------------------------------------------------------------------------------
    def check_sequence(self, header):
        pairs = {}
        for part in header.split(","):
            key, dummy, num = part.strip().partition("=")
            try:
                pairs[key.strip()] = int(num)
            except ValueError:
                raise invalid("X-K2-Sequence must look like id1=n1,id2=n2, got %r" % header)
        for key, num in pairs.items():
            floor = self.sequence_floor.get(key)
            if floor is not None and num <= floor:
                raise ApiError("MC_ERR_SEQUENCE", "X-K2-Sequence %s=%d is not greater than the last accepted %d" % (key, num, floor))
        self.sequence_floor.update(pairs)


def normalize_pwwn(value, strict=True):
    hexdigits = re.sub(r"[:\-\s]", "", value).lower()
    if not re.match(r"^[0-9a-f]{16}$", hexdigits):
        if strict:
            raise invalid("%r is not a port WWN: expected 16 hex digits, with or without colons" % value)
        return value
    return ":".join(hexdigits[i:i + 2] for i in range(0, 16, 2))


def select_fields(obj, fields):
    return dict((k, obj[k]) for k in fields if k in obj)
