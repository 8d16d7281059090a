# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_volume's main() with a real AnsibleModule against the scripted K2 server: every request, in order, exactly."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import make_ref
from ansible_collections.kaminario.k2.plugins.modules import k2_volume
from ansible_collections.kaminario.k2.plugins.module_utils import k2_client
from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import chunk_values
from ansible_collections.kaminario.k2.plugins.modules.k2_volume import dedicated_group_name
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import error, hits, run_module

GIB = 1048576  # KiB


@pytest.fixture
def conn(k2_server):
    return dict(k2_host=k2_server.host, k2_username='admin', k2_password='s3cr3t-pw', ca_path=k2_server.ca_path,
                retries=1, retry_max_wait=0)


def vol(obj_id=7, name='v1', size=GIB, group_id=5, **extra):
    obj = {'id': obj_id, 'name': name, 'size': size, 'volume_group': make_ref('volume_groups', group_id), 'description': None,
           'read_only': False, 'scsi_sn': 'd0010%03d' % obj_id, 'is_dedup': True}
    obj.update(extra)
    return obj


def group(obj_id=5, name='v1_vg', dedup=True, volumes=1, mapped=0, snapshots=0, views=0, **extra):
    obj = {'id': obj_id, 'name': name, 'is_dedup': dedup, 'quota': None, 'volumes_count': volumes, 'mapped_hosts_count': mapped,
           'snapshots_count': snapshots, 'views_count': views, 'replication_session': None}
    obj.update(extra)
    return obj


def search(resource, key, value, found=(), limit=None, fields=None):
    """One page of a sorted search, as K2Client.search sends it."""
    values = value.split(',')
    query = {key: value, '__sort': 'id', '__limit': str(limit if limit is not None else len(values)), '__offset': '0'}
    if fields:
        query['__fields'] = fields
    return ('GET', resource, query, None, 200, hits(list(found)))


def find_volumes(names, *found):
    return search('volumes', 'name__in', names, found)


def groups_by_id(ids, *found):
    return search('volume_groups', 'id__in', ids, found)


def groups_by_name(names, *found):
    return search('volume_groups', 'name__in', names, found)


def mappings_of(refs, *found):
    return search('mappings', 'volume.ref__in', refs, found, limit=100)


def run(args, capsys, check=False, diff=False):
    return run_module(k2_volume.main, args, capsys, check=check, diff=diff)


def methods(server):
    return [r.method for r in server.received]


# ------------------------------------------------------------------ pure helpers

def test_dedicated_group_rule():
    assert dedicated_group_name('db01') == 'db01_vg'


def test_chunk_values_respects_the_budget():
    names = ['volume-%04d' % i for i in range(1000)]
    chunks = list(chunk_values(names, budget=1200, max_values=500))
    assert [n for c in chunks for n in c] == names
    assert all(sum(len(n) + 3 for n in c) <= 1200 for c in chunks)
    assert len(chunks) == 12  # 85 names of 14 characters per 1200
    assert list(chunk_values(['a'] * 7, max_values=3)) == [['a'] * 3, ['a'] * 3, ['a']]


# ------------------------------------------------------------------ create, no change, grow, shrink

def test_create_makes_the_dedicated_group_then_the_volume(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1'),
        groups_by_name('v1_vg'),
        ('POST', 'volume_groups', None, {'name': 'v1_vg', 'quota': 0, 'is_dedup': True}, 201, group(volumes=0)),
        ('POST', 'volumes', None, {'name': 'v1', 'size': 10 * GIB, 'volume_group': {'ref': '/volume_groups/5'}}, 201, vol(size=10 * GIB)),
    )
    result, failed = run(dict(conn, name='v1', size='10GiB'), capsys, diff=True)
    assert not failed and result['changed']
    assert result['actions'] == [
        {'action': 'create', 'resource': 'volume_group', 'name': 'v1_vg', 'attributes': {'name': 'v1_vg', 'quota': 0, 'is_dedup': True}},
        {'action': 'create', 'resource': 'volume', 'name': 'v1', 'attributes': {'name': 'v1', 'size': 10 * GIB}},
    ]
    assert result['volume'] == {
        'state': 'present', 'id': 7, 'name': 'v1', 'size_kib': 10 * GIB, 'size_bytes': 10 * 1024 ** 3, 'size': '10 GiB',
        'volume_group': 'v1_vg', 'volume_group_id': 5, 'dedicated_group': True, 'dedup': True, 'description': None,
        'read_only': False, 'scsi_sn': 'd0010007', 'mappings': []}
    assert result['diff'] == {'before': {}, 'after': {'name': 'v1', 'size_kib': 10 * GIB, 'size': '10 GiB', 'volume_group': 'v1_vg',
                                                      'dedup': True, 'description': None, 'read_only': False}}
    assert result['k2_requests'] == {'total': 4, 'GET': 2, 'POST': 2}


