# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_snapshot through a real AnsibleModule against the scripted K2 server: every request, in order."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.modules import k2_snapshot
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import hits, one, paged, run_module

SNAP_FIELDS = 'id,name,short_name,source,volume_group,retention_policy,is_auto_deleteable,is_exposable,creation_time,generation_number'


def snapshot(obj_id=5, short='s1', vg='vg1', vg_id=3, source='/volume_groups/3', exposable=False, auto=False, policy=1):
    return {'id': obj_id, 'name': '%s:%s' % (vg, short), 'short_name': short, 'source': {'ref': source},
            'volume_group': {'ref': '/volume_groups/%d' % vg_id}, 'retention_policy': {'ref': '/retention_policies/%d' % policy},
            'is_auto_deleteable': auto, 'is_exposable': exposable, 'creation_time': 1764039600.25, 'generation_number': None}


def find_snap(name, found):
    return ('GET', 'snapshots', one({'name': name}, SNAP_FIELDS), None, 200, hits([found] if found else []))


def find_policy(name='Best_Effort_Retention', obj_id=1):
    return ('GET', 'retention_policies', one({'name': name}, 'id,name'), None, 200, hits([{'id': obj_id, 'name': name}]))


def run(conn, capsys, check=False, diff=False, **args):
    return run_module(k2_snapshot.main, dict(conn, **args), capsys, check=check, diff=diff)


def test_create_takes_snapshot_of_the_group_with_cinder_defaults(k2_server, conn, capsys):
    k2_server.register(
        find_snap('vg1:s1', None),
        ('GET', 'volume_groups', one({'name': 'vg1'}, 'id,name,last_restored_from'), None, 200,
         hits([{'id': 3, 'name': 'vg1', 'last_restored_from': None}])),
        find_policy(),
        ('POST', 'snapshots', None, {'short_name': 's1', 'source': {'ref': '/volume_groups/3'},
                                     'retention_policy': {'ref': '/retention_policies/1'}, 'is_auto_deleteable': False},
         201, snapshot()),
    )
    result, failed = run(conn, capsys, diff=True, name='s1', volume_group='vg1')
    assert not failed, result
    assert result['changed'] is True
    assert result['snapshot'] == {
        'id': 5, 'name': 'vg1:s1', 'short_name': 's1', 'volume_group': 'vg1', 'volume_group_id': 3,
        'source': '/volume_groups/3', 'source_snapshot': None, 'exposable': False, 'auto_delete': False,
        'retention_policy': 'Best_Effort_Retention', 'retention_policy_id': 1, 'creation_time': 1764039600.25,
        'generation_number': None}
    assert result['diff'] == {'before': {}, 'after': {'name': 's1', 'volume_group': 'vg1', 'exposable': False, 'auto_delete': False,
                                                      'retention_policy': 'Best_Effort_Retention'}}
    assert result['actions'][0]['action'] == 'create'
    assert result['k2_requests'] == {'total': 4, 'GET': 3, 'POST': 1}


def test_existing_snapshot_is_one_request_and_no_change(k2_server, conn, capsys):
    k2_server.register(find_snap('vg1:s1', snapshot()))
    result, failed = run(conn, capsys, name='s1', volume_group='vg1')
    assert not failed, result
    assert result['changed'] is False
    assert result['actions'] == []
    assert result['snapshot']['id'] == 5
    assert result['k2_requests'] == {'total': 1, 'GET': 1}


def test_by_volume_finds_the_group_then_the_snapshot(k2_server, conn, capsys):
    k2_server.register(
        ('GET', 'volumes', one({'name': 'v1'}, 'id,name,volume_group'), None, 200,
         hits([{'id': 7, 'name': 'v1', 'volume_group': {'ref': '/volume_groups/3'}}])),
        ('GET', 'snapshots', one({'volume_group.ref': '/volume_groups/3', 'short_name': 's1'}, SNAP_FIELDS), None, 200,
         hits([snapshot()])),
    )
    result, failed = run(conn, capsys, name='s1', volume='v1')
    assert not failed, result
    assert result['changed'] is False
    assert result['snapshot']['volume_group'] == 'vg1'
    assert result['k2_requests']['total'] == 2


def test_check_mode_create_sends_no_write(k2_server, conn, capsys):
    k2_server.register(
        find_snap('vg1:s1', None),
        ('GET', 'volume_groups', one({'name': 'vg1'}, 'id,name,last_restored_from'), None, 200,
         hits([{'id': 3, 'name': 'vg1', 'last_restored_from': None}])),
        find_policy(),
    )
    result, failed = run(conn, capsys, check=True, name='s1', volume_group='vg1')
    assert not failed, result
    assert result['changed'] is True
    assert result['snapshot']['id'] is None
    assert result['snapshot']['name'] == 'vg1:s1'
    assert result['k2_requests'] == {'total': 3, 'GET': 3}


