#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k2_host_mapping
short_description: Manage Kaminario K2 hosts, their initiators and their volume mappings
version_added: 1.0.0
description:
  - Makes sure a K2 host exists with its type, host group, iSCSI IQNs and FC port WWNs, and that the listed
    volumes and views are mapped to it (or to its host group), with explicit LUNs where given.
  - The host is either named with O(host), or named from its initiator by the rule of the OpenStack Cinder K2
    driver (O(initiator), O(host_fqdn), O(unique_fqdn_network)), so that hosts made by Cinder and by this module
    for the same server are the same K2 object.
  - Returns, for every listed volume, C(connection_info) in exactly the shape the Cinder driver's
    initialize_connection returns, so a host-side task can log in and find the device without another lookup.
  - With O(state=absent), removes the listed mappings; a host left without mappings is deleted when it was named
    from its initiator (as Cinder's terminate_connection does) or when O(remove_empty_host=true).
  - With O(hosts), many hosts are handled in one task. A few chunked reads (K2 C(name__in) and C(ref__in) searches)
    plan them all, every item is validated and every conflict refused before anything is written, and the changes go
    to the array as C(__bulk) requests, so a thousand mappings cost about ten requests.
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
extends_documentation_fragment:
  - kaminario.k2.k2
  - kaminario.k2.k2.attributes
options:
  host:
    description:
      - Name of the K2 host. At most 42 characters from C(A-Z a-z 0-9 _ . -).
      - Mutually exclusive with O(hosts), like O(initiator), O(host_fqdn), O(host_group), O(iqns), O(wwpns) and O(volumes).
      - When not set, the name is derived by the Cinder rule from O(initiator) or O(host_fqdn).
      - When neither O(host), O(initiator) nor O(host_fqdn) is set, the task manages the mappings of O(host_group)
        itself, without any host.
    type: str
  initiator:
    description:
      - The server's iSCSI initiator IQN, or for Fibre Channel its node WWN (WWNN).
      - Names the host by the Cinder rule when O(host) is not set - the string reversed, or O(host_fqdn) when
        O(unique_fqdn_network) is true; then the first 32 characters, with every character outside
        C(0-9 a-z A-Z - _) replaced by C(_).
      - An IQN is also added to the host's IQNs, as Cinder does. A WWNN only names the host; give the port WWNs
        in O(wwpns).
    type: str
  host_fqdn:
    description:
      - The server's fully qualified name (Cinder connector C(host)). Names the host when O(unique_fqdn_network)
        is true and O(host) is not set.
    type: str
  unique_fqdn_network:
    description:
      - The Cinder backend option of the same name. When true (Cinder's default), O(host_fqdn) names the host if
        given; when false, the host is named from the reversed O(initiator).
      - Set it the way the Cinder backend that shares the array sets it.
      - With O(hosts), the default of the items.
    type: bool
    default: true
  host_type:
    description:
      - Operating system type of the host, as K2 names it.
      - When not set, a new host gets V(Linux) (as the Cinder driver creates) and an existing host keeps its type.
      - With O(hosts), the default of the items.
    type: str
    choices: [Linux, Windows, ESX, AIX, Solaris]
  host_group:
    description:
      - Name of a host group the host belongs to; created if it does not exist.
      - When set, the volumes are mapped to the host group (K2 does not map a member of a group on its own), so
        every host of the group sees them with the same LUN.
      - V("") (empty string) takes the host out of its group; when not set, the host's group is left as it is.
    type: str
  iqns:
    description:
      - iSCSI initiator names the host must have (added when missing; IQNs the host has but that are not listed
        are kept). Validated as C(iqn.), C(eui.) or C(naa.) names.
    type: list
    elements: str
    default: []
  wwpns:
    description:
      - Fibre Channel port WWNs the host must have (added when missing; others are kept).
      - Any spelling of 16 hex digits, bare or separated by colons or dashes; K2 stores them as
        C(50:01:43:80:01:23:45:67).
    type: list
    elements: str
    default: []
  volumes:
    description:
      - Volumes and views to map (V(present)) or unmap (V(absent)).
      - A view is named C(<volume group>:<view>), the full name M(kaminario.k2.k2_snapshot) returns; any name
        without C(:) is a volume.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the volume, or full name of the view.
        type: str
        required: true
      lun:
        description:
          - LUN to map it at (1 to 254). An existing mapping with another LUN is moved to this one.
          - When not set, K2 picks the lowest free LUN for a new mapping and an existing mapping keeps its LUN.
          - A LUN that another volume already holds on the host (or host group) is refused; nothing is changed.
        type: int
  exclusive:
    description:
      - With V(present), also remove the mappings of the host (or host group) whose volume is not listed.
      - V(true) with an empty O(volumes) unmaps everything from it.
      - With O(hosts), the default of the items.
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates the host and maps the listed volumes.
      - V(absent) unmaps the listed volumes. Then, when the host has no mapping left, it is deleted (with its
        initiators) if it was named from its initiator or O(remove_empty_host=true). A host that does not
        exist is not an error.
      - With O(hosts), the default of the items.
    type: str
    choices: [present, absent]
    default: present
  remove_empty_host:
    description:
      - With V(absent), also delete an explicitly named host (O(host)) once it has no mappings left.
      - Hosts named from their initiator are deleted then in any case, as Cinder does.
      - With O(hosts), the default of the items.
    type: bool
    default: false
  protocol:
    description:
      - Protocol of the returned C(connection_info).
      - When not set, it follows the initiators - iSCSI for an IQN O(initiator), FC for a WWNN one; otherwise
        iSCSI when the host has only IQNs and FC when it has only WWPNs. When no protocol follows, no
        C(connection_info) is returned.
    type: str
    choices: [iscsi, fc]
  connection_info:
    description:
      - Whether to return C(connection_info). Building it reads the array's iSCSI addresses and target IQN (two
        requests) or its FC ports (one request); set V(false) when the play does not need it.
      - When not set, V(true) for one host and V(false) with O(hosts). With O(hosts) and V(true), the array's
        addresses are read once for the whole list, and every item with volumes gets C(connection_info) in
        RV(hosts[].connection_info); O(protocol) and O(multipath) apply to every item.
    type: bool
  multipath:
    description:
      - Return the iSCSI multipath variant of C(connection_info) (C(target_iqns), C(target_portals),
        C(target_luns) for every iSCSI portal), as Cinder does with C(disable_discovery) and a multipath
        connector.
    type: bool
    default: false
  hosts:
    description:
      - Many hosts in one task, each item with the options of one host (O(hosts[].host), O(hosts[].initiator),
        O(hosts[].iqns), O(hosts[].volumes), ...). Mutually exclusive with O(host), O(initiator), O(host_fqdn),
        O(host_group), O(iqns), O(wwpns) and O(volumes).
      - O(unique_fqdn_network), O(host_type), O(exclusive), O(state) and O(remove_empty_host) are the defaults of
        the items that do not set them; O(protocol), O(multipath) and O(connection_info) apply to the whole list.
      - Every item is validated, and every check of the single form made for every item (unknown volume, bad IQN or
        WWPN, LUN collision on the host, an IQN or WWPN owned by another host), before the first write; a failing
        task changes nothing, and check mode reports the full plan.
      - Each item names a different host, and an IQN or WWPN belongs to one item only.
      - Host groups are not managed by the list form (O(hosts[].host_group) is refused; a listed host that is a
        member of a host group is refused too); use one task per group with the single form.
      - Reads for the whole list - hosts by name, their IQNs, FC ports and mappings by host, the listed volumes
        (and views) by name - then C(__bulk) POSTs of the new hosts, IQNs, FC ports and mappings (at most 250
        objects each). New mappings with an explicit LUN are sent before those whose LUN K2 picks. LUN moves are
        one PATCH each, in a safe order per host.
      - When a write fails, the hosts, initiators and mappings this run created are removed again (see RV(rollback)).
      - A host, IQN, FC port or mapping that another run creates between this task's reads and its writes is used when
        it is what the item asks for, and is never removed by the rollback; one that differs (another host type, an
        initiator of another host, a mapping at another LUN, an explicit LUN now held by another volume) fails the task
        naming the item.
      - A no-change run of up to a few hundred hosts costs five requests.
    type: list
    elements: dict
    suboptions:
      host:
        description: Name of the host, as O(host). One of O(hosts[].host), O(hosts[].initiator) and O(hosts[].host_fqdn) is required.
        type: str
      initiator:
        description: The server's IQN or WWNN, as O(initiator).
        type: str
      host_fqdn:
        description: The server's fully qualified name, as O(host_fqdn).
        type: str
      unique_fqdn_network:
        description: As O(unique_fqdn_network); default O(unique_fqdn_network).
        type: bool
      host_type:
        description: As O(host_type); default O(host_type).
        type: str
        choices: [Linux, Windows, ESX, AIX, Solaris]
      host_group:
        description:
          - Not supported in the list form; setting it fails the task naming the item. Use the single form's
            O(host_group).
        type: str
      iqns:
        description: As O(iqns).
        type: list
        elements: str
        default: []
      wwpns:
        description: As O(wwpns).
        type: list
        elements: str
        default: []
      volumes:
        description: As O(volumes), for this host.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: Name of the volume, or full name of the view.
            type: str
            required: true
          lun:
            description: LUN to map it at (1 to 254), as in O(volumes[].lun).
            type: int
      exclusive:
        description: As O(exclusive); default O(exclusive).
        type: bool
      state:
        description: As O(state); default O(state).
        type: str
        choices: [present, absent]
      remove_empty_host:
        description: As O(remove_empty_host); default O(remove_empty_host).
        type: bool
notes:
  - A no-change run reads the host, its IQNs and WWPNs, the listed volumes (and views with their volume images, when
    any are listed) and the mappings of the host, plus the array's iSCSI portals and target IQN or its FC ports for C(connection_info) -
    seven REST requests for an iSCSI host, five with O(connection_info=false). The result's C(k2_requests) shows
    the count.
  - Every check (unknown volume, bad IQN or WWPN, LUN collision, an IQN or WWPN owned by another host) is made
    before the first change, so a failing task changes nothing and check mode reports the same failure.
  - When creating a new host fails half-way (an initiator or a mapping is refused), the host is deleted again.
seealso:
  - module: kaminario.k2.k2_snapshot
    description: Create the views this module maps.
'''

EXAMPLES = r'''
- name: Present volumes to database servers
  hosts: db_servers
  gather_facts: true
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2.example.com
      k2_username: "{{ vault_k2_username }}"
      k2_password: "{{ vault_k2_password }}"
      ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: Read the server's iSCSI initiator name
      ansible.builtin.slurp:
        src: /etc/iscsi/initiatorname.iscsi
      register: initiatorname

    - name: Map the data and log volumes, host named from its IQN as Cinder names it
      kaminario.k2.k2_host_mapping:
        initiator: "{{ (initiatorname.content | b64decode | regex_search('InitiatorName=(.*)', '\\1')).0 }}"
        unique_fqdn_network: false
        volumes:
          - name: "{{ inventory_hostname_short }}-data"
            lun: 1
          - name: "{{ inventory_hostname_short }}-log"
            lun: 2
        multipath: true
      delegate_to: localhost
      register: mapping

    - name: Log in to every portal the array returned
      ansible.builtin.command:
        cmd: iscsiadm -m node -T {{ item.0 }} -p {{ item.1 }} --login
      loop: "{{ mapping.connection_info[inventory_hostname_short ~ '-data'].data.target_iqns
                | zip(mapping.connection_info[inventory_hostname_short ~ '-data'].data.target_portals) }}"
      changed_when: true

