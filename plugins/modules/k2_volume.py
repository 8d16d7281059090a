#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k2_volume
short_description: Manage volumes on a Kaminario K2 array, one or many per task
version_added: 1.0.0
description:
  - Creates, grows, renames, adopts and deletes K2 volumes, and the volume groups that hold them.
  - Every K2 volume lives in a volume group; snapshots, restores and replication work on whole groups.
    When O(volume_group) is not given, each volume gets a B(dedicated group) of its own, named by the rule
    C(<volume name>_vg) (the way the OpenStack Cinder K2 driver keeps one group per volume). The module renames
    that group with the volume and deletes it with the volume. A group with any other name is never renamed nor
    deleted by this module.
  - Idempotent. A run that changes nothing sends only reads, usually two requests for a single volume (the volume
    and its group); an unmapped volume needs no more, a mapped one two more (its mappings and the host names).
  - With O(volumes), many volumes are handled in one task. One chunked read plans them all (K2 C(name__in)
    searches), every item is validated before anything is written, and the changes go to the array as
    C(__bulk) requests, so a thousand volumes cost a handful of requests.
  - Sizes only grow. A smaller O(size) fails and changes nothing.
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
extends_documentation_fragment:
  - kaminario.k2.k2
  - kaminario.k2.k2.attributes
options:
  name:
    description:
      - Name of the volume. 1 to 42 characters from C(A-Z a-z 0-9 _ . -).
      - With a dedicated group (O(volume_group) not given) the name can have at most 39 characters, so that the
        group name C(<name>_vg) fits in 42.
      - Mutually exclusive with O(volumes); one of the two is required.
    type: str
  state:
    description:
      - V(present) creates the volume or brings it to the given attributes.
      - V(absent) deletes the volume, and its dedicated group when it has one. A mapped volume, or one whose group
        has snapshots, is refused unless O(force) is set.
      - With O(volumes), the default state of the items.
    type: str
    choices: [present, absent]
    default: present
  size:
    description:
      - Size of the volume. Required to create one.
      - A number of bytes (V(10737418240)), or a number with a unit, V(10GiB), V(500 GB), V(1.5TiB). Binary units
        are V(KiB MiB GiB TiB PiB) and the short forms V(K M G T P), which are binary too (V(10G) is 10 GiB);
        V(KB MB GB TB PB) are decimal. The size must be a whole number of KiB, the unit of the K2 API; it is never
        rounded.
      - A larger size than the current one grows the volume. A smaller one fails and changes nothing, because K2
        volumes cannot shrink.
      - With O(volumes), the default size of the items.
    type: raw
  volume_group:
    description:
      - Name of the volume group that holds the volume.
      - When the group does not exist, the module creates it (with O(dedup)) unless O(create_group=false).
        Such a group is not dedicated, it stays when the volume is deleted.
      - When not given, a new volume gets its dedicated group C(<name>_vg), created with it and deleted with it.
      - For an existing volume, the group is checked, never changed. A volume in another group fails;
        moving volumes between groups is not done by this module.
      - With O(volumes), the default group of the items.
    type: str
  create_group:
    description:
      - Whether to create O(volume_group) when no group has that name.
      - Set V(false) to require an existing group, so that a typo in the name fails instead of creating a group.
      - With O(volumes), the default of the items.
    type: bool
    default: true
  dedup:
    description:
      - Whether the volume's group deduplicates data (the group's C(is_dedup)).
      - Used when the module creates a group; a new group deduplicates when this is not set (as Cinder does).
      - For an existing group, a different value fails and changes nothing. K2 cannot change the dedup
        setting of a group; move the data with the C(kaminario.k2.migrate) role instead.
      - When not set, the dedup setting of an existing group is not checked.
      - With O(volumes), the default of the items.
    type: bool
  description:
    description:
      - Free text description of the volume. When not set, the description is left as it is.
      - With O(volumes), the default of the items.
    type: str
  read_only:
    description:
      - Whether hosts see the volume read-only. When not set, it is left as it is (new volumes are writable).
      - With O(volumes), the default of the items.
    type: bool
  new_name:
    description:
      - Rename the volume named O(name) to this name. The volume's dedicated group is renamed with it to
        C(<new_name>_vg); any other group keeps its name.
      - When no volume is called O(name) but one is called O(new_name), the rename is already done and nothing
        changes. When neither exists, the volume is created as O(new_name).
      - Only with O(state=present).
    type: str
  force:
    description:
      - With O(state=absent), also delete a volume that is mapped to hosts or whose group has snapshots.
      - The volume's mappings are removed first. When the volume's group is its dedicated group, the group's
        views are unmapped and its views and snapshots deleted before the group.
        Snapshots of a group that holds other volumes are kept, as they belong to those volumes too.
      - Without O(force), such a volume is refused with a message that names it and what holds it.
      - With O(volumes), the default of the items.
    type: bool
    default: false
  adopt_from:
    description:
      - Bring an existing array volume with this name under management as O(name), the way Cinder's
        C(manage_existing) does.
      - The same checks, in the same order, must pass; the first that fails stops the task with nothing changed.
        The group's dedup setting equals O(dedup) (only checked when O(dedup) is set); the group is not replicated;
        the volume is not mapped; the group holds only this volume.
      - Then the group is renamed to O(volume_group), or to the dedicated name C(<name>_vg) when O(volume_group)
        is not set, and the volume to O(name). If the volume rename fails, the group gets its old name back.
      - The result reports the size rounded up to whole GiB in RV(adopted.size_gib), as Cinder's
        C(manage_existing_get_size) does.
      - When the volume O(name) already exists and O(adopt_from) does not, the adoption is already done and the
        task carries on with the other options. When both exist, the task fails.
      - Only with O(state=present) and O(name).
    type: str
  volumes:
    description:
      - Manage many volumes in one task. Each item takes the same keys as the module (except O(adopt_from)); an
        item key that is not set takes the module-level option of the same name.
      - Items may mix states. Two items may not name the same volume. An empty list changes nothing and sends no request.
      - All items are read and validated before anything is written; any invalid item fails the whole task
        with nothing changed, and the message names the item.
      - Mutually exclusive with O(name), O(new_name) and O(adopt_from).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the volume, as O(name).
        type: str
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
      size:
        description: As O(size).
        type: raw
      volume_group:
        description: As O(volume_group).
        type: str
      create_group:
        description: As O(create_group).
        type: bool
      dedup:
        description: As O(dedup).
        type: bool
      description:
        description: As O(description).
        type: str
      read_only:
        description: As O(read_only).
        type: bool
      new_name:
        description: As O(new_name).
        type: str
      force:
        description: As O(force).
        type: bool
