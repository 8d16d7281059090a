# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Chaos runs (issue 8): the provisioning, clone, migrate and DR playbooks against k2sim with faults injected through
its admin API - latency, 10 % HTTP 500, 10 % MC_ERR_BUSY, 5 % dropped connections, and answers lost after a
successful create (re-armed while the playbook runs). Each playbook either completes with exactly the declared end
state or fails with a clear message (no traceback); a plain re-run then converges (a third run changes nothing);
afterwards there are no orphans, duplicates or LUN clashes, and the data checksums are the recorded ones.

Every round prints a line ``chaos <playbook> (seed N): R requests, ... x 500, ... busy, ... drops, ... lost
responses; rc=...; re-run converged ...`` and, when K2_CHAOS_REPORT names a file, appends the figures to it as a
JSON line. The seeds are fixed, so a round meets the same faults for the same request sequence.

The default set (one round per playbook, two seeds of the cheap provisioning) fits the time of a CI stage;
K2_CHAOS_FULL=1 adds rounds (about 6 minutes in all): two more provisioning seeds, a plain clone, a migration
whose retries may run out (a clean failure), and a migration to another array.
"""

import os

import pytest

from chaos_kit import (chaos_run, seed_host, seed_mapping, seed_volume, sha256_file, state, wait_for, write_data)

GIB_KIB = 1024 * 1024
MIB_KIB = 1024
FULL = os.environ.get('K2_CHAOS_FULL') == '1'


# --------------------------------------------------------------------------------------------- provisioning

def provision_done(lab):
    """The end state playbooks/provision.yml declares, exactly."""
    st = state(lab.inventory())
    iscsi_host = st['iqns'].get('iqn.1994-05.com.redhat:demo-host01')
    fc_hosts = set(st['wwpns'].get(w) for w in ('21:00:00:25:b5:aa:00:01', '21:00:00:25:b5:aa:00:02'))
    assert iscsi_host and len(fc_hosts) == 1 and None not in fc_hosts, st
    fc_host = fc_hosts.pop()
    assert st['vgs'] == {'demo_vg': True, 'demo_scratch01_vg': False}, st['vgs']
    assert st['volumes'] == {'demo_db01': (10 * GIB_KIB, 'demo_vg'), 'demo_logs01': (20 * GIB_KIB, 'demo_vg'),
                             'demo_scratch01': (5 * GIB_KIB, 'demo_scratch01_vg')}, st['volumes']
    assert st['snapshots'] == {'demo_vg:demo_snap01': False}, st['snapshots']
    assert sorted(st['hosts']) == sorted([iscsi_host, fc_host]), st['hosts']
    assert len(st['iqns']) == 1 and len(st['wwpns']) == 2, st
    scratch_lun = st['mappings'].get(('demo_scratch01', fc_host))
    assert st['mappings'] == {('demo_db01', iscsi_host): 1, ('demo_logs01', iscsi_host): 2,
                              ('demo_scratch01', fc_host): scratch_lun} and scratch_lun, st['mappings']


@pytest.mark.parametrize('seed', [11, 12] + ([13, 14] if FULL else []))
def test_chaos_provision(lab, seed):
    chaos_run(lab, 'provision', 'provision.yml', seed=seed, lost=3, check_done=lambda: provision_done(lab))


# --------------------------------------------------------------------------------------------- clone

def clone_vars(lab, **role_vars):
    base = {'clone_transport': 'local', 'clone_k2sim_admin': lab.admin, 'clone_copy_become': False}
    base.update(role_vars)
    return base


def test_chaos_clone(lab):
    """A mapped volume cloned through a temporary snapshot and view; with K2_CHAOS_FULL also a volume cloned directly."""
    seed_volume(lab, 'primary', 'src-a', 8, dedup=False)
    seed_volume(lab, 'primary', 'src-b', 8)
    seed_host(lab, 'primary', 'app01', iqn='iqn.2026-01.com.example:app01')
    sums = {'src-a': write_data(lab, 'primary', 'src-a', 1, chunks=((0, 1), (3, 2))),
            'src-b': write_data(lab, 'primary', 'src-b', 2, chunks=((1, 2), (5, 1)))}
    seed_mapping(lab, 'primary', 'src-b', 'app01')       # in use: cloned through a snapshot

    def done(clone, source, group, dedup):
        def check():
            st = state(lab.inventory())
            assert st['volumes'].get(clone) == (8 * MIB_KIB, group), st['volumes']
            assert set(st['volumes']) <= {'src-a', 'src-b', 'src-a-copy', 'src-b-copy'}, st['volumes']
            assert st['vgs'][group] is dedup
            assert st['snapshots'] == {}, 'a temporary snapshot or view is left: %s' % st['snapshots']
            assert 'localhost' not in st['hosts'], 'the copy host object the role created is left'
            assert [k for k in st['mappings'] if k[0] == clone] == []
            assert lab.sha256('primary', clone) == sums[source]
            assert lab.sha256('primary', source) == sums[source]
        return check

    chaos_run(lab, 'clone via snapshot', 'clone.yml',
              clone_vars(lab, clone_source_volume='src-b', clone_name='src-b-copy', clone_via_snapshot=True),
              seed=22, check_done=done('src-b-copy', 'src-b', 'src-b-copy_vg', True))
    if FULL:
        chaos_run(lab, 'clone', 'clone.yml', clone_vars(lab, clone_source_volume='src-a', clone_name='src-a-copy'),
                  seed=21, check_done=done('src-a-copy', 'src-a', 'src-a-copy_vg', False))
    st = state(lab.inventory())
    assert st['mappings'] == {('src-b', 'app01'): st['mappings'][('src-b', 'app01')]}, st['mappings']


# --------------------------------------------------------------------------------------------- migrate

def migrate_vars(lab, **role_vars):
    base = {'migrate_transport': 'local', 'migrate_k2sim_admin': lab.admin, 'migrate_copy_become': False}
    base.update(role_vars)
    return base


def test_chaos_migrate(dr_lab):
    """Dedup to nodedup on the same array (the copy takes over the names); with K2_CHAOS_FULL also a run whose retries
    may run out, and a volume moved to the other array."""
    lab = dr_lab
    seed_volume(lab, 'primary', 'mig-a', 8)
    seed_volume(lab, 'primary', 'mig-c', 8, dedup=False)
    sums = {'mig-a': write_data(lab, 'primary', 'mig-a', 3, chunks=((0, 2), (4, 1))),
            'mig-c': write_data(lab, 'primary', 'mig-c', 4, chunks=((2, 1), (6, 1)))}

    def done(array, volume, dedup, gone_from=None):
        def check():
            st = state(lab.inventory(array))
            assert st['volumes'].get(volume) == (8 * MIB_KIB, volume + '_vg'), st['volumes']
            assert st['vgs'][volume + '_vg'] is dedup, st['vgs']
            assert set(st['volumes']) <= {'mig-a', 'mig-b', 'mig-c'}, st['volumes']
            assert set(st['vgs']) == set(v + '_vg' for v in st['volumes']), st['vgs']
            assert lab.sha256(array, volume) == sums[volume]
            for side in ('primary', 'secondary'):
                other = state(lab.inventory(side))
                assert not [n for n in list(other['volumes']) + list(other['vgs']) if n.startswith('k2tmp-')], other
                assert 'localhost' not in other['hosts'], 'the copy host object the role created is left'
            if gone_from:
                src = state(lab.inventory(gone_from))
                assert volume not in src['volumes'] and volume + '_vg' not in src['vgs'], src
        return check

    both = ('primary', 'secondary')
    chaos_run(lab, 'migrate', 'migrate.yml', migrate_vars(lab, migrate_source='mig-a', migrate_dedup=False),
              arrays=both, faulted=('primary',), seed=37, check_done=done('primary', 'mig-a', False))
    if FULL:
        # Seed 31 draws six faults in a row early on: a call may run out of retries, and the run must then fail cleanly.
        seed_volume(lab, 'primary', 'mig-b', 8)
        sums['mig-b'] = write_data(lab, 'primary', 'mig-b', 5, chunks=((1, 1),))
        chaos_run(lab, 'migrate (retries exhausted)', 'migrate.yml',
                  migrate_vars(lab, migrate_source='mig-b', migrate_dedup=False), arrays=both, faulted=('primary',),
                  seed=31, check_done=done('primary', 'mig-b', False))
        chaos_run(lab, 'migrate to another array', 'migrate.yml',
                  migrate_vars(lab, migrate_source='mig-c', migrate_dest_k2sim_array='secondary'),
                  arrays=both, target='secondary', seed=32,
                  check_done=done('secondary', 'mig-c', False, gone_from='primary'))


# --------------------------------------------------------------------------------------------- DR

def session_view(lab):
    """{array: {session name: (state, role, generation, converged)}} from k2sim's replication view."""
    out = {}
    for array, info in lab.replication()['arrays'].items():
        out[array] = dict((s['name'], (s['state'], s['current_role'], s['generation_number'], s['converged']))
                          for s in info['sessions'])
    return out


