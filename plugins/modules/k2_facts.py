#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: k2_facts
short_description: Gather facts about a Kaminario K2 array
version_added: 1.0.0
description:
  - Reads a Kaminario K2 (Silk SDP) array through its REST API and returns what it holds, grouped in subsets
    (system state, capacity, volumes, volume groups, snapshots and views, hosts, host groups, mappings,
    replication, network).
  - Every list holds B(all) the matching objects. The module reads them in pages sorted by id (O(page_size)
    objects a request) and never stops at the array's default page of 100 objects.
  - The module never sends one request per object. References between objects (a volume's group, a mapping's host
    and volume, a snapshot's retention policy) are resolved to names from the lists it reads anyway, or from one
    paged name list per referenced resource. Gathering O(gather_subset=all) on an array with N objects costs about
    N / O(page_size) requests plus a constant (about 17).
  - The results are returned as C(ansible_facts.k2) and also as the plain return value RV(k2).
  - Only reads; a user with a read-only role is enough.
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
extends_documentation_fragment:
  - kaminario.k2.k2
  - kaminario.k2.k2.FACTS_ATTRIBUTES
options:
  gather_subset:
    description:
      - Which subsets to gather.
      - V(system) is the array's C(system/state) (name, id, version, REST API version, iSCSI target name, state).
      - V(capacity) holds the C(system/capacity) figures in KiB plus the figures that the OpenStack Cinder K2 driver
        reports from C(get_volume_stats) (total, free and provisioned GiB, number of volumes without the system
        volume C(CTRL), thin provisioning, over-subscription ratio).
      - V(volumes), V(volume_groups), V(snapshots) (snapshots and views), V(hosts) (with their IQNs and WWPNs),
        V(host_groups) and V(mappings) (with host and volume names) are lists of objects.
      - V(replication) lists peer arrays, replication sessions, peer volume groups and peer volumes. An array (or
        API version) without a replication resource gives an empty list for it, named in RV(k2.replication.unavailable).
      - V(network) lists the array's IP addresses (C(system/net_ips)) and Fibre Channel ports (C(system/fc_ports)),
        with the iSCSI portals and target WWNs the Cinder driver would hand to hosts.
      - V(all) gathers every subset.
      - Prefix a subset with C(!) to leave it out, for example V(all) and V(!snapshots). A list that holds only
        exclusions starts from the default V(system) and V(capacity).
    type: list
    elements: str
    default: [system, capacity]
  filters:
    description:
      - Server-side filters per list subset, passed to the K2 query language. Keys are subset names (V(volumes),
        V(volume_groups), V(snapshots), V(hosts), V(host_groups), V(mappings)); each value is a dictionary of
        C(field) or C(field__modifier) to value.
      - Modifiers are C(in), C(m_eq), C(contains), C(contains_some), C(prefix), C(regexp), C(gt), C(lt), C(gte),
        C(lte) and C(neq); without a modifier the field must equal the value. A list value means "any of"
        (C(__in)).
      - A reference field (a volume's C(volume_group), a host's C(host_group), a snapshot's C(source) or
        C(volume_group), a mapping's C(host) or C(volume)) takes an object name, a reference path such as
        C(/volume_groups/3), or (when the field can point at only one kind of object) a numeric id. Names are
        looked up with one request per referenced resource; a name that does not exist matches nothing.
      - Field names are checked against the fields of the resource, and the paging and sorting parameters
        (C(__limit), C(__offset), C(__sort), C(__fields)) are refused because the module sets them. Each subset named here must
        also be gathered.
    type: dict
    default: {}
  fields:
    description:
      - Which fields to return per list subset (K2 C(__fields)), as a dictionary of subset name to a list of field names;
        the same subsets as O(filters).
      - C(id) and C(name) (where the object has one) are always returned, so that objects can be told apart and
        referenced.
      - For V(hosts), the extra names C(iqns) and C(pwwns) select the host's initiators; without them they are
        not read, which saves two requests.
      - Fields derived by the module (C(<reference>_id), C(size_bytes)...) come with the field they derive from.
    type: dict
    default: {}
  page_size:
    description:
      - How many objects to ask for per request (K2 C(__limit)).
      - K2's own default is 100; the vendor's PowerShell SDK and other clients ask for 9999. If an array answers with
        smaller pages, the module keeps reading until it has every object the array counted.
    type: int
    default: 9999
  max_over_subscription_ratio:
    description:
      - The over-subscription ratio reported in RV(k2.capacity.max_over_subscription_ratio), as the Cinder option of
        the same name, a number of at least 1 or V(auto) (reported as the string C(auto)).
      - Used unless O(auto_calc_max_oversubscription_ratio) computes the ratio from the array.
    type: str
    default: '20.0'
  auto_calc_max_oversubscription_ratio:
    description:
      - Compute the over-subscription ratio from the array as the Cinder K2 driver does with the option of the same name,
        provisioned volume capacity divided by used capacity (C(provisioned_volumes / (total - free))).
      - When the array has nothing provisioned or nothing used, O(max_over_subscription_ratio) is reported instead.
    type: bool
    default: false
notes:
  - The system volume C(CTRL), which every K2 array has and no user can change, is left out of RV(k2.volumes) and
    of C(total_volumes), as the Cinder driver counts.
  - Sizes are in KiB, the unit of the K2 API; volumes and volume groups also carry the size in bytes.
  - Reference fields (objects pointing at other objects) are returned as the referenced object's name with the id in
    C(<field>_id); references to resources without names (statistics, ports) are returned as their path, such as
    C(/system/net_ports/2). Fields that can point at several kinds of objects carry the kind in C(<field>_type).
  - Gathering a large array returns a large result; use O(fields) and O(filters) to keep it small.
'''

EXAMPLES = r'''
- name: Gather K2 facts
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2.example.com
      k2_username: "{{ vault_k2_username }}"
      k2_password: "{{ vault_k2_password }}"
      ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: System and capacity (the default subsets)
      kaminario.k2.k2_facts:

    - name: Show what Cinder would report
      ansible.builtin.debug:
        msg: >-
          {{ ansible_facts.k2.system.system_name }}: {{ ansible_facts.k2.capacity.free_capacity_gb | round(1) }} of
          {{ ansible_facts.k2.capacity.total_capacity_gb | round(1) }} GiB free, {{ ansible_facts.k2.capacity.total_volumes }} volumes

    - name: Everything except snapshots, auto-calculated over-subscription ratio
      kaminario.k2.k2_facts:
        gather_subset: [all, '!snapshots']
        auto_calc_max_oversubscription_ratio: true
      register: everything

    - name: Database volumes only, with a few fields
      kaminario.k2.k2_facts:
        gather_subset: [volumes, mappings]
        filters:
          volumes:
            name__prefix: db-
            size__gte: 104857600          # 100 GiB, in KiB
          mappings:
            host: [dbhost1, dbhost2]      # host names (or host groups)
        fields:
          volumes: [size, volume_group, scsi_sn]
      register: db

    - name: Map volume names to their LUN on dbhost1
      ansible.builtin.debug:
        msg: "{{ db.k2.mappings | selectattr('host', 'equalto', 'dbhost1') | items2dict(key_name='volume', value_name='lun') }}"

    - name: Volumes of one volume group, found by the group's name
      kaminario.k2.k2_facts:
        gather_subset: volumes
        filters:
          volumes:
            volume_group: vg-oracle

    - name: Views (exposable snapshots) only
      kaminario.k2.k2_facts:
        gather_subset: snapshots
        filters:
          snapshots:
            is_exposable: true

    - name: Portals and iSCSI target name, for host configuration
      kaminario.k2.k2_facts:
        gather_subset: network
      register: net

    - name: Show the portals
      ansible.builtin.debug:
        var: net.k2.network.iscsi_portals
'''

RETURN = r'''
k2:
  description:
    - The gathered facts, also set as C(ansible_facts.k2). Only the gathered subsets are present.
  returned: always
  type: dict
  contains:
    gathered_subsets:
      description: The subsets gathered, after expanding V(all) and removing exclusions.
      type: list
      elements: str
      returned: always
      sample: [capacity, system]
    system:
      description: The C(system/state) object, as K2 returns it.
      type: dict
      returned: when V(system) is gathered
      sample:
        id: 1
        system_name: k2-lab
        system_id: d575
        system_version: latest-20190304-1128
        rest_api_version: 2.2.0
        iscsi_qualified_target_name: iqn.2009-01.com.kaminario:storage.k2.54645
        state: ONLINE
        system_connectivity_type: iSCSI
    capacity:
      description:
        - The C(system/capacity) object (sizes in KiB, such as C(total), C(free), C(provisioned), C(provisioned_volumes),
          C(provisioned_snapshots), C(provisioned_views), C(allocated)...) plus the figures of the Cinder driver's
          C(get_volume_stats).
      type: dict
      returned: when V(capacity) is gathered
      contains:
        total_capacity_gb:
          description: Usable capacity in GiB (C(total) / 2**20).
          type: float
          sample: 10240.0
        free_capacity_gb:
          description: Free capacity in GiB (C(free) / 2**20).
          type: float
          sample: 10112.5
        provisioned_capacity_gb:
          description: Capacity provisioned to volumes in GiB (C(provisioned_volumes) / 2**20), as Cinder reports it.
          type: float
          sample: 2560.0
        total_bytes:
          description: Usable capacity in bytes.
          type: int
          sample: 10995116277760
        free_bytes:
          description: Free capacity in bytes.
          type: int
          sample: 10858213785600
        provisioned_volumes_bytes:
          description: Capacity provisioned to volumes in bytes.
          type: int
          sample: 2748779069440
        total_volumes:
          description: Number of volumes, without the system volume C(CTRL).
          type: int
          sample: 250
        thin_provisioning_support:
          description: Always true (K2 is thin provisioned).
          type: bool
          sample: true
        thick_provisioning_support:
          description: Always false.
          type: bool
          sample: false
        max_over_subscription_ratio:
          description:
            - The ratio computed from the array when O(auto_calc_max_oversubscription_ratio) is set and the array has
              capacity provisioned and used; otherwise O(max_over_subscription_ratio) as a number, or the string C(auto).
          type: raw
          sample: 20.0
        max_over_subscription_ratio_calculated:
          description: Whether RV(k2.capacity.max_over_subscription_ratio) was computed from the array.
          type: bool
          sample: false
      sample:
        total: 10737418240
        free: 10603741184
        provisioned: 2684354560
        provisioned_volumes: 2684354560
        provisioned_snapshots: 0
        provisioned_views: 0
        allocated: 133677056
        state: ok
        total_capacity_gb: 10240.0
        free_capacity_gb: 10112.5
        provisioned_capacity_gb: 2560.0
        total_volumes: 250
        thin_provisioning_support: true
        thick_provisioning_support: false
        max_over_subscription_ratio: 20.0
        max_over_subscription_ratio_calculated: false
    volumes:
      description:
        - Every matching volume (without C(CTRL)), sorted by id, with the fields K2 returns (or those selected by
          O(fields)).
        - C(size) is in KiB and C(size_bytes) in bytes; C(volume_group) is the group's name and C(volume_group_id) its id.
      type: list
      elements: dict
      returned: when V(volumes) is gathered
      sample:
        - id: 2
          name: db-data-01
          size: 104857600
          size_bytes: 107374182400
          volume_group: vg-oracle
          volume_group_id: 3
          is_dedup: true
          read_only: false
          scsi_sn: d5750002
          creation_time: 1767225600.0
    volume_groups:
      description:
        - Every matching volume group, sorted by id. C(quota) is in KiB (C(quota_bytes) in bytes; 0 or null means
          unlimited); C(capacity_policy) is the policy's name.
      type: list
      elements: dict
      returned: when V(volume_groups) is gathered
      sample:
        - id: 3
          name: vg-oracle
          quota: 0
          quota_bytes: 0
          is_dedup: true
          capacity_policy: default_vg_capacity_policy
          capacity_policy_id: 1
          volumes_count: 4
          snapshots_count: 1
    snapshots:
      description:
        - Every matching snapshot and view (a view has C(is_exposable) true), sorted by id.
        - C(name) is C(<volume group>:<short_name>); C(source) is the name of the volume group (a snapshot) or of the
          snapshot a view was made from, with C(source_type) V(volume_group) or V(snapshot);
          C(retention_policy) is the policy's name.
      type: list
      elements: dict
      returned: when V(snapshots) is gathered
      sample:
        - id: 5
          name: vg-oracle:nightly
          short_name: nightly
          source: vg-oracle
          source_id: 3
          source_type: volume_group
          volume_group: vg-oracle
          volume_group_id: 3
          retention_policy: Best_Effort_Retention
          retention_policy_id: 2
          is_exposable: false
          is_auto_deleteable: false
          generation_number: 1
          creation_time: 1767225600.0
    hosts:
      description:
        - Every matching host, sorted by id, with its initiators in C(iqns) and C(pwwns) (sorted) and its host
          group's name in C(host_group).
      type: list
      elements: dict
      returned: when V(hosts) is gathered
      sample:
        - id: 4
          name: dbhost1
          type: Linux
          host_group: null
          host_group_id: null
          iqns: [iqn.1994-05.com.redhat:dbhost1]
          pwwns: []
          volumes_count: 2
    host_groups:
      description: Every matching host group, sorted by id.
      type: list
      elements: dict
      returned: when V(host_groups) is gathered
      sample:
        - id: 1
          name: rac-cluster
          allow_different_host_types: false
          hosts_count: 2
          volumes_count: 3
    mappings:
      description:
        - Every matching mapping, sorted by id, joined to names without extra requests per mapping.
        - C(host) is the name of the host or host group (C(host_type) V(host) or V(host_group)); C(volume) is the
          name of the volume or view (C(volume_type) V(volume) or V(snapshot)).
      type: list
      elements: dict
      returned: when V(mappings) is gathered
      sample:
        - id: 9
          lun: 1
          host: dbhost1
          host_id: 4
          host_type: host
          volume: db-data-01
          volume_id: 2
          volume_type: volume
          unique_target: false
    replication:
      description: Replication objects; each list is empty when the array has none.
      type: dict
      returned: when V(replication) is gathered
      contains:
        peer_arrays:
          description: Peer arrays (C(replication/peer_k2arrays)); passwords are left out.
          type: list
          elements: dict
          sample: [{id: 1, name: k2-dr, mgmt_host: 10.0.1.5, mgmt_connectivity_state: ok}]
        sessions:
          description:
            - Replication sessions with C(local_volume_group) and C(replication_peer_k2array) resolved to names.
          type: list
          elements: dict
          sample: [{id: 1, name: ssn-oracle, state: in_sync, current_role: source, rpo: 300, local_volume_group: vg-oracle}]
        peer_volume_groups:
          description: Peer volume groups (C(replication/peer_volume_groups)).
          type: list
          elements: dict
          sample: []
        peer_volumes:
          description: Peer volumes with C(local_volume) resolved to the local volume's name.
          type: list
          elements: dict
          sample: []
        unavailable:
          description: Replication resources the array does not offer (it answered HTTP 404); their lists are empty.
          type: list
          elements: str
          sample: []
    network:
      description: Network facts.
      type: dict
      returned: when V(network) is gathered
      contains:
        iscsi_target_iqn:
          description: The array's iSCSI target name (C(system/state) C(iscsi_qualified_target_name)).
          type: str
          sample: iqn.2009-01.com.kaminario:storage.k2.54645
        iscsi_portals:
          description: C(<ip>:3260) for every IP address that is not a replication (WAN) interface, as Cinder builds them.
          type: list
          elements: str
          sample: [10.0.0.21:3260, 10.0.0.22:3260]
        fc_target_wwns:
          description: The WWNs of the array's Fibre Channel ports, without colons, as Cinder hands them to hosts.
          type: list
          elements: str
          sample: [50024f40d6020100]
        net_ips:
          description: The C(system/net_ips) objects; C(net_port) and C(wan_port) are reference paths.
          type: list
          elements: dict
          sample: [{id: 1, ip_address: 10.0.0.21, network_mask: 255.255.255.0, net_port: /system/net_ports/1, net_port_id: 1,
                    wan_port: null, wan_port_id: null}]
        fc_ports:
          description: The C(system/fc_ports) objects.
          type: list
          elements: dict
          sample: [{id: 1, name: kblock01-knode01-fc01, pwwn: "50:02:4f:40:d6:02:01:00", status: ok}]
k2_requests:
  description: REST requests this task sent, in total and per HTTP method.
  returned: always
  type: dict
  sample: {total: 3, GET: 3}
actions:
  description: Always empty; the module changes nothing.
  returned: always
  type: list
  elements: dict
  sample: []
'''

import re

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import K2NotFoundError, make_ref, parse_ref
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import K2Module

KIB = 1024
GIB_IN_KIB = 2 ** 20
MAX_PAGE_SIZE = 9999
ISCSI_PORT = 3260
CTRL_VOLUME = 'CTRL'

ALL_SUBSETS = ('system', 'capacity', 'volumes', 'volume_groups', 'snapshots', 'hosts', 'host_groups', 'mappings',
               'replication', 'network')
DEFAULT_SUBSETS = ('system', 'capacity')

# Query modifiers of the K2 language (``field__modifier``).
MODIFIERS = ('in', 'm_eq', 'contains', 'contains_some', 'prefix', 'regexp', 'gt', 'lt', 'gte', 'lte', 'neq')
LIST_MODIFIERS = ('in', 'm_eq')
# Modifiers that compare a reference with a value (names are turned into references for them).
REF_MODIFIERS = ('eq', 'in', 'm_eq', 'neq')

# The list subsets: their resource, the fields this module knows (K2 REST API reference section 4 and k2sim),
# and their reference fields with the resources each may point at (empty: only paths are accepted).
LIST_SUBSETS = {
    'volumes': dict(resource='volumes', fields=(
        'id', 'name', 'size', 'volume_group', 'description', 'vmware_support', 'read_only', 'is_dedup', 'scsi_sn',
        'scsi_suffix', 'creation_time', 'current_stats', 'current_replication_stats', 'replication_peer_volume',
        'iscsi_tgt_converted_name', 'is_new', 'marked_for_deletion', 'last_restored_from', 'last_restored_time',
        'logical_capacity', 'snapshots_logical_capacity', 'no_dedup', 'dedup_source', 'dedup_target',
        'avg_compressed_ratio', 'avg_compressed_ratio_timestamp', 'stream_avg_compressed_size_in_bytes', 'node_id'),
        refs={'volume_group': ('volume_groups',), 'last_restored_from': ('snapshots',), 'current_stats': (),
              'current_replication_stats': (), 'replication_peer_volume': ('replication/peer_volumes',)}),
    'volume_groups': dict(resource='volume_groups', fields=(
        'id', 'name', 'quota', 'is_dedup', 'capacity_policy', 'description', 'last_restored_from', 'last_restored_time',
        'creation_time', 'capacity_state', 'snapshots_overhead_state', 'is_default', 'iscsi_tgt_converted_name',
        'last_snapshot_creation_time', 'logical_capacity', 'volumes_logical_capacity', 'snapshots_logical_capacity',
        'volumes_provisioned_capacity', 'mapped_hosts_count', 'snapshots_count', 'views_count', 'volumes_count',
        'replication_session', 'replication_peer_volume_group', 'replication_rpo_history'),
        refs={'capacity_policy': ('vg_capacity_policies',), 'last_restored_from': ('snapshots',),
              'replication_session': ('replication/sessions',),
              'replication_peer_volume_group': ('replication/peer_volume_groups',), 'replication_rpo_history': ()}),
    'snapshots': dict(resource='snapshots', fields=(
        'id', 'name', 'short_name', 'source', 'retention_policy', 'is_auto_deleteable', 'is_exposable',
        'is_application_consistent', 'description', 'volume_group', 'replication_session', 'generation_number',
        'creation_time', 'data_creation_time', 'last_exposed_time', 'is_deleted', 'is_exist_on_peer', 'is_external',
        'is_originating_from_peer', 'triggered_by', 'volsnaps_provisioned_capacity', 'wwn', 'iscsi_tgt_converted_name'),
        refs={'source': ('volume_groups', 'snapshots'), 'volume_group': ('volume_groups',),
              'retention_policy': ('retention_policies',), 'replication_session': ('replication/sessions',)}),
    'hosts': dict(resource='hosts', fields=(
        'id', 'name', 'type', 'host_group', 'connectivity_type', 'description', 'is_part_of_group', 'volumes_count',
        'views_count'),
        local_fields=('iqns', 'pwwns'),
        refs={'host_group': ('host_groups',)}),
    'host_groups': dict(resource='host_groups', fields=(
        'id', 'name', 'description', 'allow_different_host_types', 'connectivity_type', 'hosts_count', 'volumes_count',
        'views_count'),
        refs={}),
    'mappings': dict(resource='mappings', fields=('id', 'volume', 'host', 'lun', 'unique_target'),
                     refs={'volume': ('volumes', 'snapshots'), 'host': ('hosts', 'host_groups')}, unnamed=True),
}

# Resources whose objects have a name that references are resolved to.
NAMED_RESOURCES = ('volumes', 'volume_groups', 'snapshots', 'hosts', 'host_groups', 'retention_policies',
                   'vg_capacity_policies', 'replication/peer_k2arrays', 'replication/sessions',
                   'replication/peer_volume_groups', 'replication/peer_volumes')
# Reference fields that can point at several kinds of objects carry the kind in ``<field>_type``.
MULTI_KIND_FIELDS = {'snapshots': ('source',), 'mappings': ('volume', 'host')}
KIND_NAMES = {'volumes': 'volume', 'volume_groups': 'volume_group', 'snapshots': 'snapshot', 'hosts': 'host',
              'host_groups': 'host_group'}
REPLICATION_RESOURCES = (('peer_arrays', 'replication/peer_k2arrays'), ('sessions', 'replication/sessions'),
                         ('peer_volume_groups', 'replication/peer_volume_groups'),
                         ('peer_volumes', 'replication/peer_volumes'))
REPLICATION_REFS = ('replication_peer_k2array', 'local_volume_group', 'local_volume', 'replication_session',
                    'retention_policy', 'external_retention_policy', 'latest_replicated_snapshot', 'replication_peer_volume_group')
NET_IP_REFS = ('net_port', 'wan_port', 'net_portchannel', 'net_vlan', 'nvme_port')
SECRET_RE = re.compile(r'pass(word)?|secret|token', re.IGNORECASE)
FIELD_RE = re.compile(r'^[a-z][a-z0-9_]*$')
RATIO_RE = re.compile(r'^(\d*\.\d+|\d+)$')


class FactsError(Exception):
    """A wrong option value, found before any request is sent."""


# --------------------------------------------------------------------------- option checks (pure)

def resolve_subsets(requested):
    """Expand ``all`` and ``!subset`` exclusions; return the subsets in canonical order."""
    wanted, excluded = set(), set()
    for item in requested or []:
        name = str(item).strip()
        negate = name.startswith('!')
        if negate:
            name = name[1:].strip()
        if name not in ALL_SUBSETS + ('all',):
            raise FactsError("gather_subset: unknown subset '%s'; use %s, all, or a subset prefixed with ! to leave it out."
                             % (item, ', '.join(ALL_SUBSETS)))
        names = ALL_SUBSETS if name == 'all' else (name,)
        (excluded if negate else wanted).update(names)
    if not wanted:
        wanted = set(DEFAULT_SUBSETS)
    return [s for s in ALL_SUBSETS if s in wanted and s not in excluded]


def split_filter_key(key):
    """``volume_group.ref__in`` -> ``('volume_group', True, 'in')``; ``name`` -> ``('name', False, 'eq')``."""
    field, modifier = key, 'eq'
    if '__' in key:
        field, _sep, modifier = key.rpartition('__')
    is_ref = field.endswith('.ref')
    if is_ref:
        field = field[:-4]
    return field, is_ref, modifier


def check_filters(subset, filters):
    """Validate the filters of one subset; return ``[(field, modifier, value, targets)]`` (targets: None for plain fields)."""
    spec = LIST_SUBSETS[subset]
    if not isinstance(filters, dict):
        raise FactsError("filters.%s must be a dictionary of field (or field__modifier) to value, got %r." % (subset, filters))
    checked = []
    for key, value in filters.items():
        key = str(key)
        where = "filters.%s.%s" % (subset, key)
        if key.startswith('__'):
            raise FactsError("%s: %s is set by the module (paging, sorting); use the fields option to select fields, "
                             "and leave paging to the module." % (where, key))
        field, is_ref, modifier = split_filter_key(key)
        if modifier not in MODIFIERS + ('eq',) or (modifier == 'eq' and '__' in key):
            raise FactsError("%s: unknown modifier '__%s'; use one of %s, or none for equality."
                             % (where, modifier, ', '.join('__' + m for m in MODIFIERS)))
        if not FIELD_RE.match(field) or field not in spec['fields']:
            raise FactsError("%s: %s has no field '%s'; known fields: %s."
                             % (where, spec['resource'], field, ', '.join(sorted(spec['fields']))))
        targets = spec['refs'].get(field)
        if is_ref and targets is None:
            raise FactsError("%s: '%s' is not a reference field, so '.ref' does not apply; reference fields of %s: %s."
                             % (where, field, spec['resource'], ', '.join(sorted(spec['refs'])) or 'none'))
        if isinstance(value, dict) and ('ref' not in value or targets is None):
            raise FactsError("%s: a filter value must be a string, number, boolean or list%s, not a dictionary."
                             % (where, ' (or {ref: path} on a reference field)' if targets is None else ''))
        if isinstance(value, (list, tuple)):
            if modifier not in LIST_MODIFIERS + ('eq',):
                raise FactsError("%s: a list value needs no modifier or __in; __%s takes one value." % (where, modifier))
            if not value:
                raise FactsError("%s: the list is empty, so nothing could match; give at least one value." % where)
            if any(isinstance(v, (list, tuple)) or (isinstance(v, dict) and ('ref' not in v or targets is None)) for v in value):
                raise FactsError("%s: list elements must be strings, numbers or booleans." % where)
        if targets is not None and modifier not in REF_MODIFIERS:
            raise FactsError("%s: '%s' is a reference; compare it with a name, id or path (no modifier, __in or __neq), "
                             "not __%s." % (where, field, modifier))
        checked.append((field, modifier, value, targets))
    return checked


def check_fields(subset, fields):
    """Validate the field selection of one subset; return ``(fields sent to K2, local fields)``."""
    spec = LIST_SUBSETS[subset]
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(',') if f.strip()]
    if not isinstance(fields, (list, tuple)) or not fields:
        raise FactsError("fields.%s must be a non-empty list of field names." % subset)
    local = spec.get('local_fields', ())
    sent, extra = [], []
    for field in fields:
        field = str(field)
        if field in local:
            extra.append(field)
        elif field in spec['fields']:
            if field not in sent:
                sent.append(field)
        else:
            raise FactsError("fields.%s: %s has no field '%s'; known fields: %s."
                             % (subset, spec['resource'], field, ', '.join(sorted(spec['fields'] + tuple(local)))))
    if not spec.get('unnamed') and 'name' not in sent:
        sent.insert(0, 'name')
    return sent, extra


def check_ratio(value):
    """``'auto'`` or a float of at least 1, as Cinder's max_over_subscription_ratio."""
    text = str(value).strip()
    if text == 'auto':
        return text
    if not RATIO_RE.match(text) or float(text) < 1:
        raise FactsError("max_over_subscription_ratio must be 'auto' or a number of at least 1 (as in Cinder), got %r." % value)
    return float(text)


def cinder_capacity(cap, total_volumes, configured_ratio, auto_calc):
    """The figures of the Cinder K2 driver's get_volume_stats, from ``system/capacity`` (KiB) and the volume count."""
    total = cap.get('total') or 0
    free = cap.get('free') or 0
    provisioned_volumes = cap.get('provisioned_volumes') or 0
    calculated = bool(auto_calc and cap.get('provisioned') and total != free)
    ratio = provisioned_volumes / float(total - free) if calculated else configured_ratio
    return {
        'total_capacity_gb': total / float(GIB_IN_KIB),
        'free_capacity_gb': free / float(GIB_IN_KIB),
        'provisioned_capacity_gb': provisioned_volumes / float(GIB_IN_KIB),
        'total_bytes': total * KIB,
        'free_bytes': free * KIB,
        'provisioned_volumes_bytes': provisioned_volumes * KIB,
        'total_volumes': total_volumes,
        'thin_provisioning_support': True,
        'thick_provisioning_support': False,
        'max_over_subscription_ratio': ratio,
        'max_over_subscription_ratio_calculated': calculated,
    }


def _is_ref(value):
    return isinstance(value, dict) and 'ref' in value


def _ref_text(value):
    return value['ref'] if _is_ref(value) else value


# --------------------------------------------------------------------------- the module

class K2Facts(K2Module):

    def __init__(self):
        super(K2Facts, self).__init__(argument_spec=dict(
            gather_subset=dict(type='list', elements='str', default=list(DEFAULT_SUBSETS)),
            filters=dict(type='dict', default={}),
            fields=dict(type='dict', default={}),
            page_size=dict(type='int', default=MAX_PAGE_SIZE),
            max_over_subscription_ratio=dict(type='str', default='20.0'),
            auto_calc_max_oversubscription_ratio=dict(type='bool', default=False),
        ))
        self._lists = {}        # resource -> objects: complete lists read (no filters, all fields)
        self._partial = {}      # resource -> objects: lists read with filters or fields
        self._names = {}        # resource -> objects (id, name): name lists read for joins
        self._known = {}        # resource -> objects (id, name): objects found by name for reference filters
        self._indexes = {}      # (kind, resource, length) -> {id: name}
        # _shape runs once per object (tens of thousands): what it works out per key and per reference is kept
        self._secret_keys = {}  # attribute name -> whether it is left out (SECRET_RE)
        self._refs = {}         # ref path -> (resource, id, name)
        self._ref_fields = {}   # (subset, refs) -> reference fields given x_id even when null

    # ------------------------------------------------------------- options

    def _options(self):
        """Check every option before the first request; returns (subsets, {subset: query}, ratio)."""
        p = self.params
        subsets = resolve_subsets(p['gather_subset'])
        if not 1 <= p['page_size'] <= MAX_PAGE_SIZE:
            raise FactsError('page_size must be between 1 and %d, got %d.' % (MAX_PAGE_SIZE, p['page_size']))
        queries = dict((s, {'filters': [], 'fields': None, 'local': None}) for s in subsets if s in LIST_SUBSETS)
        for option in ('filters', 'fields'):
            for subset, value in (p[option] or {}).items():
                if subset not in LIST_SUBSETS:
                    raise FactsError("%s: '%s' takes no %s; %s apply to %s." % (option, subset, option, option, ', '.join(LIST_SUBSETS)))
                if subset not in queries:
                    raise FactsError("%s.%s is set but the subset '%s' is not gathered; add it to gather_subset or drop the %s."
                                     % (option, subset, subset, option))
                if option == 'filters':
                    queries[subset]['filters'] = check_filters(subset, value or {})
                else:
                    queries[subset]['fields'], queries[subset]['local'] = check_fields(subset, value)
        return subsets, queries, check_ratio(p['max_over_subscription_ratio'])

    # ------------------------------------------------------------- reading

    def _search(self, resource, filters=None, fields=None, complete=False):
        objects = self.client.search(resource, filters, fields=fields, page_size=self.params['page_size'])
        if complete:
            self._lists[resource] = objects
        return objects

    def _query_filters(self, checked):
        """Turn checked filters into client filters; names in reference filters become refs (one request per target).

        Returns ``None`` when the filters cannot match anything (every name given is unknown).
        """
        result = {}
        for field, modifier, value, targets in checked:
            key = field if modifier == 'eq' else '%s__%s' % (field, modifier)
            if targets is None:
                result[key] = list(value) if isinstance(value, tuple) else value
                continue
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            refs = self._filter_refs(field, values, targets)
            if not refs:
                if modifier == 'neq':
                    continue            # "not equal to an object that does not exist" holds for every object
                return None
            if modifier == 'neq' and len(refs) > 1:
                raise FactsError("filters: '%s__neq' names several objects (%s); give one." % (field, ', '.join(refs)))
            # A list makes the client ask for ``<field>.ref__in`` (or keep the __in / __m_eq given).
            result[key] = refs if (isinstance(value, (list, tuple)) or len(refs) > 1 or modifier in LIST_MODIFIERS) else refs[0]
        return result

    def _filter_refs(self, field, values, targets):
        """Ref paths for the values of a reference filter: paths pass, ids need a single target, names are looked up."""
        refs, names = [], []
        for value in values:
            text = _ref_text(value)
            if _is_ref(value) and not (isinstance(text, str) and text.startswith('/')):
                raise FactsError("filters: '%s' value %r is not a reference; write {ref: /%s/3}, or give a name."
                                 % (field, value, (targets or ('volumes',))[0]))
            if isinstance(text, bool):
                raise FactsError("filters: '%s' is a reference; give a name, id or path, not %r." % (field, value))
            if isinstance(text, int) or (isinstance(text, str) and text.isdigit()):
                if len(targets) != 1:
                    raise FactsError("filters: '%s' can point at %s, so a bare id %s is ambiguous; give a name or a path such as /%s/%s."
                                     % (field, ' or '.join(targets), text, targets[0], text))
                refs.append(make_ref(targets[0], int(text))['ref'])
            elif isinstance(text, str) and text.startswith('/'):
                try:
                    resource, _obj_id = parse_ref(text)
                except ValueError:
                    raise FactsError("filters: '%s' value %r is not a reference path such as /%s/3." % (field, text, (targets or ('volumes',))[0]))
                if targets and resource not in targets:
                    raise FactsError("filters: '%s' points at %s, not %s." % (field, ' or '.join(targets), resource))
                refs.append(text)
            else:
                if not targets:
                    raise FactsError("filters: '%s' takes a reference path (objects it points at have no name)." % field)
                names.append(str(text))
        if names:
            for target in targets:
                for obj in self.client.search(target, {'name': names}, fields=['name'], page_size=self.params['page_size']):
                    refs.append(make_ref(target, obj['id'])['ref'])
                    self._known.setdefault(target, []).append(obj)
        return refs

    def _gather_list(self, subset, query):
        spec = LIST_SUBSETS[subset]
        filters = self._query_filters(query['filters'])
        if filters is None:
            return []
        complete = not filters and not query['fields']
        objects = self._search(spec['resource'], filters, fields=query['fields'], complete=complete)
        if not complete:
            self._partial[spec['resource']] = objects
        if subset == 'volumes':
            objects = [o for o in objects if o.get('name') != CTRL_VOLUME]
        return objects

    def _name_of(self, resource, obj_id):
        """Name of an object: from a list already read, else from one paged name list of the resource (read once)."""
        if resource not in NAMED_RESOURCES:
            return None
        complete = None
        for kind, source in (('lists', self._lists), ('names', self._names)):
            if resource in source:
                complete = self._index(kind, resource, source[resource])
        if complete is not None:
            return complete.get(obj_id)
        for kind, source in (('partial', self._partial), ('known', self._known)):
            found = self._index(kind, resource, source.get(resource, ())).get(obj_id)
            if found is not None:
                return found
        try:
            self._names[resource] = self._search(resource, fields=['name'])
        except K2NotFoundError:
            self._names[resource] = []
        return self._index('names', resource, self._names[resource]).get(obj_id)

    def _index(self, kind, resource, objects):
        """``{id: name}`` of a list, built once (joins stay linear in the number of objects)."""
        key = (kind, resource, len(objects))
        if key not in self._indexes:
            self._indexes[key] = dict((o.get('id'), o.get('name')) for o in objects)
        return self._indexes[key]

    # ------------------------------------------------------------- shaping

    def _shape(self, obj, subset=None, refs=()):
        """Copy of an object with references resolved to names (``x``, ``x_id``, ``x_type``) and sizes in bytes.

        ``refs``: reference fields of the object besides those of the list subset, given ``x_id`` even when null.
        """
        ref_fields = self._ref_fields.get((subset, refs))
        if ref_fields is None:
            ref_fields = set(LIST_SUBSETS[subset]['refs']) if subset in LIST_SUBSETS else set()
            ref_fields.update(refs)
            self._ref_fields[(subset, refs)] = ref_fields
        multi = MULTI_KIND_FIELDS.get(subset, ())
        secret_keys, resolved = self._secret_keys, self._refs
        out = {}
        for key, value in obj.items():
            secret = secret_keys.get(key)
            if secret is None:
                secret = secret_keys[key] = SECRET_RE.search(key) is not None
            if secret:
                continue
            if isinstance(value, dict) and 'ref' in value:
                path = value['ref']
                known = resolved.get(path) if isinstance(path, str) else None
                if known is None:
                    try:
                        resource, obj_id = parse_ref(value)
                    except ValueError:
                        out[key] = value
                        continue
                    # the name of an object does not change during a run: resolve each reference once
                    known = (resource, obj_id, self._name_of(resource, obj_id))
                    if isinstance(path, str):
                        resolved[path] = known
                resource, obj_id, name = known
                out[key] = name if name is not None else path
                out[key + '_id'] = obj_id
                if key in multi:
                    out[key + '_type'] = KIND_NAMES.get(resource, resource)
            elif value is None and key in ref_fields:
                out[key] = None
                out[key + '_id'] = None
                if key in multi:
                    out[key + '_type'] = None
            else:
                out[key] = value
        if subset in ('volumes', 'volume_groups'):
            for size_key in ('size', 'quota'):
                if isinstance(out.get(size_key), int) and not isinstance(out[size_key], bool):
                    out[size_key + '_bytes'] = out[size_key] * KIB
        return out

    def _initiators(self, resource, key):
        """``{host ref path: sorted initiators}`` from one paged read of host_iqns or host_fc_ports."""
        grouped = {}
        for obj in self._search(resource, fields=[key, 'host']):
            if _is_ref(obj.get('host')) and obj.get(key):
                grouped.setdefault(obj['host']['ref'], []).append(obj[key])
        return dict((k, sorted(v)) for k, v in grouped.items())

    def _replication(self):
        """Every replication object; a resource the array lacks (HTTP 404) gives an empty list and is named in ``unavailable``."""
        result = {'unavailable': []}
        for key, resource in REPLICATION_RESOURCES:
            try:
                result[key] = self._search(resource, complete=True)
            except K2NotFoundError:
                result[key] = []
                self._lists[resource] = []
                result['unavailable'].append(resource)
        return result

    def _system_state(self):
        if 'system/state' not in self._lists:
            self._search('system/state', complete=True)
        hits = self._lists['system/state']
        return dict(hits[0]) if hits else {}

    # ------------------------------------------------------------- work

    def work(self):
        try:
            subsets, queries, ratio = self._options()
            # Read everything first, so that references are resolved from these lists rather than read again.
            raw = dict((s, self._gather_list(s, queries[s])) for s in subsets if s in LIST_SUBSETS)
        except FactsError as exc:
            self.fail(str(exc))
        facts = {'gathered_subsets': subsets}
        if 'system' in subsets:
            facts['system'] = self._system_state()
        if 'capacity' in subsets:
            facts['capacity'] = self._capacity(raw, queries, ratio)
        replication = self._replication() if 'replication' in subsets else None
        network = self._network_raw() if 'network' in subsets else None
        initiators = self._host_initiators(queries['hosts']) if raw.get('hosts') else {}
        for subset in LIST_SUBSETS:
            if subset in raw:
                facts[subset] = [self._shape(o, subset) for o in raw[subset]]
        for host in facts.get('hosts', []):
            for key, grouped in initiators.items():
                host[key] = grouped.get(make_ref('hosts', host['id'])['ref'], [])
        if replication is not None:
            facts['replication'] = dict((key, [self._shape(o, refs=REPLICATION_REFS) for o in replication[key]])
                                        for key, _resource in REPLICATION_RESOURCES)
            facts['replication']['unavailable'] = replication['unavailable']
        if network is not None:
            facts['network'] = self._network(*network)
        return {'ansible_facts': {'k2': facts}, 'k2': facts}

    def _capacity(self, raw, queries, ratio):
        hits = self._search('system/capacity')
        cap = dict(hits[0]) if hits else {}
        volumes_query = queries.get('volumes')
        if volumes_query is not None and not volumes_query['filters']:
            total_volumes = len(raw['volumes'])
        else:
            total_volumes = self.client.count('volumes', {'name__neq': CTRL_VOLUME})
        cap.update(cinder_capacity(cap, total_volumes, ratio, self.params['auto_calc_max_oversubscription_ratio']))
        return cap

    def _host_initiators(self, query):
        """``{'iqns': {host ref: [...]}, 'pwwns': {...}}`` for the initiator kinds selected (both without ``fields``)."""
        local = query['local']
        sources = (('iqns', 'host_iqns', 'iqn'), ('pwwns', 'host_fc_ports', 'pwwn'))
        return dict((key, self._initiators(resource, field)) for key, resource, field in sources if local is None or key in local)

    def _network_raw(self):
        return self._system_state(), self._search('system/net_ips'), self._search('system/fc_ports')

    def _network(self, state, net_ips, fc_ports):
        net_ips = [self._shape(o, refs=NET_IP_REFS) for o in net_ips]
        fc_ports = [self._shape(o) for o in fc_ports]
        return {
            'iscsi_target_iqn': state.get('iscsi_qualified_target_name'),
            'iscsi_portals': ['%s:%d' % (ip['ip_address'], ISCSI_PORT) for ip in net_ips if ip.get('ip_address') and not ip.get('wan_port')],
            'fc_target_wwns': [port['pwwn'].replace(':', '') for port in fc_ports if port.get('pwwn')],
            'net_ips': net_ips,
            'fc_ports': fc_ports,
        }


def main():
    K2Facts().run()


if __name__ == '__main__':
    main()
