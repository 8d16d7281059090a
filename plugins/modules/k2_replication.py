#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k2_replication
short_description: Manage K2 replication peer arrays and volume group replication sessions
version_added: 1.0.0
description:
  - Manages asynchronous replication between two K2 arrays the way the OpenStack Cinder K2 driver sets it up. The
    module's connection options (O(k2_host)...) name the B(source) array, which holds the volume group; O(target)
    names the B(peer) array, where K2 creates the replica.
  - O(peer) manages the peer array object on the source array (K2 C(replication/peer_k2arrays)) - its name, management
    address and the credentials the arrays use to reach each other.
  - O(name) and O(volume_group) manage a replication session for that volume group (K2 C(replication/sessions)), with a
    peer volume (K2 C(replication/peer_volumes)) for every volume of the group. K2 creates the peer volume group, the
    peer volumes and the remote session on the peer array. Names default to the Cinder driver's rule - the peer-side
    name of C(X) is C(rX).
  - O(state) is the wanted session state - V(present) (configured, not replicating, K2 C(idle)), V(in_sync)
    (replicating every O(rpo) seconds), V(suspended) (configured, replication paused) or V(absent). State changes are
    made on the source session and the task waits (at most O(wait_timeout) seconds per step) until the remote session
    shows the same state.
  - O(state=absent) tears replication down in the order the Cinder driver uses - suspend and wait for the peer, idle
    and wait, delete the remote then the local session, delete the replication snapshots, then the peer volumes and the
    peer volume group on the peer array. The source volume group, its volumes and its other snapshots stay. Because
    this deletes the replica, it needs O(confirm_teardown=true).
  - Sessions that are failed over (or whose roles are swapped after a failover) are left to
    M(kaminario.k2.k2_failover); this module refuses to change them.
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
extends_documentation_fragment:
  - kaminario.k2.k2
  - kaminario.k2.k2.attributes
  - kaminario.k2.k2.target
options:
  name:
    description:
      - Name of the replication session on the source array. Without it, the task manages only O(peer).
    type: str
  volume_group:
    description:
      - Name of the source volume group to replicate. Required to create a session; it cannot change afterwards.
    type: str
  peer_array:
    description:
      - Name of the peer array object (on the source array) the session replicates to. Required to create a session,
        unless O(peer) is given (then its name is used).
    type: str
  peer_volume_group:
    description:
      - Name K2 gives the replica volume group on the peer array. Default C(r) + O(volume_group), as the Cinder driver
        names it.
      - Set only at creation. The session keeps the name, so later tasks may leave this option out; a later task that
        names another one fails.
    type: str
  remote_session_name:
    description:
      - Name of the session on the peer array. Default C(r) + O(name), as the Cinder driver names it.
      - Set only at creation. The session keeps the name, so later tasks may leave this option out; a later task that
        names another one fails.
    type: str
  rpo:
    description:
      - Recovery point objective in seconds - how often K2 replicates. K2 accepts 60 or a multiple of 300.
      - Required to create a session; when set on an existing session that differs, the session is updated.
    type: int
  peer_volumes:
    description:
      - Peer volumes to create, one per source volume, each with the name the replica volume gets on the peer array.
      - When not set, every volume of O(volume_group) gets a peer volume named C(r) + the volume name. Volumes added to the
        group later get theirs on the next run. Existing peer volumes are never removed by this option.
    type: list
    elements: dict
    suboptions:
      volume:
        description: Name of the source volume (in O(volume_group)).
        type: str
        required: true
      name:
        description: Name of its replica on the peer array. Default C(r) + O(peer_volumes[].volume).
        type: str
  state:
    description:
      - V(present) - the session exists, not replicating (K2 C(idle)); an in_sync session is suspended and then made idle.
      - V(in_sync) - the session exists and replicates.
      - V(suspended) - the session exists and replication is paused.
      - V(absent) - no session; replica data on the peer array is deleted (see the description). Needs O(confirm_teardown).
    type: str
    choices: [present, in_sync, suspended, absent]
    default: present
  confirm_teardown:
    description:
      - Must be V(true) for O(state=absent) to tear down an existing session, because that deletes the replica volumes,
        their snapshots and the peer volume group on the peer array. A session that does not exist needs nothing.
    type: bool
    default: false
  wait_timeout:
    description:
      - Longest time in seconds to wait, per step, for the peer array to show a change (the remote session to appear or
        to reach a state). A timeout fails the task naming the step; re-running it continues from what is observed.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two reads while waiting.
    type: float
    default: 1.0
  peer:
    description:
      - The peer array object on the source array, by name. Created when missing; its O(peer.mgmt_host) is updated
        when it differs. Passwords are sent only when the object is created (K2 never returns them).
    type: dict
    suboptions:
      name:
        description: Name of the peer array object.
        type: str
        required: true
      mgmt_host:
        description: Management address of the peer array (the Cinder driver finds the peer by this address).
        type: str
      username:
        description: User the source array logs in with on the peer array.
        type: str
      password:
        description: Password of O(peer.username).
        type: str
      local_username:
        description: User the peer array logs in with on the source array.
        type: str
      local_password:
        description: Password of O(peer.local_username).
        type: str
      state:
        description:
          - V(present) or V(absent). V(absent) deletes the peer object; refused while a session uses it.
        type: str
        choices: [present, absent]
        default: present
  target:
    description:
      - Connection to the peer (secondary) array, with the same meaning as the module's own connection options.
      - Required to manage a session (the module reads the remote session and waits on it, and tears down on both sides).
