"""Resource and field definitions of the simulated K2 REST API v2.

Each resource lists its fields with a kind, a default and how clients may
write them.  Stored fields live in the database; computed fields are filled
in when an object is rendered.  Adding a resource (replication, for example)
means adding an entry here plus its behaviour in array.py.
"""

STR, INT, BOOL, FLOAT, REF = "str", "int", "bool", "float", "ref"


class Field(object):
    """One attribute of a resource.

    post: "M" mandatory, "O" optional, None not accepted at creation.
    patch: True if a PATCH may change it.
    immutable: a PATCH that tries to change it is refused (instead of ignored).
    computed: not stored; filled in at render time.
    targets: for refs, the resources the ref may point to.
    """

    def __init__(self, kind, default=None, post=None, patch=False, immutable=False, computed=False, targets=()):
        self.kind = kind
        self.default = default
        self.post = post
        self.patch = patch
        self.immutable = immutable
        self.computed = computed
        self.targets = tuple(targets)


def f(kind, default=None, **kw):
    return Field(kind, default, **kw)


def c(kind, default=None, **kw):
    """A computed (render-time) field."""
    return Field(kind, default, computed=True, **kw)


class Resource(object):
    def __init__(self, name, fields, methods=("GET",), unique=None, singleton=False, virtual=False):
        self.name = name
        self.url = "/" + name
        self.fields = {"id": Field(INT)}
        self.fields.update(fields)
        self.methods = set(methods)
        self.unique = unique          # field whose value is unique within the resource
        self.singleton = singleton    # system/state and friends: one object, id 1
        self.virtual = virtual        # rows computed on each request (stats), never stored
        # Field lists, worked out once (a resource's fields are fixed here): render() reads them for every object.
        items = list(self.fields.items())
        self.ref_names = tuple(k for k, v in items if v.kind == REF)     # every reference field, rendered as {"ref": ...}
        self.ref_fields = tuple(k for k, v in items if v.kind == REF and not v.computed)
        self.stored_fields = tuple(k for k, v in items if not v.computed)
        self.stored_set = frozenset(self.stored_fields)
        self.render_plan = tuple((k, v.default, v.computed) for k, v in items)
        # {field: default} for stored fields and {field: None} for computed ones, in order (render() copies it)
        self.render_template = dict((k, None if v.computed else v.default) for k, v in items)


CRUD = ("GET", "POST", "PATCH", "DELETE")
HOST_TYPES = ("Linux", "Windows", "ESX", "AIX", "Solaris")
CONNECTIVITY_TYPES = ("FC", "iSCSI", "NVME")

RESOURCES = {}


def _add(res):
    RESOURCES[res.name] = res


_add(Resource("system/state", {
    "system_name": f(STR, patch=True),
    "system_id": f(STR),
    "system_version": f(STR),
    "rest_api_version": f(STR),
    "iscsi_qualified_target_name": f(STR),
    "state": f(STR, "ONLINE"),
    "next_state": f(STR, "None"),
    "system_connectivity_type": f(STR, "iSCSI"),
    "current_user_role": c(STR),
    "is_system_functionality_degraded": f(BOOL, False),
    "last_online_time": f(FLOAT),
    "system_time": c(FLOAT),
    "system_tz": f(STR, "UTC"),
    "system_tz_short": f(STR, "UTC"),
    "replication_default_target_exposure": f(STR, "unmapped", patch=True),
    "replication_protocol_version": f(INT, 2),
    "replication_min_protocol_version": f(INT, 1),
    "sra_protocol_version": f(STR, "1.2"),
    "serial": f(STR),
}, methods=("GET", "PATCH"), singleton=True))

_add(Resource("system/capacity", {
    "total": c(INT), "free": c(INT), "provisioned": c(INT),
    "provisioned_volumes": c(INT), "provisioned_snapshots": c(INT), "provisioned_views": c(INT),
    "allocated": c(INT), "allocated_volumes": c(INT), "allocated_snapshots_and_views": c(INT),
    "physical": c(INT), "logical": c(INT), "reserved": c(INT), "curr_dt_chunk": c(INT),
    "is_reclamation_in_progress": c(BOOL), "state": c(STR),
}, singleton=True))

