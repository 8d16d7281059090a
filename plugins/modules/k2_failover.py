#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k2_failover
short_description: Fail K2 replication over to the secondary array, fail back, and test failover
version_added: 1.0.0
description:
  - Brings replicated K2 volume groups to a wanted disaster-recovery state, decided from what both arrays report. The
    module's connection options (O(k2_host)...) name the B(primary) array (where the sessions were created, role
    C(source)); O(target) names the B(secondary) array, which holds the replicas.
  - V(failed_over) promotes the secondary - its session goes to K2 state C(failed_over) and its volumes can be mapped to
    hosts. It works when the primary array is down, but only with O(allow_source_unreachable=true); and it refuses to
    fail over while the primary answers and replicates normally, unless O(allow_reachable_source=true) (a planned
    migration or a drill). O(max_data_loss) refuses a failover that would lose more than that many seconds of writes.
  - V(failed_back) follows the Cinder K2 driver's failback - unmap the primary's volumes, resynchronise from the
    secondary, take replication snapshots until one syncs quickly, unmap the secondary's volumes, take a last snapshot
    and switch back, so that the primary is the source again.
  - V(test) is a non-disruptive failover test - a writable view of the last replicated snapshot on the secondary,
    mapped to O(test_host); replication goes on. V(test_cleanup) unmaps and deletes that view.
  - Sessions are named by O(sessions) (names on the primary) or by O(volume_groups) (primary volume group names); the
    secondary side is found by the Cinder driver's naming rule (C(r) + the name), so V(failed_over), V(test) and
    V(test_cleanup) work from the secondary alone.
  - "Idempotent from the observed state of both arrays. Observed (secondary session / primary session) -> what each
    request does:"
  - "V(failed_over): C(failed_over)/any or unreachable -> nothing; C(in_sync) with role C(source) (failback started)
    -> nothing; C(in_sync) or C(suspended) with role C(target) -> failover, if the guardrails allow; another state
    with role C(source) -> fails (a failback is under way, finish it); C(idle) or no session -> fails (nothing was
    replicated)."
  - "V(failed_back): C(in_sync) role C(target) / C(in_sync) role C(source) -> nothing; C(failed_over) / any -> the
    whole failback; C(in_sync) role C(source) / C(in_sync) role C(target) (resync done) -> continues with the
    snapshots and the switch; C(in_sync) role C(source) / not yet following (resync just started) -> waits for the
    primary, then continues; any / C(failed_over) role C(target) (switch half done) -> finishes the switch;
    C(suspended) role C(source) / C(in_sync) role C(source) (switched back, secondary not following yet) -> waits;
    source / target never failed over -> nothing; primary unreachable -> fails."
  - "V(test): view present and mapped to O(test_host) -> nothing; otherwise creates what is missing. V(test_cleanup):
    no view -> nothing."
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
extends_documentation_fragment:
  - kaminario.k2.k2
  - kaminario.k2.k2.attributes
  - kaminario.k2.k2.target
options:
  sessions:
    description:
      - The replication sessions, by their name on the primary array.
      - Exactly one of O(sessions) and O(volume_groups) is required.
    type: list
    elements: dict
    suboptions:
      name:
        description: Session name on the primary array.
        type: str
        required: true
      remote_session_name:
        description: Session name on the secondary array. Default C(r) + O(sessions[].name).
        type: str
  volume_groups:
    description:
      - The replicated volume groups, by their name on the primary array; their replicas on the secondary are named
        C(r) + the name, and each group's session is found from its group on each array.
    type: list
    elements: str
  state:
    description:
      - V(failed_over), V(failed_back), V(test) or V(test_cleanup); see the description and its table.
    type: str
    choices: [failed_over, failed_back, test, test_cleanup]
    required: true
  allow_source_unreachable:
    description:
      - Allow V(failed_over) when the primary array cannot be reached (a real disaster). Writes made on the primary after
        the last replicated snapshot are lost; the result reports that window.
    type: bool
    default: false
  allow_reachable_source:
    description:
      - Allow V(failed_over) while the primary array answers and its session replicates normally (C(in_sync)). Without it
        such a failover is refused, so that a mistyped play cannot split a healthy pair.
    type: bool
    default: false
  max_data_loss:
    description:
      - Refuse V(failed_over) when the last replicated snapshot on the secondary is older than this many seconds (or its
        time is unknown). Not set - no limit.
    type: int
  source_probe_timeout:
    description:
      - Seconds to try the primary array before treating it as unreachable (V(failed_over) only; V(failed_back) uses the
        normal O(timeout)).
    type: int
    default: 15
  test_host:
    description:
      - Host on the secondary array to map the test view to. Required for O(state=test).
    type: str
  test_view:
    description:
      - Short name of the test view, created in the replica volume group on the secondary array.
    type: str
    default: dr-test
  wait_timeout:
    description:
      - Longest time in seconds to wait for one step (a state to show on an array, a snapshot to sync). A timeout fails
        the task naming the step; re-running the task continues from the state it finds.
    type: int
    default: 600
  poll_interval:
    description:
      - Seconds between two reads while waiting.
    type: float
    default: 1.0
  sync_round_seconds:
    description:
      - During V(failed_back), a replication snapshot that took longer than this to sync is followed by another one, so
        that the last round before the switch is short (the Cinder driver uses 300).
    type: int
    default: 300
  target:
    description:
      - Connection to the secondary array, with the same meaning as the module's own connection options.
    required: true
