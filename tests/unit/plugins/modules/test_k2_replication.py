# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_replication against two scripted K2 servers (source and peer array): every request, in order, on each array,
and the order across both arrays where it matters (teardown, rollback)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.module_utils import k2_replication as rep_utils
from ansible_collections.kaminario.k2.plugins.modules import k2_replication
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import K2Server, hits, paged, run_module


class LoggedServer(K2Server):
    """A scripted server that also appends ``(array, method, path)`` to a log shared by both arrays."""

    def __init__(self, ca, ca_path, label, log):
        self.label = label
        self.log = log
        super(LoggedServer, self).__init__(ca, ca_path)

    def match(self, received):
        expected = super(LoggedServer, self).match(received)
        if expected is not None:
            self.log.append((self.label, received.method, received.path.replace('/api/v2/', '')))
        return expected


@pytest.fixture
def log():
    return []


@pytest.fixture
def src(k2_ca, k2_ca_path, log):
    server = LoggedServer(k2_ca, k2_ca_path, 'src', log)
    try:
        yield server
    finally:
        server.stop()
    server.verify()


@pytest.fixture
def dst(k2_ca, k2_ca_path, log):
    server = LoggedServer(k2_ca, k2_ca_path, 'dst', log)
    try:
        yield server
    finally:
        server.stop()
    server.verify()


class FakeClock(object):
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(rep_utils, '_now', fake.monotonic)
    monkeypatch.setattr(rep_utils, '_pause', fake.sleep)
    return fake


def conn(server):
    return dict(k2_host=server.host, k2_username='admin', k2_password='s3cr3t-src', ca_path=server.ca_path,
                retries=0, retry_max_wait=0)


def run(src, dst, capsys, check=False, **args):
    params = dict(conn(src), **args)
    target = dict(conn(dst), k2_password='s3cr3t-dst')
    params.setdefault('target', target)
    params.setdefault('wait_timeout', 3)
    params.setdefault('poll_interval', 1)
    return run_module(k2_replication.main, params, capsys, check=check)


def by_name(name):
    return {'name': name, '__limit': '2'}


def session(obj_id=4, name='s1', vg=3, state='idle', role='source', rpo=300, peer=1, gen=None):
    return {'id': obj_id, 'name': name, 'local_volume_group': {'ref': '/volume_groups/%d' % vg}, 'state': state,
            'current_role': role, 'rpo': rpo, 'replication_peer_k2array': {'ref': '/replication/peer_k2arrays/%d' % peer},
            'generation_number': gen, 'current_snapshot_progress': 100, 'current_snapshot_id': None,
            'latest_replicated_snapshot': None}


VG = {'id': 3, 'name': 'vg1'}
PEER = {'id': 1, 'name': 'dr', 'mgmt_host': '10.0.0.2', 'mgmt_connectivity_state': 'ok', 'system_id': 'd503'}
VOLUMES = [{'id': 10, 'name': 'v1', 'size': 1048576}, {'id': 11, 'name': 'v2', 'size': 2097152}]
VOL_QUERY = paged({'volume_group.ref': '/volume_groups/3'}, 'id,name,size')
PV_QUERY = paged({'local_volume.ref__in': '/volumes/10,/volumes/11'})


def create_reads(src, dst, existing_pv=()):
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([])),
        ('GET', 'volume_groups', by_name('vg1'), None, 200, hits([VG])),
        ('GET', 'replication/peer_k2arrays', by_name('dr'), None, 200, hits([PEER])),
        ('GET', 'volumes', VOL_QUERY, None, 200, hits(VOLUMES)),
        ('GET', 'replication/peer_volumes', PV_QUERY, None, 200, hits(list(existing_pv))),
        ('GET', 'replication/sessions', paged({'local_volume_group.ref': '/volume_groups/3'}), None, 200, hits([])),
    )
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([])),
        ('GET', 'volume_groups', by_name('rvg1'), None, 200, hits([])),
        ('GET', 'volumes', paged({'name__in': 'rv1,rv2'}, 'id,name'), None, 200, hits([])),
    )


