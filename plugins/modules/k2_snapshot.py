#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k2_snapshot
short_description: Manage snapshots and views of Kaminario K2 volume groups
version_added: 1.0.0
description:
  - Takes, updates, deletes and restores snapshots of K2 volume groups. K2 snapshots always cover a whole
    volume group; name the group with O(volume_group), or name one of its volumes with O(volume).
  - With O(exposable=true) and O(source_snapshot), manages a view instead, that is a writable and mappable copy of
    a snapshot, the way the OpenStack Cinder K2 driver's create_volume_from_snapshot makes one. Map a view to a
    host with M(kaminario.k2.k2_host_mapping), naming it C(<volume group>:<view>).
  - O(state=restored) restores the volume group's volumes from the snapshot. This overwrites their data, so it is
    refused while any volume of the group is mapped to a host, unless O(force=true).
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
extends_documentation_fragment:
  - kaminario.k2.k2
  - kaminario.k2.k2.attributes
options:
  name:
    description:
      - Short name of the snapshot or view (K2 C(short_name)). K2 names it C(<volume group>:<name>) in full.
      - At most 42 characters from C(A-Z a-z 0-9 _ . -).
    type: str
    required: true
  volume_group:
    description:
      - Name of the volume group the snapshot belongs to.
      - Exactly one of O(volume_group) and O(volume) is required.
    type: str
  volume:
    description:
      - Name of a volume; the snapshot belongs to that volume's volume group (K2 snapshots cover the whole group).
      - Exactly one of O(volume_group) and O(volume) is required.
    type: str
  state:
    description:
      - V(present) creates the snapshot (or view) if it does not exist, and updates O(retention_policy) and
        O(auto_delete) if they differ.
      - V(absent) deletes it. A view still mapped to a host, or a snapshot that still has views, is refused; unmap
        the view with M(kaminario.k2.k2_host_mapping) or delete the views first.
      - V(restored) restores the volume group from the existing snapshot (K2 C(last_restored_from)). The task is
        idempotent - when K2 reports that the group was last restored from this snapshot, nothing is done. Data
        written after that restore is not detected; to restore from the same snapshot again, restore from
        another snapshot first or take a new one.
    type: str
    choices: [present, absent, restored]
    default: present
  retention_policy:
    description:
      - Name of the K2 retention policy of the snapshot.
      - When not set, a new snapshot gets C(Best_Effort_Retention) (as the Cinder driver uses) and an existing
        snapshot keeps its policy.
    type: str
  auto_delete:
    description:
      - Whether K2 may delete the snapshot automatically under capacity pressure (K2 C(is_auto_deleteable)).
      - When not set, a new snapshot gets V(false) (as the Cinder driver sets) and an existing snapshot keeps its
        value.
    type: bool
  exposable:
    description:
      - V(true) manages a view (K2 C(is_exposable)), created from O(source_snapshot).
      - This cannot change once the snapshot or view exists.
    type: bool
    default: false
  source_snapshot:
    description:
      - Short name of the snapshot, in the same volume group, that a view is created from.
      - Required when O(exposable=true) and O(state=present); not allowed with O(exposable=false).
      - This cannot change once the view exists.
    type: str
  force:
    description:
      - With O(state=restored), restore even while volumes of the group are mapped to hosts. The hosts see their
        data change underneath them; unmount the file systems first.
    type: bool
    default: false
notes:
  - A no-change run with O(volume_group) costs one REST request, plus one when O(retention_policy) is set (the
    policy is looked up by name); with O(volume), one more to find the volume's group. V(restored) reads the
    volume group too. The result's C(k2_requests) shows the count.
seealso:
  - module: kaminario.k2.k2_host_mapping
    description: Map a view to a host.