def mgmt_host(lab, array):
    return lab._admin('GET', '/arrays/%s' % array)['mgmt_host']


def test_chaos_dr(dr_lab):
    """dr_setup, dr_test and its cleanup, dr_failover with the primary down, dr_failback - each under faults."""
    lab = dr_lab
    seed_volume(lab, 'primary', 'app-data', 16, volume_group='app-vg')
    seed_volume(lab, 'primary', 'app-logs', 8, volume_group='app-vg')
    sums = {'app-data': write_data(lab, 'primary', 'app-data', 5, chunks=((1, 3), (9, 2))),
            'app-logs': write_data(lab, 'primary', 'app-logs', 6, chunks=((0, 1),))}
    seed_host(lab, 'secondary', 'dr-test01', iqn='iqn.2026-11.com.example:dr-test01')
    dr = {'dr_volume_groups': ['app-vg'], 'dr_rpo': 300}
    both = ('primary', 'secondary')

    def replicated():
        st = session_view(lab)
        return (st['primary'].get('app-vg-repl', ())[:2] == ('in_sync', 'source')
                and st['secondary'].get('rapp-vg-repl', ())[:2] == ('in_sync', 'target')
                and st['secondary']['rapp-vg-repl'][2] >= 1)

    def setup_done():
        p, s = state(lab.inventory('primary')), state(lab.inventory('secondary'))
        assert p['peers'] == {'secondary': mgmt_host(lab, 'secondary')}, p['peers']
        assert s['peers'] == {'primary': mgmt_host(lab, 'primary')}, s['peers']
        assert p['sessions'] == {'app-vg-repl': ('in_sync', 'source', 'app-vg')}, p['sessions']
        assert s['sessions'] == {'rapp-vg-repl': ('in_sync', 'target', 'rapp-vg')}, s['sessions']
        assert s['volumes'] == {'rapp-data': (16 * MIB_KIB, 'rapp-vg'), 'rapp-logs': (8 * MIB_KIB, 'rapp-vg')}, s
        wait_for(replicated, 60, what='the initial sync')
        assert lab.sha256('secondary', 'rapp-data') == sums['app-data']
        assert lab.sha256('secondary', 'rapp-logs') == sums['app-logs']

    chaos_run(lab, 'dr_setup', 'dr_setup.yml', dr, arrays=both, target='secondary', seed=41, check_done=setup_done)

    def test_done():
        s = state(lab.inventory('secondary'))
        assert s['snapshots'] == {'rapp-vg:dr-test': True}, s['snapshots']
        assert [k for k in s['mappings'] if k[1] == 'dr-test01'] == [('rapp-vg:dr-test', 'dr-test01')], s['mappings']
        backing = lab._admin('GET', '/arrays/secondary/backing', params={'host': 'dr-test01', 'view': 'rapp-vg:dr-test'})
        assert sorted(sha256_file(d['path']) for d in backing['devices']) == sorted(sums.values())
        assert session_view(lab)['secondary']['rapp-vg-repl'][:2] == ('in_sync', 'target')

    chaos_run(lab, 'dr_test', 'dr_test.yml', dict(dr, dr_test_host='dr-test01'), arrays=both, target='secondary',
              seed=42, check_done=test_done)

    def cleanup_done():
        s = state(lab.inventory('secondary'))
        assert s['snapshots'] == {}, s['snapshots']
        assert [k for k in s['mappings'] if k[1] == 'dr-test01'] == [], s['mappings']

    chaos_run(lab, 'dr_test cleanup', 'dr_test.yml', dict(dr, dr_test_cleanup=True), arrays=both,
              target='secondary', seed=43, check_done=cleanup_done)

    # Disaster: the primary goes down; the failover runs against the secondary under faults.
    lab.faults('primary', down=True)

    def failover_done():
        s = state(lab.inventory('secondary'))
        assert s['sessions'] == {'rapp-vg-repl': ('failed_over', 'target', 'rapp-vg')}, s['sessions']
        assert lab.sha256('secondary', 'rapp-data') == sums['app-data']
        assert lab.sha256('secondary', 'rapp-logs') == sums['app-logs']

    chaos_run(lab, 'dr_failover (primary down)', 'dr_failover.yml',
              dict(dr, dr_allow_source_unreachable=True, dr_source_probe_timeout=3), arrays=('secondary',),
              target='secondary', seed=44, check_done=failover_done)

    # Production at the DR site writes; the primary comes back; the failback brings the writes home.
    sums_dr = {'app-data': write_data(lab, 'secondary', 'rapp-data', 7, chunks=((12, 2),), tail=False),
               'app-logs': lab.sha256('secondary', 'rapp-logs')}
    lab.faults('primary', down=False)
    wait_for(lambda: session_view(lab)['primary']['app-vg-repl'][3], 30, what='the primary to see the failover')

    def failback_done():
        p, s = state(lab.inventory('primary')), state(lab.inventory('secondary'))
        assert p['sessions'] == {'app-vg-repl': ('in_sync', 'source', 'app-vg')}, p['sessions']
        assert s['sessions'] == {'rapp-vg-repl': ('in_sync', 'target', 'rapp-vg')}, s['sessions']
        assert lab.sha256('primary', 'app-data') == sums_dr['app-data']
        assert lab.sha256('primary', 'app-logs') == sums_dr['app-logs']

    chaos_run(lab, 'dr_failback', 'dr_failback.yml', dict(dr, dr_sync_round_seconds=30, dr_wait_timeout=120),
              arrays=both, target='secondary', seed=45, check_done=failback_done)