SESSION_BODY = {'name': 's1', 'replication_peer_k2array': {'ref': '/replication/peer_k2arrays/1'},
                'local_volume_group': {'ref': '/volume_groups/3'}, 'replication_peer_volume_group_name': 'rvg1',
                'remote_replication_session_name': 'rs1', 'auto_configure_peer_volumes': False, 'rpo': 300}


def pv_body(vol_id, name):
    return {'local_volume': {'ref': '/volumes/%d' % vol_id}, 'name': name, 'replication_session': {'ref': '/replication/sessions/4'}}


def test_create_in_sync_follows_cinder_order_and_waits_for_the_peer(src, dst, log, capsys):
    create_reads(src, dst)
    src.register(
        ('POST', 'replication/sessions', None, SESSION_BODY, 201, session()),
        ('POST', 'replication/peer_volumes', None, pv_body(10, 'rv1'), 201, {'id': 1, 'name': 'rv1'}),
        ('POST', 'replication/peer_volumes', None, pv_body(11, 'rv2'), 201, {'id': 2, 'name': 'rv2'}),
    )
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, role='target')])))
    src.register(('PATCH', 'replication/sessions/4', None, {'state': 'in_sync'}, 200, session(state='in_sync')))
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, role='target')])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='in_sync', role='target')])),
    )
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', gen=1)])))
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='in_sync', role='target', gen=1)])))

    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', peer_array='dr', rpo=300, state='in_sync')
    assert not failed, result
    assert result['changed'] is True
    session_out = result['session']
    assert session_out['state'] == 'in_sync'
    assert session_out['peer_volume_group'] == 'rvg1' and session_out['remote_session_name'] == 'rs1'
    assert session_out['peer_volumes'] == [{'volume': 'v1', 'name': 'rv1'}, {'volume': 'v2', 'name': 'rv2'}]
    assert session_out['local']['role'] == 'source' and session_out['remote']['role'] == 'target'
    assert session_out['remote']['generation_number'] == 1
    assert result['actions'][0]['action'] == 'create'
    assert result['steps'] == [
        "source: create session 's1' for volume group 'vg1'",
        "source: create peer volume 'rv1' for volume 'v1'",
        "source: create peer volume 'rv2' for volume 'v2'",
        "wait: remote session 'rs1' on the peer array",
        "source: set session 's1' state in_sync",
        "wait: remote session 'rs1' in_sync",
    ]
    assert result['k2_requests']['source']['POST'] == 3
    assert result['k2_requests']['target'] == {'total': 7, 'GET': 7}
    assert 's3cr3t-dst' not in str(result) and 's3cr3t-src' not in str(result)


def test_failed_peer_volume_rolls_back_both_arrays_in_cinder_order(src, dst, log, capsys):
    create_reads(src, dst)
    src.register(
        ('POST', 'replication/sessions', None, SESSION_BODY, 201, session()),
        ('POST', 'replication/peer_volumes', None, pv_body(10, 'rv1'), 201, {'id': 1, 'name': 'rv1'}),
        ('POST', 'replication/peer_volumes', None, pv_body(11, 'rv2'), 400, {'error_code': 'MC_ERR_INVALID_ARG', 'error_msg': 'no space on peer'}),
        # rollback, newest undo first: the source session, then the peer's session, volumes and group
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session()])),
        ('DELETE', 'replication/sessions/4', None, None, 204, None),
    )
    dst.register(
        ('GET', 'replication/sessions', paged({'name__in': 'rs1'}, 'id,name'), None, 200, hits([{'id': 7, 'name': 'rs1'}])),
        ('DELETE', 'replication/sessions/7', None, None, 204, None),
        ('GET', 'volumes', paged({'name__in': 'rv1,rv2'}, 'id,name'), None, 200, hits([{'id': 20, 'name': 'rv1'}])),
        ('DELETE', 'volumes/20', None, None, 204, None),
        ('GET', 'volume_groups', paged({'name__in': 'rvg1'}, 'id,name'), None, 200, hits([{'id': 8, 'name': 'rvg1'}])),
        ('DELETE', 'volume_groups/8', None, None, 204, None),
    )
    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', peer_array='dr', rpo=300, state='in_sync')
    assert failed
    assert "Could not set up session 's1'" in result['msg']
    assert 'no space on peer' in result['msg']
    assert 'Rolled back' in result['msg'] and 'Could NOT' not in result['msg']
    assert [r['step'] for r in result['rollback']] == [
        "delete session 's1' on the source array", "delete remote session 'rs1' on the peer array",
        'delete peer volumes on the peer array', "delete peer volume group 'rvg1' on the peer array"]
    deletes = [(a, p) for a, m, p in log if m == 'DELETE']
    assert deletes == [('src', 'replication/sessions/4'), ('dst', 'replication/sessions/7'), ('dst', 'volumes/20'),
                       ('dst', 'volume_groups/8')]


