# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_host_mapping through a real AnsibleModule against the scripted K2 server: every request, in order."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.modules import k2_host_mapping
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import error, hits, one, paged, run_module

IQN = 'iqn.1993-08.org.debian:01:12aa12aa12aa'
# Cinder's documented example (unique_fqdn_network false): the IQN reversed, '.' and ':' replaced, 32 characters.
IQN_HOST = 'aa21aa21aa21_10_naibed_gro_80-39'
TARGET_IQN = 'iqn.2009-01.com.kaminario:storage.k2.54645'
NET_IPS = [
    {'id': 1, 'ip_address': '192.0.2.11', 'wan_port': None},
    {'id': 2, 'ip_address': '192.0.2.21', 'wan_port': {'ref': '/system/wan_ports/1'}},
    {'id': 3, 'ip_address': '192.0.2.12', 'wan_port': None},
]


def find_host(name, found=None):
    return ('GET', 'hosts', one({'name': name}, 'id,name,type,host_group'), None, 200, hits([found] if found else []))


def host_initiators(host_id, iqns=(), pwwns=()):
    return [
        ('GET', 'host_iqns', paged({'host.ref': '/hosts/%d' % host_id}, 'id,iqn'), None, 200,
         hits([{'id': 20 + i, 'iqn': v} for i, v in enumerate(iqns)])),
        ('GET', 'host_fc_ports', paged({'host.ref': '/hosts/%d' % host_id}, 'id,pwwn'), None, 200,
         hits([{'id': 30 + i, 'pwwn': v} for i, v in enumerate(pwwns)])),
    ]


def find_volumes(names, found):
    return ('GET', 'volumes', paged({'name__in': ','.join(names)}, 'id,name,scsi_sn'), None, 200, hits(found))


def vol(obj_id, name):
    return {'id': obj_id, 'name': name, 'scsi_sn': 'd575%04d' % obj_id}


def host_maps(target, found):
    return ('GET', 'mappings', paged({'host.ref': target}, 'id,volume,lun'), None, 200, hits(found))


def mapping(obj_id, volume, lun, host='/hosts/4'):
    return {'id': obj_id, 'volume': {'ref': volume}, 'host': {'ref': host}, 'lun': lun}


def iscsi_targets():
    return [
        ('GET', 'system/net_ips', paged({}, 'id,ip_address,wan_port'), None, 200, hits(NET_IPS)),
        ('GET', 'system/state', paged({}, 'id,iscsi_qualified_target_name'), None, 200,
         hits([{'id': 1, 'iscsi_qualified_target_name': TARGET_IQN}])),
    ]


def linux_host(host_id=4, name=IQN_HOST, group=None):
    return {'id': host_id, 'name': name, 'type': 'Linux', 'host_group': {'ref': group} if group else None}


def run(conn, capsys, check=False, diff=False, **args):
    return run_module(k2_host_mapping.main, dict(conn, **args), capsys, check=check, diff=diff)


def iscsi_info(lun, multipath=False):
    data = {'target_iqn': TARGET_IQN, 'target_portal': '192.0.2.11:3260', 'target_lun': lun, 'target_discovered': True}
    if multipath:
        data.update(target_iqns=[TARGET_IQN, TARGET_IQN], target_portals=['192.0.2.11:3260', '192.0.2.12:3260'], target_luns=[lun, lun])
    return {'driver_volume_type': 'iscsi', 'data': data}


# ------------------------------------------------------------------ present

def test_create_host_named_from_iqn_with_iqn_and_mapping(k2_server, conn, capsys):
    k2_server.register(
        find_host(IQN_HOST),
        find_volumes(['v1'], [vol(7, 'v1')]),
        ('GET', 'host_iqns', paged({'iqn__in': IQN}, 'id,iqn,host'), None, 200, hits([])),
        *iscsi_targets()
    )
    k2_server.register(
        ('POST', 'hosts', None, {'name': IQN_HOST, 'type': 'Linux'}, 201, linux_host()),
        ('POST', 'host_iqns', None, {'iqn': IQN, 'host': {'ref': '/hosts/4'}}, 201, {'id': 20, 'iqn': IQN, 'host': {'ref': '/hosts/4'}}),
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}}, 201, mapping(11, '/volumes/7', 1)),
    )
    result, failed = run(conn, capsys, initiator=IQN, unique_fqdn_network=False, volumes=[{'name': 'v1'}])
    assert not failed, result
    assert result['changed'] is True
    assert result['host'] == {'id': 4, 'name': IQN_HOST, 'type': 'Linux', 'host_group': None, 'iqns': [IQN], 'wwpns': [],
                              'named_from_initiator': True}
    assert result['mappings'] == [{'volume': 'v1', 'volume_id': 7, 'kind': 'volume', 'lun': 1, 'id': 11, 'scsi_sn': 'd5750007', 'volsnaps': None}]
    assert result['protocol'] == 'iscsi'
    assert result['connection_info'] == {'v1': iscsi_info(1)}
    assert [(a['action'], a['resource']) for a in result['actions']] == [('create', 'host'), ('create', 'host IQN'), ('create', 'mapping')]
    assert result['k2_requests'] == {'total': 8, 'GET': 5, 'POST': 3}


