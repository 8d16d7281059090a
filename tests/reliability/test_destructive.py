# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 8: every destructive operation is refused without its explicit switch -- with a message naming the
switch, no write in either array's request log and both inventories unchanged -- and happens with it.

playbooks/destructive_setup.yml builds the targets on a two-array k2sim; playbooks/destructive_ops.yml runs the
six operations, once with ``ops_force=false`` and once with ``ops_force=true``.
"""

import json
import os

from k2lab import ref_id

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP = os.path.join(HERE, 'playbooks', 'destructive_setup.yml')
OPS = os.path.join(HERE, 'playbooks', 'destructive_ops.yml')

# result key -> the switch its refusal must name
SWITCHES = {'mapped': 'force', 'snapped': 'force', 'restore': 'force', 'teardown': 'confirm_teardown',
            'failover': 'allow_reachable_source'}


def run_ops(lab, tmp_path, force):
    path = os.path.join(str(tmp_path), 'ops-%s.json' % force)
    run = lab.playbook(OPS, extra_vars={'ops_force': force}, target='secondary', env={'DEST_RESULTS': path})
    assert run.rc == 0, run.output[-5000:]
    with open(path) as handle:
        return json.load(handle)


def names(inventory, resource):
    return sorted(obj['name'] for obj in inventory[resource])


def session(lab, array, name):
    found = lab.get_all(array, 'replication/sessions', name=name)
    return found[0] if found else None


def test_destructive_operations_need_their_switch(dr_lab, tmp_path):
    lab = dr_lab
    setup = lab.playbook(SETUP, target='secondary')
    assert setup.rc == 0, setup.output[-5000:]
    before = {array: lab.inventory(array) for array in ('primary', 'secondary')}
    for array in ('primary', 'secondary'):
        lab.clear_requests(array)

    # ------------------------------------------------------------------ without the switches: refused, nothing written
    r = run_ops(lab, tmp_path, False)
    for key, switch in SWITCHES.items():
        assert r[key].get('failed') is True, (key, r[key])
        assert r[key]['changed'] is False, (key, r[key])
        assert switch in r[key]['msg'], (key, switch, r[key]['msg'])
        assert 'Traceback' not in r[key]['msg'], r[key]['msg']
    assert 'dmapped' in r['mapped']['msg'] and 'dsnapped' in r['snapped']['msg'], (r['mapped']['msg'], r['snapped']['msg'])
    # exclusive=false: dx2 stays mapped, the task changes nothing
    assert not r['exclusive'].get('failed') and r['exclusive']['changed'] is False, r['exclusive']
    for array in ('primary', 'secondary'):
        assert lab.writes(array) == [], (array, lab.writes(array))
        assert len(lab.requests_log(array)) > 0  # the modules did read this array
    after = {array: lab.inventory(array) for array in ('primary', 'secondary')}
    assert after == before

    # ------------------------------------------------------------------ with the switches: each one happens
    r = run_ops(lab, tmp_path, True)
    for key in list(SWITCHES) + ['exclusive']:
        assert not r[key].get('failed'), (key, r[key].get('msg'))
        assert r[key]['changed'] is True, (key, r[key])
    primary = lab.inventory('primary')
    assert 'dmapped' not in names(primary, 'volumes') and 'dsnapped' not in names(primary, 'volumes')
    assert 'dmapped_vg' not in names(primary, 'volume_groups') and 'dsnapped_vg' not in names(primary, 'volume_groups')
    restored = lab.get_all('primary', 'volume_groups', name='drestore_vg')[0]
    snap = lab.get_all('primary', 'snapshots', name='drestore_vg:snap1')[0]
    assert ref_id(restored['last_restored_from']) == snap['id'], restored
    assert session(lab, 'primary', 'drepl-repl') is None and session(lab, 'secondary', 'rdrepl-repl') is None
    assert session(lab, 'secondary', 'rdfo-repl')['state'] == 'failed_over'
    host2 = [h for h in primary['hosts'] if h['name'] == 'dhost2'][0]
    mapped = [m for m in primary['mappings'] if ref_id(m['host']) == host2['id']]
    dx1 = [v for v in primary['volumes'] if v['name'] == 'dx1'][0]
    assert [ref_id(m['volume']) for m in mapped] == [dx1['id']], mapped
    assert 'dx2' in names(primary, 'volumes')  # unmapped, not deleted