def test_rerun_is_reads_only_and_unchanged(src, dst, capsys):
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', gen=3)])),
        ('GET', 'volume_groups/3', None, None, 200, VG),
        ('GET', 'replication/peer_k2arrays/1', None, None, 200, PEER),
        ('GET', 'volumes', VOL_QUERY, None, 200, hits(VOLUMES)),
        ('GET', 'replication/peer_volumes', PV_QUERY, None, 200,
         hits([{'id': 1, 'name': 'rv1', 'local_volume': {'ref': '/volumes/10'}}, {'id': 2, 'name': 'rv2', 'local_volume': {'ref': '/volumes/11'}}])),
    )
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='in_sync', role='target', gen=3)])))
    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', peer_array='dr', rpo=300, state='in_sync')
    assert not failed, result
    assert result['changed'] is False
    assert result['actions'] == [] and result['steps'] == []
    assert result['session']['remote']['state'] == 'in_sync'
    assert result['k2_requests']['total'] == 6
    assert result['diff']['before'] == result['diff']['after']


def recorded_session(state='in_sync'):
    """A session created with its own peer-side names, as K2 shows it afterwards."""
    out = session(state=state, gen=3)
    out.update(remote_replication_session_name='dr-s1', replication_peer_volume_group_name='dr-vg1')
    return out


def test_rerun_without_the_peer_side_names_uses_those_the_session_was_created_with(src, dst, capsys):
    # Before: the names were worked out again as r + name, so the remote session 'rs1' was never found and even a
    # no-change run waited wait_timeout for it.
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([recorded_session()])),
        ('GET', 'volume_groups/3', None, None, 200, VG),
        ('GET', 'replication/peer_k2arrays/1', None, None, 200, PEER),
        ('GET', 'volumes', VOL_QUERY, None, 200, hits(VOLUMES)),
        ('GET', 'replication/peer_volumes', PV_QUERY, None, 200,
         hits([{'id': 1, 'name': 'rv1', 'local_volume': {'ref': '/volumes/10'}}, {'id': 2, 'name': 'rv2', 'local_volume': {'ref': '/volumes/11'}}])),
    )
    dst.register(('GET', 'replication/sessions', by_name('dr-s1'), None, 200,
                  hits([session(7, 'dr-s1', 8, state='in_sync', role='target', gen=3)])))
    result, failed = run(src, dst, capsys, name='s1', state='in_sync')
    assert not failed, result
    assert result['changed'] is False
    assert result['session']['remote_session_name'] == 'dr-s1'
    assert result['session']['peer_volume_group'] == 'dr-vg1'
    assert result['k2_requests']['total'] == 6


@pytest.mark.parametrize('option, given, recorded', [
    ('remote_session_name', 'other-s1', 'dr-s1'),
    ('peer_volume_group', 'other-vg1', 'dr-vg1'),
])
def test_another_peer_side_name_than_the_session_was_created_with_is_refused(src, dst, capsys, option, given, recorded):
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([recorded_session()])),
        ('GET', 'volume_groups/3', None, None, 200, VG),
        ('GET', 'replication/peer_k2arrays/1', None, None, 200, PEER),
        ('GET', 'volumes', VOL_QUERY, None, 200, hits(VOLUMES)),
        ('GET', 'replication/peer_volumes', PV_QUERY, None, 200, hits([])),
    )
    result, failed = run(src, dst, capsys, name='s1', state='in_sync', **{option: given})
    assert failed
    assert result['msg'] == ("Session 's1' was created with %s '%s', not '%s' (option %s): it cannot change. Leave %s out, "
                             "or set it to '%s'." % (option, recorded, given, option, option, recorded))
    assert result['k2_requests']['total'] == result['k2_requests']['GET']