_add(Resource("system/net_ports", {
    "name": f(STR), "port_type": f(STR), "mac_addr": f(STR), "mtu": f(INT, 1500),
    "link_state": f(STR, "up"),
}))
_add(Resource("system/wan_ports", {
    "name": f(STR), "ip_address": f(STR), "status": f(STR, "ok"),
}))
_add(Resource("system/net_ips", {
    "ip_address": f(STR), "network_mask": f(STR), "service": f(STR),
    "net_port": f(REF, targets=("system/net_ports",)),
    "wan_port": f(REF, targets=("system/wan_ports",)),
    "net_portchannel": f(REF, targets=()), "net_vlan": f(REF, targets=()), "nvme_port": f(REF, targets=()),
}))
_add(Resource("system/fc_ports", {
    "name": f(STR), "pwwn": f(STR), "status": f(STR, "ok"),
}))

_add(Resource("vg_capacity_policies", {
    "name": f(STR, post="M", patch=True),
    "warning_threshold": f(INT, post="M", patch=True),
    "error_threshold": f(INT, post="M", patch=True),
    "critical_threshold": f(INT, post="M", patch=True),
    "full_threshold": f(INT, post="M", patch=True),
    "snapshot_overhead_threshold": f(INT, post="M", patch=True),
    "num_snapshots": f(INT, 3, post="O", patch=True),
    "is_default": f(BOOL, False),
}, methods=CRUD, unique="name"))

_add(Resource("retention_policies", {
    "name": f(STR, post="M", patch=True),
    "num_snapshots": f(INT, post="M", patch=True),
    "weeks": f(INT, post="M", patch=True),
    "days": f(INT, post="M", patch=True),
    "hours": f(INT, post="M", patch=True),
    "snapshots_usage_count": c(INT),
}, methods=CRUD, unique="name"))

_add(Resource("volume_groups", {
    "name": f(STR, post="M", patch=True),
    "quota": f(INT, post="O", patch=True),
    "is_dedup": f(BOOL, True, post="O", immutable=True),
    "capacity_policy": f(REF, post="O", patch=True, targets=("vg_capacity_policies",)),
    "description": f(STR, post="O", patch=True),
    "last_restored_from": f(REF, patch=True, targets=("snapshots",)),
    "last_restored_time": f(FLOAT),
    "creation_time": f(FLOAT),
    "last_snapshot_creation_time": f(FLOAT),
    "capacity_state": c(STR), "snapshots_overhead_state": c(STR),
    "is_default": c(BOOL), "iscsi_tgt_converted_name": c(STR),
    "logical_capacity": c(INT), "volumes_logical_capacity": c(INT), "snapshots_logical_capacity": c(INT),
    "volumes_provisioned_capacity": c(INT),
    "mapped_hosts_count": c(INT), "snapshots_count": c(INT), "views_count": c(INT), "volumes_count": c(INT),
    "replication_session": c(REF, targets=("replication/sessions",)),
    "replication_peer_volume_group": c(REF, targets=("replication/peer_volume_groups",)),
    "replication_rpo_history": c(REF, targets=("replication/rpo_history",)),
}, methods=CRUD, unique="name"))

_add(Resource("volumes", {
    "name": f(STR, post="M", patch=True),
    "size": f(INT, post="M", patch=True),
    "volume_group": f(REF, post="M", patch=True, targets=("volume_groups",)),
    "description": f(STR, post="O", patch=True),
    "vmware_support": f(BOOL, False, post="O", immutable=True),
    "read_only": f(BOOL, False, post="O", patch=True),
    "scsi_sn": f(STR), "scsi_suffix": f(INT),
    "creation_time": f(FLOAT),
    "last_restored_from": f(REF, targets=("snapshots",)),
    "last_restored_time": f(FLOAT),
    "is_dedup": c(BOOL), "iscsi_tgt_converted_name": c(STR),
    "is_new": c(BOOL), "marked_for_deletion": c(BOOL),
    "logical_capacity": c(INT), "snapshots_logical_capacity": c(INT),
    "no_dedup": c(INT), "dedup_source": c(INT), "dedup_target": c(INT),
    "avg_compressed_ratio": c(FLOAT), "node_id": c(INT),
    "current_stats": c(REF), "current_replication_stats": c(REF), "replication_peer_volume": c(REF),
}, methods=CRUD, unique="name"))