'''

EXAMPLES = r'''
- name: Snapshots, views and restores of K2 volume groups
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2.example.com
      k2_username: "{{ vault_k2_username }}"
      k2_password: "{{ vault_k2_password }}"
      ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: Take a snapshot of the volume group of db-data
      kaminario.k2.k2_snapshot:
        name: nightly-2026-11-25
        volume: db-data

    - name: Create a writable view of that snapshot
      kaminario.k2.k2_snapshot:
        name: nightly-2026-11-25-view
        volume_group: db-vg
        exposable: true
        source_snapshot: nightly-2026-11-25
      register: view

    - name: Map the view to the backup host
      kaminario.k2.k2_host_mapping:
        host: backup01
        volumes:
          - name: "{{ view.snapshot.name }}"

    - name: Keep a snapshot under a stricter retention policy, deletable by K2 under pressure
      kaminario.k2.k2_snapshot:
        name: before-upgrade
        volume_group: app-vg
        retention_policy: CDP
        auto_delete: true

    - name: Roll the application volume group back to the snapshot (volumes are unmapped)
      kaminario.k2.k2_snapshot:
        name: before-upgrade
        volume_group: app-vg
        state: restored

    - name: Delete the snapshot
      kaminario.k2.k2_snapshot:
        name: before-upgrade
        volume_group: app-vg
        state: absent
'''

RETURN = r'''
snapshot:
  description:
    - The snapshot or view after the task (in check mode, as it would be). Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: K2 id of the snapshot (null for one that check mode would create).
      type: int
      sample: 12
    name:
      description: Full K2 name, C(<volume group>:<short name>); use it to map a view.
      type: str
      sample: db-vg:nightly-2026-11-25
    short_name:
      description: The short name (O(name)).
      type: str
      sample: nightly-2026-11-25
    volume_group:
      description: Name of the volume group the snapshot belongs to.
      type: str
      sample: db-vg
    volume_group_id:
      description: K2 id of that volume group.
      type: int
      sample: 3
    source:
      description: K2 reference of the source, C(/volume_groups/<id>) for a snapshot, C(/snapshots/<id>) for a view.
      type: str
      sample: /volume_groups/3
    source_snapshot:
      description: Full name of the source snapshot of a view; null for a snapshot.
      type: str
      sample: db-vg:nightly-2026-11-25
    exposable:
      description: Whether it is a view (writable and mappable).
      type: bool
      sample: false
    auto_delete:
      description: Whether K2 may delete it automatically (K2 C(is_auto_deleteable)).
      type: bool
      sample: false
    retention_policy:
      description: Name of its retention policy, when the task named one or created the snapshot; otherwise null.
      type: str
      sample: Best_Effort_Retention
    retention_policy_id:
      description: K2 id of its retention policy.
      type: int
      sample: 1
    creation_time:
      description: Creation time, in seconds since the epoch.
      type: float
      sample: 1764039600.25
    generation_number:
      description: Generation number K2 gives replication snapshots; null for user snapshots.
      type: int
      sample: null
  sample:
    id: 12
    name: db-vg:nightly-2026-11-25
    short_name: nightly-2026-11-25
    volume_group: db-vg
    volume_group_id: 3
    source: /volume_groups/3
    source_snapshot: null
    exposable: false
    auto_delete: false
    retention_policy: Best_Effort_Retention
    retention_policy_id: 1
    creation_time: 1764039600.25
    generation_number: null
restored_from:
  description: Full name of the snapshot the volume group was restored from by this task (or would be, in check mode).
  returned: when O(state=restored) and a restore was done or planned
  type: str
  sample: app-vg:before-upgrade
actions:
  description: The plan, one entry per change (also in check mode); empty when nothing changes.
  returned: always
  type: list
  elements: dict
  sample:
    - action: create
      resource: snapshot
      name: nightly-2026-11-25
      attributes: {name: nightly-2026-11-25, volume_group: db-vg, exposable: false, auto_delete: false,
                   retention_policy: Best_Effort_Retention}