def test_host_named_from_fqdn_by_default(k2_server, conn, capsys):
    k2_server.register(find_host('db01_example_com', linux_host(name='db01_example_com')), *host_initiators(4, [IQN]))
    k2_server.register(host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
                       ('GET', 'volumes', paged({'id__in': '7'}, 'id,name'), None, 200, hits([{'id': 7, 'name': 'v1'}])))
    result, failed = run(conn, capsys, initiator=IQN, host_fqdn='db01.example.com')
    assert not failed, result
    assert result['host']['name'] == 'db01_example_com'
    assert result['changed'] is False
    # No volume listed: no connection_info, but every mapping of the host is returned.
    assert 'connection_info' not in result
    assert result['mappings'] == [{'volume': 'v1', 'volume_id': 7, 'kind': 'volume', 'lun': 1, 'id': 11, 'scsi_sn': None, 'volsnaps': None}]


def idempotent_reads(k2_server):
    k2_server.register(
        find_host(IQN_HOST, linux_host()),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
        *iscsi_targets()
    )


def test_no_change_rerun_is_read_only(k2_server, conn, capsys):
    idempotent_reads(k2_server)
    result, failed = run(conn, capsys, diff=True, initiator=IQN, unique_fqdn_network=False, volumes=[{'name': 'v1'}])
    assert not failed, result
    assert result['changed'] is False
    assert result['actions'] == []
    assert result['diff']['before'] == result['diff']['after']
    assert result['connection_info'] == {'v1': iscsi_info(1)}
    assert result['k2_requests'] == {'total': 7, 'GET': 7}


def test_iscsi_multipath_connection_info_skips_wan_ports(k2_server, conn, capsys):
    idempotent_reads(k2_server)
    result, failed = run(conn, capsys, initiator=IQN, unique_fqdn_network=False, volumes=[{'name': 'v1'}], multipath=True)
    assert not failed, result
    assert result['connection_info'] == {'v1': iscsi_info(1, multipath=True)}


def test_explicit_lun_is_sent(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1', 'v2'], [vol(7, 'v1'), vol(8, 'v2')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
        *iscsi_targets()
    )
    k2_server.register(
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/4'}, 'lun': 5}, 201, mapping(12, '/volumes/8', 5)),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}, {'name': 'v2', 'lun': 5}])
    assert not failed, result
    assert result['changed'] is True
    assert [(m['volume'], m['lun']) for m in result['mappings']] == [('v1', 1), ('v2', 5)]
    assert result['connection_info']['v2']['data']['target_lun'] == 5


def test_explicit_lun_moves_an_existing_mapping(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
        *iscsi_targets()
    )
    k2_server.register(('PATCH', 'mappings/11', None, {'lun': 9}, 200, mapping(11, '/volumes/7', 9)))
    result, failed = run(conn, capsys, diff=True, host='h1', volumes=[{'name': 'v1', 'lun': 9}])
    assert not failed, result
    assert result['actions'] == [{'action': 'update', 'resource': 'mapping', 'name': 'v1', 'changes': {'lun': {'before': 1, 'after': 9}}}]
    assert result['diff']['after']['mapping v1']['lun'] == 9


def test_lun_collision_is_reported_and_nothing_written(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v2'], [vol(8, 'v2')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 5)]),
        ('GET', 'volumes', paged({'id__in': '7'}, 'id,name'), None, 200, hits([{'id': 7, 'name': 'v1'}])),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v2', 'lun': 5}])
    assert failed
    assert result['msg'].startswith("LUN 5 (volumes[0].lun, for 'v2') is already used on host h1 by volume 'v1'.")
    assert result['changed'] is False
    assert all(r.method == 'GET' for r in k2_server.received)


def test_exclusive_removes_unlisted_mappings_first(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/8', 1), mapping(12, '/snapshots/6', 2)]),
        ('GET', 'volumes', paged({'id__in': '8'}, 'id,name'), None, 200, hits([{'id': 8, 'name': 'old'}])),
        ('GET', 'snapshots', paged({'id__in': '6'}, 'id,name'), None, 200, hits([{'id': 6, 'name': 'vg1:view'}])),
        *iscsi_targets()
    )
    k2_server.register(
        ('DELETE', 'mappings/11', None, None, 204, None),
        ('DELETE', 'mappings/12', None, None, 204, None),
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}, 'lun': 1}, 201, mapping(13, '/volumes/7', 1)),
    )
    result, failed = run(conn, capsys, host='h1', exclusive=True, volumes=[{'name': 'v1', 'lun': 1}])
    assert not failed, result
    assert [(a['action'], a['name']) for a in result['actions']] == [('delete', 'old'), ('delete', 'vg1:view'), ('create', 'v1')]
    assert result['mappings'] == [{'volume': 'v1', 'volume_id': 7, 'kind': 'volume', 'lun': 1, 'id': 13, 'scsi_sn': 'd5750007', 'volsnaps': None}]