def test_update_auto_delete_and_policy(k2_server, conn, capsys):
    k2_server.register(
        find_snap('vg1:s1', snapshot()),
        find_policy('CDP', 2),
        ('GET', 'retention_policies/1', {'__fields': 'id,name'}, None, 200, {'id': 1, 'name': 'Best_Effort_Retention'}),
        ('PATCH', 'snapshots/5', None, {'is_auto_deleteable': True, 'retention_policy': {'ref': '/retention_policies/2'}},
         200, snapshot(auto=True, policy=2)),
    )
    result, failed = run(conn, capsys, diff=True, name='s1', volume_group='vg1', retention_policy='CDP', auto_delete=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['diff']['before']['retention_policy'] == 'Best_Effort_Retention'
    assert result['diff']['after']['retention_policy'] == 'CDP'
    assert result['snapshot']['retention_policy'] == 'CDP'
    assert result['snapshot']['auto_delete'] is True


def test_absent_deletes_a_snapshot_without_views(k2_server, conn, capsys):
    k2_server.register(
        find_snap('vg1:s1', snapshot()),
        ('GET', 'snapshots', paged({'source.ref': '/snapshots/5'}, 'id,name'), None, 200, hits([])),
        ('DELETE', 'snapshots/5', None, None, 204, None),
    )
    result, failed = run(conn, capsys, name='s1', volume_group='vg1', state='absent')
    assert not failed, result
    assert result['changed'] is True
    assert result['snapshot'] == {}
    assert result['actions'] == [{'action': 'delete', 'resource': 'snapshot', 'name': 's1'}]


def test_absent_of_missing_snapshot_is_no_change(k2_server, conn, capsys):
    k2_server.register(find_snap('vg1:s1', None))
    result, failed = run(conn, capsys, name='s1', volume_group='vg1', state='absent')
    assert not failed, result
    assert result['changed'] is False


def test_absent_refuses_a_mapped_view(k2_server, conn, capsys):
    view = snapshot(obj_id=6, short='v1', source='/snapshots/5', exposable=True)
    k2_server.register(
        find_snap('vg1:v1', view),
        ('GET', 'mappings', paged({'volume.ref': '/snapshots/6'}, 'id,host,lun'), None, 200,
         hits([{'id': 9, 'host': {'ref': '/hosts/4'}, 'lun': 2}])),
        ('GET', 'hosts', paged({'id__in': '4'}, 'id,name'), None, 200, hits([{'id': 4, 'name': 'h1'}])),
    )
    result, failed = run(conn, capsys, name='v1', volume_group='vg1', state='absent', exposable=True)
    assert failed
    assert "View 'vg1:v1' is still mapped (to host h1)" in result['msg']
    assert result['changed'] is False


def restore_reads(k2_server, last_restored=None):
    k2_server.register(
        find_snap('vg1:s1', snapshot()),
        ('GET', 'volume_groups/3', {'__fields': 'id,name,last_restored_from'}, None, 200,
         {'id': 3, 'name': 'vg1', 'last_restored_from': last_restored}),
    )


def mapped_reads(k2_server):
    k2_server.register(
        ('GET', 'volumes', paged({'volume_group.ref': '/volume_groups/3'}, 'id,name'), None, 200,
         hits([{'id': 7, 'name': 'v1'}, {'id': 8, 'name': 'v2'}])),
        ('GET', 'mappings', paged({'volume.ref__in': '/volumes/7,/volumes/8'}, 'id,volume,host,lun'), None, 200,
         hits([{'id': 9, 'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/host_groups/2'}, 'lun': 1}])),
    )


def test_restore_refused_while_volumes_are_mapped(k2_server, conn, capsys):
    restore_reads(k2_server)
    mapped_reads(k2_server)
    k2_server.register(('GET', 'host_groups', paged({'id__in': '2'}, 'id,name'), None, 200, hits([{'id': 2, 'name': 'cluster'}])))
    result, failed = run(conn, capsys, name='s1', volume_group='vg1', state='restored')
    assert failed
    assert "Volume group 'vg1' cannot be restored while its volumes are mapped: v2 mapped to host group cluster" in result['msg']
    assert 'force: true' in result['msg']
    assert result['changed'] is False