def test_another_peer_array_than_the_session_replicates_to_is_refused(src, dst, capsys):
    # Before: the peer was read through the session itself and compared with itself, so peer_array was ignored.
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', gen=3)])),
        ('GET', 'volume_groups/3', None, None, 200, VG),
        ('GET', 'replication/peer_k2arrays/1', None, None, 200, PEER),
    )
    result, failed = run(src, dst, capsys, name='s1', peer_array='other-dr', state='in_sync')
    assert failed
    assert result['msg'].startswith("Session 's1' replicates to peer array 'dr', not 'other-dr' (option peer_array): "
                                    "a session's peer cannot change.")
    assert result['k2_requests']['total'] == 3


def test_absent_tears_down_the_peer_side_objects_the_session_was_created_with(src, dst, log, capsys):
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([recorded_session(state='idle')])))
    dst.register(('GET', 'replication/sessions', by_name('dr-s1'), None, 200, hits([])))
    src.register(('GET', 'volume_groups/3', {'__fields': 'id,name'}, None, 200, VG))
    dst.register(('GET', 'volume_groups', {'name': 'dr-vg1', '__fields': 'id,name', '__limit': '2'}, None, 200,
                  hits([{'id': 8, 'name': 'dr-vg1'}])))
    result, failed = run(src, dst, capsys, name='s1', state='absent')
    assert failed
    assert result['msg'] == ("state=absent deletes session 's1' and the replica on the peer array (volume group 'dr-vg1', "
                             "its volumes and snapshots); set confirm_teardown: true to do so.")


@pytest.mark.parametrize('rpo', [0, 59, 120, 301, 610])
def test_rpo_is_validated_before_any_request(src, dst, capsys, rpo):
    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', peer_array='dr', rpo=rpo, state='in_sync')
    assert failed
    assert 'rpo=%d is not an RPO K2 accepts' % rpo in result['msg']
    assert result['k2_requests']['total'] == 0


def test_target_timeout_zero_is_refused_before_any_request(src, dst, capsys):
    # Was taken as "unset" and replaced by 60 s, where the module's own timeout: 0 is refused.
    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', peer_array='dr', state='in_sync',
                         target=dict(conn(dst), k2_password='s3cr3t-dst', timeout=0))
    assert failed
    assert result['msg'] == 'target: timeout must be a positive number of seconds.'
    assert result['k2_requests']['total'] == 0


@pytest.mark.parametrize('rpo', [60, 300, 900, 3600])
def test_valid_rpos(rpo):
    assert rep_utils.rpo_problem(rpo) is None


def teardown_reads(src, dst, local_state='in_sync'):
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state=local_state)])))
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state=local_state, role='target')])))
    src.register(('GET', 'volume_groups/3', {'__fields': 'id,name'}, None, 200, VG))
    dst.register(('GET', 'volume_groups/8', {'__fields': 'id,name'}, None, 200, {'id': 8, 'name': 'rvg1'}))


def test_absent_without_confirmation_is_refused_and_writes_nothing(src, dst, capsys):
    teardown_reads(src, dst)
    result, failed = run(src, dst, capsys, name='s1', state='absent')
    assert failed
    assert 'confirm_teardown: true' in result['msg'] and "'rvg1'" in result['msg']
    assert result['changed'] is False