notes:
  - Every check (sessions found, guardrails, test host) is made for all sessions before the first change, so a refused
    request changes nothing.
  - V(failed_back) unmaps the primary's volumes of each group before the resync (their data is about to be replaced) and
    the secondary's volumes before the switch, as the Cinder driver does. Map them again on the primary afterwards with
    M(kaminario.k2.k2_host_mapping).
  - The data-loss window is the age, at failover, of the last replicated snapshot on the secondary - how much recent
    writing the primary may have held that the secondary never received.
seealso:
  - module: kaminario.k2.k2_replication
    description: Set up the replication this module fails over.
'''

EXAMPLES = r'''
- name: Disaster recovery with two K2 arrays
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kaminario.k2.k2:
      k2_host: k2-prod.example.com
      k2_username: "{{ vault_k2_username }}"
      k2_password: "{{ vault_k2_password }}"
      ca_path: /etc/pki/k2-ca.pem
    # target only here: the other modules of the group do not take it.
    kaminario.k2.k2_failover:
      target:
        k2_host: k2-dr.example.com
        k2_username: "{{ vault_k2_dr_username }}"
        k2_password: "{{ vault_k2_dr_password }}"
        ca_path: /etc/pki/k2-ca.pem
  tasks:
    - name: Test failover - map a view of the last replica of db-vg to the DR test host
      kaminario.k2.k2_failover:
        volume_groups: [db-vg]
        state: test
        test_host: dr-test01
      register: drtest

    - name: Remove the test view
      kaminario.k2.k2_failover:
        volume_groups: [db-vg]
        state: test_cleanup

    - name: The primary site is lost - run production from the DR array
      kaminario.k2.k2_failover:
        volume_groups: [db-vg, web-vg]
        state: failed_over
        allow_source_unreachable: true
        max_data_loss: 3600
      register: failover

    - name: Report the data-loss window
      ansible.builtin.debug:
        msg: "{{ item.volume_group }}: active on {{ item.active_array }}, lost at most {{ item.data_loss_window }} s"
      loop: "{{ failover.sessions }}"

    - name: The primary is back - return production to it
      kaminario.k2.k2_failover:
        volume_groups: [db-vg, web-vg]
        state: failed_back
'''

RETURN = r'''
source_reachable:
  description: Whether the primary array answered (null when the request did not need it - V(test), V(test_cleanup)).
  returned: always
  type: bool
  sample: false
source_error:
  description: Why the primary array was considered unreachable.
  returned: when the primary could not be reached
  type: str
  sample: "Cannot talk to https://k2-prod.example.com: [Errno 111] Connection refused (GET /api/v2/replication/sessions)"