notes:
  - K2 names are unique per kind of object. This module accepts 1 to 42 characters from C(A-Z a-z 0-9 _ . -) for
    volume and group names, the longest names the Cinder driver creates, and refuses C(CTRL), the array's system volume.
  - The result's RV(k2_requests) counts the REST requests the task sent.
seealso:
  - module: kaminario.k2.k2_host_mapping
  - module: kaminario.k2.k2_snapshot
  - module: kaminario.k2.k2_facts
'''

EXAMPLES = r'''
- name: Provision volumes
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2.example.com
      k2_username: "{{ k2_user }}"
      k2_password: "{{ k2_pass }}"
      ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: A 100 GiB volume in its own dedicated group (db01_vg)
      kaminario.k2.k2_volume:
        name: db01
        size: 100GiB
      register: db01

    - name: Show its SCSI serial, for udev rules on the host
      ansible.builtin.debug:
        msg: "{{ db01.volume.scsi_sn }}"

    - name: Grow it (shrinking fails and changes nothing)
      kaminario.k2.k2_volume:
        name: db01
        size: 200GiB

    - name: Three volumes of one database in a shared, non-dedup group, created with them
      kaminario.k2.k2_volume:
        volume_group: oradb
        dedup: false
        size: 500GiB
        volumes:
          - name: oradb-data1
          - name: oradb-data2
          - name: oradb-redo
            size: 50GiB

    - name: Rename a volume; its dedicated group db01_vg becomes db-main_vg
      kaminario.k2.k2_volume:
        name: db01
        new_name: db-main

    - name: Take over a volume made outside Ansible (checks as Cinder manage_existing)
      kaminario.k2.k2_volume:
        name: web01
        adopt_from: legacy-vol-17
      register: adopted

    - name: Size of the adopted volume in whole GiB (adopted is returned only by the run that adopts)
      ansible.builtin.debug:
        msg: "{{ adopted.adopted.size_gib }}"
      when: adopted.adopted is defined

    - name: One task for a thousand volumes, a few bulk requests (scratch_volumes is a list of {name, size}, from inventory)
      kaminario.k2.k2_volume:
        size: 10GiB
        volumes: "{{ scratch_volumes }}"

    - name: Delete a volume even though it is mapped and has snapshots
      kaminario.k2.k2_volume:
        name: db-main
        state: absent
        force: true

    - name: Preview a change without touching the array
      kaminario.k2.k2_volume:
        name: db02
        size: 1TiB
      check_mode: true
      diff: true
      register: preview
'''

RETURN = r'''
volume:
  description:
    - The volume after the task (in check mode, as it would be). With O(state=absent), only C(name) and C(state).
    - Returned when O(name) is used.
  returned: when O(name) is used
  type: dict
  contains:
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    id:
      description: K2 id of the volume; V(null) in check mode for a volume not created yet.
      type: int
      sample: 12
    name:
      description: Name of the volume.
      type: str
      sample: db01
    size_kib:
      description: Size in KiB, the unit of the K2 API.
      type: int
      sample: 104857600
    size_bytes:
      description: Size in bytes.
      type: int
      sample: 107374182400
    size:
      description: Size in the largest binary unit that keeps the number short.
      type: str
      sample: 100 GiB
    volume_group:
      description: Name of the volume group that holds the volume.
      type: str
      sample: db01_vg
    volume_group_id:
      description: K2 id of the volume group; V(null) in check mode for a group not created yet.
      type: int
      sample: 9
    dedicated_group:
      description: Whether the group is the volume's dedicated group (named C(<name>_vg)), deleted with the volume.
      type: bool
      sample: true
    dedup:
      description: Whether the volume's group deduplicates data.
      type: bool
      sample: true
    description:
      description: Description of the volume.
      type: str
      sample: main database
    read_only:
      description: Whether the volume is exposed read-only.
      type: bool
      sample: false
    scsi_sn:
      description: SCSI serial number K2 gives the volume (what hosts see, for example in C(/dev/disk/by-id)); V(null) until created.
      type: str
      sample: d5750006
    mappings:
      description: Hosts and host groups the volume is mapped to, with the LUN of each.
      type: list
      elements: dict
      sample: [{"host": "web01", "type": "host", "lun": 1}]
      contains:
        host:
          description: Name of the host or host group.
          type: str
        type:
          description: V(host) or V(host_group).
          type: str
        lun:
          description: LUN the volume has on that host or host group.
          type: int