- name: Clusters, views and clean-up, run from the control node
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2.example.com
      k2_username: "{{ vault_k2_username }}"
      k2_password: "{{ vault_k2_password }}"
      ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: Map a shared volume to a cluster through its host group, at LUN 10
      kaminario.k2.k2_host_mapping:
        host: node01
        host_type: Linux
        host_group: cluster-a
        wwpns:
          - "10:00:00:00:c9:12:34:56"
          - "10:00:00:00:c9:12:34:57"
        volumes:
          - name: cluster-shared
            lun: 10

    - name: Map a view of a snapshot to the backup host
      kaminario.k2.k2_host_mapping:
        host: backup01
        iqns:
          - iqn.1994-05.com.redhat:backup01
        volumes:
          - name: db-vg:nightly-view

    - name: Keep exactly these mappings on the host, remove any other
      kaminario.k2.k2_host_mapping:
        host: app01
        volumes:
          - name: app01-boot
          - name: app01-data
        exclusive: true

    - name: Map the volumes of a whole rack of servers in one task (a few reads, then __bulk POSTs)
      kaminario.k2.k2_host_mapping:
        hosts:
          - host: rack1-node01
            iqns: [iqn.1994-05.com.redhat:rack1-node01]
            volumes:
              - name: rack1-node01-boot
                lun: 1
              - name: rack1-node01-data
          - initiator: iqn.1994-05.com.redhat:rack1-node02
            unique_fqdn_network: false
            volumes:
              - name: rack1-node02-boot
                lun: 1
          - host: rack1-node03
            state: absent
            remove_empty_host: true
            volumes:
              - name: rack1-node03-boot
      register: rack

    - name: Detach a volume; the host goes too when it has nothing mapped any more (named from its IQN)
      kaminario.k2.k2_host_mapping:
        initiator: iqn.1993-08.org.debian:01:12aa12aa12aa
        unique_fqdn_network: false
        volumes:
          - name: scratch01
        state: absent
'''

RETURN = r'''
host:
  description: The host after the task (in check mode, as it would be); empty when there is none (deleted, or only a host group is managed).
  returned: when O(hosts) is not set
  type: dict
  contains:
    id:
      description: K2 id (null for a host check mode would create).
      type: int
      sample: 4
    name:
      description: Host name.
      type: str
      sample: aa21aa21aa21_10_naibed_gro_80-39
    type:
      description: Host type.
      type: str
      sample: Linux
    host_group:
      description: Name of its host group, or null.
      type: str
      sample: null
    iqns:
      description: Its iSCSI initiator names.
      type: list
      elements: str
      sample: [iqn.1993-08.org.debian:01:12aa12aa12aa]
    wwpns:
      description: Its FC port WWNs, as K2 stores them.
      type: list
      elements: str
      sample: []
    named_from_initiator:
      description: Whether the name was derived from O(initiator) or O(host_fqdn) (and not given with O(host)).
      type: bool
      sample: true
  sample:
    id: 4
    name: aa21aa21aa21_10_naibed_gro_80-39
    type: Linux
    host_group: null
    iqns: [iqn.1993-08.org.debian:01:12aa12aa12aa]
    wwpns: []
    named_from_initiator: true
host_group:
  description: The host group the volumes are mapped to, when there is one.
  returned: when the mappings target a host group
  type: dict
  sample: {id: 2, name: cluster-a}
mappings:
  description: Every mapping of the host (or host group) after the task, by LUN.
  returned: when O(hosts) is not set
  type: list
  elements: dict
  contains:
    volume:
      description: Name of the volume, or full name of the view.
      type: str
      sample: db01-data
    volume_id:
      description: K2 id of the volume or view.
      type: int
      sample: 7
    kind:
      description: V(volume) or V(view).
      type: str
      sample: volume
    lun:
      description: The LUN (null when check mode would let K2 pick it).
      type: int
      sample: 1
    id:
      description: K2 id of the mapping (null when check mode would create it).
      type: int
      sample: 11
    scsi_sn:
      description: SCSI serial of the volume, when the volume was listed in the task; null for views.
      type: str
      sample: d5750001
    volsnaps:
      description:
        - For a view listed in the task, its image of each volume of the volume group, with the SCSI serial the
          host sees; null otherwise.
      type: list
      elements: dict
      contains:
        volume:
          description: Name of the source volume.
          type: str
          sample: db01-data
        scsi_sn:
          description: SCSI serial of that image.
          type: str
          sample: d5750012
      sample: null
  sample:
    - {volume: db01-data, volume_id: 7, kind: volume, lun: 1, id: 11, scsi_sn: d5750001, volsnaps: null}
    - {volume: "db-vg:nightly-view", volume_id: 12, kind: view, lun: 2, id: 14, scsi_sn: null,
       volsnaps: [{volume: db01-data, scsi_sn: d5750012}]}
connection_info:
  description:
    - For every listed volume or view (V(present) only), what Cinder's initialize_connection returns.
    - "iSCSI: C(driver_volume_type: iscsi) and C(data) with C(target_iqn), C(target_portal) (C(<ip>:3260),
      the first iSCSI address of the array that is not a replication WAN address), C(target_lun) and
      C(target_discovered: true); with O(multipath=true) also C(target_iqns), C(target_portals) and C(target_luns)
      for every such address."
    - "FC: C(driver_volume_type: fibre_channel) and C(data) with C(target_discovered: true), C(target_lun),
      C(target_wwn) (the array's FC port WWNs, bare hex) and C(initiator_target_map) (each host WWPN, bare hex, to
      every target WWN)."
  returned: when a protocol applies (see O(protocol)), O(state=present) and O(connection_info=true)
  type: dict
  sample:
    db01-data:
      driver_volume_type: iscsi
      data:
        target_iqn: iqn.2009-01.com.kaminario:storage.k2.54645
        target_portal: 192.0.2.11:3260
        target_lun: 1
        target_discovered: true
        target_iqns: [iqn.2009-01.com.kaminario:storage.k2.54645, iqn.2009-01.com.kaminario:storage.k2.54645]
        target_portals: [192.0.2.11:3260, 192.0.2.12:3260]
        target_luns: [1, 1]
protocol:
  description: Protocol of C(connection_info), V(iscsi), V(fc), or null.
  returned: when O(hosts) is not set
  type: str
  sample: iscsi
hosts:
  description:
    - With O(hosts), one entry per item, in the order of O(hosts) (in check mode, as they would be).
  returned: when O(hosts) is set
  type: list
  elements: dict
  contains:
    name:
      description: Name of the host (given, or derived from the initiator).
      type: str
      sample: rack1-node01
    state:
      description: The item's state, V(present) or V(absent).
      type: str
      sample: present
    host:
      description: The host after the task, with the keys of RV(host) (C(host_group) is always null); empty when there is none.
      type: dict
      sample: {id: 4, name: rack1-node01, type: Linux, host_group: null, iqns: [iqn.1994-05.com.redhat:rack1-node01], wwpns: [],
               named_from_initiator: false}
    mappings:
      description: Every mapping of the host after the task, by LUN, with the keys of RV(mappings).
      type: list
      elements: dict
      sample:
        - {volume: rack1-node01-boot, volume_id: 7, kind: volume, lun: 1, id: 11, scsi_sn: d5750007, volsnaps: null}
    protocol:
      description: Protocol of the host's C(connection_info), V(iscsi), V(fc), or null.
      type: str
      sample: iscsi
    connection_info:
      description: As RV(connection_info), for the item's volumes.
      type: dict
      returned: with O(connection_info=true), for an item with O(hosts[].volumes), O(hosts[].state=present) and a protocol
      sample:
        rack1-node01-boot:
          driver_volume_type: iscsi
          data: {target_iqn: iqn.2009-01.com.kaminario:storage.k2.54645, target_portal: 192.0.2.11:3260, target_lun: 1,
                 target_discovered: true}
rollback:
  description: After a failure, the undo steps run (newest first), each with its error or null; the task's message says the same.
  returned: when a failed task undid changes it had made
  type: list
  elements: dict
  sample: [{step: "delete the new hosts 'rack1-node01', 'rack1-node02'", error: null}]