def test_create_in_an_existing_group_with_options(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1'),
        groups_by_name('shared', group(9, 'shared', dedup=False, volumes=3)),
        ('POST', 'volumes', None, {'name': 'v1', 'size': GIB, 'description': 'logs', 'read_only': True,
                                   'volume_group': {'ref': '/volume_groups/9'}}, 201,
         vol(group_id=9, description='logs', read_only=True, is_dedup=False)),
    )
    result, failed = run(dict(conn, name='v1', size=1024 ** 3, volume_group='shared', dedup=False, description='logs', read_only=True), capsys)
    assert not failed and result['changed']
    assert [a['resource'] for a in result['actions']] == ['volume']
    assert result['volume']['volume_group'] == 'shared' and not result['volume']['dedicated_group']
    assert result['volume']['dedup'] is False and result['volume']['read_only'] is True


def test_no_change_costs_two_requests(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1', vol(size=10 * GIB)), groups_by_id('5', group()))
    result, failed = run(dict(conn, name='v1', size='10GiB', dedup=True), capsys, diff=True)
    assert not failed and not result['changed']
    assert result['actions'] == []
    assert result['diff']['before'] == result['diff']['after']
    assert result['volume']['id'] == 7 and result['volume']['volume_group'] == 'v1_vg'
    assert result['k2_requests'] == {'total': 2, 'GET': 2}


def test_mapped_volume_reports_hosts_and_luns(k2_server, conn, capsys):
    maps = [{'id': 30, 'volume': make_ref('volumes', 7), 'host': make_ref('hosts', 3), 'lun': 2},
            {'id': 31, 'volume': make_ref('volumes', 7), 'host': make_ref('host_groups', 4), 'lun': 5}]
    k2_server.register(
        find_volumes('v1', vol()),
        groups_by_id('5', group(mapped=2)),
        mappings_of('/volumes/7', *maps),
        search('hosts', 'id__in', '3', [{'id': 3, 'name': 'web01'}], fields='id,name'),
        search('host_groups', 'id__in', '4', [{'id': 4, 'name': 'cluster'}], fields='id,name'),
    )
    result, failed = run(dict(conn, name='v1'), capsys)
    assert not failed and not result['changed']
    assert result['volume']['mappings'] == [{'host': 'cluster', 'type': 'host_group', 'lun': 5}, {'host': 'web01', 'type': 'host', 'lun': 2}]
    assert result['k2_requests']['total'] == 5


def test_grow(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1', vol()),
        groups_by_id('5', group()),
        ('PATCH', 'volumes/7', None, {'size': 2 * GIB}, 200, vol(size=2 * GIB)),
    )
    result, failed = run(dict(conn, name='v1', size='2G'), capsys)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'update', 'resource': 'volume', 'name': 'v1', 'changes': {'size': {'before': GIB, 'after': 2 * GIB}}}]
    assert result['volume']['size'] == '2 GiB'
    assert result['diff']['before']['size'] == '1 GiB' and result['diff']['after']['size'] == '2 GiB'