sessions:
  description: One entry per session, after the task (in check mode, as it would be).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Session name on the primary array.
      type: str
      sample: db-repl
    remote_session_name:
      description: Session name on the secondary array.
      type: str
      sample: rdb-repl
    volume_group:
      description: Volume group on the primary array (null when only the secondary was read and no name was given).
      type: str
      sample: db-vg
    peer_volume_group:
      description: Replica volume group on the secondary array.
      type: str
      sample: rdb-vg
    active_array:
      description: C(primary) or C(secondary) - where the volumes are served from.
      type: str
      sample: secondary
    primary:
      description: The primary session's C(state), C(role) and C(generation_number); C(reachable) false when the array was not.
      type: dict
      sample: {state: suspended, role: source, generation_number: 12, reachable: true}
    secondary:
      description: The secondary session's C(state), C(role) and C(generation_number).
      type: dict
      sample: {state: failed_over, role: target, generation_number: 12}
    last_replicated_snapshot:
      description: Name of the last replicated snapshot on the secondary array.
      type: str
      sample: "rdb-vg:rep-12"
    last_replicated_time:
      description: Point in time that snapshot holds, in seconds since the epoch.
      type: float
      sample: 1764039600.0
    data_loss_window:
      description:
        - Age in seconds of the last replicated snapshot when this task failed the session over (or would, in check
          mode) - the writes that may be lost. Null when the task did not fail it over.
      type: float
      sample: 212.4
    test_view:
      description: For V(test), the view (C(name), C(host), C(lun), C(source_snapshot)); empty otherwise.
      type: dict
      sample: {name: "rdb-vg:dr-test", host: dr-test01, lun: 1, source_snapshot: "rdb-vg:rep-12"}
steps:
  description: The changes made (or planned, in check mode), in order, each naming the array it was made on.
  returned: always
  type: list
  elements: str
  sample: ["secondary: set session 'rdb-repl' state failed_over", "wait: session 'rdb-repl' failed_over on the secondary"]
actions:
  description: The plan, one entry per session that changes (also in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{action: failed_over, resource: replication session, name: db-repl, steps: 2}]
diff:
  description: Before and after views of each session pair (states, roles, active array).
  returned: always
  type: dict
k2_requests:
  description: REST requests sent, in total and per HTTP method, and per array under C(source) and C(target).
  returned: always
  type: dict
  sample: {total: 5, GET: 4, PATCH: 1, source: {total: 1, GET: 1}, target: {total: 4, GET: 3, PATCH: 1}}