def test_absent_follows_cinder_delete_sequence_across_both_arrays(src, dst, log, capsys):
    teardown_reads(src, dst)
    rep_snap = {'id': 30, 'name': 'vg1:rep1', 'replication_session': {'ref': '/replication/sessions/4'}}
    user_snap = {'id': 31, 'name': 'vg1:nightly', 'replication_session': None}
    src.register(
        ('GET', 'snapshots', paged({'volume_group.ref': '/volume_groups/3'}), None, 200, hits([rep_snap, user_snap])),
        ('PATCH', 'replication/sessions/4', None, {'state': 'suspended'}, 200, session(state='suspended')),
    )
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='in_sync', role='target')])),
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='suspended', role='target')])),
    )
    src.register(('PATCH', 'replication/sessions/4', None, {'state': 'idle'}, 200, session(state='idle')))
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='idle', role='target')])),
        ('DELETE', 'replication/sessions/7', None, None, 204, None),
    )
    src.register(
        ('DELETE', 'replication/sessions/4', None, None, 204, None),
        ('DELETE', 'snapshots/30', None, None, 204, None),
    )
    dst.register(
        ('GET', 'snapshots', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([{'id': 40, 'name': 'rvg1:rep1'}])),
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([{'id': 41, 'name': 'rv1'}])),
        ('DELETE', 'snapshots/40', None, None, 204, None),
        ('DELETE', 'volumes/41', None, None, 204, None),
        ('DELETE', 'volume_groups/8', None, None, 204, None),
    )
    result, failed = run(src, dst, capsys, name='s1', state='absent', confirm_teardown=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['session'] == {}
    writes = [(a, m, p) for a, m, p in log if m != 'GET']
    assert writes == [
        ('src', 'PATCH', 'replication/sessions/4'), ('src', 'PATCH', 'replication/sessions/4'),
        ('dst', 'DELETE', 'replication/sessions/7'), ('src', 'DELETE', 'replication/sessions/4'),
        ('src', 'DELETE', 'snapshots/30'), ('dst', 'DELETE', 'snapshots/40'), ('dst', 'DELETE', 'volumes/41'),
        ('dst', 'DELETE', 'volume_groups/8')]
    # the peer was read (and showed the state) between the two PATCHes and before the deletes
    patches = [i for i, entry in enumerate(log) if entry == ('src', 'PATCH', 'replication/sessions/4')]
    first_delete = log.index(('dst', 'DELETE', 'replication/sessions/7'))
    assert ('dst', 'GET', 'replication/sessions') in log[patches[0]:patches[1]]
    assert ('dst', 'GET', 'replication/sessions') in log[patches[1]:first_delete]


def test_absent_when_nothing_exists_needs_no_confirmation(src, dst, capsys):
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([])))
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([])),
        ('GET', 'volume_groups', {'name': 'rvg1', '__fields': 'id,name', '__limit': '2'}, None, 200, hits([])),
    )
    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', state='absent')
    assert not failed, result
    assert result['changed'] is False


def test_check_mode_create_reads_both_arrays_and_writes_nothing(src, dst, capsys):
    create_reads(src, dst)
    result, failed = run(src, dst, capsys, check=True, name='s1', volume_group='vg1', peer_array='dr', rpo=300, state='in_sync')
    assert not failed, result
    assert result['changed'] is True
    assert result['session']['state'] == 'in_sync'
    assert result['steps'][0] == "source: create session 's1' for volume group 'vg1'"
    assert result['diff']['before'] == {'session': {}}
    assert 'POST' not in result['k2_requests'] and 'PATCH' not in result['k2_requests']


def test_wait_timeout_names_the_step(src, dst, capsys, clock):
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='idle')])),
        ('GET', 'volume_groups/3', None, None, 200, VG),
        ('GET', 'replication/peer_k2arrays/1', None, None, 200, PEER),
        ('GET', 'volumes', VOL_QUERY, None, 200, hits(VOLUMES)),
        ('GET', 'replication/peer_volumes', PV_QUERY, None, 200,
         hits([{'id': 1, 'name': 'rv1', 'local_volume': {'ref': '/volumes/10'}}, {'id': 2, 'name': 'rv2', 'local_volume': {'ref': '/volumes/11'}}])),
    )
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, role='target')])))
    src.register(('PATCH', 'replication/sessions/4', None, {'state': 'in_sync'}, 200, session(state='in_sync')))
    # wait_timeout 3, poll_interval 1: reads at t=0, 1, 2, 3, then the timeout
    for _i in range(4):
        dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, role='target')])))
    result, failed = run(src, dst, capsys, name='s1', state='in_sync')
    assert failed
    assert "Timed out after 3s waiting for remote session 'rs1' in_sync (last seen: idle/target)" in result['msg']
    assert 're-run the task' in result['msg']
    assert result['changed'] is True
    assert clock.now == 1003.0