def test_shrink_is_refused_and_nothing_written(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1', vol(size=4 * GIB)), groups_by_id('5', group()))
    result, failed = run(dict(conn, name='v1', size='2GiB'), capsys)
    assert failed and not result['changed']
    assert result['msg'] == ("volume 'v1': it is 4 GiB (4194304 KiB) and size asks for 2 GiB (2097152 KiB); K2 volumes cannot shrink, "
                             "so nothing was changed. Give a size of at least 4 GiB, or create a new volume and copy the data.")
    assert methods(k2_server) == ['GET', 'GET']


def test_dedup_mismatch_points_to_the_migrate_role(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1', vol()), groups_by_id('5', group()))
    result, failed = run(dict(conn, name='v1', dedup=False), capsys)
    assert failed and 'kaminario.k2.migrate' in result['msg'] and 'dedup true' in result['msg']
    assert methods(k2_server) == ['GET', 'GET']


def test_bad_size_fails_before_any_request(k2_server, conn, capsys):
    result, failed = run(dict(conn, name='v1', size='12 parsecs'), capsys)
    assert failed and "option 'size'" in result['msg']
    assert result['k2_requests'] == {'total': 0}
    assert k2_server.received == []


@pytest.mark.parametrize('name, says', [
    ('x' * 43, 'too long'),
    ('x' * 40, "dedicated volume group '%s_vg' would have more than 42" % ('x' * 40)),
    ('a/b', 'characters K2 does not accept'),
    ('CTRL', 'system volume'),
])
def test_bad_names_fail_before_any_request(k2_server, conn, capsys, name, says):
    result, failed = run(dict(conn, name=name, size='1GiB'), capsys)
    assert failed and says in result['msg']
    assert k2_server.received == []


def test_unknown_group_without_create_group(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1'), groups_by_name('nope'))
    result, failed = run(dict(conn, name='v1', size='1GiB', volume_group='nope', create_group=False), capsys)
    assert failed and "volume_group 'nope' does not exist and create_group is false" in result['msg']
    assert methods(k2_server) == ['GET', 'GET']


# ------------------------------------------------------------------ rename

def test_rename_renames_the_dedicated_group_first(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1,v2', vol()),
        groups_by_id('5', group()),
        groups_by_name('v2_vg'),
        ('PATCH', 'volume_groups/5', None, {'name': 'v2_vg'}, 200, group(name='v2_vg')),
        ('PATCH', 'volumes/7', None, {'name': 'v2'}, 200, vol(name='v2')),
    )
    result, failed = run(dict(conn, name='v1', new_name='v2'), capsys, diff=True)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'rename', 'resource': 'volume_group', 'name': 'v1_vg', 'new_name': 'v2_vg'},
                                 {'action': 'rename', 'resource': 'volume', 'name': 'v1', 'new_name': 'v2'}]
    assert result['volume']['name'] == 'v2' and result['volume']['volume_group'] == 'v2_vg'
    assert result['diff']['before']['volume_group'] == 'v1_vg' and result['diff']['after']['volume_group'] == 'v2_vg'


def test_rename_keeps_a_shared_group_name(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1,v2', vol(group_id=9)),
        groups_by_id('9', group(9, 'shared', volumes=4)),
        ('PATCH', 'volumes/7', None, {'name': 'v2'}, 200, vol(name='v2', group_id=9)),
    )
    result, failed = run(dict(conn, name='v1', new_name='v2'), capsys)
    assert not failed and result['volume']['volume_group'] == 'shared'


def test_rename_already_done_is_a_no_op(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1,v2', vol(name='v2')), groups_by_id('5', group(name='v2_vg')))
    result, failed = run(dict(conn, name='v1', new_name='v2'), capsys)
    assert not failed and not result['changed'] and result['k2_requests']['total'] == 2


def test_failed_volume_rename_gives_the_group_its_name_back(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1,v2', vol()),
        groups_by_id('5', group()),
        groups_by_name('v2_vg'),
        ('PATCH', 'volume_groups/5', None, {'name': 'v2_vg'}, 200, group(name='v2_vg')),
        ('PATCH', 'volumes/7', None, {'name': 'v2'}, 400, error('volume name v2 is reserved')),
        ('PATCH', 'volume_groups/5', None, {'name': 'v1_vg'}, 200, group()),
    )
    result, failed = run(dict(conn, name='v1', new_name='v2'), capsys)
    assert failed and result['changed']
    assert "Could not change volume 'v2'" in result['msg'] and 'volume name v2 is reserved' in result['msg']
    assert 'Rolled back: give the volume groups their old names back.' in result['msg']


# ------------------------------------------------------------------ absent and force

def test_absent_deletes_the_volume_then_its_dedicated_group(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1', vol()),
        groups_by_id('5', group()),
        ('DELETE', 'volumes/7', None, None, 204, None),
        ('DELETE', 'volume_groups/5', None, None, 204, None),
    )
    result, failed = run(dict(conn, name='v1', state='absent'), capsys)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'delete', 'resource': 'volume', 'name': 'v1'},
                                 {'action': 'delete', 'resource': 'volume_group', 'name': 'v1_vg'}]
    assert result['volume'] == {'state': 'absent', 'name': 'v1'}