notes:
  - A no-change run for a session reads the session, its volume group, its volumes and peer volumes on the source array and
    the remote session on the peer array (plus one read per side for the time of the last replicated snapshot). The
    result's C(k2_requests) counts both arrays.
  - The K2 array, not this module, creates the peer volume group, the replica volumes and the remote session. If creating
    the session or a peer volume fails, the module deletes again what this run created, on both arrays (it refuses to
    start when an object with a peer-side name already exists on the peer array, so nothing of yours is deleted).
seealso:
  - module: kaminario.k2.k2_failover
    description: Fail over to the peer array, fail back, and test failover.
'''

EXAMPLES = r'''
- name: Replicate a volume group to the DR array
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2-prod.example.com
      k2_username: "{{ vault_k2_username }}"
      k2_password: "{{ vault_k2_password }}"
      ca_path: /etc/pki/k2-ca.pem
  vars:
    dr_array:
      k2_host: k2-dr.example.com
      k2_username: "{{ vault_k2_dr_username }}"
      k2_password: "{{ vault_k2_dr_password }}"
      ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: Register the DR array as a replication peer
      kaminario.k2.k2_replication:
        peer:
          name: k2-dr
          mgmt_host: k2-dr.example.com
          username: "{{ vault_k2_dr_username }}"
          password: "{{ vault_k2_dr_password }}"
          local_username: "{{ vault_k2_username }}"
          local_password: "{{ vault_k2_password }}"

    - name: Replicate db-vg every five minutes (replica rdb-vg, remote session rdb-repl)
      kaminario.k2.k2_replication:
        name: db-repl
        volume_group: db-vg
        peer_array: k2-dr
        rpo: 300
        state: in_sync
        target: "{{ dr_array }}"
      register: repl

    - name: Show the replication status of both sides
      ansible.builtin.debug:
        msg: >-
          source {{ repl.session.local.state }}/{{ repl.session.local.role }},
          peer {{ repl.session.remote.state }}/{{ repl.session.remote.role }},
          last synced generation {{ repl.session.remote.generation_number }}

    - name: Pause replication during a bulk load
      kaminario.k2.k2_replication:
        name: db-repl
        state: suspended
        target: "{{ dr_array }}"

    - name: Stop replicating and delete the replica on the DR array
      kaminario.k2.k2_replication:
        name: db-repl
        state: absent
        confirm_teardown: true
        target: "{{ dr_array }}"
'''

RETURN = r'''
peer_array:
  description: The peer array object (when O(peer) or O(peer_array) is given, or the session names one); empty when absent.
  returned: always
  type: dict
  sample: {id: 1, name: k2-dr, mgmt_host: k2-dr.example.com, mgmt_connectivity_state: ok, system_id: d503}
session:
  description:
    - The session after the task (in check mode, as it would be); empty after O(state=absent) or without O(name).
  returned: always
  type: dict
  contains:
    name:
      description: Session name on the source array.
      type: str
      sample: db-repl
    volume_group:
      description: The replicated volume group.
      type: str
      sample: db-vg
    peer_array:
      description: Name of the peer array object.
      type: str
      sample: k2-dr
    peer_volume_group:
      description: Name of the replica volume group on the peer array.
      type: str
      sample: rdb-vg
    remote_session_name:
      description: Name of the session on the peer array.
      type: str
      sample: rdb-repl
    rpo:
      description: Recovery point objective in seconds.
      type: int
      sample: 300
    state:
      description: State of the source session (C(idle), C(in_sync), C(suspended), C(failed_over)).
      type: str
      sample: in_sync
    peer_volumes:
      description: Each source volume with the name of its replica.
      type: list
      elements: dict
      sample: [{volume: db-data, name: rdb-data}]
    local:
      description:
        - The source session as K2 reports it - C(id), C(name), C(array), C(volume_group), C(volume_group_id), C(state),
          C(role), C(rpo), C(generation_number) (last replicated generation), C(current_snapshot_progress),
          C(last_synced_snapshot) and C(last_synced_time) (seconds since the epoch).
      type: dict
      sample: {id: 3, name: db-repl, array: k2-prod.example.com, volume_group: db-vg, volume_group_id: 7, state: in_sync,
               role: source, rpo: 300, generation_number: 12, current_snapshot_progress: 100, last_synced_snapshot: "db-vg:rep-12",
               last_synced_time: 1764039600.0}
    remote:
      description: The remote session on the peer array, same keys as RV(session.local); empty when not (yet) there.
      type: dict
      sample: {id: 7, name: rdb-repl, array: k2-dr.example.com, volume_group: rdb-vg, state: in_sync, role: target,
               rpo: 300, generation_number: 12, current_snapshot_progress: 100, last_synced_snapshot: "rdb-vg:rep-12",
               last_synced_time: 1764039600.0}
