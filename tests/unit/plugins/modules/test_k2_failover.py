# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_failover against two scripted K2 servers (primary and secondary array): every request, in order, on each
array; the primary made unreachable by stopping its server (connection refused)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.modules import k2_failover
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import Drop, hits, run_module
# The two-array fixtures (scripted source and peer servers sharing one request log, and the fake clock of the waits).
from ansible_collections.kaminario.k2.tests.unit.plugins.modules.test_k2_replication import (  # noqa: F401 pylint: disable=unused-import
    by_name, clock, conn, dst, log, paged, session, src,
)

NOW = 1000.0


@pytest.fixture(autouse=True)
def wall(monkeypatch):
    monkeypatch.setattr(k2_failover, 'wall_clock', lambda: NOW)


def run(src, dst, capsys, check=False, **args):
    params = dict(conn(src), **args)
    params.setdefault('target', dict(conn(dst), k2_password='s3cr3t-dst'))
    params.setdefault('wait_timeout', 2)
    params.setdefault('poll_interval', 1)
    if 'volume_groups' not in params:
        params.setdefault('sessions', [{'name': 's1'}])
    return run_module(k2_failover.main, params, capsys, check=check)


def remote(state='in_sync', role='target', gen=5, snap=50):
    out = session(7, 'rs1', 8, state=state, role=role, gen=gen)
    out['latest_replicated_snapshot'] = {'ref': '/snapshots/%d' % snap} if snap else None
    return out


REPLICA = {'id': 50, 'name': 'rvg1:rep-5', 'creation_time': NOW - 100.0, 'generation_number': 5, 'is_exposable': False}


def switch_back(src, dst, **remote_kwargs):
    """Failback's last phase: the primary's session back to failed_over then in_sync, the secondary's following it."""
    src.register(('PATCH', 'replication/sessions/4', None, {'state': 'failed_over'}, 200, session(state='failed_over', role='target')))
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('suspended', 'source')])))
    src.register(
        ('PATCH', 'replication/sessions/4', None, {'state': 'in_sync'}, 200, session(state='in_sync')),
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])),
    )
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('in_sync', 'target', **remote_kwargs)])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('in_sync', 'target', **remote_kwargs)])),
    )


def secondary_reads(dst, state='in_sync', role='target', replica=True):
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote(state, role)])),
        ('GET', 'volume_groups/8', {'__fields': 'id,name'}, None, 200, {'id': 8, 'name': 'rvg1'}),
    )
    if replica:
        dst.register(('GET', 'snapshots/50', None, None, 200, REPLICA))


def primary_reads(src, state='in_sync', role='source'):
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state=state, role=role)])),
        ('GET', 'volume_groups/3', {'__fields': 'id,name'}, None, 200, {'id': 3, 'name': 'vg1'}),
    )