def test_view_is_mapped_by_its_snapshot_ref(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        ('GET', 'snapshots', paged({'name__in': 'vg1:view'}, 'id,name,is_exposable'), None, 200,
         hits([{'id': 6, 'name': 'vg1:view', 'is_exposable': True}])),
        ('GET', 'volsnaps', paged({'snapshot.ref__in': '/snapshots/6'}, 'id,snapshot,short_name,scsi_sn'), None, 200,
         hits([{'id': 40, 'snapshot': {'ref': '/snapshots/6'}, 'short_name': 'v1', 'scsi_sn': 'd5750040'},
               {'id': 41, 'snapshot': {'ref': '/snapshots/6'}, 'short_name': 'v2', 'scsi_sn': 'd5750041'}])),
        host_maps('/hosts/4', []),
        *iscsi_targets()
    )
    k2_server.register(
        ('POST', 'mappings', None, {'volume': {'ref': '/snapshots/6'}, 'host': {'ref': '/hosts/4'}}, 201, mapping(13, '/snapshots/6', 1)),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'vg1:view'}])
    assert not failed, result
    assert result['mappings'] == [{'volume': 'vg1:view', 'volume_id': 6, 'kind': 'view', 'lun': 1, 'id': 13, 'scsi_sn': None,
                                   'volsnaps': [{'volume': 'v1', 'scsi_sn': 'd5750040'}, {'volume': 'v2', 'scsi_sn': 'd5750041'}]}]
    assert result['connection_info']['vg1:view']['data']['target_lun'] == 1


def test_fc_connection_info_in_cinder_shape(k2_server, conn, capsys):
    wwnn = '20:00:00:00:c9:12:34:56'
    name = '6543219c00000002'
    k2_server.register(
        find_host(name, linux_host(name=name)),
        *host_initiators(4, [], ['10:00:00:00:c9:12:34:56', '10:00:00:00:c9:12:34:57'])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 3)]),
        ('GET', 'system/fc_ports', paged({}, 'id,pwwn'), None, 200,
         hits([{'id': 1, 'pwwn': '50:02:4f:40:d6:02:01:00'}, {'id': 2, 'pwwn': None}, {'id': 3, 'pwwn': '50:02:4F:40:D6:02:01:01'}])),
    )
    result, failed = run(conn, capsys, initiator=wwnn, unique_fqdn_network=False,
                         wwpns=['10000000C9123456', '10-00-00-00-c9-12-34-57'], volumes=[{'name': 'v1'}])
    assert not failed, result
    assert result['changed'] is False
    assert result['protocol'] == 'fc'
    targets = ['50024f40d6020100', '50024f40d6020101']
    assert result['connection_info'] == {'v1': {'driver_volume_type': 'fibre_channel', 'data': {
        'target_discovered': True, 'target_lun': 3, 'target_wwn': targets,
        'initiator_target_map': {'10000000c9123456': targets, '10000000c9123457': targets}}}}
    assert result['host']['wwpns'] == ['10:00:00:00:c9:12:34:56', '10:00:00:00:c9:12:34:57']