def test_restore_with_force_restores_and_warns(k2_server, conn, capsys):
    restore_reads(k2_server)
    mapped_reads(k2_server)
    k2_server.register(
        ('PATCH', 'volume_groups/3', None, {'last_restored_from': {'ref': '/snapshots/5'}}, 200,
         {'id': 3, 'name': 'vg1', 'last_restored_from': {'ref': '/snapshots/5'}}),
    )
    result, failed = run(conn, capsys, diff=True, name='s1', volume_group='vg1', state='restored', force=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['restored_from'] == 'vg1:s1'
    assert result['diff'] == {'before': {'name': 'vg1', 'last_restored_from': None}, 'after': {'name': 'vg1', 'last_restored_from': 'vg1:s1'}}
    assert any('force: true' in str(w) for w in result['warnings'])


def test_restore_is_idempotent(k2_server, conn, capsys):
    restore_reads(k2_server, last_restored={'ref': '/snapshots/5'})
    result, failed = run(conn, capsys, name='s1', volume_group='vg1', state='restored')
    assert not failed, result
    assert result['changed'] is False
    assert 'restored_from' not in result
    assert result['k2_requests']['total'] == 2


def test_view_create_reads_view_and_source_in_one_request(k2_server, conn, capsys):
    view = snapshot(obj_id=6, short='v1', source='/snapshots/5', exposable=True)
    k2_server.register(
        ('GET', 'snapshots', paged({'name__in': 'vg1:v1,vg1:s1'}, SNAP_FIELDS), None, 200, hits([snapshot()])),
        find_policy(),
        ('POST', 'snapshots', None, {'short_name': 'v1', 'source': {'ref': '/snapshots/5'}, 'retention_policy': {'ref': '/retention_policies/1'},
                                     'is_auto_deleteable': False, 'is_exposable': True}, 201, view),
    )
    result, failed = run(conn, capsys, name='v1', volume_group='vg1', exposable=True, source_snapshot='s1')
    assert not failed, result
    assert result['changed'] is True
    assert result['snapshot']['name'] == 'vg1:v1'
    assert result['snapshot']['exposable'] is True
    assert result['snapshot']['source_snapshot'] == 'vg1:s1'
    assert result['snapshot']['source'] == '/snapshots/5'


def test_view_exists_from_another_snapshot_is_refused(k2_server, conn, capsys):
    view = snapshot(obj_id=6, short='v1', source='/snapshots/4', exposable=True)
    k2_server.register(('GET', 'snapshots', paged({'name__in': 'vg1:v1,vg1:s1'}, SNAP_FIELDS), None, 200, hits([snapshot(), view])))
    result, failed = run(conn, capsys, name='v1', volume_group='vg1', exposable=True, source_snapshot='s1')
    assert failed
    assert 'Cannot change source of view' in result['msg']
    assert 'delete the view and create it again' in result['msg']


def test_snapshot_name_collides_with_existing_view(k2_server, conn, capsys):
    view = snapshot(obj_id=6, short='v1', source='/snapshots/5', exposable=True)
    k2_server.register(find_snap('vg1:v1', view))
    result, failed = run(conn, capsys, name='v1', volume_group='vg1')
    assert failed
    assert 'Cannot change exposable' in result['msg']


@pytest.mark.parametrize('args, message', [
    (dict(name='x' * 43, volume_group='vg1'), "is too long (43 characters)"),
    (dict(name='a:b', volume_group='vg1'), "is not valid"),
    # An empty name is no filter for K2: the lookup would match every volume.
    (dict(name='s1', volume=''), "volume '' is not valid"),
    (dict(name='s1', volume='db data'), "volume 'db data' is not valid"),
    (dict(name='v1', volume_group='vg1', exposable=True), 'set source_snapshot'),
    (dict(name='v1', volume_group='vg1', source_snapshot='s1'), 'set exposable: true'),
    (dict(name='s1', volume_group='vg1', exposable=True, source_snapshot='s1'), 'another snapshot'),
    (dict(name='s1', volume_group='vg1', volume='v1'), 'mutually exclusive'),
    (dict(name='s1'), 'one of the following is required'),
])
def test_invalid_arguments_fail_before_any_request(k2_server, conn, capsys, args, message):
    result, failed = run(conn, capsys, **args)
    assert failed
    assert message in result['msg']
    assert k2_server.received == []


def test_unknown_volume_group_is_reported(k2_server, conn, capsys):
    k2_server.register(
        find_snap('nope:s1', None),
        ('GET', 'volume_groups', one({'name': 'nope'}, 'id,name,last_restored_from'), None, 200, hits([])),
    )
    result, failed = run(conn, capsys, name='s1', volume_group='nope')
    assert failed
    assert "Volume group 'nope' (option volume_group) does not exist" in result['msg']


def test_restore_from_missing_snapshot_names_the_volume(k2_server, conn, capsys):
    k2_server.register(
        ('GET', 'volumes', one({'name': 'v1'}, 'id,name,volume_group'), None, 200,
         hits([{'id': 7, 'name': 'v1', 'volume_group': {'ref': '/volume_groups/3'}}])),
        ('GET', 'snapshots', one({'volume_group.ref': '/volume_groups/3', 'short_name': 's9'}, SNAP_FIELDS), None, 200, hits([])),
    )
    result, failed = run(conn, capsys, name='s9', volume='v1', state='restored')
    assert failed
    assert result['msg'].startswith("Snapshot 's9' does not exist in the volume group of volume 'v1', so the group cannot be restored")