def test_failover_with_the_primary_down_promotes_the_secondary_and_reports_the_window(src, dst, capsys):
    src.stop()   # the primary array is gone: connection refused
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote()])),
        ('GET', 'volume_groups/8', {'__fields': 'id,name'}, None, 200, {'id': 8, 'name': 'rvg1'}),
        ('GET', 'snapshots/50', None, None, 200, REPLICA),
        ('PATCH', 'replication/sessions/7', None, {'state': 'failed_over'}, 200, remote('failed_over')),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('failed_over')])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('failed_over')])),
    )
    result, failed = run(src, dst, capsys, state='failed_over', allow_source_unreachable=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['source_reachable'] is False
    assert 'Connection refused' in result['source_error']
    out = result['sessions'][0]
    assert out['active_array'] == 'secondary'
    assert out['secondary'] == {'state': 'failed_over', 'role': 'target', 'generation_number': 5}
    assert out['primary']['reachable'] is False
    assert out['data_loss_window'] == 100.0
    assert out['last_replicated_snapshot'] == 'rvg1:rep-5'
    assert out['peer_volume_group'] == 'rvg1'
    assert result['steps'] == ["secondary: set session 'rs1' state failed_over", "wait: session 'rs1' failed_over on the secondary"]
    assert result['k2_requests']['target'] == {'total': 6, 'GET': 5, 'PATCH': 1}
    assert 's3cr3t' not in str(result)


def test_failover_with_the_primary_down_needs_the_explicit_switch(src, dst, capsys):
    src.stop()
    secondary_reads(dst)
    result, failed = run(src, dst, capsys, state='failed_over')
    assert failed
    assert 'allow_source_unreachable: true' in result['msg']
    assert '100 s' in result['msg']
    assert result['changed'] is False
    assert result['k2_requests']['target'] == {'total': 3, 'GET': 3}


def test_failover_of_a_healthy_reachable_pair_is_refused_without_the_switch(src, dst, capsys):
    secondary_reads(dst)
    primary_reads(src)
    result, failed = run(src, dst, capsys, state='failed_over')
    assert failed
    assert 'allow_reachable_source: true' in result['msg'] and 'state: test' in result['msg']
    assert result['k2_requests'].get('PATCH') is None


def test_failover_refused_beyond_max_data_loss(src, dst, capsys):
    secondary_reads(dst)
    primary_reads(src, state='suspended')
    result, failed = run(src, dst, capsys, state='failed_over', max_data_loss=60)
    assert failed
    assert 'more than max_data_loss=60s' in result['msg']
    assert result['k2_requests'].get('PATCH') is None


def test_check_mode_failover_plans_and_writes_nothing_on_either_array(src, dst, capsys):
    secondary_reads(dst)
    primary_reads(src)
    result, failed = run(src, dst, capsys, check=True, state='failed_over', allow_reachable_source=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['sessions'][0]['active_array'] == 'secondary'
    assert result['sessions'][0]['secondary']['state'] == 'failed_over'
    assert result['sessions'][0]['data_loss_window'] == 100.0
    assert result['diff']['before']['s1']['active_array'] == 'primary'
    assert result['diff']['after']['s1']['active_array'] == 'secondary'
    assert set(result['k2_requests']['source']) == {'total', 'GET'}
    assert set(result['k2_requests']['target']) == {'total', 'GET'}


def test_failed_over_session_is_satisfied_even_with_the_primary_down(src, dst, capsys):
    src.stop()
    secondary_reads(dst, state='failed_over')
    result, failed = run(src, dst, capsys, state='failed_over')
    assert not failed, result
    assert result['changed'] is False
    assert result['sessions'][0]['active_array'] == 'secondary'
    assert result['sessions'][0]['data_loss_window'] is None


def test_failover_wait_timeout_names_the_step(src, dst, capsys, clock):
    secondary_reads(dst)
    primary_reads(src, state='suspended')
    dst.register(('PATCH', 'replication/sessions/7', None, {'state': 'failed_over'}, 200, remote()))
    for _i in range(3):   # wait_timeout 2, poll_interval 1: t=0, 1, 2
        dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote()])))
    result, failed = run(src, dst, capsys, state='failed_over')
    assert failed
    assert "Timed out after 2s waiting for session 'rs1' failed_over on the secondary (last seen: in_sync/target)" in result['msg']
    assert result['step'] == "wait: session 'rs1' failed_over on the secondary"
    assert result['steps_done'] == ["secondary: set session 'rs1' state failed_over"]
    assert result['changed'] is True


def failback_conversation(src, dst):
    secondary_reads(dst, state='failed_over', replica=False)
    primary_reads(src, state='suspended')
    # phase 1: unmap at the primary, resync from the secondary, the primary becomes in_sync with role target
    src.register(
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/3'}, 'id,name'), None, 200, hits([{'id': 10, 'name': 'v1'}])),
        ('GET', 'mappings', paged({'volume.ref__in': '/volumes/10'}, 'id,volume,host'), None, 200,
         hits([{'id': 60, 'volume': {'ref': '/volumes/10'}, 'host': {'ref': '/hosts/2'}}])),
        ('DELETE', 'mappings/60', None, None, 204, None),
    )
    dst.register(('PATCH', 'replication/sessions/7', None, {'state': 'in_sync'}, 200, remote('in_sync', 'source')))
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', role='target')])))
    # phase 2: a replication snapshot, synced; unmap at the secondary; a last snapshot, synced
    snap_body = {'replication_session': {'ref': '/replication/sessions/7'}, 'is_application_consistent': False}
    dst.register(
        ('POST', 'snapshots', None, snap_body, 201, {'id': 70, 'generation_number': 6}),
        ('GET', 'replication/sessions/7', None, None, 200, remote('in_sync', 'source', gen=6)),
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([{'id': 20, 'name': 'rv1'}])),
        ('GET', 'mappings', paged({'volume.ref__in': '/volumes/20'}, 'id,volume,host'), None, 200,
         hits([{'id': 61, 'volume': {'ref': '/volumes/20'}, 'host': {'ref': '/hosts/9'}}])),
        ('DELETE', 'mappings/61', None, None, 204, None),
        ('POST', 'snapshots', None, snap_body, 201, {'id': 71, 'generation_number': 7}),
        ('GET', 'replication/sessions/7', None, None, 200, remote('in_sync', 'source', gen=7)),
    )
    # phase 3: switch back and swap the roles again
    switch_back(src, dst, gen=7)
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])))