# short_name, source and retention_policy are mandatory except for replication snapshots (POST with
# replication_session), where they default from the session: array.py checks that.
_add(Resource("snapshots", {
    "short_name": f(STR, post="O", patch=True),
    "name": f(STR),
    "source": f(REF, post="O", immutable=True, targets=("volume_groups", "snapshots")),
    "retention_policy": f(REF, post="O", patch=True, targets=("retention_policies",)),
    "is_auto_deleteable": f(BOOL, True, post="O", patch=True),
    "is_exposable": f(BOOL, False, post="O", immutable=True),
    "is_application_consistent": f(BOOL, False, post="O"),
    "description": f(STR, post="O", patch=True),
    "volume_group": f(REF, targets=("volume_groups",)),
    "replication_session": f(REF, post="O", immutable=True, targets=("replication/sessions",)),
    "generation_number": f(INT),
    "creation_time": f(FLOAT), "data_creation_time": f(FLOAT), "last_exposed_time": f(FLOAT),
    "is_deleted": c(BOOL), "is_exist_on_peer": c(BOOL), "is_external": c(BOOL),
    "is_originating_from_peer": c(BOOL), "triggered_by": f(STR, "api"),
    "volsnaps_provisioned_capacity": c(INT), "wwn": c(STR), "iscsi_tgt_converted_name": c(STR),
}, methods=CRUD, unique="name"))

_add(Resource("volsnaps", {
    "name": f(STR), "short_name": f(STR),
    "snapshot": f(REF, targets=("snapshots",)),
    "source": f(REF, targets=("volumes",)),
    "size": f(INT),
    "scsi_sn": f(STR), "scsi_suffix": f(INT),
    "creation_time": f(FLOAT),
    "is_exposable": c(BOOL), "is_deleted": c(BOOL), "iscsi_tgt_converted_name": c(STR),
    "logical_capacity": c(INT),
}, unique="name"))

_add(Resource("host_groups", {
    "name": f(STR, post="M", patch=True),
    "description": f(STR, post="O", patch=True),
    "allow_different_host_types": f(BOOL, False, post="O", patch=True),
    "connectivity_type": f(STR, post="O"),
    "hosts_count": c(INT), "volumes_count": c(INT), "views_count": c(INT),
}, methods=CRUD, unique="name"))

_add(Resource("hosts", {
    "name": f(STR, post="M", patch=True),
    "type": f(STR, post="M", patch=True),
    "host_group": f(REF, post="O", patch=True, targets=("host_groups",)),
    "connectivity_type": f(STR, post="O"),
    "description": f(STR, post="O", patch=True),
    "is_part_of_group": c(BOOL), "volumes_count": c(INT), "views_count": c(INT),
}, methods=CRUD, unique="name"))

_add(Resource("host_iqns", {
    "iqn": f(STR, post="M", patch=True),
    "host": f(REF, post="O", patch=True, targets=("hosts",)),
}, methods=CRUD, unique="iqn"))

_add(Resource("host_fc_ports", {
    "pwwn": f(STR, post="M", patch=True),
    "host": f(REF, post="O", patch=True, targets=("hosts",)),
}, methods=CRUD, unique="pwwn"))

_add(Resource("mappings", {
    "volume": f(REF, post="M", immutable=True, targets=("volumes", "snapshots")),
    "host": f(REF, post="M", patch=True, targets=("hosts", "host_groups")),
    "lun": f(INT, post="O", patch=True),
    "unique_target": f(BOOL, False, post="O"),
}, methods=CRUD))

_add(Resource("events", {
    "event_id": f(INT), "name": f(STR), "level": f(STR), "labels": f(STR),
    "message": f(STR), "timestamp": f(FLOAT), "user": f(STR),
}))

# Replication (see replication.py and the README, "Replication").
_add(Resource("replication/peer_k2arrays", {
    "name": f(STR, post="M", patch=True),
    "mgmt_host": f(STR, post="M", patch=True),
    "username": f(STR, post="M", patch=True),
    "password": f(STR, post="M", patch=True),
    "local_username": f(STR, post="O"),
    "local_password": f(STR, post="O"),
    "bandwidth_limit": f(INT, 0, post="O", patch=True),
    "logical_bandwidth_limit": f(INT, 0, post="O", patch=True),
    "system_id": f(STR),
    "mgmt_connectivity_state": c(STR), "capacity_state": c(STR),
    "capacity_total": c(INT), "capacity_free": c(INT), "capacity_allocated": c(INT),
    "capacity_provisioned": c(INT), "capacity_physical": c(INT), "capacity_reserved": c(INT),
}, methods=CRUD, unique="name"))