actions:
  description: The plan, one entry per change (also in check mode); empty when nothing changes.
  returned: always
  type: list
  elements: dict
  sample:
    - {action: update, resource: replication session, name: db-repl, changes: {state: {before: idle, after: in_sync}}}
steps:
  description: The K2 requests that change something, in order, as carried out (or planned, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["source: set session 'db-repl' state in_sync", "wait: remote session 'rdb-repl' in_sync"]
diff:
  description: Before and after views of the session (and of the peer object when O(peer) is given).
  returned: always
  type: dict
k2_requests:
  description: REST requests sent, in total and per HTTP method, over both arrays, and per array under C(source) and C(target).
  returned: always
  type: dict
  sample: {total: 6, GET: 6, source: {total: 5, GET: 5}, target: {total: 1, GET: 1}}
'''

import re

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import K2Error, make_ref, ref_id
from ansible_collections.kaminario.k2.plugins.module_utils.k2_replication import (
    PEER_VOLUMES, PEERS, SESSIONS, K2TwoArrayModule, K2WaitTimeout, find_session, replicated_snapshot, rep_name,
    rpo_problem, same_ref, session_state, session_view, target_argument_spec, wait_for,
)

NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]{1,42}$')
PEER_FIELDS = ('name', 'mgmt_host', 'mgmt_connectivity_state', 'system_id')


class K2Replication(K2TwoArrayModule):

    def __init__(self):
        super(K2Replication, self).__init__(
            argument_spec=dict(
                name=dict(type='str'),
                volume_group=dict(type='str'),
                peer_array=dict(type='str'),
                peer_volume_group=dict(type='str'),
                remote_session_name=dict(type='str'),
                rpo=dict(type='int'),
                peer_volumes=dict(type='list', elements='dict', options=dict(
                    volume=dict(type='str', required=True),
                    name=dict(type='str'),
                )),
                state=dict(type='str', default='present', choices=['present', 'in_sync', 'suspended', 'absent']),
                confirm_teardown=dict(type='bool', default=False),
                wait_timeout=dict(type='int', default=300),
                poll_interval=dict(type='float', default=1.0),
                peer=dict(type='dict', options=dict(
                    name=dict(type='str', required=True),
                    mgmt_host=dict(type='str'),
                    username=dict(type='str'),
                    password=dict(type='str', no_log=True),
                    local_username=dict(type='str'),
                    local_password=dict(type='str', no_log=True),
                    state=dict(type='str', default='present', choices=['present', 'absent']),
                )),
                target=target_argument_spec(),
            ),
            required_one_of=[('name', 'peer')],
        )
        self.steps = []
        self._diff_before = {}
        self._diff_after = {}

    # ------------------------------------------------------------------ helpers

    def write(self, description, func, *args, **kwargs):
        """Record a step and, unless in check mode, carry it out.

        A K2 error fails the task naming the step, or propagates with
        ``raising=True`` (inside a rollback block, so the undo steps run first).
        """
        self.steps.append(description)
        self.result['changed'] = True
        if not self.writes_allowed():
            return None
        try:
            outcome = func(*args)
        except K2Error as exc:
            if kwargs.get('raising'):
                raise
            self.fail_error('Could not %s' % description.split(': ', 1)[-1], exc)
        self.note_write()
        return outcome

    def wait(self, description, check):
        """A bounded wait on the peer array (skipped in check mode); a timeout fails naming the step."""
        self.steps.append('wait: ' + description)
        if not self.writes_allowed():
            return None
        try:
            return wait_for(check, self.params['wait_timeout'], self.params['poll_interval'], description)
        except K2WaitTimeout as exc:
            self.fail('%s. %s' % (exc, exc.hint), steps=self.steps, k2_error_code=None)
        except K2Error as exc:
            self.fail_error('Could not check %s' % description, exc)

    def remote_in(self, name, states):
        """A wait check: the remote session ``name`` exists and its state is one of ``states`` (any state when empty)."""
        def check():
            remote = find_session(self.target, name)
            done = remote is not None and (not states or remote.get('state') in states)
            return done, session_state(remote)
        return check

    def validate(self):
        p = self.params
        for option in ('name', 'volume_group', 'peer_array', 'peer_volume_group', 'remote_session_name'):
            if p[option] is not None and not NAME_RE.match(p[option]):
                self.fail("%s %r is not a valid K2 name: 1 to 42 characters from A-Z a-z 0-9 _ . -." % (option, p[option]))
        # peer.name is looked up by name before anything else: an empty name made that lookup unfiltered, so the one
        # peer array object there was taken for it (peer={'name': ''} succeeded, reporting fz-peer)
        if p['peer'] and not NAME_RE.match(p['peer']['name']):
            self.fail("peer.name %r is not a valid K2 name: 1 to 42 characters from A-Z a-z 0-9 _ . -." % (p['peer']['name'],))
        problem = rpo_problem(p['rpo'])
        if problem:
            self.fail(problem)
        if p['wait_timeout'] < 0 or not (p['poll_interval'] > 0 and p['poll_interval'] != float('inf')):
            self.fail('wait_timeout must be 0 or more and poll_interval more than 0 seconds.')
        if p['name'] is not None and p['state'] != 'absent' and p['peer'] and p['peer']['state'] == 'absent':
            self.fail('peer.state=absent removes the peer array object, which the session needs: use state=absent for the '
                      'session too, or peer.state=present.')
        if p['peer_volumes'] is not None:
            for i, entry in enumerate(p['peer_volumes']):
                for key in ('volume', 'name'):
                    if entry.get(key) is not None and not NAME_RE.match(entry[key]):
                        self.fail('peer_volumes[%d].%s %r is not a valid K2 name.' % (i, key, entry[key]))

    # ------------------------------------------------------------------ peer object

    def peer_result(self, peer):
        if not peer:
            return {}
        return dict((k, peer.get(k)) for k in ('id',) + PEER_FIELDS)

    def manage_peer(self):
        spec = self.params['peer']
        with self.step("look up peer array '%s'" % spec['name']):
            current = self.client.get_by_name(PEERS, spec['name'])
        if spec['state'] == 'absent':
            if current is None:
                return None
            with self.step("check that no session uses peer array '%s'" % spec['name']):
                users = self.client.search(SESSIONS, {'replication_peer_k2array': make_ref(PEERS, current['id'])})
            if users:
                self.fail("Peer array '%s' is still used by session(s) %s: remove them first (state: absent, "
                          "confirm_teardown: true)." % (spec['name'], ', '.join(s['name'] for s in users)))
            self._diff_before['peer_array'] = self.peer_result(current)
            self._diff_after['peer_array'] = {}
            self.result['actions'].append(dict(action='delete', resource='peer array', name=spec['name']))
            self.write("source: delete peer array '%s'" % spec['name'], self.client.delete, PEERS, current['id'])
            return None
        if current is None:
            missing = [k for k in ('mgmt_host', 'username', 'password', 'local_username', 'local_password') if not spec.get(k)]
            if missing:
                self.fail("Peer array '%s' does not exist; to create it, set peer.%s." % (spec['name'], ', peer.'.join(missing)))
            body = dict((k, spec[k]) for k in ('name', 'mgmt_host', 'username', 'password', 'local_username', 'local_password'))
            shown = dict(name=spec['name'], mgmt_host=spec['mgmt_host'], username=spec['username'], local_username=spec['local_username'])
            self._diff_before['peer_array'] = {}
            self._diff_after['peer_array'] = shown
            self.result['actions'].append(dict(action='create', resource='peer array', name=spec['name'], attributes=shown))
            created = self.write("source: create peer array '%s'" % spec['name'], self.client.create, PEERS, body)
            return created or dict(shown, id=None)
        if spec.get('mgmt_host') and spec['mgmt_host'] != current.get('mgmt_host'):
            self._diff_before['peer_array'] = {'name': spec['name'], 'mgmt_host': current.get('mgmt_host')}
            self._diff_after['peer_array'] = {'name': spec['name'], 'mgmt_host': spec['mgmt_host']}
            self.result['actions'].append(dict(action='update', resource='peer array', name=spec['name'],
                                               changes={'mgmt_host': {'before': current.get('mgmt_host'), 'after': spec['mgmt_host']}}))
            updated = self.write("source: set mgmt_host of peer array '%s'" % spec['name'], self.client.update, PEERS,
                                 current['id'], {'mgmt_host': spec['mgmt_host']})
            return updated or dict(current, mgmt_host=spec['mgmt_host'])
        return current

    # ------------------------------------------------------------------ work

    def work(self):
        self.validate()
        p = self.params
        peer = None
        if p['peer'] and p['peer']['state'] == 'present':
            peer = self.manage_peer()
        result = {'peer_array': self.peer_result(peer), 'session': {}}
        if p['name'] is not None:
            if p['state'] == 'absent':
                self.absent()
            else:
                result = self.present(peer)
        if p['peer'] and p['peer']['state'] == 'absent':
            self.manage_peer()
        result['steps'] = self.steps
        result['diff'] = {'before': self._diff_before, 'after': self._diff_after}
        return result

    # ------------------------------------------------------------------ present / in_sync / suspended

    def read_group(self, name):
        with self.step("look up volume group '%s'" % name):
            vg = self.client.get_by_name('volume_groups', name)
        if vg is None:
            self.fail("Volume group '%s' (option volume_group) does not exist on the source array %s: create it first "
                      "(kaminario.k2.k2_volume), or fix the name." % (name, self.params['k2_host']))
        return vg

    def present(self, peer):
        p = self.params
        with self.step("look up session '%s'" % p['name']):
            local = find_session(self.client, p['name'])
        if local is None:
            if p['volume_group'] is None:
                self.fail("Session '%s' does not exist: set volume_group (and peer_array, rpo) to create it." % p['name'])
            vg = self.read_group(p['volume_group'])
        else:
            with self.step("read the volume group of session '%s'" % p['name']):
                vg = self.client.get('volume_groups', ref_id(local['local_volume_group']))
            if p['volume_group'] is not None and vg['name'] != p['volume_group']:
                self.fail("Session '%s' replicates volume group '%s', not '%s' (option volume_group): a session's group "
                          "cannot change. Remove the session (state: absent, confirm_teardown: true) and create it again, "
                          "or use another session name." % (p['name'], vg['name'], p['volume_group']))
        peer_name = p['peer_array'] or (p['peer']['name'] if p['peer'] else None)
        if peer is None or (peer_name and peer.get('name') != peer_name) or local is not None:
            peer = self.find_peer(local, peer_name)
        if local is not None and peer_name and peer.get('name') != peer_name:
            self.fail("Session '%s' replicates to peer array '%s', not '%s' (option %s): a session's peer cannot change. "
                      "Remove the session (state: absent, confirm_teardown: true) and create it again, or fix the option."
                      % (p['name'], peer.get('name'), peer_name, 'peer_array' if p['peer_array'] else 'peer.name'))
        volumes, peer_volumes = self.read_volumes(vg)
        wanted = self.wanted_peer_volumes(vg, volumes)
        have = dict((ref_id(pv['local_volume']), pv['name']) for pv in peer_volumes if pv.get('local_volume'))
        names = dict((v['id'], v['name']) for v in volumes)
        missing = [(vid, pname) for vid, pname in wanted if vid not in have]
        if local is None:
            return self.create(vg, peer, volumes, missing)

        remote_name = self.remote_session_name(local)
        peer_vg_name = self.peer_group_name(vg['name'], local)
        with self.step("look up remote session '%s' on the peer array" % remote_name):
            remote = find_session(self.target, remote_name)
        if local.get('current_role') == 'target' or local.get('state') == 'failed_over':
            self.fail("Session '%s' is %s on the source array (the peer array is active after a failover): manage it with "
                      "kaminario.k2.k2_failover (state: failed_back) first." % (p['name'], session_state(local)))
        if remote is not None and remote.get('state') == 'failed_over':
            self.fail("Remote session '%s' is failed over on the peer array: fail back with kaminario.k2.k2_failover "
                      "(state: failed_back) before changing replication." % remote_name)
        before = self.view(local, vg, peer, remote_name, peer_vg_name, have, names)
        after = dict(before)
        changes = {}
        if p['rpo'] is not None and _as_int(local.get('rpo')) != p['rpo']:
            changes['rpo'] = {'before': _as_int(local.get('rpo')), 'after': p['rpo']}
            after['rpo'] = p['rpo']
        if missing:
            changes['peer_volumes'] = {'before': before['peer_volumes'],
                                       'after': sorted(before['peer_volumes'] + [{'volume': names[v], 'name': n} for v, n in missing],
                                                       key=lambda e: e['volume'])}
            after['peer_volumes'] = changes['peer_volumes']['after']
        wanted_state = {'present': 'idle'}.get(p['state'], p['state'])
        if local.get('state') != wanted_state:
            changes['state'] = {'before': local.get('state'), 'after': wanted_state}
            after['state'] = wanted_state
        self._diff_before['session'] = before
        self._diff_after['session'] = after
        if changes:
            self.result['actions'].append(dict(action='update', resource='replication session', name=p['name'], changes=changes))
        if 'rpo' in changes:
            self.write("source: set rpo of session '%s' to %d" % (p['name'], p['rpo']), self.client.update, SESSIONS,
                       local['id'], {'rpo': p['rpo']})
        for vid, pname in missing:
            self.write("source: create peer volume '%s' for volume '%s'" % (pname, names[vid]), self.client.create,
                       PEER_VOLUMES, {'local_volume': make_ref('volumes', vid), 'name': pname, 'replication_session': make_ref(SESSIONS, local['id'])})
        self.transition(local, remote, remote_name, wanted_state)
        return self.outcome(vg, peer, remote_name, after, local, remote)

    def transition(self, local, remote, remote_name, wanted):
        """Move the source session to ``wanted`` one K2 transition at a time, each followed by a wait on the peer."""
        path = {
            ('idle', 'in_sync'): ['in_sync'], ('idle', 'suspended'): ['in_sync', 'suspended'],
            ('in_sync', 'suspended'): ['suspended'], ('in_sync', 'idle'): ['suspended', 'idle'],
            ('suspended', 'in_sync'): ['in_sync'], ('suspended', 'idle'): ['idle'],
        }
        current = local.get('state')
        if current == wanted:
            steps = []
        elif (current, wanted) in path:
            steps = path[(current, wanted)]
        else:
            self.fail("Session '%s' is in state %r; this module moves sessions between idle, in_sync and suspended only."
                      % (local['name'], current))
        for state in steps:
            self.write("source: set session '%s' state %s" % (local['name'], state), self.client.update, SESSIONS,
                       local['id'], {'state': state})
            self.wait("remote session '%s' %s" % (remote_name, state), self.remote_in(remote_name, (state,)))
        if not steps and (remote is None or remote.get('state') != wanted):
            # Converged at the source but not (yet) at the peer: a re-run after a timed-out wait ends here.
            self.wait("remote session '%s' %s" % (remote_name, wanted), self.remote_in(remote_name, (wanted,)))

    def find_peer(self, local, peer_name):
        if local is not None and local.get('replication_peer_k2array'):
            with self.step('read the peer array of the session'):
                return self.client.get(PEERS, ref_id(local['replication_peer_k2array']))
        if not peer_name:
            self.fail("Set peer_array to the name of the peer array object (on the source array) to create session '%s'."
                      % self.params['name'])
        with self.step("look up peer array '%s'" % peer_name):
            peer = self.client.get_by_name(PEERS, peer_name)
        if peer is None:
            if self.params['peer'] and not self.writes_allowed():
                return {'id': None, 'name': peer_name}
            self.fail("Peer array '%s' (option peer_array) does not exist on the source array: create it with the peer "
                      "option (name, mgmt_host and credentials), or fix the name." % peer_name)
        return peer

    def read_volumes(self, vg):
        with self.step("list the volumes of volume group '%s'" % vg['name']):
            volumes = self.client.search('volumes', {'volume_group': make_ref('volume_groups', vg['id'])}, fields=['name', 'size'])
            refs = [make_ref('volumes', v['id']) for v in volumes]
            peer_volumes = self.client.search(PEER_VOLUMES, {'local_volume': refs}) if refs else []
        return volumes, peer_volumes

    def wanted_peer_volumes(self, vg, volumes):
        """``[(volume id, peer name)]`` the task asks for."""
        by_name = dict((v['name'], v['id']) for v in volumes)
        spec = self.params['peer_volumes']
        if spec is None:
            return [(v['id'], rep_name(v['name'])) for v in volumes]
        wanted = []
        for i, entry in enumerate(spec):
            if entry['volume'] not in by_name:
                self.fail("peer_volumes[%d].volume '%s' is not a volume of volume group '%s'." % (i, entry['volume'], vg['name']))
            wanted.append((by_name[entry['volume']], entry.get('name') or rep_name(entry['volume'])))
        return wanted

    def view(self, local, vg, peer, remote_name, peer_vg_name, have, names):
        return {
            'name': local['name'] if local else self.params['name'],
            'volume_group': vg['name'],
            'peer_array': (peer or {}).get('name'),
            'peer_volume_group': peer_vg_name,
            'remote_session_name': remote_name,
            'rpo': _as_int(local.get('rpo')) if local else self.params['rpo'],
            'state': local.get('state') if local else None,
            'peer_volumes': sorted(({'volume': names.get(vid, str(vid)), 'name': n} for vid, n in have.items()), key=lambda e: e['volume']),
        }

    def peer_group_name(self, vg_name, local=None):
        """The replica volume group's name on the peer array: as the session ``local`` was created with, else the option,
        else ``r`` + ``vg_name`` (None without a group name)."""
        return self.recorded_name(local, 'replication_peer_volume_group_name', 'peer_volume_group',
                                  rep_name(vg_name) if vg_name else None)

    def remote_session_name(self, local=None):
        """The session's name on the peer array: as the session ``local`` was created with, else the option, else ``r`` + name."""
        return self.recorded_name(local, 'remote_replication_session_name', 'remote_session_name', rep_name(self.params['name']))

    def recorded_name(self, local, field, option, default):
        """A peer-side name fixed when the session was created. The session keeps it (``field``), so a later task need
        not repeat the option; an option naming something else fails, since the name cannot change."""
        recorded = (local or {}).get(field)
        given = self.params[option]
        if recorded and given and given != recorded:
            self.fail("Session '%s' was created with %s '%s', not '%s' (option %s): it cannot change. Leave %s out, or "
                      "set it to '%s'." % (self.params['name'], option, recorded, given, option, option, recorded))
        return recorded or given or default

    # ------------------------------------------------------------------ create

    def create(self, vg, peer, volumes, missing):
        p = self.params
        if p['rpo'] is None:
            self.fail("rpo is required to create session '%s': give the recovery point objective in seconds (60 or a "
                      "multiple of 300)." % p['name'])
        if not volumes:
            self.fail("Volume group '%s' has no volumes: create them before replicating it." % vg['name'])
        remote_name = self.remote_session_name()
        peer_vg = self.peer_group_name(vg['name'])
        names = dict((v['id'], v['name']) for v in volumes)
        with self.step("check that volume group '%s' is not replicated already" % vg['name']):
            others = self.client.search(SESSIONS, {'local_volume_group': make_ref('volume_groups', vg['id'])})
        if others:
            self.fail("Volume group '%s' is already replicated by session '%s': K2 allows one session per volume group. "
                      "Manage that session (name: %s)." % (vg['name'], others[0]['name'], others[0]['name']))
        self.check_peer_names_free(remote_name, peer_vg, [n for _v, n in missing])
        after = {
            'name': p['name'], 'volume_group': vg['name'], 'peer_array': peer.get('name'), 'peer_volume_group': peer_vg,
            'remote_session_name': remote_name, 'rpo': p['rpo'], 'state': {'present': 'idle'}.get(p['state'], p['state']),
            'peer_volumes': sorted(({'volume': names[v], 'name': n} for v, n in missing), key=lambda e: e['volume']),
        }
        self._diff_before['session'] = {}
        self._diff_after['session'] = after
        self.result['actions'].append(dict(action='create', resource='replication session', name=p['name'], attributes=after))
        body = {
            'name': p['name'],
            'replication_peer_k2array': make_ref(PEERS, peer['id']) if peer.get('id') is not None else None,
            'local_volume_group': make_ref('volume_groups', vg['id']),
            'replication_peer_volume_group_name': peer_vg,
            'remote_replication_session_name': remote_name,
            'auto_configure_peer_volumes': False,
            'rpo': p['rpo'],
        }
        undo = self.rollback()
        try:
            with undo:
                undo.push("delete peer volume group '%s' on the peer array" % peer_vg, self.delete_named, self.target, 'volume_groups', [peer_vg])
                undo.push('delete peer volumes on the peer array', self.delete_named, self.target, 'volumes', [n for _v, n in missing])
                undo.push("delete remote session '%s' on the peer array" % remote_name, self.delete_named, self.target, SESSIONS, [remote_name])
                undo.push("delete session '%s' on the source array" % p['name'], self.delete_local_session, p['name'])
                local = self.write("source: create session '%s' for volume group '%s'" % (p['name'], vg['name']),
                                   self.client.create, SESSIONS, body, {'name': p['name']}, raising=True) or {'id': None, 'name': p['name']}
                for vid, pname in missing:
                    self.write("source: create peer volume '%s' for volume '%s'" % (pname, names[vid]), self.client.create, PEER_VOLUMES,
                               {'local_volume': make_ref('volumes', vid), 'name': pname,
                                'replication_session': make_ref(SESSIONS, local['id']) if local.get('id') is not None else None},
                               {'name': pname}, raising=True)
                self.wait_or_raise("remote session '%s' on the peer array" % remote_name, self.remote_in(remote_name, ()))
                wanted = after['state']
                for state in {'idle': [], 'in_sync': ['in_sync'], 'suspended': ['in_sync', 'suspended']}[wanted]:
                    self.write("source: set session '%s' state %s" % (p['name'], state), self.client.update, SESSIONS,
                               local['id'], {'state': state}, raising=True)
                    self.wait_or_raise("remote session '%s' %s" % (remote_name, state), self.remote_in(remote_name, (state,)))
        except K2WaitTimeout as exc:
            self.fail_error('Could not set up session %r, %s' % (p['name'], 'the peer array did not follow'), _Timeout(exc, undo.report))
        except K2Error as exc:
            self.fail_error("Could not set up session '%s'" % p['name'], exc)
        return self.outcome(vg, peer, remote_name, after)

    def wait_or_raise(self, description, check):
        """A wait inside a rollback block: a timeout propagates (so the half-made setup is undone)."""
        self.steps.append('wait: ' + description)
        if self.writes_allowed():
            wait_for(check, self.params['wait_timeout'], self.params['poll_interval'], description)

    def check_peer_names_free(self, remote_name, peer_vg, peer_volume_names):
        """Refuse (before any write) peer-side names already taken on the peer array, so a rollback never deletes them."""
        taken = []
        with self.step('check the peer-side names on the peer array'):
            if find_session(self.target, remote_name) is not None:
                taken.append("session '%s'" % remote_name)
            if self.target.get_by_name('volume_groups', peer_vg) is not None:
                taken.append("volume group '%s'" % peer_vg)
            if peer_volume_names:
                taken.extend("volume '%s'" % v['name'] for v in self.target.search('volumes', {'name': peer_volume_names}, fields=['name']))
        if taken:
            self.fail('The peer array already has %s: remove %s, or choose other names (remote_session_name, '
                      'peer_volume_group, peer_volumes).' % (', '.join(taken), 'it' if len(taken) == 1 else 'them'))

    def delete_named(self, client, resource, names):
        """Rollback step: delete every object of ``resource`` with one of ``names`` (those that exist)."""
        if not names:
            return
        for obj in client.search(resource, {'name': list(names)}, fields=['name']):
            client.delete(resource, obj['id'])

    def delete_local_session(self, name):
        """Rollback step: stop (if it started) and delete the source session."""
        local = find_session(self.client, name)
        if local is None:
            return
        if local.get('state') == 'in_sync':
            self.client.update(SESSIONS, local['id'], {'state': 'suspended'})
        if local.get('state') in ('in_sync', 'suspended'):
            self.client.update(SESSIONS, local['id'], {'state': 'idle'})
        self.client.delete(SESSIONS, local['id'])

    # ------------------------------------------------------------------ outcome

    def outcome(self, vg, peer, remote_name, after, local=None, remote=None):
        """The ``session`` return value: both sides read again after a change (predicted in check mode)."""
        p = self.params
        local_snap = remote_snap = None
        with self.step('read the sessions back'):
            if self.steps and self.writes_allowed():
                local = find_session(self.client, p['name'])
                remote = find_session(self.target, remote_name)
            local_snap = replicated_snapshot(self.client, local)
            remote_snap = replicated_snapshot(self.target, remote)
        session = dict(after)
        if local is not None:
            if self.writes_allowed():
                session['state'] = local.get('state')
                session['rpo'] = _as_int(local.get('rpo'))
            session['local'] = session_view(local, local_snap, p['k2_host'], vg['name'])
        else:
            session['local'] = {}
        if remote is not None:
            remote_group = None
            if remote.get('local_volume_group') is not None:
                remote_group = session['peer_volume_group']
            session['remote'] = session_view(remote, remote_snap, p['target']['k2_host'], remote_group)
        else:
            session['remote'] = {}
        return {'peer_array': self.peer_result(peer), 'session': session}

    # ------------------------------------------------------------------ absent

    def absent(self):
        p = self.params
        with self.step("look up session '%s'" % p['name']):
            local = find_session(self.client, p['name'])
        remote_name = self.remote_session_name(local)
        with self.step("look up remote session '%s' on the peer array" % remote_name):
            remote = find_session(self.target, remote_name)
        vg_name = p['volume_group']
        if local is not None:
            if local.get('current_role') == 'target' or local.get('state') == 'failed_over':
                self.fail("Session '%s' is %s: the peer array is active after a failover. Fail back first "
                          "(kaminario.k2.k2_failover, state: failed_back), then remove replication."
                          % (p['name'], session_state(local)))
            with self.step("read the volume group of session '%s'" % p['name']):
                vg_name = self.client.get('volume_groups', ref_id(local['local_volume_group']), fields=['name'])['name']
        if remote is not None and remote.get('state') == 'failed_over':
            self.fail("Remote session '%s' is failed over: the peer array serves the data. Fail back first "
                      "(kaminario.k2.k2_failover, state: failed_back), or keep replication." % remote_name)
        peer_vg = None
        peer_vg_name = self.peer_group_name(vg_name, local)
        with self.step('look up the peer volume group on the peer array'):
            if remote is not None and remote.get('local_volume_group'):
                peer_vg = self.target.get('volume_groups', ref_id(remote['local_volume_group']), fields=['name'])
            elif peer_vg_name:
                peer_vg = self.target.get_by_name('volume_groups', peer_vg_name, fields=['name'])
        if local is None and remote is None and peer_vg is None:
            return
        if not p['confirm_teardown']:
            self.fail("state=absent deletes session '%s' and the replica on the peer array (volume group %s, its volumes and "
                      "snapshots); set confirm_teardown: true to do so." % (p['name'], "'%s'" % peer_vg['name'] if peer_vg else 'none'))
        self._diff_before['session'] = {'name': p['name'], 'state': local.get('state') if local else None,
                                        'remote_session_name': remote_name, 'peer_volume_group': peer_vg['name'] if peer_vg else None}
        self._diff_after['session'] = {}
        self.result['actions'].append(dict(action='delete', resource='replication session', name=p['name'],
                                           peer_volume_group=peer_vg['name'] if peer_vg else None))
        local_snaps = []
        if local is not None:
            with self.step("list the replication snapshots of volume group '%s'" % vg_name):
                local_snaps = [s for s in self.client.search('snapshots', {'volume_group': local['local_volume_group']})
                               if same_ref(s.get('replication_session'), make_ref(SESSIONS, local['id']))]
            state = local.get('state')
            if state == 'in_sync':
                self.write("source: set session '%s' state suspended" % p['name'], self.client.update, SESSIONS, local['id'], {'state': 'suspended'})
                if remote is not None:
                    self.wait("remote session '%s' suspended" % remote_name, self.remote_in(remote_name, ('suspended',)))
            if state in ('in_sync', 'suspended'):
                self.write("source: set session '%s' state idle" % p['name'], self.client.update, SESSIONS, local['id'], {'state': 'idle'})
                if remote is not None:
                    self.wait("remote session '%s' idle" % remote_name, self.remote_in(remote_name, ('idle',)))
        if remote is not None:
            self.write("target: delete remote session '%s'" % remote_name, self.client_delete, self.target, SESSIONS, remote['id'])
        if local is not None:
            self.write("source: delete session '%s'" % p['name'], self.client_delete, self.client, SESSIONS, local['id'])
        for snap in local_snaps:
            self.write("source: delete replication snapshot '%s'" % snap.get('name'), self.client_delete, self.client, 'snapshots', snap['id'])
        if peer_vg is not None:
            group_ref = make_ref('volume_groups', peer_vg['id'])
            with self.step("list the snapshots and volumes of '%s' on the peer array" % peer_vg['name']):
                snaps = self.target.search('snapshots', {'volume_group': group_ref}, fields=['name'])
                vols = self.target.search('volumes', {'volume_group': group_ref}, fields=['name'])
            for snap in snaps:
                self.write("target: delete snapshot '%s'" % snap['name'], self.client_delete, self.target, 'snapshots', snap['id'])
            for vol in vols:
                self.write("target: delete volume '%s'" % vol['name'], self.client_delete, self.target, 'volumes', vol['id'])
            self.write("target: delete volume group '%s'" % peer_vg['name'], self.client_delete, self.target, 'volume_groups', peer_vg['id'])

    @staticmethod
    def client_delete(client, resource, obj_id):
        client.delete(resource, obj_id)


class _Timeout(K2Error):
    """A wait timeout inside the create block, carried to ``fail_error`` with the rollback report."""

    def __init__(self, exc, report):
        super(_Timeout, self).__init__(str(exc), hint=exc.hint)
        self.rollback_report = list(report)


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def main():
    K2Replication().run()


if __name__ == '__main__':
    main()