def test_failback_follows_the_cinder_sequence_across_both_arrays(src, dst, log, capsys):
    failback_conversation(src, dst)
    result, failed = run(src, dst, capsys, state='failed_back')
    assert not failed, result
    assert result['changed'] is True
    out = result['sessions'][0]
    assert out['active_array'] == 'primary'
    assert out['primary']['role'] == 'source' and out['secondary']['role'] == 'target'
    writes = [(a, m, p) for a, m, p in log if m != 'GET']
    assert writes == [
        ('src', 'DELETE', 'mappings/60'), ('dst', 'PATCH', 'replication/sessions/7'), ('dst', 'POST', 'snapshots'),
        ('dst', 'DELETE', 'mappings/61'), ('dst', 'POST', 'snapshots'), ('src', 'PATCH', 'replication/sessions/4'),
        ('src', 'PATCH', 'replication/sessions/4')]
    assert len(result['steps']) == 11


def test_failback_resends_a_replication_snapshot_whose_answer_was_lost(src, dst, log, capsys):
    # issue 8 chaos run: the answer to the replication snapshot POST was lost (dropped connection, then HTTP 500). It
    # has no name to re-read it by, and any snapshot taken now serves the round: the POST is sent again.
    secondary_reads(dst, state='in_sync', role='source', replica=False)
    primary_reads(src, state='suspended', role='source')
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', role='target')])))
    snap_body = {'replication_session': {'ref': '/replication/sessions/7'}, 'is_application_consistent': False}
    dst.register(
        ('POST', 'snapshots', None, snap_body, 201, Drop()),
        ('POST', 'snapshots', None, snap_body, 500, {'error_code': 'MC_ERR_INTERNAL', 'error_msg': 'internal error'}),
        ('POST', 'snapshots', None, snap_body, 201, {'id': 70, 'generation_number': 6}),
        ('GET', 'replication/sessions/7', None, None, 200, remote('in_sync', 'source', gen=6)),
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([])),
        ('POST', 'snapshots', None, snap_body, 201, {'id': 71, 'generation_number': 7}),
        ('GET', 'replication/sessions/7', None, None, 200, remote('in_sync', 'source', gen=7)),
    )
    switch_back(src, dst)
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])))
    result, failed = run(src, dst, capsys, state='failed_back', target=dict(conn(dst), k2_password='s3cr3t-dst', retries=2))
    assert not failed, result['msg']
    assert result['sessions'][0]['active_array'] == 'primary'
    assert [m for a, m, p in log if a == 'dst' and p == 'snapshots'] == ['POST'] * 4


def test_failback_half_switched_is_finished_by_a_rerun(src, dst, log, capsys):
    secondary_reads(dst, state='suspended', role='source', replica=False)
    primary_reads(src, state='failed_over', role='target')
    src.register(
        ('PATCH', 'replication/sessions/4', None, {'state': 'in_sync'}, 200, session(state='in_sync')),
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])),
    )
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('in_sync', 'target')])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('in_sync', 'target')])),
    )
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])))
    result, failed = run(src, dst, capsys, state='failed_back')
    assert not failed, result
    assert [(a, m) for a, m, _p in log if m != 'GET'] == [('src', 'PATCH')]
    assert result['sessions'][0]['active_array'] == 'primary'


def test_failback_of_a_pair_that_never_failed_over_changes_nothing(src, dst, capsys):
    secondary_reads(dst, replica=False)
    primary_reads(src)
    result, failed = run(src, dst, capsys, state='failed_back')
    assert not failed, result
    assert result['changed'] is False
    assert result['k2_requests']['total'] == 4


def test_failback_needs_the_primary(src, dst, capsys):
    src.stop()
    secondary_reads(dst, state='failed_over', replica=False)
    result, failed = run(src, dst, capsys, state='failed_back', retries=0)
    assert failed
    assert 'Failback needs the primary array' in result['msg']
    assert result['k2_requests']['target'] == {'total': 2, 'GET': 2}