def test_check_mode_plans_everything_and_writes_nothing(k2_server, conn, capsys):
    k2_server.register(
        find_host(IQN_HOST),
        find_volumes(['v1'], [vol(7, 'v1')]),
        ('GET', 'host_iqns', paged({'iqn__in': IQN}, 'id,iqn,host'), None, 200, hits([])),
        *iscsi_targets()
    )
    result, failed = run(conn, capsys, check=True, initiator=IQN, unique_fqdn_network=False, volumes=[{'name': 'v1', 'lun': 2}])
    assert not failed, result
    assert result['changed'] is True
    assert len(result['actions']) == 3
    assert result['host']['id'] is None
    assert result['mappings'] == [{'volume': 'v1', 'volume_id': 7, 'kind': 'volume', 'lun': 2, 'id': None, 'scsi_sn': 'd5750007', 'volsnaps': None}]
    assert all(r.method == 'GET' for r in k2_server.received)


def test_iqn_of_another_host_is_refused_before_any_write(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1'),
        ('GET', 'host_iqns', paged({'iqn__in': IQN}, 'id,iqn,host'), None, 200, hits([{'id': 20, 'iqn': IQN, 'host': {'ref': '/hosts/9'}}])),
        ('GET', 'hosts', paged({'id__in': '9'}, 'id,name'), None, 200, hits([{'id': 9, 'name': 'other'}])),
    )
    result, failed = run(conn, capsys, host='h1', iqns=[IQN])
    assert failed
    assert 'already registered on the array for another host: %s (host other)' % IQN in result['msg']


def test_new_host_is_deleted_again_when_mapping_fails(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1'),
        find_volumes(['v1'], [vol(7, 'v1')]),
        ('POST', 'hosts', None, {'name': 'h1', 'type': 'ESX'}, 201, dict(linux_host(name='h1'), type='ESX')),
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}}, 400,
         error('MC_ERR_LUN_IN_USE: no free LUN left')),
        ('DELETE', 'hosts/4', None, None, 204, None),
    )
    result, failed = run(conn, capsys, host='h1', host_type='ESX', volumes=[{'name': 'v1'}])
    assert failed
    assert "Could not create mapping 'v1'" in result['msg']
    assert "Rolled back: delete the new host 'h1'." in result['msg']
    assert result['rollback'] == [{'step': "delete the new host 'h1'", 'error': None}]


def test_host_group_member_needs_host_group(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1', group='/host_groups/2')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(('GET', 'host_groups/2', {'__fields': 'id,name'}, None, 200, {'id': 2, 'name': 'cluster'}))
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}])
    assert failed
    assert "member of host group 'cluster'" in result['msg']
    assert 'set host_group: cluster' in result['msg']


def test_map_to_host_group_with_explicit_lun(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1', group='/host_groups/2')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        ('GET', 'host_groups', one({'name': 'cluster'}, 'id,name'), None, 200, hits([{'id': 2, 'name': 'cluster'}])),
        find_volumes(['shared'], [vol(7, 'shared')]),
        host_maps('/host_groups/2', []),
        *iscsi_targets()
    )
    k2_server.register(
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/host_groups/2'}, 'lun': 10}, 201,
         mapping(13, '/volumes/7', 10, host='/host_groups/2')),
    )
    result, failed = run(conn, capsys, host='h1', host_group='cluster', volumes=[{'name': 'shared', 'lun': 10}])
    assert not failed, result
    assert result['host']['host_group'] == 'cluster'
    assert result['host_group'] == {'id': 2, 'name': 'cluster'}
    assert result['connection_info']['shared']['data']['target_lun'] == 10


# ------------------------------------------------------------------ absent

def test_absent_unmaps_and_deletes_host_named_from_initiator(k2_server, conn, capsys):
    k2_server.register(
        find_host(IQN_HOST, linux_host()),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
        ('DELETE', 'mappings/11', None, None, 204, None),
        ('DELETE', 'hosts/4', None, None, 204, None),
    )
    result, failed = run(conn, capsys, diff=True, initiator=IQN, unique_fqdn_network=False, volumes=[{'name': 'v1'}], state='absent')
    assert not failed, result
    assert result['changed'] is True
    assert result['host'] == {}
    assert result['mappings'] == []
    assert [(a['action'], a['resource']) for a in result['actions']] == [('delete', 'mapping'), ('delete', 'host')]
    assert result['diff']['before']['host %s' % IQN_HOST]['iqns'] == [IQN]