def test_absent_keeps_a_shared_group(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1', vol(group_id=9)),
        groups_by_id('9', group(9, 'shared', volumes=2)),
        ('DELETE', 'volumes/7', None, None, 204, None),
    )
    result, failed = run(dict(conn, name='v1', state='absent'), capsys)
    assert not failed and [a['resource'] for a in result['actions']] == ['volume']


def test_absent_when_gone_costs_two_requests(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1'), groups_by_name('v1_vg'))
    result, failed = run(dict(conn, name='v1', state='absent'), capsys)
    assert not failed and not result['changed'] and result['k2_requests']['total'] == 2


def test_absent_mapped_volume_is_refused_without_force(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1', vol()),
        groups_by_id('5', group(mapped=1)),
        mappings_of('/volumes/7', {'id': 30, 'volume': make_ref('volumes', 7), 'host': make_ref('hosts', 3), 'lun': 1}),
        search('hosts', 'id__in', '3', [{'id': 3, 'name': 'web01'}], fields='id,name'),
    )
    result, failed = run(dict(conn, name='v1', state='absent'), capsys)
    assert failed and not result['changed']
    assert result['msg'] == ("volume 'v1': it is mapped to host web01 (LUN 1), so it was not deleted. Unmap it first "
                             "(kaminario.k2.k2_host_mapping), or set force: true to unmap and delete it.")


def test_absent_with_snapshots_is_refused_without_force(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1', vol()), groups_by_id('5', group(snapshots=2)))
    result, failed = run(dict(conn, name='v1', state='absent'), capsys)
    assert failed and "has snapshots or views" in result['msg'] and 'force: true' in result['msg']
    assert methods(k2_server) == ['GET', 'GET']


def test_absent_with_force_unmaps_and_removes_snapshots_first(k2_server, conn, capsys):
    snap = {'id': 40, 'name': 'v1_vg:s1', 'short_name': 's1', 'is_exposable': False, 'volume_group': make_ref('volume_groups', 5)}
    view = {'id': 41, 'name': 'v1_vg:view', 'short_name': 'view', 'is_exposable': True, 'volume_group': make_ref('volume_groups', 5)}
    k2_server.register(
        find_volumes('v1', vol()),
        groups_by_id('5', group(mapped=1, snapshots=1, views=1)),
        mappings_of('/volumes/7', {'id': 30, 'volume': make_ref('volumes', 7), 'host': make_ref('hosts', 3), 'lun': 1}),
        search('hosts', 'id__in', '3', [{'id': 3, 'name': 'web01'}], fields='id,name'),
        search('snapshots', 'volume_group.ref__in', '/volume_groups/5', [snap, view], limit=100),
        mappings_of('/snapshots/41', {'id': 32, 'volume': make_ref('snapshots', 41), 'host': make_ref('hosts', 3), 'lun': 2}),
        search('hosts', 'id__in', '3', [{'id': 3, 'name': 'web01'}], fields='id,name'),
        ('DELETE', 'mappings/30', None, None, 204, None),
        ('DELETE', 'mappings/32', None, None, 204, None),
        ('DELETE', 'snapshots/41', None, None, 204, None),
        ('DELETE', 'snapshots/40', None, None, 204, None),
        ('DELETE', 'volumes/7', None, None, 204, None),
        ('DELETE', 'volume_groups/5', None, None, 204, None),
    )
    result, failed = run(dict(conn, name='v1', state='absent', force=True), capsys)
    assert not failed and result['changed']
    assert [(a['resource'], a['name']) for a in result['actions']] == [
        ('mapping', 'v1 on web01'), ('mapping', '/snapshots/41 on web01'), ('snapshot', 'v1_vg:view'), ('snapshot', 'v1_vg:s1'),
        ('volume', 'v1'), ('volume_group', 'v1_vg')]


# ------------------------------------------------------------------ adopt_from

def test_adopt_renames_group_then_volume_and_reports_whole_gib(k2_server, conn, capsys):
    legacy = vol(3, 'legacy', size=1572864, group_id=8)
    k2_server.register(
        find_volumes('legacy,web01', legacy),
        groups_by_id('8', group(8, 'legacy-vg')),
        groups_by_name('web01_vg'),
        ('GET', 'mappings', {'volume.ref': '/volumes/3', '__limit': '0'}, None, 200, hits([], total=0)),
        ('GET', 'volumes', {'volume_group.ref': '/volume_groups/8', '__limit': '0'}, None, 200, hits([], total=1)),
        ('PATCH', 'volume_groups/8', None, {'name': 'web01_vg'}, 200, group(8, 'web01_vg')),
        ('PATCH', 'volumes/3', None, {'name': 'web01'}, 200, dict(legacy, name='web01')),
    )
    result, failed = run(dict(conn, name='web01', adopt_from='legacy'), capsys)
    assert not failed and result['changed']
    assert result['adopted'] == {'source_name': 'legacy', 'source_volume_group': 'legacy-vg', 'size_gib': 2}
    assert [a['action'] for a in result['actions']] == ['adopt', 'rename', 'rename']
    assert result['volume']['name'] == 'web01' and result['volume']['volume_group'] == 'web01_vg' and result['volume']['dedicated_group']


def _adopt_reads(group_obj, mapped=0, nvol=1, counts=True):
    steps = [find_volumes('legacy,web01', vol(3, 'legacy', group_id=8)), groups_by_id('8', group_obj), groups_by_name('web01_vg')]
    if counts and group_obj.get('replication_session') is None:
        steps.append(('GET', 'mappings', {'volume.ref': '/volumes/3', '__limit': '0'}, None, 200, hits([], total=mapped)))
        if not mapped:
            steps.append(('GET', 'volumes', {'volume_group.ref': '/volume_groups/8', '__limit': '0'}, None, 200, hits([], total=nvol)))
    return steps


@pytest.mark.parametrize('group_obj, mapped, nvol, dedup, reason', [
    (group(8, 'legacy-vg', dedup=True), 0, 1, False, 'its volume group legacy-vg has dedup true and dedup is false'),
    (group(8, 'legacy-vg', replication_session=make_ref('replication/sessions', 2)), 0, 1, None,
     'its volume group legacy-vg is replicated (replication session /replication/sessions/2)'),
    (group(8, 'legacy-vg'), 1, 1, None, 'it is mapped to hosts (attached)'),
    (group(8, 'legacy-vg'), 0, 2, None, 'its volume group legacy-vg holds 2 volumes, not only this one'),
])
def test_adopt_checks_in_cinder_order(k2_server, conn, capsys, group_obj, mapped, nvol, dedup, reason):
    k2_server.register(*_adopt_reads(group_obj, mapped, nvol, counts=dedup is None))
    args = dict(conn, name='web01', adopt_from='legacy')
    if dedup is not None:
        args['dedup'] = dedup
    result, failed = run(args, capsys)
    assert failed and not result['changed']
    assert "cannot adopt 'legacy': %s." % reason in result['msg']
    assert set(methods(k2_server)) == {'GET'}


def test_adopt_rolls_the_group_rename_back(k2_server, conn, capsys):
    k2_server.register(*_adopt_reads(group(8, 'legacy-vg')))
    k2_server.register(
        ('PATCH', 'volume_groups/8', None, {'name': 'web01_vg'}, 200, group(8, 'web01_vg')),
        ('PATCH', 'volumes/3', None, {'name': 'web01'}, 400, error('MC_ERR_INVALID_ARG')),
        ('PATCH', 'volume_groups/8', None, {'name': 'legacy-vg'}, 200, group(8, 'legacy-vg')),
    )
    result, failed = run(dict(conn, name='web01', adopt_from='legacy'), capsys)
    assert failed and 'Rolled back: give the volume groups their old names back.' in result['msg']
    assert result['rollback'] == [{'step': 'give the volume groups their old names back', 'error': None}]


def test_adopt_when_both_names_exist_fails(k2_server, conn, capsys):
    k2_server.register(find_volumes('legacy,web01', vol(3, 'legacy', group_id=8), vol(4, 'web01', group_id=9)),
                       groups_by_id('9', group(9, 'web01_vg')))
    result, failed = run(dict(conn, name='web01', adopt_from='legacy'), capsys)
    assert failed and "both 'legacy' (adopt_from) and 'web01' exist" in result['msg']


# ------------------------------------------------------------------ rollback and check mode

def test_group_is_deleted_again_when_the_volume_cannot_be_created(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1'),
        groups_by_name('v1_vg'),
        ('POST', 'volume_groups', None, {'name': 'v1_vg', 'quota': 0, 'is_dedup': True}, 201, group(volumes=0)),
        ('POST', 'volumes', None, {'name': 'v1', 'size': GIB, 'volume_group': {'ref': '/volume_groups/5'}}, 400,
         error('MC_ERR_QUOTA_EXCEEDED no space')),
        ('DELETE', 'volume_groups/5', None, None, 204, None),
    )
    result, failed = run(dict(conn, name='v1', size='1GiB'), capsys)
    assert failed
    assert result['msg'].startswith("Could not change volume 'v1': MC_ERR_QUOTA_EXCEEDED no space (HTTP 400, POST /api/v2/volumes).")
    assert result['msg'].endswith('Rolled back: delete the volume groups created for volumes that could not be created.')
    assert result['k2_error_code'] == 'MC_ERR_QUOTA_EXCEEDED' and result['http_status'] == 400


def test_check_mode_create_sends_only_reads(k2_server, conn, capsys):
    k2_server.register(find_volumes('v1'), groups_by_name('v1_vg'))
    result, failed = run(dict(conn, name='v1', size='1GiB'), capsys, check=True, diff=True)
    assert not failed and result['changed']
    assert [a['action'] for a in result['actions']] == ['create', 'create']
    assert result['volume']['id'] is None and result['volume']['volume_group_id'] is None
    assert result['volume']['size_kib'] == GIB and result['volume']['volume_group'] == 'v1_vg'
    assert result['diff']['after']['name'] == 'v1'
    assert methods(k2_server) == ['GET', 'GET']


def test_check_mode_forced_delete_sends_only_reads(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('v1', vol()),
        groups_by_id('5', group(snapshots=1)),
        search('snapshots', 'volume_group.ref__in', '/volume_groups/5', [{'id': 40, 'name': 'v1_vg:s1', 'is_exposable': False}], limit=100),
    )
    result, failed = run(dict(conn, name='v1', state='absent', force=True), capsys, check=True)
    assert not failed and result['changed']
    assert [a['resource'] for a in result['actions']] == ['snapshot', 'volume', 'volume_group']
    assert methods(k2_server) == ['GET'] * 3


# ------------------------------------------------------------------ list form

def test_list_form_plans_from_one_read_and_writes_in_bulk(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('a,b,c,d', vol(7, 'c', group_id=5), vol(8, 'd', group_id=6)),
        groups_by_id('5,6', group(5, 'c_vg'), group(6, 'd_vg')),
        groups_by_name('a_vg,b_vg'),
        ('POST', 'volume_groups/__bulk', None, [{'name': 'a_vg', 'quota': 0, 'is_dedup': True}, {'name': 'b_vg', 'quota': 0, 'is_dedup': True}],
         200, hits([group(10, 'a_vg', volumes=0), group(11, 'b_vg', volumes=0)])),
        ('POST', 'volumes/__bulk', None, [{'name': 'a', 'size': GIB, 'volume_group': {'ref': '/volume_groups/10'}},
                                          {'name': 'b', 'size': 2 * GIB, 'volume_group': {'ref': '/volume_groups/11'}}],
         200, hits([vol(20, 'a', group_id=10), vol(21, 'b', 2 * GIB, group_id=11)])),
        ('PATCH', 'volumes/__bulk', None, [{'size': 3 * GIB, 'id': 7}], 200, hits([vol(7, 'c', 3 * GIB)])),
        ('DELETE', 'volumes/__bulk', None, [{'id': 8}], 204, None),
        ('DELETE', 'volume_groups/__bulk', None, [{'id': 6}], 204, None),
    )
    items = [dict(name='a'), dict(name='b', size='2GiB'), dict(name='c', size='3GiB'), dict(name='d', state='absent')]
    result, failed = run(dict(conn, size='1GiB', volumes=items), capsys, diff=True)
    assert not failed and result['changed']
    assert [v['name'] for v in result['volumes']] == ['a', 'b', 'c', 'd']
    assert [v.get('id') for v in result['volumes']] == [20, 21, 7, None]
    assert result['volumes'][3] == {'state': 'absent', 'name': 'd'}
    assert result['volumes'][0]['volume_group_id'] == 10
    assert result['diff']['before']['a'] == {} and result['diff']['after']['c']['size'] == '3 GiB' and result['diff']['after']['d'] == {}
    assert result['k2_requests'] == {'total': 8, 'GET': 3, 'POST': 2, 'PATCH': 1, 'DELETE': 2}


def test_list_form_no_change(k2_server, conn, capsys):
    k2_server.register(find_volumes('a,b', vol(7, 'a'), vol(8, 'b', group_id=6)),
                       groups_by_id('5,6', group(5, 'a_vg'), group(6, 'b_vg')))
    result, failed = run(dict(conn, size='1GiB', volumes=[dict(name='a'), dict(name='b')]), capsys)
    assert not failed and not result['changed'] and result['k2_requests']['total'] == 2


def test_list_form_validates_every_item_before_writing(k2_server, conn, capsys):
    k2_server.register(find_volumes('a,b', vol(7, 'a'), vol(8, 'b', size=4 * GIB, group_id=6)),
                       groups_by_id('5,6', group(5, 'a_vg'), group(6, 'b_vg')))
    result, failed = run(dict(conn, volumes=[dict(name='a', size='2GiB'), dict(name='b', size='2GiB')]), capsys)
    assert failed and not result['changed']
    assert result['msg'].startswith("volume 'b' (volumes[1]): it is 4 GiB")
    assert methods(k2_server) == ['GET', 'GET']


def test_list_form_item_errors_name_the_item(k2_server, conn, capsys):
    result, failed = run(dict(conn, volumes=[dict(name='a', size='1GiB'), dict(name='b', size='1 lightyear')]), capsys)
    assert failed and "option 'volumes[1].size'" in result['msg']
    result, failed = run(dict(conn, volumes=[dict(name='a'), dict(name='b', new_name='a')]), capsys)
    assert failed and "also used by volumes[0]" in result['msg']
    assert k2_server.received == []


def test_list_form_empty_list_is_a_no_op(k2_server, conn, capsys):
    result, failed = run(dict(conn, volumes=[]), capsys)
    assert not failed and not result['changed'] and result['volumes'] == [] and result['k2_requests'] == {'total': 0}


def test_list_form_reads_in_chunks(k2_server, conn, capsys, monkeypatch):
    monkeypatch.setattr(k2_client, 'QUERY_MAX_VALUES', 2)
    k2_server.register(
        find_volumes('a,b', vol(7, 'a'), vol(8, 'b', group_id=6)),
        find_volumes('c', vol(9, 'c', group_id=7)),
        groups_by_id('5,6', group(5, 'a_vg'), group(6, 'b_vg')),
        groups_by_id('7', group(7, 'c_vg')),
    )
    result, failed = run(dict(conn, volumes=[dict(name='a'), dict(name='b'), dict(name='c')]), capsys)
    assert not failed and not result['changed'] and [v['id'] for v in result['volumes']] == [7, 8, 9]


def test_list_form_rollback_deletes_the_groups_of_volumes_not_created(k2_server, conn, capsys):
    k2_server.register(
        find_volumes('a,b'),
        groups_by_name('a_vg,b_vg'),
        ('POST', 'volume_groups/__bulk', None, [{'name': 'a_vg', 'quota': 0, 'is_dedup': True}, {'name': 'b_vg', 'quota': 0, 'is_dedup': True}],
         200, hits([group(10, 'a_vg', volumes=0), group(11, 'b_vg', volumes=0)])),
        ('POST', 'volumes/__bulk', None, [{'name': 'a', 'size': GIB, 'volume_group': {'ref': '/volume_groups/10'}},
                                          {'name': 'b', 'size': GIB, 'volume_group': {'ref': '/volume_groups/11'}}],
         400, error('bulk element 1: MC_ERR_QUOTA_EXCEEDED')),
        ('DELETE', 'volume_groups/__bulk', None, [{'id': 10}, {'id': 11}], 204, None),
    )
    result, failed = run(dict(conn, size='1GiB', volumes=[dict(name='a'), dict(name='b')]), capsys)
    assert failed
    assert result['msg'].startswith('Could not change the volumes: bulk element 1: MC_ERR_QUOTA_EXCEEDED')
    assert result['rollback'] == [{'step': 'delete the volume groups created for volumes that could not be created', 'error': None}]