volumes:
  description:
    - One entry per item of O(volumes), in the same order, each shaped like RV(volume).
  returned: when O(volumes) is used
  type: list
  elements: dict
  sample: [{"state": "present", "id": 12, "name": "oradb-data1", "size_kib": 524288000, "size_bytes": 536870912000,
            "size": "500 GiB", "volume_group": "oradb", "volume_group_id": 9, "dedicated_group": false, "dedup": false,
            "description": null, "read_only": false, "scsi_sn": "d5750006", "mappings": []}]
adopted:
  description: What O(adopt_from) took over.
  returned: when O(adopt_from) adopted a volume (also in check mode)
  type: dict
  contains:
    source_name:
      description: Name the volume had before.
      type: str
      sample: legacy-vol-17
    source_volume_group:
      description: Name its group had before.
      type: str
      sample: legacy-vg-17
    size_gib:
      description: Size in whole GiB, rounded up, as Cinder's manage_existing_get_size reports it.
      type: int
      sample: 20
actions:
  description:
    - The plan, one entry per change (also in check mode). C(action) is one of C(create), C(update), C(rename),
      C(delete), C(adopt); C(resource) is C(volume), C(volume_group), C(mapping) or C(snapshot).
    - Empty when nothing changes.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "create", "resource": "volume_group", "name": "db01_vg", "attributes": {"name": "db01_vg", "quota": 0, "is_dedup": true}},
           {"action": "create", "resource": "volume", "name": "db01", "attributes": {"name": "db01", "size": 104857600}}]
diff:
  description:
    - Before and after views of the volume (with O(name)), or of every volume keyed by name (with O(volumes)).
      A volume that does not exist is an empty dict.
  returned: always
  type: dict
  sample: {"before": {"name": "db01", "size_kib": 104857600, "size": "100 GiB", "volume_group": "db01_vg", "dedup": true,
                      "description": null, "read_only": false},
           "after": {"name": "db01", "size_kib": 209715200, "size": "200 GiB", "volume_group": "db01_vg", "dedup": true,
                     "description": null, "read_only": false}}
k2_requests:
  description: REST requests the task sent to the array, in total and per HTTP method.
  returned: always
  type: dict
  sample: {"total": 2, "GET": 2}