def new_test_view_steps():
    """The requests of state=test up to the mapping: the test host, no view yet, the last replica, a view of it."""
    return [
        ('GET', 'hosts', {'name': 'drhost', '__fields': 'id,name', '__limit': '2'}, None, 200, hits([{'id': 5, 'name': 'drhost'}])),
        ('GET', 'snapshots', by_name('rvg1:dr-test'), None, 200, hits([])),
        ('GET', 'snapshots/50', None, None, 200, REPLICA),
        ('GET', 'retention_policies', {'name': 'Best_Effort_Retention', '__fields': 'id,name', '__limit': '2'}, None, 200,
         hits([{'id': 1, 'name': 'Best_Effort_Retention'}])),
        ('POST', 'snapshots', None, {'short_name': 'dr-test', 'source': {'ref': '/snapshots/50'}, 'is_exposable': True,
                                     'retention_policy': {'ref': '/retention_policies/1'}, 'is_auto_deleteable': False},
         201, {'id': 71, 'name': 'rvg1:dr-test', 'short_name': 'dr-test'}),
    ]


def test_test_maps_a_view_of_the_last_replica_without_touching_the_primary(src, dst, capsys):
    secondary_reads(dst, replica=False)
    dst.register(
        *new_test_view_steps(),
        ('POST', 'mappings', None, {'volume': {'ref': '/snapshots/71'}, 'host': {'ref': '/hosts/5'}}, 201,
         {'id': 80, 'volume': {'ref': '/snapshots/71'}, 'host': {'ref': '/hosts/5'}, 'lun': 1}),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote()])),
    )
    result, failed = run(src, dst, capsys, state='test', test_host='drhost')
    assert not failed, result
    assert result['changed'] is True
    assert result['sessions'][0]['test_view'] == {'name': 'rvg1:dr-test', 'host': 'drhost', 'lun': 1, 'source_snapshot': 'rvg1:rep-5'}
    assert result['sessions'][0]['active_array'] == 'primary'
    assert result['source_reachable'] is None
    assert result['k2_requests']['source'] == {'total': 0}


def test_test_lost_mapping_answer_is_settled_by_reading_the_mapping(src, dst, capsys):
    # issue 8 chaos run: the answer to the mapping POST was lost after the array made it; the module re-reads the
    # mapping of the view to the host instead of failing with "may or may not have applied".
    secondary_reads(dst, replica=False)
    mapping = {'id': 80, 'volume': {'ref': '/snapshots/71'}, 'host': {'ref': '/hosts/5'}, 'lun': 3}
    dst.register(
        *new_test_view_steps(),
        ('POST', 'mappings', None, {'volume': {'ref': '/snapshots/71'}, 'host': {'ref': '/hosts/5'}}, 201, Drop()),
        ('GET', 'mappings', {'volume.ref': '/snapshots/71', 'host.ref': '/hosts/5', '__limit': '2'}, None, 200, hits([mapping])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote()])),
    )
    result, failed = run(src, dst, capsys, state='test', test_host='drhost')
    assert not failed, result
    assert result['changed'] is True
    assert result['sessions'][0]['test_view'] == {'name': 'rvg1:dr-test', 'host': 'drhost', 'lun': 3, 'source_snapshot': 'rvg1:rep-5'}
    assert result['k2_requests']['target']['POST'] == 2


def test_test_rerun_is_unchanged(src, dst, capsys):
    secondary_reads(dst, replica=False)
    view = {'id': 71, 'name': 'rvg1:dr-test', 'short_name': 'dr-test', 'source': {'ref': '/snapshots/50'}}
    dst.register(
        ('GET', 'hosts', {'name': 'drhost', '__fields': 'id,name', '__limit': '2'}, None, 200, hits([{'id': 5, 'name': 'drhost'}])),
        ('GET', 'snapshots', by_name('rvg1:dr-test'), None, 200, hits([view])),
        ('GET', 'mappings', paged({'volume.ref': '/snapshots/71'}), None, 200,
         hits([{'id': 80, 'volume': {'ref': '/snapshots/71'}, 'host': {'ref': '/hosts/5'}, 'lun': 1}])),
        ('GET', 'snapshots/50', None, None, 200, REPLICA),
    )
    result, failed = run(src, dst, capsys, state='test', test_host='drhost')
    assert not failed, result
    assert result['changed'] is False
    assert result['sessions'][0]['test_view']['lun'] == 1