def test_absent_keeps_named_host_with_other_mappings(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1), mapping(12, '/volumes/8', 2)]),
        ('GET', 'volumes', paged({'id__in': '8'}, 'id,name'), None, 200, hits([{'id': 8, 'name': 'v2'}])),
        ('DELETE', 'mappings/11', None, None, 204, None),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}], state='absent', remove_empty_host=True)
    assert not failed, result
    assert result['host']['name'] == 'h1'
    assert [(m['volume'], m['lun']) for m in result['mappings']] == [('v2', 2)]


def test_absent_named_host_is_kept_without_remove_empty_host(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
        ('DELETE', 'mappings/11', None, None, 204, None),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}], state='absent')
    assert not failed, result
    assert result['host']['name'] == 'h1'


def test_absent_of_missing_host_is_no_change(k2_server, conn, capsys):
    k2_server.register(find_host('h1'))
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}], state='absent')
    assert not failed, result
    assert result['changed'] is False
    assert result['k2_requests']['total'] == 1


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize('args, message', [
    (dict(host='h1', iqns=['iqn.bad']), "Invalid iSCSI name 'iqn.bad' in option 'iqns'"),
    (dict(host='h1', wwpns=['12:34']), "Invalid WWN '12:34' in option 'wwpns'"),
    (dict(host='h' * 43), 'is too long (43 characters)'),
    (dict(host='h1', host_type='linux'), 'value of host_type must be one of'),
    (dict(host='h1', volumes=[{'name': 'v1', 'lun': 0}]), 'volumes[0].lun is 0'),
    (dict(host='h1', volumes=[{'name': 'v1', 'lun': 3}, {'name': 'v2', 'lun': 3}]), "LUN 3 is given to both 'v1' and 'v2'"),
    (dict(host='h1', volumes=[{'name': 'v1'}, {'name': 'v1'}]), "listed twice"),
    (dict(initiator='not-an-iqn'), "Invalid iSCSI name 'not-an-iqn' in option 'initiator'"),
    (dict(host_group='g1', iqns=[IQN]), 'set host (or initiator)'),
    (dict(volumes=[{'name': 'v1'}]), 'one of the following is required'),
])
def test_invalid_arguments_fail_before_any_request(k2_server, conn, capsys, args, message):
    result, failed = run(conn, capsys, **args)
    assert failed
    assert message in result['msg']
    assert k2_server.received == []


def test_unknown_volume_fails_with_the_names(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1', 'nope'], [vol(7, 'v1')]),
        ('GET', 'snapshots', paged({'name__in': 'vg1:noview'}, 'id,name,is_exposable'), None, 200, hits([])),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}, {'name': 'nope'}, {'name': 'vg1:noview'}])
    assert failed
    assert "Not on the array (option volumes): 'nope', 'vg1:noview'." in result['msg']


def test_absent_with_host_group_unmaps_from_the_group_even_without_the_host(k2_server, conn, capsys):
    k2_server.register(
        find_host('gone'),
        ('GET', 'host_groups', one({'name': 'cluster'}, 'id,name'), None, 200, hits([{'id': 2, 'name': 'cluster'}])),
        find_volumes(['shared'], [vol(7, 'shared')]),
        host_maps('/host_groups/2', [mapping(13, '/volumes/7', 10, host='/host_groups/2')]),
        ('DELETE', 'mappings/13', None, None, 204, None),
    )
    result, failed = run(conn, capsys, host='gone', host_group='cluster', volumes=[{'name': 'shared'}], state='absent')
    assert not failed, result
    assert result['changed'] is True
    assert result['host'] == {}
    assert result['host_group'] == {'id': 2, 'name': 'cluster'}
    assert result['mappings'] == []


def test_connection_info_false_skips_the_array_target_reads(k2_server, conn, capsys):
    k2_server.register(
        find_host(IQN_HOST, linux_host()),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1'], [vol(7, 'v1')]),
        host_maps('/hosts/4', [mapping(11, '/volumes/7', 1)]),
    )
    result, failed = run(conn, capsys, initiator=IQN, unique_fqdn_network=False, volumes=[{'name': 'v1'}], connection_info=False)
    assert not failed, result
    assert result['changed'] is False
    assert 'connection_info' not in result
    assert result['protocol'] == 'iscsi'
    assert result['k2_requests'] == {'total': 5, 'GET': 5}


def renumber_reads(k2_server, maps):
    k2_server.register(
        find_host('h1', linux_host(name='h1')),
        *host_initiators(4, [IQN])
    )
    k2_server.register(
        find_volumes(['v1', 'v2'], [vol(7, 'v1'), vol(8, 'v2')]),
        host_maps('/hosts/4', maps),
    )