'''

import math
import re

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import K2Error, make_ref, ref_id
from ansible_collections.kaminario.k2.plugins.module_utils.k2_replication import (
    SESSIONS, K2TwoArrayModule, K2WaitTimeout, find_session, is_unreachable, rep_name, replicated_snapshot,
    session_state, snapshot_time, target_argument_spec, wait_for, wall_clock,
)

DEFAULT_RETENTION = 'Best_Effort_Retention'
NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]{1,42}$')
MAX_SYNC_ROUNDS = 5


class Pair(object):
    """One replicated volume group: the session on each array and what the task plans for it."""

    def __init__(self, label, name=None, remote_name=None, group=None):
        self.label = label
        self.name = name
        self.remote_name = remote_name
        self.group = group
        self.peer_group = rep_name(group) if group else None
        self.primary = None        # session on the primary, None when absent or not read
        self.secondary = None      # session on the secondary
        self.secondary_group = None
        self.snapshot = None       # last replicated snapshot on the secondary
        self.steps = []
        self.window = None
        self.test_view = {}
        self.before = None
        self.predicted = None
        self.view = None


class K2Failover(K2TwoArrayModule):

    def __init__(self):
        spec = target_argument_spec()
        spec['required'] = True
        super(K2Failover, self).__init__(
            argument_spec=dict(
                sessions=dict(type='list', elements='dict', options=dict(
                    name=dict(type='str', required=True),
                    remote_session_name=dict(type='str'),
                )),
                volume_groups=dict(type='list', elements='str'),
                state=dict(type='str', required=True, choices=['failed_over', 'failed_back', 'test', 'test_cleanup']),
                allow_source_unreachable=dict(type='bool', default=False),
                allow_reachable_source=dict(type='bool', default=False),
                max_data_loss=dict(type='int'),
                source_probe_timeout=dict(type='int', default=15),
                test_host=dict(type='str'),
                test_view=dict(type='str', default='dr-test'),
                wait_timeout=dict(type='int', default=600),
                poll_interval=dict(type='float', default=1.0),
                sync_round_seconds=dict(type='int', default=300),
                target=spec,
            ),
            mutually_exclusive=[('sessions', 'volume_groups')],
            required_one_of=[('sessions', 'volume_groups')],
            required_if=[('state', 'test', ('test_host',))],
        )
        self.source_reachable = None
        self.source_error = None
        self.steps = []

    # ------------------------------------------------------------------ observation

    def pairs(self):
        p = self.params
        if p['sessions']:
            return [Pair(s['name'], name=s['name'], remote_name=s.get('remote_session_name') or rep_name(s['name']))
                    for s in p['sessions']]
        return [Pair(g, group=g) for g in p['volume_groups']]

    def read_secondary(self, pair):
        with self.step("look up the session of %s on the secondary array" % pair.label):
            if pair.remote_name:
                pair.secondary = find_session(self.target, pair.remote_name)
                if pair.secondary is not None and pair.secondary.get('local_volume_group'):
                    pair.secondary_group = self.target.get('volume_groups', ref_id(pair.secondary['local_volume_group']), fields=['name'])
            else:
                pair.secondary_group = self.target.get_by_name('volume_groups', pair.peer_group, fields=['name'])
                if pair.secondary_group is not None:
                    found = self.target.search(SESSIONS, {'local_volume_group': make_ref('volume_groups', pair.secondary_group['id'])})
                    pair.secondary = found[0] if found else None
        if pair.secondary is not None:
            pair.remote_name = pair.secondary.get('name')
        if pair.secondary_group is not None:
            pair.peer_group = pair.secondary_group['name']

    def read_primary(self, pair):
        """Read the primary session; a K2 error propagates (the caller decides what unreachable means)."""
        if pair.name:
            pair.primary = find_session(self.client, pair.name)
            if pair.primary is not None and pair.group is None and pair.primary.get('local_volume_group'):
                pair.group = self.client.get('volume_groups', ref_id(pair.primary['local_volume_group']), fields=['name'])['name']
        else:
            vg = self.client.get_by_name('volume_groups', pair.group, fields=['name'])
            if vg is not None:
                found = self.client.search(SESSIONS, {'local_volume_group': make_ref('volume_groups', vg['id'])})
                pair.primary = found[0] if found else None
                if pair.primary is not None:
                    pair.name = pair.primary.get('name')

    def probe_primary(self, pairs, probe):
        """Read every pair's primary session; with ``probe``, give up quickly and record the array as unreachable."""
        client = self.client
        saved = (client.timeout, client.retries)
        if probe:
            client.timeout = float(max(1, self.params['source_probe_timeout']))
            client.retries = min(client.retries, 2)
        try:
            for pair in pairs:
                self.read_primary(pair)
            self.source_reachable = True
        except K2Error as exc:
            if not is_unreachable(exc):
                self.fail_error('Could not read the sessions on the primary array', exc)
            self.source_reachable = False
            self.source_error = exc.describe()
        finally:
            client.timeout, client.retries = saved

    # ------------------------------------------------------------------ views

    @staticmethod
    def active(primary, secondary):
        if secondary is not None and (secondary.get('state') == 'failed_over' or secondary.get('current_role') == 'source'):
            return 'secondary'
        return 'primary'

    def side(self, session, reachable=True):
        if not reachable:
            return {'state': None, 'role': None, 'generation_number': None, 'reachable': False}
        if session is None:
            return {'state': None, 'role': None, 'generation_number': None}
        return {'state': session.get('state'), 'role': session.get('current_role'), 'generation_number': session.get('generation_number')}

    def pair_view(self, pair, primary, secondary):
        prim = self.side(primary, self.source_reachable is not False)
        if self.source_reachable is not None:
            prim['reachable'] = bool(self.source_reachable)
        return {'active_array': self.active(primary, secondary), 'primary': prim, 'secondary': self.side(secondary)}

    def pair_result(self, pair, predicted=None):
        primary, secondary = pair.primary, pair.secondary
        if predicted:
            primary = _merge(primary, predicted.get('primary'))
            secondary = _merge(secondary, predicted.get('secondary'))
        view = self.pair_view(pair, primary, secondary)
        view.update({
            'name': pair.name, 'remote_session_name': pair.remote_name, 'volume_group': pair.group,
            'peer_volume_group': pair.peer_group,
            'last_replicated_snapshot': pair.snapshot.get('name') if pair.snapshot else None,
            'last_replicated_time': snapshot_time(pair.snapshot), 'data_loss_window': pair.window, 'test_view': pair.test_view,
        })
        return view

    def last_replica(self, pair):
        """The last replicated snapshot in the secondary's replica group (the session's ref, else the newest snapshot)."""
        snap = replicated_snapshot(self.target, pair.secondary)
        if snap is None and pair.secondary is not None and pair.secondary.get('local_volume_group'):
            snap = self.target.first('snapshots', {'volume_group': ref_id(pair.secondary['local_volume_group']), 'is_exposable': False},
                                     sort='-creation_time')
        return snap

    # ------------------------------------------------------------------ work

    def validate(self):
        """Every option checked before the first request, whatever the state uses (issue 8)."""
        p = self.params
        if p['wait_timeout'] < 0 or not (p['poll_interval'] > 0 and math.isfinite(p['poll_interval'])):
            self.fail('wait_timeout must be 0 or more and poll_interval more than 0 seconds.')
        for option, low in (('max_data_loss', 0), ('source_probe_timeout', 1), ('sync_round_seconds', 1)):
            if p[option] is not None and p[option] < low:
                self.fail('%s is %d: give %d or more seconds.' % (option, p[option], low))
        names = [('test_host', p['test_host']), ('test_view', p['test_view'])]
        for i, session in enumerate(p['sessions'] or []):
            names += [('sessions[%d].name' % i, session['name']), ('sessions[%d].remote_session_name' % i, session.get('remote_session_name'))]
        names += [('volume_groups[%d]' % i, group) for i, group in enumerate(p['volume_groups'] or [])]
        for option, value in names:
            if value is not None and not NAME_RE.match(value):
                self.fail('%s %r is not a valid K2 name: 1 to 42 characters from A-Z a-z 0-9 _ . -.' % (option, value))

    def work(self):
        p = self.params
        self.validate()
        pairs = self.pairs()
        for pair in pairs:
            self.read_secondary(pair)
        missing = [pair.label for pair in pairs if pair.secondary is None]
        if missing:
            self.fail('No replication session on the secondary array %s for %s (option %s): check the names (the secondary side is '
                      'named r + the primary name unless sessions[].remote_session_name says otherwise) and that replication '
                      'was set up (kaminario.k2.k2_replication).'
                      % (p['target']['k2_host'], ', '.join(missing), 'sessions' if p['sessions'] else 'volume_groups'))
        state = p['state']
        if state == 'failed_over':
            self.probe_primary(pairs, probe=True)
            for pair in pairs:
                self.plan_failover(pair)
        elif state == 'failed_back':
            self.probe_primary(pairs, probe=False)
            if not self.source_reachable:
                self.fail('Failback needs the primary array, which cannot be reached: %s. Bring it back, then re-run.'
                          % self.source_error, source_reachable=False, source_error=self.source_error)
            for pair in pairs:
                self.plan_failback(pair)
        elif state == 'test':
            self.plan_test(pairs)
        else:
            for pair in pairs:
                self.plan_test_cleanup(pair)
        return self.execute(pairs)

    def record_pair(self, pair, action, predicted):
        pair.before = self.pair_view(pair, pair.primary, pair.secondary)
        if pair.steps:
            self.result['changed'] = True
            self.result['actions'].append(dict(action=action, resource='replication session', name=pair.name or pair.label,
                                               remote_session_name=pair.remote_name, steps=len(pair.steps)))
            self.steps.extend(s[0] for s in pair.steps)
        pair.predicted = predicted

    def execute(self, pairs):
        done = []
        if self.writes_allowed():
            for pair in pairs:
                for description, func, is_wait in pair.steps:
                    try:
                        if is_wait:
                            wait_for(func, self.params['wait_timeout'], self.params['poll_interval'], description.split(': ', 1)[-1])
                        else:
                            func()
                            self.note_write()
                    except K2WaitTimeout as exc:
                        self.fail('%s (step "%s"). %s' % (exc, description, exc.hint), steps_done=done, step=description)
                    except K2Error as exc:
                        self.fail_error('Could not %s (step "%s")' % (description.split(': ', 1)[-1], description), exc)
                    done.append(description)
                if pair.steps:
                    with self.step('read the sessions of %s back' % pair.label):
                        pair.secondary = find_session(self.target, pair.remote_name)
                        if self.source_reachable and pair.name:
                            pair.primary = find_session(self.client, pair.name)
        results = []
        before, after = {}, {}
        for pair in pairs:
            predicted = pair.predicted if not self.writes_allowed() else None
            result = self.pair_result(pair, predicted)
            results.append(result)
            before[pair.label] = pair.before
            after[pair.label] = dict((k, result[k]) for k in ('active_array', 'primary', 'secondary'))
        out = {'sessions': results, 'source_reachable': self.source_reachable, 'steps': self.steps,
               'diff': {'before': before, 'after': after}}
        if self.source_error:
            out['source_error'] = self.source_error
        return out

    # ------------------------------------------------------------------ failed_over

    def plan_failover(self, pair):
        p = self.params
        sec = pair.secondary
        state, role = sec.get('state'), sec.get('current_role')
        with self.step('read the last replicated snapshot of %s on the secondary array' % pair.label):
            pair.snapshot = self.last_replica(pair)
        if state == 'failed_over' or (role == 'source' and state == 'in_sync'):
            self.record_pair(pair, 'failed_over', None)
            return
        if role == 'source':
            self.fail("Session '%s' on the secondary array is %s: a failback is under way. Finish it (state: failed_back) "
                      "before failing over again." % (pair.remote_name, session_state(sec)))
        if state not in ('in_sync', 'suspended') or role != 'target':
            self.fail("Session '%s' on the secondary array is %s: there is no replica to fail over to (it never replicated, "
                      "or it is being set up). Start replication with kaminario.k2.k2_replication (state: in_sync)."
                      % (pair.remote_name, session_state(sec)))
        if not self.source_reachable and not p['allow_source_unreachable']:
            self.fail("The primary array cannot be reached (%s). To fail %s over without it, set allow_source_unreachable: "
                      "true; writes after the last replicated snapshot (%s) are lost."
                      % (self.source_error, pair.label, _age(self.snapshot_age(pair))), source_reachable=False,
                      source_error=self.source_error)
        prim = pair.primary
        if self.source_reachable and prim is not None and prim.get('state') == 'in_sync' and prim.get('current_role') == 'source' \
                and not p['allow_reachable_source']:
            self.fail("The primary array answers and session '%s' replicates normally (in_sync): refusing to fail over a healthy "
                      "pair. For a planned failover or a drill set allow_reachable_source: true; to test without failing over "
                      "use state: test." % (pair.name or pair.label), source_reachable=True)
        age = self.snapshot_age(pair)
        if p['max_data_loss'] is not None and (age is None or age > p['max_data_loss']):
            self.fail("Failing %s over would lose %s of writes, more than max_data_loss=%ds: wait for replication to catch "
                      "up, or raise max_data_loss." % (pair.label, _age(age), p['max_data_loss']))
        pair.window = age
        target_id = sec['id']
        pair.steps = [
            ("secondary: set session '%s' state failed_over" % pair.remote_name,
             lambda: self.target.update(SESSIONS, target_id, {'state': 'failed_over'}), False),
            ("wait: session '%s' failed_over on the secondary" % pair.remote_name,
             self.secondary_in(pair, ('failed_over',)), True),
        ]
        predicted = {'secondary': {'state': 'failed_over'}, 'primary': {'state': 'suspended'} if prim is not None else None}
        self.record_pair(pair, 'failed_over', predicted)

    def snapshot_age(self, pair):
        when = snapshot_time(pair.snapshot)
        return None if when is None else max(0.0, round(wall_clock() - when, 1))

    def secondary_in(self, pair, states, role=None):
        def check():
            sess = find_session(self.target, pair.remote_name)
            done = sess is not None and sess.get('state') in states and (role is None or sess.get('current_role') == role)
            return done, session_state(sess)
        return check

    def primary_in(self, pair, states, role=None):
        def check():
            sess = find_session(self.client, pair.name)
            done = sess is not None and sess.get('state') in states and (role is None or sess.get('current_role') == role)
            return done, session_state(sess)
        return check

    # ------------------------------------------------------------------ failed_back

    def plan_failback(self, pair):
        prim, sec = pair.primary, pair.secondary
        if prim is None:
            self.fail("Session %s does not exist on the primary array: failback needs both sessions. Set replication up "
                      "again from the secondary, or check the names." % (pair.name or pair.label))
        obs = ((prim.get('state'), prim.get('current_role')), (sec.get('state'), sec.get('current_role')))
        phase1 = [
            ("primary: unmap the volumes of session '%s'" % pair.name, lambda: self.unmap_group(self.client, prim), False),
            ("secondary: set session '%s' state in_sync (resync back to the primary)" % pair.remote_name,
             lambda: self.target.update(SESSIONS, sec['id'], {'state': 'in_sync'}), False),
            ("wait: session '%s' in_sync with role target on the primary" % pair.name, self.primary_in(pair, ('in_sync',), 'target'), True),
        ]
        phase2 = [
            ("secondary: replicate snapshots of session '%s' until one syncs within %ds" % (pair.remote_name, self.params['sync_round_seconds']),
             lambda: self.sync_rounds(pair, sec['id']), False),
            ("secondary: unmap the volumes of session '%s'" % pair.remote_name, lambda: self.unmap_group(self.target, sec), False),
            ("secondary: replicate a last snapshot of session '%s'" % pair.remote_name, lambda: self.sync_rounds(pair, sec['id'], rounds=1), False),
        ]
        switch = [
            ("primary: set session '%s' state failed_over (switch back)" % pair.name,
             lambda: self.client.update(SESSIONS, prim['id'], {'state': 'failed_over'}), False),
            ("wait: session '%s' suspended on the secondary" % pair.remote_name, self.secondary_in(pair, ('suspended',)), True),
        ]
        finish = [
            ("primary: set session '%s' state in_sync (roles swap back)" % pair.name,
             lambda: self.client.update(SESSIONS, prim['id'], {'state': 'in_sync'}), False),
            ("wait: session '%s' in_sync with role source on the primary" % pair.name, self.primary_in(pair, ('in_sync',), 'source'), True),
            ("wait: session '%s' in_sync with role target on the secondary" % pair.remote_name, self.secondary_in(pair, ('in_sync',), 'target'), True),
        ]
        if obs[1] == ('in_sync', 'target') and obs[0] == ('in_sync', 'source'):
            steps = []
        elif obs[1][0] == 'failed_over' and obs[1][1] == 'target':
            steps = phase1 + phase2 + switch + finish
        elif obs[1] == ('in_sync', 'source') and obs[0] == ('in_sync', 'target'):
            steps = phase2 + switch + finish
        elif obs[1] == ('in_sync', 'source') and obs[0][1] != 'target':
            # The resync started but the primary had not followed yet (a timed-out wait): wait, then go on.
            steps = phase1[2:] + phase2 + switch + finish
        elif obs[0][0] == 'failed_over' and obs[0][1] == 'target':
            steps = ([switch[1]] if obs[1][0] != 'suspended' else []) + finish
        elif obs[0] == ('in_sync', 'source') and obs[1] == ('suspended', 'source'):
            # The final switch was made; the secondary has not followed yet.
            steps = finish[1:]
        elif obs[0][1] == 'source' and obs[1][1] == 'target' and obs[0][0] in ('in_sync', 'suspended', 'idle'):
            # Never failed over: nothing to fail back (a stopped replication is k2_replication's business).
            steps = []
        else:
            self.fail("Cannot fail %s back from the observed states: primary session %s, secondary session %s. Inspect both "
                      "arrays (kaminario.k2.k2_facts, gather_subset: replication)." % (pair.label, session_state(prim), session_state(sec)))
        pair.steps = steps
        predicted = {'primary': {'state': 'in_sync', 'current_role': 'source'}, 'secondary': {'state': 'in_sync', 'current_role': 'target'}}
        self.record_pair(pair, 'failed_back', predicted if steps else None)

    def unmap_group(self, client, session):
        """Delete every mapping of the volumes of ``session``'s volume group on ``client``'s array."""
        group_ref = make_ref('volume_groups', ref_id(session['local_volume_group']))
        volumes = client.search('volumes', {'volume_group': group_ref}, fields=['name'])
        if not volumes:
            return
        for mapping in client.search('mappings', {'volume': [make_ref('volumes', v['id']) for v in volumes]}, fields=['volume', 'host']):
            client.delete('mappings', mapping['id'])

    def sync_rounds(self, pair, session_id, rounds=MAX_SYNC_ROUNDS):
        """Replicate user snapshots on the secondary until one syncs within ``sync_round_seconds`` (at most ``rounds``)."""
        p = self.params
        session_ref = make_ref(SESSIONS, session_id)
        for _round in range(rounds):
            started = wall_clock()
            # A replication snapshot has no name to re-read it by, and any one taken now serves this round: when the
            # answer is lost (a dropped connection, HTTP 500), send the POST again; at worst one extra generation replicates.
            snap = self.target.create('snapshots', {'replication_session': session_ref, 'is_application_consistent': False},
                                      unique=False, resend_if_lost=True)
            generation = snap.get('generation_number') if snap else None

            def synced(gno=generation):
                sess = self.target.get(SESSIONS, session_id)
                current = sess.get('generation_number')
                done = (current is not None and gno is not None and current >= gno and sess.get('current_snapshot_progress') in (100, '100')
                        and sess.get('current_snapshot_id') is None)
                return done, 'generation %s, progress %s%%' % (current, sess.get('current_snapshot_progress'))
            wait_for(synced, p['wait_timeout'], p['poll_interval'], "replication snapshot generation %s of session '%s' to sync"
                     % (generation, pair.remote_name))
            if wall_clock() - started <= p['sync_round_seconds']:
                return

    # ------------------------------------------------------------------ test

    def plan_test(self, pairs):
        p = self.params
        with self.step("look up test host '%s' on the secondary array" % p['test_host']):
            host = self.target.get_by_name('hosts', p['test_host'], fields=['name'])
        if host is None:
            self.fail("Host '%s' (option test_host) does not exist on the secondary array: create it with "
                      "kaminario.k2.k2_host_mapping (against the secondary), or fix the name." % p['test_host'])
        policy = None
        for pair in pairs:
            full = '%s:%s' % (pair.peer_group, p['test_view'])
            with self.step("look up test view '%s' on the secondary array" % full):
                view = self.target.get_by_name('snapshots', full)
                maps = self.target.search('mappings', {'volume': make_ref('snapshots', view['id'])}) if view else []
                pair.snapshot = self.last_replica(pair) if view is None else (
                    self.target.get('snapshots', ref_id(view['source'])) if view.get('source') else None)
            mapped = [m for m in maps if m.get('host') and ref_id(m['host']) == host['id'] and '/hosts/' in str(m['host'].get('ref', ''))]
            pair.test_view = {'name': full, 'host': p['test_host'], 'lun': mapped[0].get('lun') if mapped else None,
                              'source_snapshot': pair.snapshot.get('name') if pair.snapshot else None}
            steps = []
            if view is None:
                if pair.snapshot is None:
                    self.fail("No replicated snapshot of %s on the secondary array yet: wait for replication to complete a "
                              "cycle (kaminario.k2.k2_replication returns the last synced generation)." % pair.label)
                if policy is None:
                    with self.step("look up retention policy '%s' on the secondary array" % DEFAULT_RETENTION):
                        policy = self.target.get_by_name('retention_policies', DEFAULT_RETENTION, fields=['name'])
                    if policy is None:
                        self.fail("Retention policy '%s' does not exist on the secondary array." % DEFAULT_RETENTION)
                body = {'short_name': p['test_view'], 'source': make_ref('snapshots', pair.snapshot['id']), 'is_exposable': True,
                        'retention_policy': make_ref('retention_policies', policy['id']), 'is_auto_deleteable': False}
                steps.append(("secondary: create view '%s' of snapshot '%s'" % (full, pair.snapshot.get('name')),
                              self._create_view(pair, body), False))
            if not mapped:
                steps.append(("secondary: map view '%s' to host '%s'" % (full, p['test_host']), self._map_view(pair, host), False))
            pair.steps = steps
            self.record_pair(pair, 'test', None)

    def _create_view(self, pair, body):
        def create():
            pair.view = self.target.create('snapshots', body, unique={'name': pair.test_view['name']})
        return create

    def _map_view(self, pair, host):
        def mapping():
            view = pair.view or self.target.get_by_name('snapshots', pair.test_view['name'])
            body = {'volume': make_ref('snapshots', view['id']), 'host': make_ref('hosts', host['id'])}
            # A lost answer is settled by re-reading the mapping of this view to this host (there is at most one).
            created = self.target.create('mappings', body, unique=dict(body))
            pair.test_view['lun'] = created.get('lun') if created else None
        return mapping

    def plan_test_cleanup(self, pair):
        full = '%s:%s' % (pair.peer_group, self.params['test_view'])
        with self.step("look up test view '%s' on the secondary array" % full):
            view = self.target.get_by_name('snapshots', full)
            maps = self.target.search('mappings', {'volume': make_ref('snapshots', view['id'])}) if view else []
        steps = []
        for mapping in maps:
            steps.append(("secondary: unmap view '%s' (LUN %s)" % (full, mapping.get('lun')),
                          _bind(self.target.delete, 'mappings', mapping['id']), False))
        if view is not None:
            steps.append(("secondary: delete view '%s'" % full, _bind(self.target.delete, 'snapshots', view['id']), False))
        pair.steps = steps
        self.record_pair(pair, 'test_cleanup', None)


def _bind(func, *args):
    return lambda: func(*args)


def _merge(session, changes):
    if not changes:
        return session
    merged = dict(session or {})
    merged.update(changes)
    return merged


def _age(seconds):
    return 'an unknown time' if seconds is None else '%.0f s' % seconds


def main():
    K2Failover().run()


if __name__ == '__main__':
    main()