'''

import re

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import chunks, make_ref, parse_ref, ref_id, ref_path
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import K2Module
from ansible_collections.kaminario.k2.plugins.module_utils.k2_sizes import K2SizeError, format_kib, kib_to_bytes, kib_to_gib_ceil, size_to_kib

NAME_MAX = 42
NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]+$')
DEDICATED_SUFFIX = '_vg'
SYSTEM_VOLUME = 'CTRL'
# Objects per __bulk request.
BULK_CHUNK = 250
ITEM_KEYS = ('state', 'size', 'volume_group', 'create_group', 'dedup', 'description', 'read_only', 'force')


def dedicated_group_name(volume_name):
    """The rule: the dedicated group of volume ``v`` is ``v_vg``."""
    return volume_name + DEDICATED_SUFFIX


class VolumeError(Exception):
    """An item that cannot be done; the message names the item and the fix."""


class Item(object):
    """One volume spec, with the module-level defaults filled in and sizes parsed."""

    def __init__(self, index, label, spec):
        self.index = index
        self.label = label
        self.name = spec['name']
        self.new_name = spec.get('new_name')
        self.adopt_from = spec.get('adopt_from')
        self.state = spec['state']
        self.size_kib = spec['size_kib']
        self.volume_group = spec['volume_group']
        self.create_group = spec['create_group']
        self.dedup = spec['dedup']
        self.description = spec['description']
        self.read_only = spec['read_only']
        self.force = spec['force']
        # Filled by planning.
        self.current = None          # the volume as K2 has it (before), or None
        self.group = None            # its group (existing, or the body of the group to create)
        self.group_key = None        # name of the group the volume goes in / is in
        self.dedicated = False
        self.after_group_name = None
        self.mappings = []
        self.volume_plan = None
        self.result = None
        self.adopted = None
        self.delete_group = None     # dedicated group deleted with the volume
        self.force_snapshots = False  # its snapshots and views are deleted first

    @property
    def target(self):
        return self.new_name or self.name

    def option(self, key):
        return '%s.%s' % (self.label, key) if self.label else key

    def err(self, message, hint=None):
        where = "volume '%s'" % self.target
        if self.label:
            where = '%s (%s)' % (where, self.label)
        return VolumeError('%s: %s%s' % (where, message, (' ' + hint) if hint else ''))


class K2Volume(K2Module):

    def __init__(self):
        item_options = dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent']),
            size=dict(type='raw'),
            volume_group=dict(type='str'),
            create_group=dict(type='bool'),
            dedup=dict(type='bool'),
            description=dict(type='str'),
            read_only=dict(type='bool'),
            new_name=dict(type='str'),
            force=dict(type='bool'),
        )
        super(K2Volume, self).__init__(
            argument_spec=dict(
                name=dict(type='str'),
                state=dict(type='str', default='present', choices=['present', 'absent']),
                size=dict(type='raw'),
                volume_group=dict(type='str'),
                create_group=dict(type='bool', default=True),
                dedup=dict(type='bool'),
                description=dict(type='str'),
                read_only=dict(type='bool'),
                new_name=dict(type='str'),
                force=dict(type='bool', default=False),
                adopt_from=dict(type='str'),
                volumes=dict(type='list', elements='dict', options=item_options),
            ),
            mutually_exclusive=[('name', 'volumes'), ('new_name', 'volumes'), ('adopt_from', 'volumes'), ('new_name', 'adopt_from')],
            required_one_of=[('name', 'volumes')],
        )
        self.list_form = self.params['volumes'] is not None
        self.items = []
        self.volumes = {}            # name -> volume (read)
        self.groups = {}             # id -> group (read or created)
        self._groups_index = None    # name -> group, for the results (see _group_named)
        self.groups_by_name = {}     # name -> group (read)
        self.groups_before = {}      # id -> group as read, for the diff
        self.mappings = {}           # volume ref path -> mappings
        self.hosts = {}              # ref path -> name
        self.new_groups = {}         # name -> body of groups to create
        self.group_renames = []      # (group, new name)
        self.group_deletes = {}      # id -> group
        self.mapping_deletes = {}    # id -> mapping
        self.snapshot_deletes = {}   # id -> snapshot

    # ------------------------------------------------------------------ validation

    def _items(self):
        p = self.params
        if not self.list_form:
            specs = [(None, dict((k, p[k]) for k in ITEM_KEYS + ('name', 'new_name', 'adopt_from')))]
        else:
            specs = [('volumes[%d]' % index, spec) for index, spec in self.list_items('volumes', ITEM_KEYS)]
        items = []
        for index, (label, spec) in enumerate(specs):
            items.append(self._item(index, label, spec))
        seen = {}
        for item in items:
            for name in set([item.name, item.target]):
                if name in seen:
                    raise item.err("the name '%s' is also used by %s; each volume may appear in one item only." % (name, seen[name].label))
                seen[name] = item
        return items

    def _item(self, index, label, spec):
        where = label + '.' if label else ''
        size = spec.get('size')
        if size is not None:
            try:
                spec['size_kib'] = size_to_kib(size, where + 'size')
            except K2SizeError as exc:
                raise VolumeError(str(exc))
        else:
            spec['size_kib'] = None
        item = Item(index, label, spec)
        self._check_name(item, item.name, 'name')
        if item.new_name is not None:
            self._check_name(item, item.new_name, 'new_name')
            if item.state == 'absent':
                raise item.err("new_name renames a volume and cannot be used with state absent.", 'Remove new_name, or set state: present.')
        if item.adopt_from is not None:
            self._check_name(item, item.adopt_from, 'adopt_from', reserved_ok=False)
            if item.state == 'absent':
                raise item.err("adopt_from takes over a volume and cannot be used with state absent.", 'Set state: present.')
        if item.volume_group is not None:
            self._check_name(item, item.volume_group, 'volume_group', group=True)
        elif item.state == 'present':
            for key in ('name', 'new_name'):
                value = getattr(item, key)
                if value is not None and len(dedicated_group_name(value)) > NAME_MAX:
                    raise item.err("%s '%s' has %d characters, so its dedicated volume group '%s' would have more than %d."
                                   % (item.option(key), value, len(value), dedicated_group_name(value), NAME_MAX),
                                   'Use a name of at most %d characters, or give volume_group.' % (NAME_MAX - len(DEDICATED_SUFFIX)))
        return item

    def _check_name(self, item, value, key, group=False, reserved_ok=False):
        option = item.option(key)
        if not value:
            raise VolumeError("%s is empty: give a name of 1 to %d characters." % (option, NAME_MAX))
        if len(value) > NAME_MAX:
            raise VolumeError("%s '%s' is too long: %d characters, K2 allows at most %d." % (option, value, len(value), NAME_MAX))
        if not NAME_RE.match(value):
            raise VolumeError("%s '%s' has characters K2 does not accept: use only A-Z a-z 0-9 _ . -" % (option, value))
        if not group and not reserved_ok and value == SYSTEM_VOLUME:
            raise VolumeError("%s '%s' is the array's system volume, which cannot be managed; choose another name." % (option, value))

    # ------------------------------------------------------------------ reading

    def _read(self):
        names = set()
        for item in self.items:
            names.update(n for n in (item.name, item.new_name, item.adopt_from) if n)
        for vol in self.client.search_values('volumes', 'name', names):
            self.volumes[vol['name']] = vol
        # The group of every existing volume (by id), then every group name the plan may need (by name): the group
        # a new volume goes in, the name a dedicated group is renamed to, a dedicated group left without its volume.
        group_ids = set(ref_id(vol['volume_group']) for vol in (self._existing(i) for i in self.items)
                        if vol is not None and vol.get('volume_group'))
        if group_ids:
            for group in self.client.search_values('volume_groups', 'id', group_ids):
                self.groups[group['id']] = group
        wanted_names = set()
        for item in self.items:
            vol = self._existing(item)
            group = self._group_of(vol) if vol is not None else None
            if vol is None:
                if item.volume_group:
                    if item.state == 'present':
                        wanted_names.add(item.volume_group)
                else:
                    wanted_names.add(dedicated_group_name(item.target if item.state == 'present' else item.name))
            elif item.state == 'present' and group is not None and vol['name'] != item.target:
                if item.adopt_from and vol['name'] == item.adopt_from:
                    wanted_names.add(item.volume_group or dedicated_group_name(item.name))
                elif item.volume_group is None and group['name'] == dedicated_group_name(vol['name']):
                    wanted_names.add(dedicated_group_name(item.target))
        wanted_names -= set(g['name'] for g in self.groups.values())
        if wanted_names:
            for group in self.client.search_values('volume_groups', 'name', wanted_names):
                self.groups[group['id']] = group
        self.groups_by_name = dict((g['name'], g) for g in self.groups.values())
        self.groups_before = dict(self.groups)
        # Mappings only of volumes whose group says it has mapped hosts (or does not say).
        mapped = [vol for vol in (self._existing(i) for i in self.items) if vol is not None and self._maybe(self._group_of(vol), 'mapped_hosts_count')]
        self.mappings = {}
        if mapped:
            for m in self.client.search_values('mappings', 'volume', [make_ref('volumes', v['id'])['ref'] for v in mapped], unique=False):
                self.mappings.setdefault(ref_path(m['volume']), []).append(m)
            self._read_hosts([m for ms in self.mappings.values() for m in ms])

    def _read_hosts(self, mappings):
        by_kind = {}
        for m in mappings:
            kind, oid = parse_ref(m['host'])
            by_kind.setdefault(kind, set()).add(oid)
        for kind in ('hosts', 'host_groups'):
            if by_kind.get(kind):
                for obj in self.client.search_values(kind, 'id', by_kind[kind], fields=['id', 'name']):
                    self.hosts[make_ref(kind, obj['id'])['ref']] = obj['name']

    @staticmethod
    def _maybe(group, key):
        """True when the group's counter is positive or the array does not report it."""
        if group is None:
            return False
        value = group.get(key)
        return value is None or int(value) > 0

    def _existing(self, item):
        """The volume the item is about: ``new_name`` when that exists, else ``name`` (else the adopt source)."""
        if item.new_name and item.new_name in self.volumes:
            return self.volumes[item.new_name]
        if item.name in self.volumes:
            return self.volumes[item.name]
        if item.adopt_from and item.adopt_from in self.volumes:
            return self.volumes[item.adopt_from]
        return None

    def _group_of(self, vol):
        return self.groups.get(ref_id(vol.get('volume_group'))) if vol.get('volume_group') else None

    # ------------------------------------------------------------------ planning

    def _plan_item(self, item):
        if item.new_name and item.new_name in self.volumes and item.name in self.volumes:
            raise item.err("both %s '%s' and %s '%s' exist, so the rename cannot happen."
                           % (item.option('name'), item.name, item.option('new_name'), item.new_name),
                           'Delete or rename one of them first.')
        if item.adopt_from and item.name in self.volumes and item.adopt_from in self.volumes:
            raise item.err("both '%s' (adopt_from) and '%s' exist; the adoption would need the name '%s' that is taken."
                           % (item.adopt_from, item.name, item.name), 'Rename or delete one of them, or drop adopt_from.')
        if item.adopt_from and item.name not in self.volumes and item.adopt_from not in self.volumes:
            raise item.err("adopt_from names the volume '%s', which does not exist on the array." % item.adopt_from,
                           'Check the name of the volume to adopt.')
        vol = self._existing(item)
        item.current = vol
        if item.state == 'absent':
            return self._plan_absent(item, vol)
        if vol is None:
            return self._plan_create(item)
        return self._plan_existing(item, vol)

    def _desired(self, item, name):
        return {'name': name, 'size': item.size_kib, 'description': item.description, 'read_only': item.read_only}

    def _plan_create(self, item):
        if item.size_kib is None:
            raise item.err('it does not exist, and size is needed to create it.', 'Give size, for example size: 10GiB.')
        if item.volume_group is not None:
            name, item.dedicated = item.volume_group, item.volume_group == dedicated_group_name(item.target)
        else:
            name, item.dedicated = dedicated_group_name(item.target), True
        group = self.groups_by_name.get(name)
        if group is not None:
            self._check_dedup(item, group)
            if item.volume_group is None and self._maybe(group, 'volumes_count'):
                raise item.err("its dedicated volume group '%s' already exists and holds other volumes." % name,
                               'Give volume_group to use that group on purpose, or another volume name.')
            item.group = group
        elif name in self.new_groups:
            body = self.new_groups[name]
            if item.dedup is not None and body['is_dedup'] != item.dedup:
                raise item.err("volume group '%s' is created by this task with dedup %s, and this item asks for %s."
                               % (name, body['is_dedup'], item.dedup), 'Give the items of one group the same dedup.')
            item.group = body
        else:
            if item.volume_group is not None and not item.create_group:
                raise item.err("%s '%s' does not exist and create_group is false." % (item.option('volume_group'), name),
                               'Check the group name, or set create_group: true to create it.')
            body = {'name': name, 'quota': 0, 'is_dedup': True if item.dedup is None else item.dedup}
            self.new_groups[name] = body
            self.record(self.plan(None, body, resource='volume_group', sizes=()))
            item.group = body
        item.group_key = name
        item.after_group_name = name
        desired = self._desired(item, item.target)
        item.volume_plan = self.plan(None, desired, resource='volume', sizes=())
        self.record(item.volume_plan)

    def _check_dedup(self, item, group):
        if item.dedup is not None and group.get('is_dedup') is not None and bool(group['is_dedup']) != item.dedup:
            raise item.err("its volume group '%s' has dedup %s and the task asks for dedup %s; K2 cannot change the dedup "
                           "setting of a group." % (group['name'], str(bool(group['is_dedup'])).lower(), str(item.dedup).lower()),
                           'Keep dedup: %s, or copy the data to a volume in a group with the other setting with the '
                           'kaminario.k2.migrate role.' % str(bool(group['is_dedup'])).lower())

    def _plan_existing(self, item, vol):
        group = self._group_of(vol)
        if group is None:
            raise item.err("its volume group %s could not be read." % (ref_path(vol.get('volume_group')),), 'Re-run the task.')
        item.group = group
        item.group_key = group['name']
        if item.adopt_from is not None and vol['name'] == item.adopt_from:
            return self._plan_adopt(item, vol, group)
        self._check_dedup(item, group)
        if item.volume_group is not None and group['name'] != item.volume_group:
            raise item.err("it is in volume group '%s', not '%s'; this module does not move volumes between groups."
                           % (group['name'], item.volume_group), 'Set volume_group: %s, or move the data with the kaminario.k2.migrate role.' % group['name'])
        renaming = vol['name'] != item.target
        item.dedicated = group['name'] == dedicated_group_name(vol['name'])
        item.after_group_name = group['name']
        if renaming and item.volume_group is None and item.dedicated:
            self._plan_group_rename(item, group, dedicated_group_name(item.target))
        elif not renaming:
            item.dedicated = group['name'] == dedicated_group_name(item.target)
        self._check_grow(item, vol)
        item.volume_plan = self.plan(vol, self._desired(item, item.target), resource='volume', sizes=(), grow_only=('size',))
        self.record(item.volume_plan)
        item.mappings = self.mappings.get(make_ref('volumes', vol['id'])['ref'], [])

    def _plan_group_rename(self, item, group, new_name):
        other = self.groups_by_name.get(new_name)
        if other is not None and other['id'] != group['id']:
            raise item.err("its volume group would be renamed to '%s', but a volume group with that name exists." % new_name,
                           'Give volume_group to keep the current group name, or delete or rename that group.')
        if new_name in self.new_groups:
            raise item.err("its volume group would be renamed to '%s', which another item creates." % new_name, 'Use other names.')
        plan = self.plan(group, {'name': new_name}, resource='volume_group', sizes=())
        self.record(plan)
        self.group_renames.append((group, new_name))
        item.after_group_name = new_name
        item.dedicated = True

    def _check_grow(self, item, vol):
        if item.size_kib is not None and vol.get('size') is not None and item.size_kib < int(vol['size']):
            raise item.err('it is %s (%d KiB) and %s asks for %s (%d KiB); K2 volumes cannot shrink, so nothing was changed.'
                           % (format_kib(vol['size']), int(vol['size']), item.option('size'), format_kib(item.size_kib), item.size_kib),
                           'Give a size of at least %s, or create a new volume and copy the data.' % format_kib(vol['size']))

    def _plan_adopt(self, item, vol, group):
        """Cinder's manage_existing checks, in its order, then renames of the group and the volume."""
        vol_ref = make_ref('volumes', vol['id'])
        reason = None
        if item.dedup is not None and bool(group.get('is_dedup')) != item.dedup:
            reason = 'its volume group %s has dedup %s and dedup is %s' % (
                group['name'], str(bool(group.get('is_dedup'))).lower(), str(item.dedup).lower())
        elif group.get('replication_session'):
            reason = 'its volume group %s is replicated (replication session %s)' % (group['name'], ref_path(group['replication_session']))
        elif self.client.count('mappings', {'volume': vol_ref}) != 0:
            reason = 'it is mapped to hosts (attached)'
        else:
            nvol = self.client.count('volumes', {'volume_group': make_ref('volume_groups', group['id'])})
            if nvol != 1:
                reason = 'its volume group %s holds %d volumes, not only this one' % (group['name'], nvol)
        if reason:
            raise item.err("cannot adopt '%s': %s." % (item.adopt_from, reason),
                           'Only an unmapped, unreplicated volume alone in its group can be adopted; fix that on the array first.')
        target_group = item.volume_group or dedicated_group_name(item.name)
        item.adopted = {'source_name': vol['name'], 'source_volume_group': group['name'], 'size_gib': kib_to_gib_ceil(vol['size'])}
        self.result['actions'].append(dict(action='adopt', resource='volume', name=vol['name'], new_name=item.name,
                                           volume_group=target_group, size_gib=item.adopted['size_gib']))
        self.result['changed'] = True
        item.after_group_name = group['name']
        if group['name'] != target_group:
            self._plan_group_rename(item, group, target_group)
        item.dedicated = target_group == dedicated_group_name(item.name)
        self._check_grow(item, vol)
        item.volume_plan = self.plan(vol, self._desired(item, item.name), resource='volume', sizes=(), grow_only=('size',))
        self.record(item.volume_plan)

    def _plan_absent(self, item, vol):
        if vol is None:
            # A dedicated group left over (a previous run deleted the volume, then failed): remove it if empty.
            group = None if item.volume_group else self.groups_by_name.get(dedicated_group_name(item.name))
            if group is not None and all(group.get(k) == 0 for k in ('volumes_count', 'snapshots_count', 'views_count')):
                item.group = group
                item.delete_group = group
                self.group_deletes[group['id']] = group
            item.volume_plan = self.plan(None, {'name': item.name}, state='absent', resource='volume', sizes=())
            return
        group = self._group_of(vol)
        item.group = group
        if item.volume_group is not None and group is not None and group['name'] != item.volume_group:
            raise item.err("it is in volume group '%s', not '%s', so it was not deleted." % (group['name'], item.volume_group),
                           'Check volume_group, or leave it out.')
        vol_ref = make_ref('volumes', vol['id'])['ref']
        item.mappings = self.mappings.get(vol_ref, [])
        if item.mappings and not item.force:
            raise item.err('it is mapped to %s, so it was not deleted.' % self._describe_mappings(item.mappings),
                           'Unmap it first (kaminario.k2.k2_host_mapping), or set force: true to unmap and delete it.')
        has_snapshots = group is not None and (self._maybe(group, 'snapshots_count') or self._maybe(group, 'views_count'))
        dedicated = group is not None and group['name'] == dedicated_group_name(vol['name'])
        delete_group = dedicated and group.get('volumes_count') in (None, 1)
        if has_snapshots and not item.force:
            if group.get('snapshots_count') is None and group.get('views_count') is None:
                has_snapshots = bool(self.client.count('snapshots', {'volume_group': make_ref('volume_groups', group['id'])}))
            if has_snapshots:
                raise item.err("its volume group '%s' has snapshots or views, so it was not deleted." % group['name'],
                               'Delete them first (kaminario.k2.k2_snapshot), or set force: true to %s.'
                               % ('delete them with the volume and its group' if delete_group else
                                  "delete the volume anyway (the group's snapshots are kept for its other volumes)"))
        for m in item.mappings:
            self._plan_delete_object(m, 'mapping', '%s on %s' % (vol['name'], self._host_name(m)), self.mapping_deletes)
        # Recorded by _finish_plan, after the snapshots, in the order the deletes run.
        item.volume_plan = self.plan(vol, {'name': vol['name']}, state='absent', resource='volume', sizes=())
        if delete_group:
            item.force_snapshots = has_snapshots and item.force
            item.delete_group = group
            self.group_deletes[group['id']] = group

    def _plan_delete_object(self, obj, resource, name, into):
        if obj['id'] in into:
            return
        into[obj['id']] = obj
        self.record(self.plan(obj, {'name': name}, state='absent', resource=resource, sizes=()))

    def _finish_plan(self):
        """Deletes, in the order they run: (with force) the snapshots and views of dedicated groups and the
        mappings of those views, then the volumes, then the groups."""
        groups = [i.delete_group for i in self.items if i.force_snapshots]
        if groups:
            snaps = self.client.search_values('snapshots', 'volume_group', [make_ref('volume_groups', g['id'])['ref'] for g in groups], unique=False)
            views = [s for s in snaps if s.get('is_exposable')]
            if views:
                view_maps = self.client.search_values('mappings', 'volume', [make_ref('snapshots', v['id'])['ref'] for v in views], unique=False)
                self._read_hosts(view_maps)
                for m in view_maps:
                    self._plan_delete_object(m, 'mapping', '%s on %s' % (ref_path(m['volume']), self._host_name(m)), self.mapping_deletes)
            # Views first: they depend on their snapshots.
            for snap in sorted(snaps, key=lambda s: (not s.get('is_exposable'), s['id'])):
                self._plan_delete_object(snap, 'snapshot', snap.get('name') or snap.get('short_name'), self.snapshot_deletes)
        for item in self.items:
            if item.volume_plan is not None and item.volume_plan.action == 'delete':
                self.record(item.volume_plan)
        for group in self.group_deletes.values():
            self.record(self.plan(group, {'name': group['name']}, state='absent', resource='volume_group', sizes=()))

    def _host_name(self, mapping):
        path = ref_path(mapping['host'])
        return self.hosts.get(path, path)

    def _describe_mappings(self, mappings):
        return ', '.join('%s %s (LUN %s)' % ('host group' if ref_path(m['host']).startswith('/host_groups/') else 'host', self._host_name(m), m.get('lun'))
                         for m in mappings)

    # ------------------------------------------------------------------ writing

    def _create_many(self, resource, bodies):
        """Create objects: one POST each in the single form, __bulk POSTs in the list form."""
        created = []
        if not self.list_form:
            for body in bodies:
                created.append(self.client.create(resource, body))
                self.note_write()
            return created
        for chunk in chunks(bodies, BULK_CHUNK):
            created.extend(self.client.bulk_create(resource, chunk, chunk_size=len(chunk)))
            self.note_write()
        return created

    def _update_many(self, resource, changes):
        updated = []
        if not self.list_form:
            for change in changes:
                change = dict(change)
                updated.append(self.client.update(resource, change.pop('id'), change))
                self.note_write()
            return updated
        for chunk in chunks(changes, BULK_CHUNK):
            updated.extend(self.client.bulk_update(resource, chunk, chunk_size=len(chunk)))
            self.note_write()
        return updated

    def _delete_many(self, resource, ids):
        ids = list(ids)
        if not self.list_form:
            for oid in ids:
                self.client.delete(resource, oid)
                self.note_write()
            return
        for chunk in chunks(ids, BULK_CHUNK):
            self.client.bulk_delete(resource, chunk, chunk_size=len(chunk))
            self.note_write()

    def _execute(self):
        created_groups = {}
        pending = {}         # group name -> id: groups created by this task that hold no new volume yet
        with self.rollback() as undo:
            bodies = list(self.new_groups.values())
            if bodies:
                try:
                    for group in self._create_many('volume_groups', bodies):
                        created_groups[group['name']] = group
                        if not self.client.adopted('volume_groups', group['id']):
                            pending[group['name']] = group['id']     # not one another run made just now
                        self.groups[group['id']] = group
                finally:
                    # Also groups created by an earlier chunk when a later chunk fails.
                    undo.push('delete the volume groups created for volumes that could not be created',
                              lambda: self._delete_many('volume_groups', sorted(pending.values())))
            renames = [dict(id=g['id'], name=new) for g, new in self.group_renames]
            if renames:
                for group in self._update_many('volume_groups', renames):
                    self.groups[group['id']] = group
                old_names = [dict(id=g['id'], name=g['name']) for g, _new in self.group_renames]
                undo.push('give the volume groups their old names back', lambda: self._update_many('volume_groups', old_names))
            creates = [i for i in self.items if i.volume_plan is not None and i.volume_plan.action == 'create']
            new_bodies = []
            for item in creates:
                group = created_groups.get(item.group_key) or self.groups_by_name.get(item.group_key)
                body = dict(item.volume_plan.body)
                body['volume_group'] = make_ref('volume_groups', group['id'])
                new_bodies.append((item, body))
            for chunk in chunks(new_bodies, BULK_CHUNK):
                made = dict((v['name'], v) for v in self._create_many('volumes', [b for _i, b in chunk]))
                for item, _body in chunk:
                    item.result = made.get(item.target)
                    pending.pop(item.group_key, None)
            updates = [i for i in self.items if i.volume_plan is not None and i.volume_plan.action == 'update']
            if updates:
                changes = [dict(i.volume_plan.changes, id=i.current['id']) for i in updates]
                made = dict((v['id'], v) for v in self._update_many('volumes', changes))
                for item in updates:
                    item.result = made.get(item.current['id'])
            pending.clear()
        if self.mapping_deletes:
            self._delete_many('mappings', sorted(self.mapping_deletes))
        if self.snapshot_deletes:
            snaps = sorted(self.snapshot_deletes.values(), key=lambda s: (not s.get('is_exposable'), s['id']))
            self._delete_many('snapshots', [s['id'] for s in snaps])
        deletes = [i.current['id'] for i in self.items if i.volume_plan is not None and i.volume_plan.action == 'delete']
        if deletes:
            self._delete_many('volumes', deletes)
        if self.group_deletes:
            self._delete_many('volume_groups', sorted(self.group_deletes))

    # ------------------------------------------------------------------ results

    def _view(self, item, after):
        """The volume as returned (after=True) or as it was (after=False, for the diff)."""
        if not after:
            vol = item.current
            if vol is None:
                return {}
            group = self.groups_before.get(ref_id(vol.get('volume_group'))) if vol.get('volume_group') else None
            group = group or {}
            return self._shape(vol, group.get('name'), group.get('id'), group.get('is_dedup'), self._mapping_views(item))
        if item.state == 'absent':
            return {'state': 'absent', 'name': item.name}
        plan = item.volume_plan
        vol = item.result if item.result is not None else plan.predicted()
        vol = dict(vol)
        vol.setdefault('name', item.target)
        # Groups created or renamed by this run are in self.groups under their new names; in check mode the
        # group is the one read (renamed only in the prediction) or the body of the group to create.
        group = self._group_named(item.after_group_name) or item.group or {}
        return self._shape(vol, item.after_group_name, group.get('id'), group.get('is_dedup'), self._mapping_views(item),
                           dedicated=item.dedicated)

    def _group_named(self, name):
        """The first group in ``self.groups`` called ``name``, from an index built once the changes are made
        (``work`` resets it); a scan per volume made the result of 10,000 volumes quadratic."""
        if self._groups_index is None:
            self._groups_index = {}
            for g in self.groups.values():
                self._groups_index.setdefault(g['name'], g)
        return self._groups_index.get(name)

    def _mapping_views(self, item):
        out = []
        for m in item.mappings:
            path = ref_path(m['host'])
            out.append({'host': self.hosts.get(path, path), 'type': 'host_group' if path.startswith('/host_groups/') else 'host',
                        'lun': m.get('lun')})
        return sorted(out, key=lambda x: (x['host'], x['lun'] or 0))

    @staticmethod
    def _shape(vol, group_name, group_id, dedup, mappings, dedicated=None):
        size = vol.get('size')
        view = {
            'state': 'present',
            'id': vol.get('id'),
            'name': vol.get('name'),
            'size_kib': int(size) if size is not None else None,
            'size_bytes': kib_to_bytes(size) if size is not None else None,
            'size': format_kib(size) if size else None,
            'volume_group': group_name,
            'volume_group_id': group_id,
            'dedicated_group': dedicated if dedicated is not None else (group_name == dedicated_group_name(vol.get('name') or '')),
            'dedup': bool(dedup) if dedup is not None else (vol.get('is_dedup') if vol.get('is_dedup') is not None else None),
            'description': vol.get('description'),
            'read_only': bool(vol.get('read_only')) if vol.get('read_only') is not None else False,
            'scsi_sn': vol.get('scsi_sn'),
            'mappings': mappings,
        }
        return view

    @staticmethod
    def _diff_view(view):
        keys = ('name', 'size_kib', 'size', 'volume_group', 'dedup', 'description', 'read_only')
        return dict((k, view.get(k)) for k in keys) if view and view.get('state') != 'absent' else {}

    # ------------------------------------------------------------------ main

    def work(self):
        try:
            self.items = self._items()
            if not self.items:
                # An empty list (say, from an inventory variable with nothing in it) has nothing to do.
                return {'volumes': [], 'diff': {'before': {}, 'after': {}}}
            with self.step('read the volumes and their groups'):
                self._read()
                for item in self.items:
                    self._plan_item(item)
                self._finish_plan()
        except VolumeError as exc:
            self.fail(str(exc))
        if self.result['changed'] and self.writes_allowed():
            with self.step('change the volumes' if self.list_form else "change volume '%s'" % self.items[0].target):
                self._execute()
        self._groups_index = None
        views = [self._view(i, after=True) for i in self.items]
        if self.list_form:
            diff = {'before': dict((i.target, self._diff_view(self._view(i, after=False))) for i in self.items),
                    'after': dict((i.target, self._diff_view(v)) for i, v in zip(self.items, views))}
            return {'volumes': views, 'diff': diff}
        item = self.items[0]
        result = {'volume': views[0], 'diff': {'before': self._diff_view(self._view(item, after=False)), 'after': self._diff_view(views[0])}}
        if item.adopted:
            result['adopted'] = item.adopted
        return result


def main():
    K2Volume().run()


if __name__ == '__main__':
    main()