def test_renumbering_moves_luns_in_a_safe_order(k2_server, conn, capsys):
    # v1 takes LUN 2, which v2 leaves for LUN 3: v2 must move first.
    renumber_reads(k2_server, [mapping(11, '/volumes/7', 1), mapping(12, '/volumes/8', 2)])
    k2_server.register(
        *iscsi_targets()
    )
    k2_server.register(
        ('PATCH', 'mappings/12', None, {'lun': 3}, 200, mapping(12, '/volumes/8', 3)),
        ('PATCH', 'mappings/11', None, {'lun': 2}, 200, mapping(11, '/volumes/7', 2)),
    )
    result, failed = run(conn, capsys, diff=True, host='h1', volumes=[{'name': 'v1', 'lun': 2}, {'name': 'v2', 'lun': 3}])
    assert not failed, result
    assert [(a['name'], a['changes']['lun']['after']) for a in result['actions']] == [('v2', 3), ('v1', 2)]
    assert [(m['volume'], m['lun']) for m in result['mappings']] == [('v1', 2), ('v2', 3)]


def test_lun_swap_is_refused_before_any_write(k2_server, conn, capsys):
    renumber_reads(k2_server, [mapping(11, '/volumes/7', 1), mapping(12, '/volumes/8', 2)])
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1', 'lun': 2}, {'name': 'v2', 'lun': 1}])
    assert failed
    assert 'go round in a circle' in result['msg']
    assert "'v1' (LUN 1 to 2)" in result['msg']
    assert all(r.method == 'GET' for r in k2_server.received)


def test_unchanged_mappings_are_in_the_diff(k2_server, conn, capsys):
    renumber_reads(k2_server, [mapping(11, '/volumes/7', 1), mapping(12, '/volumes/8', 2)])
    k2_server.register(*iscsi_targets())
    result, failed = run(conn, capsys, diff=True, host='h1', volumes=[{'name': 'v1'}, {'name': 'v2', 'lun': 2}])
    assert not failed, result
    assert result['changed'] is False
    assert result['diff']['before']['mapping v2'] == {'volume': 'v2', 'host': 'host h1', 'lun': 2}
    assert result['diff']['before'] == result['diff']['after']


# ------------------------------------------------------------------ several new mappings: one __bulk POST

def test_several_new_mappings_go_in_one_bulk_post(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1'),
        find_volumes(['v1', 'v2', 'v3'], [vol(7, 'v1'), vol(8, 'v2'), vol(9, 'v3')]),
        ('POST', 'hosts', None, {'name': 'h1', 'type': 'Linux'}, 201, linux_host(name='h1')),
        ('POST', 'mappings/__bulk', None, [{'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}},
                                           {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/4'}, 'lun': 5},
                                           {'volume': {'ref': '/volumes/9'}, 'host': {'ref': '/hosts/4'}}], 201,
         hits([mapping(11, '/volumes/7', 1), mapping(12, '/volumes/8', 5), mapping(13, '/volumes/9', 2)])),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}, {'name': 'v2', 'lun': 5}, {'name': 'v3'}])
    assert not failed, result
    assert result['changed'] is True
    assert [(m['volume'], m['lun'], m['id']) for m in result['mappings']] == [('v1', 1, 11), ('v3', 2, 13), ('v2', 5, 12)]
    assert [(a['action'], a['resource']) for a in result['actions']] == [('create', 'host')] + [('create', 'mapping')] * 3
    assert result['k2_requests'] == {'total': 4, 'GET': 2, 'POST': 2}


def test_new_host_is_deleted_again_when_the_bulk_mapping_fails(k2_server, conn, capsys):
    k2_server.register(
        find_host('h1'),
        find_volumes(['v1', 'v2'], [vol(7, 'v1'), vol(8, 'v2')]),
        ('POST', 'hosts', None, {'name': 'h1', 'type': 'Linux'}, 201, linux_host(name='h1')),
        ('POST', 'mappings/__bulk', None, [{'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}},
                                           {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/4'}}], 400,
         error('MC_ERR_LUN_IN_USE: no free LUN left')),
        ('DELETE', 'hosts/4', None, None, 204, None),
    )
    result, failed = run(conn, capsys, host='h1', volumes=[{'name': 'v1'}, {'name': 'v2'}])
    assert failed
    assert "Could not create mapping 'v1', 'v2'" in result['msg']
    assert "Rolled back: delete the new host 'h1'." in result['msg']