def test_failed_over_session_is_left_to_k2_failover(src, dst, capsys):
    src.register(
        ('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='in_sync', role='target')])),
        ('GET', 'volume_groups/3', None, None, 200, VG),
        ('GET', 'replication/peer_k2arrays/1', None, None, 200, PEER),
        ('GET', 'volumes', VOL_QUERY, None, 200, hits(VOLUMES)),
        ('GET', 'replication/peer_volumes', PV_QUERY, None, 200, hits([])),
    )
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='in_sync', role='source')])))
    result, failed = run(src, dst, capsys, name='s1', state='in_sync')
    assert failed
    assert 'k2_failover' in result['msg']
    assert result['k2_requests'].get('POST') is None


def test_peer_object_is_created_with_credentials_never_returned(src, dst, capsys):
    src.register(
        ('GET', 'replication/peer_k2arrays', by_name('dr'), None, 200, hits([])),
        ('POST', 'replication/peer_k2arrays', None,
         {'name': 'dr', 'mgmt_host': '10.0.0.2', 'username': 'repl', 'password': 'peer-pw-1', 'local_username': 'back',
          'local_password': 'peer-pw-2'}, 201, dict(PEER)),
    )
    result, failed = run(src, dst, capsys, peer=dict(name='dr', mgmt_host='10.0.0.2', username='repl', password='peer-pw-1',
                                                     local_username='back', local_password='peer-pw-2'))
    assert not failed, result
    assert result['changed'] is True
    assert result['peer_array']['name'] == 'dr'
    assert 'peer-pw' not in str(result)
    assert result['k2_requests']['target'] == {'total': 0}


def test_absent_rerun_after_a_partial_teardown_finishes_on_the_peer(src, dst, log, capsys):
    # A first run deleted both sessions and failed before the replica group went: the re-run finds it by name.
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([])))
    dst.register(
        ('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([])),
        ('GET', 'volume_groups', {'name': 'rvg1', '__fields': 'id,name', '__limit': '2'}, None, 200, hits([{'id': 8, 'name': 'rvg1'}])),
        ('GET', 'snapshots', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([])),
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/8'}, 'id,name'), None, 200, hits([{'id': 41, 'name': 'rv1'}])),
        ('DELETE', 'volumes/41', None, None, 204, None),
        ('DELETE', 'volume_groups/8', None, None, 204, None),
    )
    result, failed = run(src, dst, capsys, name='s1', volume_group='vg1', state='absent', confirm_teardown=True)
    assert not failed, result
    assert result['changed'] is True
    assert [(a, m, p) for a, m, p in log if m == 'DELETE'] == [('dst', 'DELETE', 'volumes/41'), ('dst', 'DELETE', 'volume_groups/8')]


def test_peer_object_in_use_is_not_deleted(src, dst, capsys):
    src.register(
        ('GET', 'replication/peer_k2arrays', by_name('dr'), None, 200, hits([PEER])),
        ('GET', 'replication/sessions', paged({'replication_peer_k2array.ref': '/replication/peer_k2arrays/1'}), None, 200,
         hits([session()])),
    )
    result, failed = run(src, dst, capsys, peer=dict(name='dr', state='absent'))
    assert failed
    assert "still used by session(s) s1" in result['msg']
    assert result['changed'] is False


def test_teardown_of_a_failed_over_pair_is_refused(src, dst, capsys):
    src.register(('GET', 'replication/sessions', by_name('s1'), None, 200, hits([session(state='suspended')])))
    dst.register(('GET', 'replication/sessions', by_name('rs1'), None, 200, hits([session(7, 'rs1', 8, state='failed_over', role='target')])))
    src.register(('GET', 'volume_groups/3', {'__fields': 'id,name'}, None, 200, VG))
    result, failed = run(src, dst, capsys, name='s1', state='absent', confirm_teardown=True)
    assert failed
    assert 'Fail back first' in result['msg']