diff:
  description: Before and after views of the snapshot (or of the volume group's restore source for V(restored)).
  returned: always
  type: dict
  sample:
    before: {}
    after: {name: nightly-2026-11-25, volume_group: db-vg, exposable: false, auto_delete: false,
            retention_policy: Best_Effort_Retention}
k2_requests:
  description: REST requests sent to the array, in total and per HTTP method.
  returned: always
  type: dict
  sample: {total: 1, GET: 1}
'''

import re

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import make_ref, parse_ref, ref_id, ref_path
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import K2Module

DEFAULT_RETENTION = 'Best_Effort_Retention'
NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]{1,42}$')
SNAPSHOT_FIELDS = ['name', 'short_name', 'source', 'volume_group', 'retention_policy', 'is_auto_deleteable', 'is_exposable',
                   'creation_time', 'generation_number']


def check_name(option, value):
    """Fail early (also in check mode) on a name K2 would refuse."""
    if value is not None and not NAME_RE.match(value):
        too_long = len(value) > 42
        return ("%s %r is %s: K2 names are 1 to 42 characters from A-Z a-z 0-9 _ . - (no ':' or spaces)%s."
                % (option, value, 'too long (%d characters)' % len(value) if too_long else 'not valid',
                   '; shorten it' if too_long else ''))
    return None


class K2Snapshot(K2Module):

    def __init__(self):
        super(K2Snapshot, self).__init__(
            argument_spec=dict(
                name=dict(type='str', required=True),
                volume_group=dict(type='str'),
                volume=dict(type='str'),
                state=dict(type='str', default='present', choices=['present', 'absent', 'restored']),
                retention_policy=dict(type='str'),
                auto_delete=dict(type='bool'),
                exposable=dict(type='bool', default=False),
                source_snapshot=dict(type='str'),
                force=dict(type='bool', default=False),
            ),
            mutually_exclusive=[('volume_group', 'volume')],
            required_one_of=[('volume_group', 'volume')],
        )
        self._group = None          # {'id', 'name'} once known
        self._policy = None         # retention policy object once looked up

    # ------------------------------------------------------------------ lookups

    def validate(self):
        p = self.params
        for option in ('name', 'volume_group', 'volume', 'source_snapshot'):
            problem = check_name(option, p[option])
            if problem:
                self.fail(problem)
        if p['source_snapshot'] is not None and not p['exposable']:
            self.fail('source_snapshot is only used for views: set exposable: true to manage a view of %s, '
                      'or remove source_snapshot to take a snapshot of the volume group.' % p['source_snapshot'])
        if p['exposable'] and p['state'] == 'present' and p['source_snapshot'] is None:
            self.fail('exposable: true manages a view, which is created from a snapshot: set source_snapshot to the '
                      'short name of a snapshot of the same volume group.')
        if p['exposable'] and p['state'] == 'restored':
            self.fail('state: restored restores a volume group from a snapshot; it cannot be combined with exposable: true.')
        if p['source_snapshot'] is not None and p['source_snapshot'] == p['name']:
            self.fail('source_snapshot must name another snapshot than name (%s).' % p['name'])

    def find(self):
        """Return ``(snapshot, source snapshot)`` (each ``None`` when absent) in one request (two with ``volume``)."""
        p = self.params
        wanted = [p['name']] + ([p['source_snapshot']] if p['source_snapshot'] else [])
        if p['volume_group'] is not None:
            vg_name = p['volume_group']
            full = ['%s:%s' % (vg_name, n) for n in wanted]
            if len(full) == 1:
                found = [self.client.find_one('snapshots', {'name': full[0]}, fields=SNAPSHOT_FIELDS)]
            else:
                found = self.client.search('snapshots', {'name': full}, fields=SNAPSHOT_FIELDS)
        else:
            volume = self.client.get_by_name('volumes', p['volume'], fields=['name', 'volume_group'])
            if volume is None:
                if p['state'] == 'absent':
                    return None, None
                self.fail("Volume '%s' (option volume) does not exist on the array: name an existing volume, "
                          "or give its volume group with volume_group." % p['volume'])
            if volume.get('volume_group') is None:
                self.fail("Volume '%s' belongs to no volume group (it is a system volume) and cannot be snapshotted." % p['volume'])
            group_ref = volume['volume_group']
            self._group = {'id': ref_id(group_ref), 'name': None}
            filters = {'volume_group': group_ref}
            if len(wanted) == 1:
                filters['short_name'] = wanted[0]
                found = [self.client.find_one('snapshots', filters, fields=SNAPSHOT_FIELDS)]
            else:
                filters['short_name'] = wanted
                found = self.client.search('snapshots', filters, fields=SNAPSHOT_FIELDS)
        by_short = dict((s['short_name'], s) for s in found if s)
        snap = by_short.get(p['name'])
        source = by_short.get(p['source_snapshot']) if p['source_snapshot'] else None
        for obj in (snap, source):
            if obj is not None:
                self._group = {'id': ref_id(obj['volume_group']), 'name': obj['name'].split(':', 1)[0]}
        return snap, source

    def group(self, restore_info=False):
        """The volume group ``{'id', 'name'[, 'last_restored_from']}``, looked up only when not known yet."""
        p = self.params
        known = self._group or {}
        if known.get('id') is not None and known.get('name') is not None and not restore_info:
            return known
        fields = ['name', 'last_restored_from']
        if known.get('id') is not None:
            vg = self.client.get('volume_groups', known['id'], fields=fields)
        else:
            vg = self.client.get_by_name('volume_groups', p['volume_group'], fields=fields)
            if vg is None:
                self.fail("Volume group '%s' (option volume_group) does not exist on the array: create it first "
                          "(kaminario.k2.k2_volume creates a volume with its group), or fix the name." % p['volume_group'])
        self._group = {'id': vg['id'], 'name': vg['name'], 'last_restored_from': vg.get('last_restored_from')}
        return self._group

    def policy(self):
        """The retention policy named by the task (or the default), looked up once."""
        if self._policy is None:
            name = self.params['retention_policy'] or DEFAULT_RETENTION
            self._policy = self.client.get_by_name('retention_policies', name, fields=['name'])
            if self._policy is None:
                self.fail("Retention policy '%s' (option retention_policy) does not exist on the array: create it "
                          "or use an existing one such as %s." % (name, DEFAULT_RETENTION))
        return self._policy

    # ------------------------------------------------------------------ views of objects

    def view(self, snap):
        """The user-facing form of a K2 snapshot, compared by the plan."""
        if snap is None:
            return None
        policy_name = None
        if self._policy is not None and ref_id(snap.get('retention_policy')) == self._policy['id']:
            policy_name = self._policy['name']
        return {
            'name': snap['short_name'],
            'volume_group': snap['name'].split(':', 1)[0],
            'exposable': bool(snap.get('is_exposable')),
            'auto_delete': bool(snap.get('is_auto_deleteable')),
            'retention_policy': policy_name,
            'source': ref_path(snap.get('source')) if snap.get('source') else None,
        }

    def result_of(self, snap, source=None, policy_name=None):
        """The ``snapshot`` return value from a K2 snapshot object."""
        if snap is None:
            return {}
        policy_id = ref_id(snap.get('retention_policy')) if snap.get('retention_policy') else None
        if policy_name is None and self._policy is not None and policy_id == self._policy['id']:
            policy_name = self._policy['name']
        exposable = bool(snap.get('is_exposable'))
        return {
            'id': snap.get('id'),
            'name': snap['name'],
            'short_name': snap['short_name'],
            'volume_group': snap['name'].split(':', 1)[0],
            'volume_group_id': ref_id(snap['volume_group']) if snap.get('volume_group') else None,
            'source': ref_path(snap['source']) if snap.get('source') else None,
            'source_snapshot': source['name'] if exposable and source else None,
            'exposable': exposable,
            'auto_delete': bool(snap.get('is_auto_deleteable')),
            'retention_policy': policy_name,
            'retention_policy_id': policy_id,
            'creation_time': snap.get('creation_time'),
            'generation_number': snap.get('generation_number'),
        }

    # ------------------------------------------------------------------ work

    def work(self):
        self.validate()
        p = self.params
        snap, source = self.find()
        if p['state'] == 'restored':
            return self.restore(snap)
        if p['state'] == 'absent':
            return self.absent(snap)
        return self.present(snap, source)

    def present(self, snap, source):
        p = self.params
        if source is None:
            if p['exposable'] and snap is None:
                self.fail("Snapshot '%s' (option source_snapshot) does not exist in %s: take it first "
                          "with kaminario.k2.k2_snapshot, or fix the name." % (p['source_snapshot'], self._group_label()))
        elif source.get('is_exposable'):
            self.fail("source_snapshot '%s' is itself a view; create views from snapshots." % source['name'])
        if snap is None:
            self.group()
        if p['retention_policy'] is not None or snap is None:
            self.policy()
        current = self.view(snap)
        desired = {
            'name': p['name'],
            'exposable': p['exposable'],
            'auto_delete': p['auto_delete'] if p['auto_delete'] is not None else (False if snap is None else None),
            'retention_policy': self._policy['name'] if self._policy is not None else None,
        }
        if p['exposable'] and source is not None:
            desired['source'] = ref_path(make_ref('snapshots', source['id']))
        if snap is None:
            desired['volume_group'] = self._group['name']
        if current is not None and current['retention_policy'] is None and desired['retention_policy'] is not None:
            # The snapshot uses another policy: name it for the diff (one request, only when it changes).
            other = self.client.get('retention_policies', ref_id(snap['retention_policy']), fields=['name'])
            current['retention_policy'] = other.get('name')
        immutable = {
            'exposable': 'A snapshot cannot become a view or the reverse: choose another name.',
            'source': 'A view keeps the snapshot it was created from: delete the view and create it again.',
        }
        plan = self.plan(current, desired, state='present', resource='view' if p['exposable'] else 'snapshot',
                         immutable=immutable, create_only=('volume_group',))
        outcome = self.apply(plan, create=lambda body: self.create(source), update=lambda cur, changes: self.update(snap, changes))
        if not plan.changed:
            obj = snap
        elif self.writes_allowed():
            obj = outcome
        elif plan.action == 'create':
            obj = {'id': None, 'name': '%s:%s' % (self._group['name'], p['name']), 'short_name': p['name'],
                   'volume_group': make_ref('volume_groups', self._group['id']),
                   'source': make_ref('snapshots', source['id']) if p['exposable'] else make_ref('volume_groups', self._group['id']),
                   'is_exposable': p['exposable'], 'is_auto_deleteable': desired['auto_delete'],
                   'retention_policy': make_ref('retention_policies', self._policy['id'])}
        else:
            obj = dict(snap)
            if 'auto_delete' in plan.changes:
                obj['is_auto_deleteable'] = plan.changes['auto_delete']
            if 'retention_policy' in plan.changes:
                obj['retention_policy'] = make_ref('retention_policies', self._policy['id'])
        return {'snapshot': self.result_of(obj, source)}

    def _group_label(self):
        name = (self._group or {}).get('name') or self.params['volume_group']
        if name:
            return "volume group '%s'" % name
        return "the volume group of volume '%s'" % self.params['volume']

    def create(self, source):
        p = self.params
        group = self.group()
        body = {
            'short_name': p['name'],
            'source': make_ref('snapshots', source['id']) if p['exposable'] else make_ref('volume_groups', group['id']),
            'retention_policy': make_ref('retention_policies', self._policy['id']),
            'is_auto_deleteable': bool(p['auto_delete']),
        }
        if p['exposable']:
            body['is_exposable'] = True
        return self.client.create('snapshots', body)

    def update(self, current, changes):
        body = {}
        if 'auto_delete' in changes:
            body['is_auto_deleteable'] = changes['auto_delete']
        if 'retention_policy' in changes:
            body['retention_policy'] = make_ref('retention_policies', self._policy['id'])
        return self.client.update('snapshots', current['id'], body)

    def absent(self, snap):
        p = self.params
        current = self.view(snap)
        resource = 'view' if snap and snap.get('is_exposable') else 'snapshot'
        plan = self.plan(current, {'name': p['name']}, state='absent', resource=resource)
        if plan.changed:
            self.check_deletable(snap)
        self.apply(plan, delete=lambda cur: self.client.delete('snapshots', snap['id']))
        return {'snapshot': {}}

    def check_deletable(self, snap):
        """Refuse, before any write and also in check mode, what K2 would refuse: a mapped view, a snapshot with views."""
        snap_ref = make_ref('snapshots', snap['id'])
        if snap.get('is_exposable'):
            maps = self.client.search('mappings', {'volume': snap_ref}, fields=['host', 'lun'])
            if maps:
                self.fail("View '%s' is still mapped (to %s); unmap it first with kaminario.k2.k2_host_mapping "
                          "(state: absent), then delete it." % (snap['name'], self.host_names(maps)))
        else:
            views = self.client.search('snapshots', {'source': snap_ref}, fields=['name'])
            if views:
                self.fail("Snapshot '%s' still has view(s) %s; delete them first (kaminario.k2.k2_snapshot with "
                          "exposable: true and state: absent)." % (snap['name'], ', '.join(v['name'] for v in views)))

    def host_names(self, maps):
        """``host h1, host group g1`` for mappings, one request per kind of target."""
        ids = {}
        for m in maps:
            resource, oid = parse_ref(m['host'])
            ids.setdefault(resource, []).append(oid)
        names = []
        for resource, label in (('hosts', 'host'), ('host_groups', 'host group')):
            if resource in ids:
                names.extend('%s %s' % (label, o['name']) for o in self.client.search(resource, {'id': ids[resource]}, fields=['name']))
        return ', '.join(names)

    def restore(self, snap):
        p = self.params
        if snap is None:
            self.fail("Snapshot '%s' does not exist in %s, so the group cannot be restored from it: "
                      "check name and volume_group." % (p['name'], self._group_label()))
        if snap.get('is_exposable'):
            self.fail("'%s' is a view; restore a volume group from a snapshot, not from a view." % snap['name'])
        group = self.group(restore_info=True)
        current_ref = ref_path(group['last_restored_from']) if group.get('last_restored_from') else None
        wanted_ref = ref_path(make_ref('snapshots', snap['id']))
        current_name = None
        if current_ref == wanted_ref:
            current_name = snap['name']
        elif current_ref is not None:
            # Only on the change path: name the previous restore source for the diff.
            current_name = self.client.get('snapshots', ref_id(current_ref), fields=['name']).get('name')
        current = {'name': group['name'], 'last_restored_from': current_name}
        desired = {'name': group['name'], 'last_restored_from': snap['name']}
        plan = self.plan(current, desired, state='present', resource='volume group')
        if plan.changed:
            self.check_unmapped(group)
        restore = {'last_restored_from': make_ref('snapshots', snap['id'])}
        self.apply(plan, update=lambda cur, changes: self.client.update('volume_groups', group['id'], restore))
        result = {'snapshot': self.result_of(snap)}
        if plan.changed:
            result['restored_from'] = snap['name']
        return result

    def check_unmapped(self, group):
        """Refuse a restore while volumes of the group are mapped, unless force (two requests)."""
        volumes = self.client.search('volumes', {'volume_group': make_ref('volume_groups', group['id'])}, fields=['name'])
        if not volumes:
            return
        names = dict((v['id'], v['name']) for v in volumes)
        maps = self.client.search('mappings', {'volume': [make_ref('volumes', i) for i in sorted(names)]}, fields=['volume', 'host', 'lun'])
        if not maps:
            return
        mapped = sorted(set(names[ref_id(m['volume'])] for m in maps))
        if self.params['force']:
            self.module.warn('Restoring volume group %s while %s %s mapped (force: true): the hosts see the data change '
                             'underneath them.' % (group['name'], ', '.join(mapped), 'is' if len(mapped) == 1 else 'are'))
            return
        self.fail("Volume group '%s' cannot be restored while its volumes are mapped: %s mapped to %s. Unmap them "
                  "(kaminario.k2.k2_host_mapping, state: absent) or set force: true after unmounting them on the hosts."
                  % (group['name'], ', '.join(mapped), self.host_names(maps)))


def main():
    K2Snapshot().run()


if __name__ == '__main__':
    main()