_add(Resource("replication/sessions", {
    "name": f(STR, post="M", patch=True),
    "replication_peer_k2array": f(REF, post="M", immutable=True, targets=("replication/peer_k2arrays",)),
    "local_volume_group": f(REF, post="M", immutable=True, targets=("volume_groups",)),
    "rpo": f(INT, post="M", patch=True),
    "retention_policy": f(REF, post="O", patch=True, targets=("retention_policies",)),
    "external_retention_policy": f(REF, post="O", patch=True, targets=("retention_policies",)),
    "replication_peer_volume_group_name": f(STR, post="O"),
    "remote_replication_session_name": f(STR, post="O"),
    "auto_configure_peer_volumes": f(BOOL, False, post="O"),
    "target_exposure": f(STR, post="O", patch=True),
    "state": f(STR, "idle", patch=True),
    "restored_snapshot": f(REF, patch=True, targets=("snapshots",)),
    "snapshot_wwn": f(STR, patch=True),
    "offline_initial_sync": f(BOOL, False, patch=True),
    "current_role": f(STR, "source"),
    "remote_replication_session_id": f(INT),
    "replication_peer_volume_group": f(REF, targets=("replication/peer_volume_groups",)),
    "latest_replicated_snapshot": f(REF, targets=("snapshots",)),
    "generation_number": f(INT, 0),
    "creation_time": f(FLOAT),
    "primary": c(BOOL), "replication_rpo_history": c(REF), "current_snapshot": c(REF), "next_snapshot": c(REF),
    "current_snapshot_id": c(INT), "current_snapshot_progress": c(INT), "estimated_remaining_time": c(INT),
    "common_snapshots_count": c(INT), "stopped": c(BOOL), "suspend_reason": c(STR), "suspend_reason_code": c(STR),
}, methods=CRUD, unique="name"))

_add(Resource("replication/peer_volume_groups", {
    "name": f(STR), "fullname": f(STR),
    "local_volume_group": f(REF, targets=("volume_groups",)),
    "remote_volume_group_id": f(INT),
    "replication_peer_k2array": f(REF, targets=("replication/peer_k2arrays",)),
    "replication_session": f(REF, targets=("replication/sessions",)),
    "replication_session_id": f(INT),
    "capacity_state": c(STR), "logical_capacity": c(INT), "volumes_logical_capacity": c(INT),
    "snapshots_logical_capacity": c(INT),
}))

_add(Resource("replication/peer_volumes", {
    "name": f(STR, post="M", patch=True),
    "local_volume": f(REF, post="M", immutable=True, targets=("volumes",)),
    "replication_session": f(REF, post="M", immutable=True, targets=("replication/sessions",)),
    "remote_volume_id": f(INT),
    "replication_peer_volume_group": f(REF, targets=("replication/peer_volume_groups",)),
}, methods=CRUD))

_add(Resource("replication/rpo_history", {
    "session": f(REF, targets=("replication/sessions",)),
    "generation_number": f(INT), "role": f(STR), "round_start": f(FLOAT), "round_end": f(FLOAT),
    "target_rpo": f(INT), "bytes_transmitted_logical": f(INT, 0), "bytes_transmitted_physical": f(INT, 0),
    "snapshot": f(REF, targets=("snapshots",)),
}))

# Performance statistics. k2sim sees no host I/O (lab hosts write the backing files directly),
# so the figures are zeros; the resources exist for clients that read them (krest's tests, scripts).
STATS_FIELDS = {
    "iops_avg": f(INT, 0), "iops_max": f(INT, 0), "throughput_avg": f(INT, 0), "throughput_max": f(INT, 0),
    "latency_inner": f(FLOAT, 0.0), "latency_outer": f(FLOAT, 0.0), "resolution": f(INT, 5), "timestamp": f(FLOAT),
}
_add(Resource("stats/system", dict(STATS_FIELDS), virtual=True))
_add(Resource("stats/volumes", dict(STATS_FIELDS, volume=f(REF, targets=("volumes",)), volume_name=f(STR),
                                    peer_k2_name=f(STR)), virtual=True))

# Writable resources whose objects are the user's (not seeded system objects).
USER_RESOURCES = ("volume_groups", "volumes", "snapshots", "hosts", "host_groups", "host_iqns",
                  "host_fc_ports", "mappings", "retention_policies", "vg_capacity_policies")