actions:
  description: The plan, one entry per change (also in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - {action: create, resource: host, name: db01, attributes: {name: db01, type: Linux}}
    - {action: create, resource: host IQN, name: iqn.1994-05.com.redhat:db01, attributes: {iqn: iqn.1994-05.com.redhat:db01, host: db01}}
    - {action: create, resource: mapping, name: db01-data, attributes: {volume: db01-data, host: host db01, lun: 1}}
diff:
  description:
    - Before and after views of every object the task looked at, keyed by C(<resource> <name>).
    - With O(hosts), keyed by host name, each view holding C(type), C(iqns), C(wwpns) and C(mappings) (volume name to LUN).
  returned: always
  type: dict
  sample:
    before: {"host db01": {}, "mapping db01-data": {}}
    after: {"host db01": {name: db01, type: Linux}, "mapping db01-data": {volume: db01-data, host: host db01, lun: 1}}
k2_requests:
  description: REST requests sent to the array, in total and per HTTP method.
  returned: always
  type: dict
  sample: {total: 7, GET: 7}
'''

import re

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import (
    K2ConflictError, K2Error, chunks, make_ref, parse_ref, ref_id, ref_path, same_attributes,
)
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import K2Module
from ansible_collections.kaminario.k2.plugins.module_utils.k2_naming import (
    K2NamingError, initiator_host_name, is_valid_wwn, iscsi_name_key, validate_iqn, wwn_to_colon, wwn_to_hex,
)

NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]{1,42}$')
MIN_LUN = 1
MAX_LUN = 254
ISCSI_PORT = 3260
DEFAULT_HOST_TYPE = 'Linux'
# Options that describe one host: the list form (hosts) takes them per item instead.
SINGLE_ONLY = ('host', 'initiator', 'host_fqdn', 'host_group', 'iqns', 'wwpns', 'volumes')
# Task options that are the default of the hosts[] items that do not set them.
ITEM_DEFAULTS = ('unique_fqdn_network', 'host_type', 'exclusive', 'state', 'remove_empty_host')
# Objects per __bulk request.
BULK_CHUNK = 250
# Page size of searches that can return several objects per value (mappings of a host).
MANY_PAGE = 1000


def _few(names, limit=5):
    """``'a', 'b' and 3 more`` for messages about many objects."""
    names = list(names)
    text = ', '.join("'%s'" % n for n in names[:limit])
    return text + (' and %d more' % (len(names) - limit) if len(names) > limit else '')


class HostItem(object):
    """One entry of ``hosts``, with the task-level defaults filled in; planning fills the rest."""

    def __init__(self, index, spec):
        self.index = index
        self.label = 'hosts[%d]' % index
        self.spec = spec
        self.state = spec['state']
        self.host_name = None
        self.named_from_initiator = False
        self.initiator_kind = None
        self.iqns = []
        self.wwpns = []
        self.wanted = []             # [(volume name, lun or None)]
        self.host = None             # the host as read (or as created / predicted)
        self.cur_iqns = []
        self.cur_ports = []
        self.maps = []
        self.host_plan = None
        self.new_iqns = []
        self.new_ports = []
        self.final = {}              # ref path -> mapping entry, as it will be
        self.volumes = {}            # the listed volumes found, name -> info
        self.host_delete = None      # delete plan of an emptied host (absent)
        self.protocol = None
        self.iqn_plans = []
        self.port_plans = []
        self.map_plans = []
        self.other_names = {}        # ref path -> (name, kind) of mapped objects the item does not list

    def option(self, key):
        return '%s.%s' % (self.label, key)


class K2HostMapping(K2Module):

    def __init__(self):
        super(K2HostMapping, self).__init__(
            argument_spec=dict(
                host=dict(type='str'),
                initiator=dict(type='str'),
                host_fqdn=dict(type='str'),
                unique_fqdn_network=dict(type='bool', default=True),
                host_type=dict(type='str', choices=['Linux', 'Windows', 'ESX', 'AIX', 'Solaris']),
                host_group=dict(type='str'),
                iqns=dict(type='list', elements='str', default=[]),
                wwpns=dict(type='list', elements='str', default=[]),
                volumes=dict(type='list', elements='dict', default=[], options=dict(
                    name=dict(type='str', required=True),
                    lun=dict(type='int'),
                )),
                exclusive=dict(type='bool', default=False),
                state=dict(type='str', default='present', choices=['present', 'absent']),
                remove_empty_host=dict(type='bool', default=False),
                protocol=dict(type='str', choices=['iscsi', 'fc']),
                multipath=dict(type='bool', default=False),
                connection_info=dict(type='bool'),
                hosts=dict(type='list', elements='dict', options=dict(
                    host=dict(type='str'),
                    initiator=dict(type='str'),
                    host_fqdn=dict(type='str'),
                    unique_fqdn_network=dict(type='bool'),
                    host_type=dict(type='str', choices=['Linux', 'Windows', 'ESX', 'AIX', 'Solaris']),
                    host_group=dict(type='str'),
                    iqns=dict(type='list', elements='str', default=[]),
                    wwpns=dict(type='list', elements='str', default=[]),
                    volumes=dict(type='list', elements='dict', default=[], options=dict(
                        name=dict(type='str', required=True),
                        lun=dict(type='int'),
                    )),
                    exclusive=dict(type='bool'),
                    state=dict(type='str', choices=['present', 'absent']),
                    remove_empty_host=dict(type='bool'),
                )),
            ),
            mutually_exclusive=[('hosts', key) for key in SINGLE_ONLY],
            required_one_of=[('host', 'initiator', 'host_fqdn', 'host_group', 'hosts')],
        )
        self.list_form = self.params['hosts'] is not None
        if self.params['connection_info'] is None:
            # One host: connection_info unless turned off. The list form builds it only when asked for.
            self.params['connection_info'] = not self.list_form
        self.host_name = None
        self.named_from_initiator = False
        self.iqns = []
        self.wwpns = []
        self.initiator_kind = None
        self.created_host = False
        self.items_by_host = {}      # list form: host name -> HostItem, for messages about the item

    # ------------------------------------------------------------------ validation (no request)

    def validate(self):
        p = self.params
        try:
            if p['initiator'] is not None:
                if is_valid_wwn(p['initiator']):
                    self.initiator_kind = 'fc'
                else:
                    validate_iqn(p['initiator'], 'initiator')
                    self.initiator_kind = 'iscsi'
            if p['host'] is not None:
                self.host_name = p['host']
                if not NAME_RE.match(p['host']):
                    self.fail(self.bad_name('host', p['host']))
            elif p['initiator'] is not None or p['host_fqdn'] is not None:
                self.host_name = initiator_host_name(initiator=p['initiator'], host_fqdn=p['host_fqdn'],
                                                     unique_fqdn_network=p['unique_fqdn_network'])
                self.named_from_initiator = True
            iqns = list(p['iqns'])
            if self.initiator_kind == 'iscsi':
                iqns.insert(0, p['initiator'])
            seen = set()
            for value in iqns:
                iqn = validate_iqn(value, 'iqns')
                if iscsi_name_key(iqn) not in seen:
                    seen.add(iscsi_name_key(iqn))
                    self.iqns.append(iqn)
            for value in p['wwpns']:
                wwpn = wwn_to_colon(value, 'wwpns')
                if wwpn not in self.wwpns:
                    self.wwpns.append(wwpn)
        except K2NamingError as exc:
            self.fail(str(exc))
        if p['host_group'] and not NAME_RE.match(p['host_group']):
            self.fail(self.bad_name('host_group', p['host_group']))
        if self.host_name is None and (self.iqns or self.wwpns or p['host_type']):
            self.fail('iqns, wwpns and host_type describe a host: set host (or initiator) to say which one.')
        names, luns = {}, {}
        for index, item in enumerate(p['volumes']):
            name = (item['name'] or '').strip()
            if not name:
                self.fail('volumes[%d].name is empty: give the name of a volume, or <volume group>:<view> for a view.' % index)
            if name in names:
                self.fail("Volume '%s' is listed twice in volumes (entries %d and %d); list it once." % (name, names[name], index))
            names[name] = index
            lun = item.get('lun')
            if lun is not None:
                if not MIN_LUN <= lun <= MAX_LUN:
                    self.fail('volumes[%d].lun is %d: K2 LUNs go from %d to %d.' % (index, lun, MIN_LUN, MAX_LUN))
                if lun in luns:
                    self.fail("LUN %d is given to both '%s' and '%s' in volumes: a LUN maps one volume per host; "
                              "give each its own." % (lun, luns[lun], name))
                luns[lun] = name

    @staticmethod
    def bad_name(option, value):
        if len(value) > 42:
            return ("%s %r is too long (%d characters): K2 names are at most 42 characters from A-Z a-z 0-9 _ . -; "
                    "shorten it." % (option, value, len(value)))
        return "%s %r is not a valid K2 name: use 1 to 42 characters from A-Z a-z 0-9 _ . -." % (option, value)

    # ------------------------------------------------------------------ reads

    def read_host(self):
        """The host, its IQNs and WWPNs (three requests when it exists, one when not)."""
        host = self.client.get_by_name('hosts', self.host_name, fields=['name', 'type', 'host_group'])
        if host is None:
            return None, [], []
        host_ref = make_ref('hosts', host['id'])
        iqns = self.client.search('host_iqns', {'host': host_ref}, fields=['iqn'])
        ports = self.client.search('host_fc_ports', {'host': host_ref}, fields=['pwwn'])
        return host, iqns, ports

    def read_volumes(self, state):
        """``{name: {'ref', 'id', 'kind', 'scsi_sn'}}`` for the listed names; one request for volumes, one for views."""
        names = [item['name'].strip() for item in self.params['volumes']]
        vol_names = [n for n in names if ':' not in n]
        view_names = [n for n in names if ':' in n]
        found = {}
        if vol_names:
            for vol in self.client.search('volumes', {'name': vol_names}, fields=['name', 'scsi_sn']):
                found[vol['name']] = {'ref': make_ref('volumes', vol['id']), 'id': vol['id'], 'kind': 'volume',
                                      'scsi_sn': vol.get('scsi_sn')}
        if view_names:
            for snap in self.client.search('snapshots', {'name': view_names}, fields=['name', 'is_exposable']):
                if not snap.get('is_exposable'):
                    self.fail("'%s' is a snapshot, not a view: only views can be mapped. Create a view of it with "
                              "kaminario.k2.k2_snapshot (exposable: true, source_snapshot: %s) and map that."
                              % (snap['name'], snap['name'].split(':', 1)[1]))
                found[snap['name']] = {'ref': make_ref('snapshots', snap['id']), 'id': snap['id'], 'kind': 'view', 'scsi_sn': None,
                                       'volsnaps': []}
            views = [v for v in found.values() if v['kind'] == 'view']
            if views:
                # A view holds one image (volsnap) per volume of its group, each with its own SCSI serial:
                # what a host needs to find the view's devices. One request for every listed view.
                by_ref = dict((ref_path(v['ref']), v) for v in views)
                for image in self.client.search('volsnaps', {'snapshot': [v['ref'] for v in views]},
                                                fields=['snapshot', 'short_name', 'scsi_sn']):
                    owner = by_ref.get(ref_path(image['snapshot']))
                    if owner is not None:
                        owner['volsnaps'].append({'volume': image.get('short_name'), 'scsi_sn': image.get('scsi_sn')})
        missing = [n for n in names if n not in found]
        if missing and state == 'present':
            self.fail('Not on the array (option volumes): %s. Create the volumes first (kaminario.k2.k2_volume) and views '
                      'with kaminario.k2.k2_snapshot (a view is named <volume group>:<view>), or fix the names.'
                      % ', '.join("'%s'" % n for n in missing))
        return found

    def name_objects(self, refs):
        """Names of volumes and views by ref path, for mappings the task did not list (one request per kind)."""
        ids = {}
        for value in refs:
            resource, oid = parse_ref(value)
            ids.setdefault(resource, set()).add(oid)
        names = {}
        for resource in ('volumes', 'snapshots'):
            if ids.get(resource):
                for obj in self.client.search(resource, {'id': sorted(ids[resource])}, fields=['name']):
                    names[ref_path(make_ref(resource, obj['id']))] = (obj['name'], 'volume' if resource == 'volumes' else 'view')
        return names

    def owners(self, resource, field, values, label, own_ref):
        """Fail when an IQN or WWPN to add belongs to another host (one request, only when adding)."""
        taken = [o for o in self.client.search(resource, {field: values}, fields=[field, 'host'])
                 if o.get('host') is None or own_ref is None or ref_path(o['host']) != ref_path(own_ref)]
        if not taken:
            return
        host_ids = sorted(set(ref_id(o['host']) for o in taken if o.get('host')))
        hosts = dict((h['id'], h['name']) for h in self.client.search('hosts', {'id': host_ids}, fields=['name'])) if host_ids else {}
        if own_ref is None:
            # Another run has just created our host with these initiators: they are ours (creates re-read them).
            taken = [o for o in taken if not (o.get('host') and hosts.get(ref_id(o['host'])) == self.host_name)]
            if not taken:
                return
        what = ', '.join('%s (host %s)' % (o[field], hosts.get(ref_id(o['host']), ref_path(o['host'])) if o.get('host') else 'no host')
                         for o in taken)
        self.fail("%s already registered on the array for another host: %s. An initiator belongs to one host; remove it "
                  "from the other host first, or manage that host instead." % (label, what))

    # ------------------------------------------------------------------ protocol and connection info

    def pick_protocol(self, iqns, wwpns):
        p = self.params
        if p['protocol']:
            return p['protocol']
        if self.initiator_kind:
            return self.initiator_kind
        if iqns and not wwpns:
            return 'iscsi'
        if wwpns and not iqns:
            return 'fc'
        if iqns and wwpns:
            self.fail("Host '%s' has both iSCSI IQNs and FC WWPNs: set protocol (iscsi or fc) to say which "
                      "connection_info to return." % self.host_name)
        return None

    def targets(self, protocol):
        """The array side of connection_info: iSCSI portals and target IQN, or FC target WWNs (two or one request)."""
        if protocol == 'iscsi':
            ips = self.client.search('system/net_ips', fields=['ip_address', 'wan_port'])
            portals = ['%s:%d' % (ip['ip_address'], ISCSI_PORT) for ip in ips if ip.get('ip_address') and not ip.get('wan_port')]
            if not portals:
                self.fail('The array has no iSCSI address (system/net_ips without a WAN port), so no iSCSI connection_info '
                          'can be built. Configure iSCSI on the array, or use protocol: fc.')
            state = self.client.search('system/state', fields=['iscsi_qualified_target_name'])
            iqn = state[0].get('iscsi_qualified_target_name') if state else None
            if not iqn:
                self.fail('The array reports no iSCSI target IQN (system/state iscsi_qualified_target_name), so no iSCSI '
                          'connection_info can be built.')
            return {'portals': portals, 'iqn': iqn}
        ports = self.client.search('system/fc_ports', fields=['pwwn'])
        wwns = [port['pwwn'].replace(':', '').lower() for port in ports if port.get('pwwn')]
        if not wwns:
            self.fail('The array has no FC port WWN (system/fc_ports), so no FC connection_info can be built. '
                      'Use protocol: iscsi, or check the array FC ports.')
        return {'wwns': wwns}

    def connection_info(self, protocol, targets, lun, host_wwpns):
        if protocol == 'iscsi':
            portals, iqn = targets['portals'], targets['iqn']
            data = {'target_iqn': iqn, 'target_portal': portals[0], 'target_lun': lun, 'target_discovered': True}
            if self.params['multipath']:
                data.update(target_iqns=[iqn] * len(portals), target_portals=list(portals), target_luns=[lun] * len(portals))
            return {'driver_volume_type': 'iscsi', 'data': data}
        wwns = targets['wwns']
        return {'driver_volume_type': 'fibre_channel',
                'data': {'target_discovered': True, 'target_lun': lun, 'target_wwn': list(wwns),
                         'initiator_target_map': dict((wwn_to_hex(w), list(wwns)) for w in host_wwpns)}}

    # ------------------------------------------------------------------ work

    def work(self):
        if self.list_form:
            return self.work_list()
        self.validate()
        p = self.params
        host, cur_iqns, cur_ports = (None, [], [])
        if self.host_name is not None:
            host, cur_iqns, cur_ports = self.read_host()

        group = None
        if p['host_group']:
            group = self.client.get_by_name('host_groups', p['host_group'], fields=['name'])
        elif p['host_group'] is None and host is not None and host.get('host_group'):
            group_name = self.client.get('host_groups', ref_id(host['host_group']), fields=['name'])['name']
            self.fail("Host '%s' is a member of host group '%s', and K2 maps volumes to the group, not to its members: "
                      "set host_group: %s (the mappings then apply to every host of the group), or host_group: '' "
                      "to take the host out of the group." % (self.host_name, group_name, group_name))

        if p['state'] == 'absent':
            return self.absent(host, cur_iqns, cur_ports, group)
        return self.present(host, cur_iqns, cur_ports, group)

    # ------------------------------------------------------------------ present

    def present(self, host, cur_iqns, cur_ports, group):
        p = self.params
        volumes = self.read_volumes('present')
        group_wanted = bool(p['host_group'])

        # 1. host group
        group_plan = None
        if group_wanted:
            group_plan = self.plan(group and {'name': group['name']}, {'name': p['host_group']}, resource='host group')

        # 2. host
        host_plan = None
        if self.host_name is not None:
            current = None
            if host is not None:
                current = {'name': host['name'], 'type': host['type'], 'host_group': ''}
                if host.get('host_group'):
                    if group is not None and ref_id(host['host_group']) == group['id']:
                        current['host_group'] = group['name']
                    else:
                        current['host_group'] = self.client.get('host_groups', ref_id(host['host_group']), fields=['name'])['name']
            desired = {'name': self.host_name,
                       'type': p['host_type'] or (DEFAULT_HOST_TYPE if host is None else None),
                       'host_group': p['host_group'] if p['host_group'] is not None and (p['host_group'] or host is not None) else None}
            host_plan = self.plan(current, desired, resource='host')
            if host is not None and group_wanted and current['host_group'] != p['host_group']:
                own = self.client.search('mappings', {'host': make_ref('hosts', host['id'])}, fields=['volume', 'lun'])
                if own:
                    self.fail("Host '%s' has %d mapping(s) of its own, and K2 lets a host join a host group only without "
                              "them: unmap them first (state: absent, without host_group), then add the host to '%s'."
                              % (host['name'], len(own), p['host_group']))

        # 3. initiators
        have_iqns = set(iscsi_name_key(i['iqn']) for i in cur_iqns)
        new_iqns = [i for i in self.iqns if iscsi_name_key(i) not in have_iqns]
        have_ports = set(wwn_to_colon(w['pwwn']) for w in cur_ports if w.get('pwwn') and is_valid_wwn(w['pwwn']))
        new_ports = [w for w in self.wwpns if w not in have_ports]
        host_ref = make_ref('hosts', host['id']) if host is not None else None
        if new_iqns:
            self.owners('host_iqns', 'iqn', new_iqns, 'iSCSI initiator(s) of options initiator/iqns', host_ref)
        if new_ports:
            self.owners('host_fc_ports', 'pwwn', new_ports, 'FC port WWN(s) of option wwpns', host_ref)
        iqn_plans = [self.plan(None, {'iqn': i, 'host': self.host_name}, resource='host IQN', name_key='iqn') for i in new_iqns]
        port_plans = [self.plan(None, {'pwwn': w, 'host': self.host_name}, resource='host FC port', name_key='pwwn') for w in new_ports]

        # 4. mappings
        target_ref, target_label = self.target(host, group)
        maps = self.client.search('mappings', {'host': target_ref}, fields=['volume', 'lun']) if target_ref else []
        map_plans, final = self.plan_mappings(maps, volumes, target_label)

        # 5. protocol and array targets: all reads happen before the first write
        all_iqns = [i['iqn'] for i in cur_iqns] + new_iqns
        all_ports = [w['pwwn'] for w in cur_ports] + new_ports
        protocol = self.pick_protocol(all_iqns, all_ports) if self.host_name is not None or p['protocol'] else None
        targets = self.targets(protocol) if protocol and volumes and p['connection_info'] else None

        # 6. writes, in order; a new host is removed again if a later step fails
        if group_plan is not None:
            outcome = self.apply(group_plan, create=lambda body: self.client.create('host_groups', {'name': body['name']}))
            if group_plan.changed:
                group = outcome if self.writes_allowed() else {'id': None, 'name': p['host_group']}
        if host_plan is not None:
            before = host
            outcome = self.apply(host_plan, create=lambda body: self.create_host(body, group),
                                 update=lambda cur, changes: self.update_host(before, changes, group))
            if host_plan.changed:
                host = outcome if self.writes_allowed() else self.predicted_host(before, host_plan, group)
        host_ref = make_ref('hosts', host['id']) if host is not None and host.get('id') is not None else None
        for plan in iqn_plans:
            self.apply(plan, create=lambda body: self.add_initiator('host_iqns', {'iqn': body['iqn'], 'host': host_ref}))
        for plan in port_plans:
            self.apply(plan, create=lambda body: self.add_initiator('host_fc_ports', {'pwwn': body['pwwn'], 'host': host_ref}))
        target_ref, target_label = self.target(host, group)
        final = self.apply_mappings(map_plans, final, target_ref)

        result = {'host': self.host_result(host, group, [i['iqn'] for i in cur_iqns] + new_iqns,
                                           [w['pwwn'] for w in cur_ports] + new_ports),
                  'mappings': self.mapping_result(final, volumes), 'protocol': protocol}
        if group is not None and group_wanted:
            result['host_group'] = {'id': group.get('id'), 'name': group['name']}
        if protocol and targets:
            wwpns = self.wwpns or [w['pwwn'] for w in cur_ports]
            lun_of = dict((m['ref'], m['lun']) for m in final)
            result['connection_info'] = dict(
                (name, self.connection_info(protocol, targets, lun_of.get(ref_path(vol['ref'])), wwpns))
                for name, vol in volumes.items())
        return result

    def target(self, host, group):
        if self.params['host_group']:
            return (make_ref('host_groups', group['id']) if group is not None and group.get('id') is not None else None,
                    'host group %s' % self.params['host_group'])
        if host is not None and host.get('id') is not None:
            return make_ref('hosts', host['id']), 'host %s' % host['name']
        return None, 'host %s' % self.host_name

    def plan_mappings(self, maps, volumes, target_label, wanted=None, exclusive=None, names=None, where='volumes'):
        """Plans for the mappings (deletes first, then LUN moves in a safe order, then creates) and the mappings as they will be.

        The list form passes an item's ``wanted`` volumes, ``exclusive``, the ``names`` of unlisted mapped objects (read
        once for every host) and ``where`` (``hosts[i].volumes``) for the messages.
        """
        p = self.params
        if wanted is None:
            wanted = [(item['name'].strip(), item.get('lun')) for item in p['volumes']]
            exclusive = p['exclusive'] and p['state'] == 'present'
        wanted_refs = dict((ref_path(volumes[n]['ref']), n) for n, _lun in wanted if n in volumes)
        if names is None:
            unlisted = [m for m in maps if ref_path(m['volume']) not in wanted_refs]
            names = self.name_objects([m['volume'] for m in unlisted]) if unlisted else {}

        deletes = []
        remaining = {}
        for m in maps:
            path = ref_path(m['volume'])
            if path in wanted_refs:
                name = wanted_refs[path]
                kind = volumes[name]['kind']
            else:
                name, kind = names.get(path, (path, 'view' if path.startswith('/snapshots/') else 'volume'))
            entry = {'ref': path, 'name': name, 'kind': kind, 'volume_id': parse_ref(path)[1], 'lun': m.get('lun'), 'id': m['id']}
            if path not in wanted_refs and exclusive:
                current = {'volume': name, 'host': target_label, 'lun': m.get('lun')}
                deletes.append((self.plan(current, dict(current), state='absent', resource='mapping', name_key='volume'), entry))
            else:
                remaining[path] = entry

        # LUNs that stay taken: mappings this task keeps where they are. A listed mapping that moves to an
        # explicit LUN frees its old one; two listed volumes never ask for the same LUN (see validate).
        moving = dict((ref_path(volumes[n]['ref']), lun) for n, lun in wanted
                      if n in volumes and lun is not None and ref_path(volumes[n]['ref']) in remaining
                      and remaining[ref_path(volumes[n]['ref'])]['lun'] != lun)
        used = dict((e['lun'], e) for path, e in remaining.items() if e['lun'] is not None and path not in moving)
        moves, creates = [], []
        for index, (name, lun) in enumerate(wanted):
            if name not in volumes:
                continue
            path = ref_path(volumes[name]['ref'])
            holder = used.get(lun) if lun is not None else None
            if holder is not None and holder['ref'] != path:
                self.fail("LUN %d (%s[%d].lun, for '%s') is already used on %s by %s '%s'. Choose another LUN, or "
                          "unmap '%s' first (exclusive: true removes mappings that are not listed)."
                          % (lun, where, index, name, target_label, holder['kind'], holder['name'], holder['name']))
            existing = remaining.get(path)
            desired = {'volume': name, 'host': target_label, 'lun': lun}
            if existing is not None:
                plan = self.plan({'volume': name, 'host': target_label, 'lun': existing['lun']}, desired, resource='mapping',
                                 name_key='volume')
                if plan.changed:
                    moves.append((plan, existing))
                else:
                    self.record(plan)
            else:
                entry = {'ref': path, 'name': name, 'kind': volumes[name]['kind'], 'volume_id': volumes[name]['id'],
                         'lun': lun, 'id': None}
                creates.append((self.plan(None, desired, resource='mapping', name_key='volume'), entry))
        moves = self.order_moves(moves, target_label)
        for _plan, entry in moves:
            entry['lun'] = _plan.changes['lun']
        for _plan, entry in creates:
            remaining[entry['ref']] = entry
        return deletes + moves + creates, remaining

    def order_moves(self, moves, target_label):
        """Order LUN moves so that each goes to a LUN already free; a cycle (two volumes swapping LUNs) cannot be done."""
        held = dict((entry['lun'], entry['name']) for _plan, entry in moves)
        ordered = []
        pending = list(moves)
        while pending:
            ready = [(plan, entry) for plan, entry in pending if plan.changes['lun'] not in held]
            if not ready:
                names = ', '.join("'%s' (LUN %d to %d)" % (e['name'], e['lun'], plan.changes['lun']) for plan, e in pending)
                self.fail('The LUN changes on %s go round in a circle: %s. K2 cannot swap LUNs in one step; move one of '
                          'them to a free LUN in an earlier task.' % (target_label, names))
            for plan, entry in ready:
                held.pop(entry['lun'], None)
                held[plan.changes['lun']] = entry['name']
                ordered.append((plan, entry))
                pending.remove((plan, entry))
        return ordered

    def apply_mappings(self, plans, final, target_ref):
        new_host = self.created_host
        creates = [(plan, entry) for plan, entry in plans if plan.action == 'create']
        if len(creates) > 1:
            # Creates come last (see plan_mappings): two or more go to the array in one __bulk POST.
            plans = [(plan, entry) for plan, entry in plans if plan.action != 'create']
        else:
            creates = []
        for plan, entry in plans:
            if plan.action == 'delete':
                self.apply(plan, delete=lambda cur, e=entry: self.client.delete('mappings', e['id']))
                final.pop(entry['ref'], None)
            elif plan.action == 'update':
                answer = self.apply(plan, update=lambda cur, changes, e=entry: self.client.update('mappings', e['id'], {'lun': changes['lun']}))
                if self.writes_allowed() and isinstance(answer, dict) and 'id' in answer:
                    entry['lun'] = answer.get('lun', entry['lun'])
            else:
                answer = self.apply(plan, create=lambda body, e=entry: self.create_mapping(e, target_ref, body.get('lun'), new_host))
                if self.writes_allowed() and isinstance(answer, dict) and 'id' in answer:
                    entry['id'] = answer['id']
                    entry['lun'] = answer.get('lun', entry['lun'])
        if creates:
            answers = self.apply_many([plan for plan, _entry in creates],
                                      create=lambda bodies: self.create_mappings([entry for _plan, entry in creates], bodies, target_ref, new_host))
            for (_plan, entry), answer in zip(creates, answers):
                if self.writes_allowed() and isinstance(answer, dict) and 'id' in answer:
                    entry['id'] = answer['id']
                    entry['lun'] = answer.get('lun', entry['lun'])
        return sorted(final.values(), key=lambda e: (e['lun'] is None, e['lun'] or 0, e['name']))

    def create_mappings(self, entries, bodies, target_ref, new_host):
        """Create several mappings with ``POST /mappings/__bulk`` (chunked by the client); return them in order."""
        items = []
        for entry, body in zip(entries, bodies):
            item = {'volume': {'ref': entry['ref']}, 'host': target_ref}
            if body.get('lun') is not None:
                item['lun'] = body['lun']
            items.append(item)
        created = self.client.bulk_create('mappings', items, unique_field=('volume', 'host'))
        if new_host:
            for entry, mapping in zip(entries, created):
                self.undo.push('unmap %s from the new host' % entry['name'], self.client.delete, 'mappings', mapping['id'])
        return created

    def create_mapping(self, entry, target_ref, lun, new_host):
        body = {'volume': {'ref': entry['ref']}, 'host': target_ref}
        if lun is not None:
            body['lun'] = lun
        mapping = self.client.create('mappings', body, unique={'volume': body['volume'], 'host': target_ref})
        if new_host:
            # A failure later in this run unmaps again, so the new host can be deleted by the base's undo.
            self.undo.push('unmap %s from the new host' % entry['name'], self.client.delete, 'mappings', mapping['id'])
        return mapping

    def create_host(self, body, group):
        new = {'name': body['name'], 'type': body['type']}
        if body.get('host_group'):
            new['host_group'] = make_ref('host_groups', group['id'])
        host = self.client.create('hosts', new)
        if self.client.adopted('hosts', host['id']):
            return host          # another run created it just now: not ours to undo
        self.created_host = True
        self.undo.push("delete the new host '%s'" % host['name'], self.client.delete, 'hosts', host['id'])
        return host

    def update_host(self, host, changes, group):
        body = {}
        if 'type' in changes:
            body['type'] = changes['type']
        if 'host_group' in changes:
            body['host_group'] = make_ref('host_groups', group['id']) if changes['host_group'] else ''
        return self.client.update('hosts', host['id'], body)

    def add_initiator(self, resource, body):
        key = 'iqn' if resource == 'host_iqns' else 'pwwn'
        return self.client.create(resource, body, unique={key: body[key]})

    def predicted_host(self, host, plan, group):
        predicted = dict(host) if host is not None else {'id': None, 'name': self.host_name, 'host_group': None}
        changes = plan.body if plan.action == 'create' else plan.changes
        if 'type' in changes:
            predicted['type'] = changes['type']
        if 'host_group' in changes:
            predicted['host_group'] = make_ref('host_groups', group['id']) if changes['host_group'] and group.get('id') else None
            predicted['_group_name'] = changes['host_group'] or None
        return predicted

    def host_result(self, host, group, iqns, wwpns):
        if host is None:
            return {}
        group_name = None
        if '_group_name' in host:
            group_name = host['_group_name']
        elif host.get('host_group'):
            group_name = group['name'] if group is not None and group.get('id') == ref_id(host['host_group']) else ref_path(host['host_group'])
        return {'id': host.get('id'), 'name': host['name'], 'type': host.get('type'), 'host_group': group_name,
                'iqns': list(iqns), 'wwpns': [wwn_to_colon(w) if is_valid_wwn(w) else w for w in wwpns],
                'named_from_initiator': self.named_from_initiator}

    @staticmethod
    def mapping_result(final, volumes):
        listed = dict((ref_path(v['ref']), v) for v in volumes.values())
        return [{'volume': e['name'], 'volume_id': e['volume_id'], 'kind': e['kind'], 'lun': e['lun'], 'id': e['id'],
                 'scsi_sn': listed.get(e['ref'], {}).get('scsi_sn'), 'volsnaps': listed.get(e['ref'], {}).get('volsnaps')}
                for e in final]

    # ------------------------------------------------------------------ absent

    def absent(self, host, cur_iqns, cur_ports, group):
        p = self.params
        if self.host_name is not None and host is None and not p['host_group']:
            return {'host': {}, 'mappings': [], 'protocol': None}
        if p['host_group'] and group is None:
            return {'host': self.host_result(host, None, [i['iqn'] for i in cur_iqns], [w['pwwn'] for w in cur_ports]),
                    'mappings': [], 'protocol': None}
        volumes = self.read_volumes('absent')
        target_ref, target_label = self.target(host, group)
        maps = self.client.search('mappings', {'host': target_ref}, fields=['volume', 'lun'])
        listed = set(ref_path(v['ref']) for v in volumes.values())
        final = self.plan_absent(maps, volumes, listed, target_label)
        host_gone = False
        if host is not None and not p['host_group'] and not final and (self.named_from_initiator or p['remove_empty_host']):
            current = {'name': host['name'], 'type': host['type'], 'iqns': sorted(i['iqn'] for i in cur_iqns),
                       'wwpns': sorted(w['pwwn'] for w in cur_ports)}
            plan = self.plan(current, dict(current), state='absent', resource='host')
            self.apply(plan, delete=lambda cur: self.client.delete('hosts', host['id']))
            host_gone = True
        result = {'host': {} if host_gone else self.host_result(host, group, [i['iqn'] for i in cur_iqns], [w['pwwn'] for w in cur_ports]),
                  'mappings': self.mapping_result(final, volumes), 'protocol': None}
        if group is not None and p['host_group']:
            result['host_group'] = {'id': group['id'], 'name': group['name']}
        return result

    def plan_absent(self, maps, volumes, listed, target_label):
        by_path = dict((ref_path(v['ref']), n) for n, v in volumes.items())
        others = [m['volume'] for m in maps if ref_path(m['volume']) not in listed]
        names = self.name_objects(others) if others else {}
        final = []
        for m in maps:
            path = ref_path(m['volume'])
            if path in listed:
                name = by_path[path]
                current = {'volume': name, 'host': target_label, 'lun': m.get('lun')}
                plan = self.plan(current, dict(current), state='absent', resource='mapping', name_key='volume')
                self.apply(plan, delete=lambda cur, mid=m['id']: self.client.delete('mappings', mid))
                continue
            name, kind = names.get(path, (path, 'view' if path.startswith('/snapshots/') else 'volume'))
            final.append({'ref': path, 'name': name, 'kind': kind, 'volume_id': parse_ref(path)[1], 'lun': m.get('lun'), 'id': m['id']})
        return sorted(final, key=lambda e: (e['lun'] or 0, e['name']))

    # ------------------------------------------------------------------ list form (hosts)

    def work_list(self):
        """Many hosts in one task: validate every item, read everything in a few chunked searches, plan every change
        (and refuse any conflict) before the first write, then write with ``__bulk`` requests."""
        items = self.host_items()
        if not items:
            return {'hosts': [], 'diff': {'before': {}, 'after': {}}}
        with self.step('read the hosts, their initiators, the volumes and the mappings'):
            self.read_list(items)
            names = self.list_names(items)
            targets = self.list_targets(items)
            for item in items:
                item.other_names = names
                if item.state == 'present':
                    self.plan_list_present(item, names)
                else:
                    self.plan_list_absent(item, names)
        self.execute_list(items)
        results = [self.list_result(item, targets) for item in items]
        diff = {'before': dict((i.host_name, self.list_diff_view(i, after=False)) for i in items),
                'after': dict((i.host_name, self.list_diff_view(i, after=True)) for i in items)}
        return {'hosts': results, 'diff': diff}

    # validation (no request)

    def host_items(self):
        items = []
        for index, spec in self.list_items('hosts', ITEM_DEFAULTS):
            item = HostItem(index, spec)
            self.validate_item(item)
            items.append(item)
        names, iqns, wwpns = {}, {}, {}
        for item in items:
            if item.host_name in names:
                self.fail("%s and %s both name host '%s': list each host once (merge their volumes and initiators)."
                          % (names[item.host_name].label, item.label, item.host_name))
            names[item.host_name] = item
            for iqn in item.iqns:
                other = iqns.setdefault(iscsi_name_key(iqn), item)
                if other is not item:
                    self.fail('iSCSI initiator %s is given to both %s and %s: an initiator belongs to one host.'
                              % (iqn, other.label, item.label))
            for wwpn in item.wwpns:
                other = wwpns.setdefault(wwpn, item)
                if other is not item:
                    self.fail('FC port WWN %s is given to both %s and %s: a port belongs to one host.' % (wwpn, other.label, item.label))
        return items

    def validate_item(self, item):
        s = item.spec
        if s.get('host_group') is not None:
            self.fail("%s is not supported in the list form: host groups are managed one per task. Map to host group "
                      "'%s' with the single form (host_group: %s), or leave the host out of hosts."
                      % (item.option('host_group'), s['host_group'], s['host_group']))
        try:
            if s['initiator'] is not None:
                if is_valid_wwn(s['initiator']):
                    item.initiator_kind = 'fc'
                else:
                    validate_iqn(s['initiator'], item.option('initiator'))
                    item.initiator_kind = 'iscsi'
            if s['host'] is not None:
                item.host_name = s['host']
                if not NAME_RE.match(s['host']):
                    self.fail(self.bad_name(item.option('host'), s['host']))
            elif s['initiator'] is not None or s['host_fqdn'] is not None:
                item.host_name = initiator_host_name(initiator=s['initiator'], host_fqdn=s['host_fqdn'],
                                                     unique_fqdn_network=s['unique_fqdn_network'])
                item.named_from_initiator = True
            else:
                self.fail('%s names no host: set %s, %s or %s.'
                          % (item.label, item.option('host'), item.option('initiator'), item.option('host_fqdn')))
            iqns = list(s['iqns'])
            if item.initiator_kind == 'iscsi':
                iqns.insert(0, s['initiator'])
            seen = set()
            for value in iqns:
                iqn = validate_iqn(value, item.option('iqns'))
                if iscsi_name_key(iqn) not in seen:
                    seen.add(iscsi_name_key(iqn))
                    item.iqns.append(iqn)
            for value in s['wwpns']:
                wwpn = wwn_to_colon(value, item.option('wwpns'))
                if wwpn not in item.wwpns:
                    item.wwpns.append(wwpn)
        except K2NamingError as exc:
            self.fail('%s: %s' % (item.label, exc))
        where = item.option('volumes')
        names, luns = {}, {}
        for index, vol in enumerate(s['volumes']):
            name = (vol['name'] or '').strip()
            if not name:
                self.fail('%s[%d].name is empty: give the name of a volume, or <volume group>:<view> for a view.' % (where, index))
            if name in names:
                self.fail("Volume '%s' is listed twice in %s (entries %d and %d); list it once." % (name, where, names[name], index))
            names[name] = index
            lun = vol.get('lun')
            if lun is not None:
                if not MIN_LUN <= lun <= MAX_LUN:
                    self.fail('%s[%d].lun is %d: K2 LUNs go from %d to %d.' % (where, index, lun, MIN_LUN, MAX_LUN))
                if lun in luns:
                    self.fail("LUN %d is given to both '%s' and '%s' in %s: a LUN maps one volume per host; "
                              "give each its own." % (lun, luns[lun], name, where))
                luns[lun] = name
            item.wanted.append((name, lun))

    # reads: a few chunked searches for the whole list

    def search_in(self, resource, key, values, fields=None, unique=True):
        """Every object whose ``key`` is one of ``values`` (``K2Client.search_values``)."""
        return self.client.search_values(resource, key, values, fields=fields, unique=unique, many_page=MANY_PAGE)

    def read_list(self, items):
        hosts = dict((h['name'], h) for h in self.search_in('hosts', 'name', [i.host_name for i in items],
                                                            fields=['name', 'type', 'host_group']))
        existing = []
        for item in items:
            item.host = hosts.get(item.host_name)
            if item.host is not None:
                existing.append(item)
        grouped = [i for i in existing if i.host.get('host_group')]
        if grouped:
            groups = dict((g['id'], g['name']) for g in self.search_in(
                'host_groups', 'id', [ref_id(i.host['host_group']) for i in grouped], fields=['name']))
            item = grouped[0]
            group_name = groups.get(ref_id(item.host['host_group']), ref_path(item.host['host_group']))
            self.fail("Host '%s' (%s) is a member of host group '%s', and K2 maps volumes to the group, not to its "
                      "members; the list form does not manage host groups (%s). Map to the group with the single "
                      "form (host_group: %s), or take the host out of the group there (host_group: '')%s."
                      % (item.host_name, item.label, group_name, item.option('host_group'), group_name,
                         '' if len(grouped) == 1 else '; %d more listed hosts are group members: %s'
                         % (len(grouped) - 1, _few(i.host_name for i in grouped[1:]))))
        by_ref = dict((make_ref('hosts', i.host['id'])['ref'], i) for i in existing)
        if by_ref:
            for obj in self.search_in('host_iqns', 'host', list(by_ref), fields=['iqn', 'host'], unique=False):
                owner = by_ref.get(ref_path(obj['host'])) if obj.get('host') else None
                if owner is not None:
                    owner.cur_iqns.append(obj)
            for obj in self.search_in('host_fc_ports', 'host', list(by_ref), fields=['pwwn', 'host'], unique=False):
                owner = by_ref.get(ref_path(obj['host'])) if obj.get('host') else None
                if owner is not None:
                    owner.cur_ports.append(obj)
        present = [i for i in items if i.state == 'present']
        for item in present:
            have_iqns = set(iscsi_name_key(i['iqn']) for i in item.cur_iqns)
            item.new_iqns = [i for i in item.iqns if iscsi_name_key(i) not in have_iqns]
            have_ports = set(wwn_to_colon(w['pwwn']) for w in item.cur_ports if w.get('pwwn') and is_valid_wwn(w['pwwn']))
            item.new_ports = [w for w in item.wwpns if w not in have_ports]
        self.list_owners(present, 'host_iqns', 'iqn', 'new_iqns', 'iSCSI initiator(s)', 'iqns')
        self.list_owners(present, 'host_fc_ports', 'pwwn', 'new_ports', 'FC port WWN(s)', 'wwpns')
        found = self.read_volumes_list(items)
        for item in items:
            item.volumes = dict((n, found[n]) for n, _lun in item.wanted if n in found)
        if by_ref:
            for m in self.search_in('mappings', 'host', list(by_ref), fields=['volume', 'lun', 'host'], unique=False):
                owner = by_ref.get(ref_path(m['host'])) if m.get('host') else None
                if owner is not None:
                    owner.maps.append(m)

    def list_owners(self, items, resource, field, attr, label, option):
        """Fail when an IQN or WWPN an item adds belongs to another host (one chunked search, only when adding)."""
        wanted = {}
        for item in items:
            for value in getattr(item, attr):
                wanted[value] = item
        if not wanted:
            return
        self.foreign_initiators(wanted, self.search_in(resource, field, list(wanted), fields=[field, 'host']), field, label, option)

    def foreign_initiators(self, wanted, found, field, label, option, race=False):
        """Fail naming the first item when an initiator of ``wanted`` (``{value: item}``) in ``found`` is another host's.

        One registered on the item's own host, or on a host of the item's name (created by another run after this
        task read the hosts, which this task's create then uses), is the item's (creates re-read it).
        """
        key = iscsi_name_key if field == 'iqn' else (lambda v: wwn_to_colon(v) if is_valid_wwn(v) else v)
        by_key = dict((key(v), item) for v, item in wanted.items())
        mine = []
        for obj in found:
            item = by_key.get(key(obj[field]))
            own_id = (item.host or {}).get('id') if item is not None else None
            if item is not None and obj.get('host') and own_id is not None and ref_id(obj['host']) == own_id:
                mine.append(obj)
        taken = [o for o in found if o not in mine]
        if not taken:
            return
        host_ids = sorted(set(ref_id(o['host']) for o in taken if o.get('host')))
        hosts = dict((h['id'], h['name']) for h in self.search_in('hosts', 'id', host_ids, fields=['name'])) if host_ids else {}
        taken = [o for o in taken if not (o.get('host') and by_key.get(key(o[field])) is not None
                                          and hosts.get(ref_id(o['host'])) == by_key[key(o[field])].host_name)]
        if not taken:
            return
        first = min((by_key[key(o[field])] for o in taken if key(o[field]) in by_key), key=lambda i: i.index, default=None)
        what = ', '.join('%s (host %s)' % (o[field], hosts.get(ref_id(o['host']), ref_path(o['host'])) if o.get('host') else 'no host')
                         for o in taken)
        self.fail("%s already registered on the array for another host: %s%s%s. An initiator belongs to one host; remove it "
                  "from the other host first, or manage that host instead."
                  % (label, what, ' (%s)' % first.option(option) if first is not None else '',
                     ', registered there by another writer after this task read the array' if race else ''))

    def read_volumes_list(self, items):
        """``{name: {'ref', 'id', 'kind', 'scsi_sn'}}`` for every listed name of every item, in chunked searches."""
        names = set(n for item in items for n, _lun in item.wanted)
        vol_names = [n for n in names if ':' not in n]
        view_names = [n for n in names if ':' in n]
        found = {}
        for obj in self.search_in('volumes', 'name', vol_names, fields=['name', 'scsi_sn']) if vol_names else []:
            found[obj['name']] = {'ref': make_ref('volumes', obj['id']), 'id': obj['id'], 'kind': 'volume', 'scsi_sn': obj.get('scsi_sn')}
        if view_names:
            for snap in self.search_in('snapshots', 'name', view_names, fields=['name', 'is_exposable']):
                if not snap.get('is_exposable'):
                    users = [i.label for i in items if snap['name'] in dict(i.wanted)]
                    self.fail("'%s' (%s) is a snapshot, not a view: only views can be mapped. Create a view of it with "
                              "kaminario.k2.k2_snapshot (exposable: true, source_snapshot: %s) and map that."
                              % (snap['name'], ', '.join('%s.volumes' % u for u in users), snap['name'].split(':', 1)[1]))
                found[snap['name']] = {'ref': make_ref('snapshots', snap['id']), 'id': snap['id'], 'kind': 'view', 'scsi_sn': None,
                                       'volsnaps': []}
            views = dict((ref_path(v['ref']), v) for v in found.values() if v['kind'] == 'view')
            if views:
                for image in self.search_in('volsnaps', 'snapshot', list(views), fields=['snapshot', 'short_name', 'scsi_sn'],
                                            unique=False):
                    owner = views.get(ref_path(image['snapshot']))
                    if owner is not None:
                        owner['volsnaps'].append({'volume': image.get('short_name'), 'scsi_sn': image.get('scsi_sn')})
        missing = {}
        for item in items:
            if item.state == 'present':
                for n, _lun in item.wanted:
                    if n not in found:
                        missing.setdefault(n, []).append(item.option('volumes'))
        if missing:
            self.fail('Not on the array: %s. Create the volumes first (kaminario.k2.k2_volume) and views with '
                      'kaminario.k2.k2_snapshot (a view is named <volume group>:<view>), or fix the names.'
                      % ', '.join("'%s' (%s)" % (n, ', '.join(w)) for n, w in sorted(missing.items())))
        return found

    def list_names(self, items):
        """Names of the mapped volumes and views that no item lists for its host (one chunked search per kind)."""
        # Objects another item lists are known from the volume read already.
        names = dict((ref_path(v['ref']), (n, v['kind'])) for item in items for n, v in item.volumes.items())
        refs = []
        for item in items:
            refs.extend(m['volume'] for m in item.maps if ref_path(m['volume']) not in names)
        if not refs:
            return names
        ids = {}
        for value in refs:
            resource, oid = parse_ref(value)
            ids.setdefault(resource, set()).add(oid)
        for resource in ('volumes', 'snapshots'):
            if ids.get(resource):
                for obj in self.search_in(resource, 'id', ids[resource], fields=['name']):
                    names[ref_path(make_ref(resource, obj['id']))] = (obj['name'], 'volume' if resource == 'volumes' else 'view')
        return names

    def list_targets(self, items):
        """The array side of connection_info, read once for the whole list (only with connection_info: true)."""
        p = self.params
        wanted = {}
        for item in items:
            if item.state != 'present':
                continue
            all_iqns = [i['iqn'] for i in item.cur_iqns] + item.new_iqns
            all_ports = [w['pwwn'] for w in item.cur_ports] + item.new_ports
            if p['protocol']:
                item.protocol = p['protocol']
            elif item.initiator_kind:
                item.protocol = item.initiator_kind
            elif all_iqns and not all_ports:
                item.protocol = 'iscsi'
            elif all_ports and not all_iqns:
                item.protocol = 'fc'
            elif all_iqns and all_ports and p['connection_info'] and item.wanted:
                self.fail("Host '%s' (%s) has both iSCSI IQNs and FC WWPNs: set protocol (iscsi or fc) to say which "
                          "connection_info to return." % (item.host_name, item.label))
            if item.protocol and item.wanted and p['connection_info']:
                wanted[item.protocol] = True
        return dict((protocol, self.targets(protocol)) for protocol in ('iscsi', 'fc') if protocol in wanted)

    # planning (no write)

    def plan_list_present(self, item, names):
        s = item.spec
        host = item.host
        current = {'id': host['id'], 'name': host['name'], 'type': host['type']} if host is not None else None
        desired = {'name': item.host_name, 'type': s['host_type'] or (DEFAULT_HOST_TYPE if host is None else None)}
        item.host_plan = self.plan(current, desired, resource='host')
        item.iqn_plans = [self.plan(None, {'iqn': i, 'host': item.host_name}, resource='host IQN', name_key='iqn') for i in item.new_iqns]
        item.port_plans = [self.plan(None, {'pwwn': w, 'host': item.host_name}, resource='host FC port', name_key='pwwn')
                           for w in item.new_ports]
        label = 'host %s' % item.host_name
        item.map_plans, item.final = self.plan_mappings(item.maps, item.volumes, label, wanted=item.wanted,
                                                        exclusive=s['exclusive'], names=names, where=item.option('volumes'))

    def plan_list_absent(self, item, names):
        item.iqn_plans, item.port_plans, item.map_plans = [], [], []
        if item.host is None:
            return
        label = 'host %s' % item.host_name
        listed = dict((ref_path(v['ref']), n) for n, v in item.volumes.items())
        for m in item.maps:
            path = ref_path(m['volume'])
            if path in listed:
                current = {'volume': listed[path], 'host': label, 'lun': m.get('lun')}
                entry = {'ref': path, 'name': listed[path], 'id': m['id']}
                item.map_plans.append((self.plan(current, dict(current), state='absent', resource='mapping', name_key='volume'), entry))
                continue
            name, kind = names.get(path, (path, 'view' if path.startswith('/snapshots/') else 'volume'))
            item.final[path] = {'ref': path, 'name': name, 'kind': kind, 'volume_id': parse_ref(path)[1], 'lun': m.get('lun'), 'id': m['id']}
        if not item.final and (item.named_from_initiator or item.spec['remove_empty_host']):
            current = {'name': item.host['name'], 'type': item.host['type'], 'iqns': sorted(i['iqn'] for i in item.cur_iqns),
                       'wwpns': sorted(w['pwwn'] for w in item.cur_ports)}
            item.host_delete = self.plan(current, dict(current), state='absent', resource='host')

    # writes: __bulk requests, in the order hosts, initiators, unmaps, LUN moves, maps, host deletes

    def execute_list(self, items):
        present = [i for i in items if i.state == 'present']
        self.items_by_host = dict((i.host_name, i) for i in items)
        # 1. hosts (new ones, and type changes)
        plans = [i.host_plan for i in present]
        outcome = self.apply_many(plans, create=self.create_hosts,
                                  update=lambda pairs: self.bulk('update', 'hosts', [dict(changes, id=cur['id']) for cur, changes in pairs]))
        for item, host in zip(present, outcome):
            if item.host_plan.action == 'create':
                item.host = host if isinstance(host, dict) and host.get('id') is not None else dict(host or {}, id=None)
            elif item.host_plan.action == 'update' and isinstance(host, dict):
                item.host = dict(item.host, **dict((k, v) for k, v in host.items() if k in ('type', 'name')))
        host_ids = dict((i.host_name, i.host.get('id')) for i in present)
        # 2. initiators
        for attr, resource, field in (('iqn_plans', 'host_iqns', 'iqn'), ('port_plans', 'host_fc_ports', 'pwwn')):
            plans = [plan for i in present for plan in getattr(i, attr)]
            if plans:
                self.apply_many(plans, create=lambda bodies, r=resource, f=field: self.create_initiators(r, f, bodies, host_ids))
        # 3. unmaps (exclusive, absent), then LUN moves host by host in their safe order, then new mappings
        deletes = [(plan, entry) for i in items for plan, entry in i.map_plans if plan.action == 'delete']
        if deletes:
            self.apply_many([plan for plan, _e in deletes],
                            delete=lambda _cur: self.bulk('delete', 'mappings', [e['id'] for _p, e in deletes]))
            for item in items:
                for plan, entry in item.map_plans:
                    if plan.action == 'delete':
                        item.final.pop(entry['ref'], None)
        for item in present:
            for plan, entry in item.map_plans:
                if plan.action == 'update':
                    answer = self.apply(plan, update=lambda cur, changes, e=entry: self.client.update('mappings', e['id'], {'lun': changes['lun']}))
                    if self.writes_allowed() and isinstance(answer, dict) and 'id' in answer:
                        entry['lun'] = answer.get('lun', entry['lun'])
        # Explicit LUNs first, so that a LUN K2 picks for another new mapping of the same host cannot take one of them.
        creates = [(item, plan, entry) for item in present for plan, entry in item.map_plans if plan.action == 'create']
        creates.sort(key=lambda c: c[2]['lun'] is None)
        if creates:
            answers = self.apply_many([plan for _i, plan, _e in creates],
                                      create=lambda bodies: self.create_mappings_list(creates, host_ids))
            for (_item, _plan, entry), answer in zip(creates, answers):
                if self.writes_allowed() and isinstance(answer, dict) and 'id' in answer:
                    entry['id'] = answer['id']
                    entry['lun'] = answer.get('lun', entry['lun'])
        # 4. hosts left empty (absent)
        gone = [i for i in items if i.host_delete is not None]
        if gone:
            self.apply_many([i.host_delete for i in gone], delete=lambda _cur: self.bulk('delete', 'hosts', [i.host['id'] for i in gone]))

    def bulk(self, action, resource, values):
        """``bulk_update`` or ``bulk_delete`` in chunks; every chunk sent counts as a write."""
        out = []
        for chunk in chunks(values, BULK_CHUNK):
            if action == 'update':
                out.extend(self.client.bulk_update(resource, chunk, chunk_size=len(chunk)))
            else:
                self.client.bulk_delete(resource, chunk, chunk_size=len(chunk))
            self.note_write()
        return out

    # Creates that lose a "create if missing" race (another run made the object between our read and our POST)
    # re-read it and use it when it is what this task would have made (K2Client.bulk_create and create); such an
    # object is not this run's, so no undo step deletes it (K2Client.adopted). One that differs fails naming the item.

    def create_hosts(self, bodies):
        """``POST /hosts/__bulk``; each new host this run made is deleted again if a later step of this run fails."""
        made = {}
        for chunk in chunks(bodies, BULK_CHUNK):
            sent = [{'name': b['name'], 'type': b['type']} for b in chunk]
            try:
                created = self.client.bulk_create('hosts', sent, chunk_size=len(chunk))
            except K2ConflictError:
                self.host_race_failure(sent)
                raise
            self.note_write()
            ours = [h for h in created if not self.client.adopted('hosts', h['id'])]
            if ours:
                self.undo.push('delete the new hosts %s' % _few(h['name'] for h in ours),
                               self.bulk, 'delete', 'hosts', [h['id'] for h in ours])
            grouped = [h for h in created if h.get('host_group') and self.client.adopted('hosts', h['id'])]
            if grouped:
                item = self.items_by_host[grouped[0]['name']]
                self.fail("Host '%s' (%s) was created by another writer after this task read the hosts, as a member of a "
                          "host group; the list form does not manage host groups (%s). Map to the group with the single "
                          "form (host_group), or take the host out of the group there (host_group: '')."
                          % (item.host_name, item.label, item.option('host_group')))
            made.update((h['name'], h) for h in created)
        return [made.get(b['name']) for b in bodies]

    def host_race_failure(self, sent):
        """A host another writer created meanwhile, unlike the one this task creates: fail naming the item."""
        found = dict((h['name'], h) for h in self.search_in('hosts', 'name', [b['name'] for b in sent], fields=['name', 'type']))
        for body in sent:
            host = found.get(body['name'])
            if host is not None and not same_attributes(host, body):
                item = self.items_by_host[body['name']]
                self.fail("Host '%s' (%s) was created by another writer after this task read the hosts, with type %s where "
                          "this task creates type %s: set %s: %s, or change the host type on the array."
                          % (item.host_name, item.label, host.get('type'), body['type'], item.option('host_type'), host.get('type')))

    def create_initiators(self, resource, field, bodies, host_ids):
        made = {}
        items = [{field: b[field], 'host': make_ref('hosts', host_ids[b['host']])} for b in bodies]
        owner = dict((b[field], self.items_by_host[b['host']]) for b in bodies)
        for chunk in chunks(items, BULK_CHUNK):
            try:
                created = self.client.bulk_create(resource, chunk, unique_field=field, chunk_size=len(chunk))
            except K2ConflictError:
                # Registered meanwhile for another host: name the item and that host.
                values = [o[field] for o in chunk]
                self.foreign_initiators(dict((v, owner[v]) for v in values),
                                        self.search_in(resource, field, values, fields=[field, 'host']), field,
                                        'iSCSI initiator(s)' if field == 'iqn' else 'FC port WWN(s)',
                                        'iqns' if field == 'iqn' else 'wwpns', race=True)
                raise
            self.note_write()
            ours = [o for o in created if not self.client.adopted(resource, o['id'])]
            if ours:
                self.undo.push('remove the new %s %s' % ('IQNs' if field == 'iqn' else 'FC ports', _few(o[field] for o in ours)),
                               self.bulk, 'delete', resource, [o['id'] for o in ours])
            made.update((o[field], o) for o in created)
        return [made.get(b[field]) for b in bodies]

    def create_mappings_list(self, creates, host_ids):
        """``POST /mappings/__bulk`` for every new mapping of every host; returned in the order of ``creates``.

        A chunk refused because another run mapped some of its volumes meanwhile (a __bulk is all or nothing, and a
        mapping has no single unique key to re-read a batch by) is created one mapping at a time, in the same order
        (explicit LUNs first): a refused one is re-read by volume and host and used when it is what this task asks
        for. A LUN taken meanwhile by another volume fails naming the item and the LUN.
        """
        made = {}
        work = []
        for item, _plan, entry in creates:
            body = {'volume': {'ref': entry['ref']}, 'host': make_ref('hosts', host_ids[item.host_name])}
            if entry['lun'] is not None:
                body['lun'] = entry['lun']
            work.append((item, entry, body))
        for chunk in chunks(work, BULK_CHUNK):
            try:
                created = self.client.bulk_create('mappings', [b for _i, _e, b in chunk], unique_field=None, chunk_size=len(chunk))
            except K2ConflictError:
                created = [self.create_mapping_item(item, entry, body) for item, entry, body in chunk]
            except K2Error as exc:
                if exc.k2_code == 'MC_ERR_LUN_IN_USE':
                    self.lun_race_failure(chunk)
                raise
            else:
                self.note_write()
                if created:
                    self.undo.push('unmap the %d new mapping(s)' % len(created), self.bulk, 'delete', 'mappings', [m['id'] for m in created])
            for m in created:
                made[(ref_path(m['host']), ref_path(m['volume']))] = m
        return [made.get((b['host']['ref'], b['volume']['ref'])) for _i, _e, b in work]

    def create_mapping_item(self, item, entry, body):
        """One mapping of a refused chunk: created, or (made meanwhile by another run as this task asks) used."""
        try:
            mapping = self.client.create('mappings', body, unique={'volume': body['volume'], 'host': body['host']})
        except K2ConflictError:
            found = self.client.find_one('mappings', {'volume': body['volume'], 'host': body['host']}, fields=['lun'])
            if found is not None and body.get('lun') is not None:
                self.fail("'%s' (%s) was mapped to host %s at LUN %s by another writer after this task read the host, "
                          "where this task maps it at LUN %d: set %s to %s, or unmap it first."
                          % (entry['name'], self.volume_option(item, entry), item.host_name, found.get('lun'), body['lun'],
                             self.volume_option(item, entry, 'lun'), found.get('lun')))
            raise
        except K2Error as exc:
            if exc.k2_code == 'MC_ERR_LUN_IN_USE':
                self.lun_race_failure([(item, entry, body)])
            raise
        self.note_write()
        if not self.client.adopted('mappings', mapping['id']):
            self.undo.push("unmap '%s' from host %s" % (entry['name'], item.host_name), self.client.delete, 'mappings', mapping['id'])
        return mapping

    def lun_race_failure(self, chunk):
        """An explicit LUN that another volume took on the host after this task read it: fail naming the item and the LUN."""
        explicit = [(item, entry, body) for item, entry, body in chunk if body.get('lun') is not None]
        if not explicit:
            return
        held = {}
        for m in self.search_in('mappings', 'host', sorted(set(b['host']['ref'] for _i, _e, b in explicit)),
                                fields=['volume', 'lun', 'host'], unique=False):
            held[(ref_path(m['host']), m.get('lun'))] = m
        for item, entry, body in explicit:
            holder = held.get((body['host']['ref'], body['lun']))
            if holder is None or ref_path(holder['volume']) == entry['ref']:
                continue
            resource, oid = parse_ref(holder['volume'])
            named = self.search_in(resource, 'id', [oid], fields=['name']) if resource in ('volumes', 'snapshots') else []
            name = named[0]['name'] if named else ref_path(holder['volume'])
            kind = 'view' if resource == 'snapshots' else 'volume'
            self.fail("LUN %d (%s, for '%s') was taken on host %s by %s '%s' after this task read the host (another "
                      "writer mapped it meanwhile). Choose another LUN, or unmap '%s' first."
                      % (body['lun'], self.volume_option(item, entry, 'lun'), entry['name'], item.host_name, kind, name, name))

    @staticmethod
    def volume_option(item, entry, key=None):
        """``hosts[i].volumes[j]`` (or ``...[j].lun``) of a mapping entry."""
        index = [n for n, _lun in item.wanted].index(entry['name'])
        return '%s[%d]%s' % (item.option('volumes'), index, '.' + key if key else '')

    # results

    def list_result(self, item, targets):
        out = {'name': item.host_name, 'state': item.state}
        final = sorted(item.final.values(), key=lambda e: (e['lun'] is None, e['lun'] or 0, e['name']))
        if item.state == 'absent':
            gone = item.host is None or item.host_delete is not None
            out['host'] = {} if gone else self.list_host_view(item, [i['iqn'] for i in item.cur_iqns], [w['pwwn'] for w in item.cur_ports])
            out['mappings'] = self.mapping_result(final, item.volumes)
            out['protocol'] = None
            return out
        wwpns = [w['pwwn'] for w in item.cur_ports] + item.new_ports
        out['host'] = self.list_host_view(item, [i['iqn'] for i in item.cur_iqns] + item.new_iqns, wwpns)
        out['mappings'] = self.mapping_result(final, item.volumes)
        out['protocol'] = item.protocol
        if item.protocol in targets and item.volumes:
            lun_of = dict((e['ref'], e['lun']) for e in final)
            out['connection_info'] = dict(
                (name, self.connection_info(item.protocol, targets[item.protocol], lun_of.get(ref_path(vol['ref'])), item.wwpns or wwpns))
                for name, vol in item.volumes.items())
        return out

    @staticmethod
    def list_host_view(item, iqns, wwpns):
        host = item.host or {}
        return {'id': host.get('id'), 'name': item.host_name, 'type': host.get('type'), 'host_group': None,
                'iqns': list(iqns), 'wwpns': [wwn_to_colon(w) if is_valid_wwn(w) else w for w in wwpns],
                'named_from_initiator': item.named_from_initiator}

    @staticmethod
    def list_diff_view(item, after):
        """One host of the diff: its type, initiators and mappings ({volume: LUN}) before or after the task."""
        if not after:
            if item.host_plan is not None and item.host_plan.action == 'create' or item.host is None and item.state == 'absent':
                return {}
            names = dict((ref_path(v['ref']), n) for n, v in item.volumes.items())
            maps = dict((names.get(ref_path(m['volume'])) or item.other_names.get(ref_path(m['volume']), (ref_path(m['volume']),))[0],
                         m.get('lun')) for m in item.maps)
            return {'type': item.host.get('type'), 'iqns': sorted(i['iqn'] for i in item.cur_iqns),
                    'wwpns': sorted(wwn_to_colon(w['pwwn']) if is_valid_wwn(w['pwwn']) else w['pwwn'] for w in item.cur_ports),
                    'mappings': maps}
        if item.state == 'absent' and (item.host is None or item.host_delete is not None):
            return {}
        return {'type': item.host.get('type') if item.host else None,
                'iqns': sorted([i['iqn'] for i in item.cur_iqns] + list(item.new_iqns)),
                'wwpns': sorted([wwn_to_colon(w['pwwn']) if is_valid_wwn(w['pwwn']) else w['pwwn'] for w in item.cur_ports] + list(item.new_ports)),
                'mappings': dict((e['name'], e['lun']) for e in item.final.values())}


def main():
    K2HostMapping().run()


if __name__ == '__main__':
    main()