def test_test_cleanup_unmaps_then_deletes_the_view(src, dst, log, capsys):
    secondary_reads(dst, replica=False)
    dst.register(
        ('GET', 'snapshots', by_name('rvg1:dr-test'), None, 200, hits([{'id': 71, 'name': 'rvg1:dr-test'}])),
        ('GET', 'mappings', paged({'volume.ref': '/snapshots/71'}), None, 200,
         hits([{'id': 80, 'volume': {'ref': '/snapshots/71'}, 'host': {'ref': '/hosts/5'}, 'lun': 1}])),
        ('DELETE', 'mappings/80', None, None, 204, None),
        ('DELETE', 'snapshots/71', None, None, 204, None),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote()])),
    )
    result, failed = run(src, dst, capsys, state='test_cleanup')
    assert not failed, result
    assert result['changed'] is True
    assert [p for _a, m, p in log if m == 'DELETE'] == ['mappings/80', 'snapshots/71']


def test_volume_groups_find_sessions_from_the_groups_on_each_array(src, dst, capsys):
    src.stop()
    dst.register(
        ('GET', 'volume_groups', {'name': 'rvg1', '__fields': 'id,name', '__limit': '2'}, None, 200, hits([{'id': 8, 'name': 'rvg1'}])),
        ('GET', 'replication/sessions', paged({'local_volume_group.ref': '/volume_groups/8'}), None, 200, hits([remote('failed_over')])),
        ('GET', 'snapshots/50', None, None, 200, REPLICA),
    )
    result, failed = run(src, dst, capsys, state='failed_over', volume_groups=['vg1'])
    assert not failed, result
    assert result['changed'] is False
    assert result['sessions'][0]['remote_session_name'] == 'rs1'
    assert result['sessions'][0]['volume_group'] == 'vg1'


def test_missing_secondary_session_fails_before_any_write(src, dst, capsys):
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([])))
    result, failed = run(src, dst, capsys, state='failed_over', allow_source_unreachable=True)
    assert failed
    assert 'No replication session on the secondary array' in result['msg']


def test_failback_resumes_when_the_primary_had_not_followed_the_resync(src, dst, log, capsys):
    # A first run timed out after asking the secondary to resync: it is the source, the primary still reads suspended.
    secondary_reads(dst, state='in_sync', role='source', replica=False)
    primary_reads(src, state='suspended', role='source')
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', role='target')])))
    snap_body = {'replication_session': {'ref': '/replication/sessions/7'}, 'is_application_consistent': False}
    dst.register(
        ('POST', 'snapshots', None, snap_body, 201, {'id': 70, 'generation_number': 6}),
        ('GET', 'replication/sessions/7', None, None, 200, remote('in_sync', 'source', gen=6)),
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([])),
        ('POST', 'snapshots', None, snap_body, 201, {'id': 71, 'generation_number': 7}),
        ('GET', 'replication/sessions/7', None, None, 200, remote('in_sync', 'source', gen=7)),
    )
    switch_back(src, dst)
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])))
    result, failed = run(src, dst, capsys, state='failed_back')
    assert not failed, result
    assert result['steps'][0] == "wait: session 's1' in_sync with role target on the primary"
    assert not any('unmap the volumes of session \'s1\'' in step for step in result['steps'])
    assert result['sessions'][0]['active_array'] == 'primary'


def test_failback_waits_when_the_switch_was_made_but_the_secondary_lags(src, dst, log, capsys):
    secondary_reads(dst, state='suspended', role='source', replica=False)
    primary_reads(src, state='in_sync', role='source')
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])))
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('in_sync', 'target')])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([remote('in_sync', 'target')])),
    )
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync')])))
    result, failed = run(src, dst, capsys, state='failed_back')
    assert not failed, result
    assert [m for _a, m, _p in log if m != 'GET'] == []
    assert all(step.startswith('wait: ') for step in result['steps'])


def test_failover_during_a_failback_is_refused(src, dst, capsys):
    secondary_reads(dst, state='suspended', role='source')
    primary_reads(src, state='in_sync', role='source')
    result, failed = run(src, dst, capsys, state='failed_over', allow_reachable_source=True)
    assert failed
    assert 'a failback is under way' in result['msg']
