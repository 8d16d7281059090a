# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_host_mapping's list form (``hosts``) against the scripted K2 server: the exact chunked reads and __bulk writes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.modules import k2_host_mapping
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import error, hits, run_module

IQN1 = 'iqn.1994-05.com.redhat:h1'
IQN2 = 'iqn.1994-05.com.redhat:h2'
TARGET_IQN = 'iqn.2009-01.com.kaminario:storage.k2.54645'


def search(resource, query, fields, limit):
    """A chunked ``__in`` search as the list form sends it: one page sized for the chunk (1000 when many per value)."""
    params = dict(query)
    params.update({'__fields': fields, '__sort': 'id', '__limit': str(limit), '__offset': '0'})
    return ('GET', resource, params)


def find_hosts(names, found):
    return search('hosts', {'name__in': ','.join(names)}, 'id,name,type,host_group', len(names)) + (None, 200, hits(found))


def find_volumes(names, found):
    return search('volumes', {'name__in': ','.join(names)}, 'id,name,scsi_sn', len(names)) + (None, 200, hits(found))


def iqn_owners(iqns, found):
    return search('host_iqns', {'iqn__in': ','.join(iqns)}, 'id,iqn,host', len(iqns)) + (None, 200, hits(found))


def by_hosts(resource, refs, fields, found):
    return search(resource, {'host.ref__in': ','.join(refs)}, fields, 1000) + (None, 200, hits(found))


def host(obj_id, name, group=None):
    return {'id': obj_id, 'name': name, 'type': 'Linux', 'host_group': {'ref': group} if group else None}


def vol(obj_id, name):
    return {'id': obj_id, 'name': name, 'scsi_sn': 'd575%04d' % obj_id}


def mapping(obj_id, volume, lun, host_id):
    return {'id': obj_id, 'volume': {'ref': volume}, 'host': {'ref': '/hosts/%d' % host_id}, 'lun': lun}


def iqn(obj_id, value, host_id):
    return {'id': obj_id, 'iqn': value, 'host': {'ref': '/hosts/%d' % host_id}}


def run(conn, capsys, check=False, diff=False, **args):
    return run_module(k2_host_mapping.main, dict(conn, **args), capsys, check=check, diff=diff)


HOSTS = [
    {'host': 'h1', 'iqns': [IQN1], 'volumes': [{'name': 'v1'}, {'name': 'v2', 'lun': 5}]},
    {'host': 'h2', 'iqns': [IQN2], 'volumes': [{'name': 'v3'}]},
]
VOLS = [vol(7, 'v1'), vol(8, 'v2'), vol(9, 'v3')]


def create_reads(k2_server):
    k2_server.register(
        find_hosts(['h1', 'h2'], []),
        iqn_owners([IQN1, IQN2], []),
        find_volumes(['v1', 'v2', 'v3'], VOLS),
    )


def new_hosts_posts():
    """The __bulk POSTs that create HOSTS' two hosts and their IQNs (ids 4, 5 and 20, 21)."""
    return [
        ('POST', 'hosts/__bulk', None, [{'name': 'h1', 'type': 'Linux'}, {'name': 'h2', 'type': 'Linux'}], 201,
         hits([host(4, 'h1'), host(5, 'h2')])),
        ('POST', 'host_iqns/__bulk', None, [{'iqn': IQN1, 'host': {'ref': '/hosts/4'}}, {'iqn': IQN2, 'host': {'ref': '/hosts/5'}}], 201,
         hits([iqn(20, IQN1, 4), iqn(21, IQN2, 5)])),
    ]


# HOSTS' mappings as one __bulk POST body: the explicit LUN goes first, so that the LUN K2 picks for v1 can never be 5.
HOSTS_MAPPINGS = [
    {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/4'}, 'lun': 5},
    {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}},
    {'volume': {'ref': '/volumes/9'}, 'host': {'ref': '/hosts/5'}},
]


def test_create_hosts_initiators_and_mappings_in_three_bulk_posts(k2_server, conn, capsys):
    create_reads(k2_server)
    k2_server.register(
        *new_hosts_posts(),
        ('POST', 'mappings/__bulk', None, HOSTS_MAPPINGS, 201,
         hits([mapping(12, '/volumes/8', 5, 4), mapping(11, '/volumes/7', 1, 4), mapping(13, '/volumes/9', 1, 5)])),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert not failed, result
    assert result['changed'] is True
    assert result['k2_requests'] == {'total': 6, 'GET': 3, 'POST': 3}
    h1, h2 = result['hosts']
    assert h1['name'] == 'h1' and h1['state'] == 'present'
    assert h1['host'] == {'id': 4, 'name': 'h1', 'type': 'Linux', 'host_group': None, 'iqns': [IQN1], 'wwpns': [],
                          'named_from_initiator': False}
    assert h1['mappings'] == [
        {'volume': 'v1', 'volume_id': 7, 'kind': 'volume', 'lun': 1, 'id': 11, 'scsi_sn': 'd5750007', 'volsnaps': None},
        {'volume': 'v2', 'volume_id': 8, 'kind': 'volume', 'lun': 5, 'id': 12, 'scsi_sn': 'd5750008', 'volsnaps': None},
    ]
    assert h1['protocol'] == 'iscsi'
    assert 'connection_info' not in h1  # the list form's default
    assert [(m['volume'], m['lun'], m['id']) for m in h2['mappings']] == [('v3', 1, 13)]
    assert h2['host']['id'] == 5
    assert [(a['action'], a['resource'], a['name']) for a in result['actions']] == [
        ('create', 'host', 'h1'), ('create', 'host', 'h2'), ('create', 'host IQN', IQN1), ('create', 'host IQN', IQN2),
        ('create', 'mapping', 'v2'), ('create', 'mapping', 'v1'), ('create', 'mapping', 'v3')]


def existing_reads(k2_server, maps=None):
    k2_server.register(
        find_hosts(['h1', 'h2'], [host(4, 'h1'), host(5, 'h2')]),
        by_hosts('host_iqns', ['/hosts/4', '/hosts/5'], 'id,iqn,host', [iqn(20, IQN1, 4), iqn(21, IQN2, 5)]),
        by_hosts('host_fc_ports', ['/hosts/4', '/hosts/5'], 'id,pwwn,host', []),
        find_volumes(['v1', 'v2', 'v3'], VOLS),
        by_hosts('mappings', ['/hosts/4', '/hosts/5'], 'id,volume,lun,host', maps if maps is not None else [
            mapping(11, '/volumes/7', 1, 4), mapping(12, '/volumes/8', 5, 4), mapping(13, '/volumes/9', 1, 5)]),
    )


def test_no_change_run_is_five_reads(k2_server, conn, capsys):
    existing_reads(k2_server)
    result, failed = run(conn, capsys, diff=True, hosts=HOSTS)
    assert not failed, result
    assert result['changed'] is False
    assert result['actions'] == []
    assert result['k2_requests'] == {'total': 5, 'GET': 5}
    assert result['diff']['before'] == result['diff']['after']
    assert result['diff']['after']['h1'] == {'type': 'Linux', 'iqns': [IQN1], 'wwpns': [], 'mappings': {'v1': 1, 'v2': 5}}
    assert [[(m['volume'], m['lun']) for m in h['mappings']] for h in result['hosts']] == [[('v1', 1), ('v2', 5)], [('v3', 1)]]


def test_connection_info_on_request_reads_the_array_once(k2_server, conn, capsys):
    existing_reads(k2_server)
    k2_server.register(
        search('system/net_ips', {}, 'id,ip_address,wan_port', 100) + (None, 200, hits([{'id': 1, 'ip_address': '192.0.2.11', 'wan_port': None}])),
        search('system/state', {}, 'id,iscsi_qualified_target_name', 100) + (
            None, 200, hits([{'id': 1, 'iscsi_qualified_target_name': TARGET_IQN}])),
    )
    result, failed = run(conn, capsys, hosts=HOSTS, connection_info=True)
    assert not failed, result
    assert result['hosts'][0]['connection_info']['v2'] == {
        'driver_volume_type': 'iscsi',
        'data': {'target_iqn': TARGET_IQN, 'target_portal': '192.0.2.11:3260', 'target_lun': 5, 'target_discovered': True}}
    assert result['hosts'][1]['connection_info']['v3']['data']['target_lun'] == 1
    assert result['k2_requests'] == {'total': 7, 'GET': 7}


def test_explicit_lun_collision_is_refused_before_any_write(k2_server, conn, capsys):
    # h1 is new (its mappings would be created), h2 exists and has volume v9 at LUN 5: nothing may be written.
    k2_server.register(
        find_hosts(['h1', 'h2'], [host(5, 'h2')]),
        by_hosts('host_iqns', ['/hosts/5'], 'id,iqn,host', [iqn(21, IQN2, 5)]),
        by_hosts('host_fc_ports', ['/hosts/5'], 'id,pwwn,host', []),
        iqn_owners([IQN1], []),
        find_volumes(['v1', 'v3'], [vol(7, 'v1'), vol(9, 'v3')]),
        by_hosts('mappings', ['/hosts/5'], 'id,volume,lun,host', [mapping(14, '/volumes/99', 5, 5)]),
        search('volumes', {'id__in': '99'}, 'id,name', 1) + (None, 200, hits([{'id': 99, 'name': 'v9'}])),
    )
    result, failed = run(conn, capsys, hosts=[{'host': 'h1', 'iqns': [IQN1], 'volumes': [{'name': 'v1'}]},
                                              {'host': 'h2', 'volumes': [{'name': 'v3', 'lun': 5}]}])
    assert failed
    assert "LUN 5 (hosts[1].volumes[0].lun, for 'v3') is already used on host h2 by volume 'v9'" in result['msg']
    assert result['changed'] is False
    assert all(r.method == 'GET' for r in k2_server.received)


@pytest.mark.parametrize('hosts, message', [
    ([{'host': 'h1'}, {'host': 'h2', 'host_group': 'g1'}], 'hosts[1].host_group is not supported in the list form'),
    ([{'host': 'h1', 'iqns': ['iqn.bad']}], "Invalid iSCSI name 'iqn.bad' in option 'hosts[0].iqns'"),
    ([{'host': 'h1', 'wwpns': ['12:34']}], "Invalid WWN '12:34' in option 'hosts[0].wwpns'"),
    ([{'host': 'h' * 43}], "hosts[0].host 'hhhh"),
    ([{'iqns': [IQN1]}], 'hosts[0] names no host: set hosts[0].host, hosts[0].initiator or hosts[0].host_fqdn'),
    ([{'host': 'h1', 'volumes': [{'name': 'v1', 'lun': 255}]}], 'hosts[0].volumes[0].lun is 255'),
    ([{'host': 'h1', 'volumes': [{'name': 'v1', 'lun': 3}, {'name': 'v2', 'lun': 3}]}],
     "LUN 3 is given to both 'v1' and 'v2' in hosts[0].volumes"),
    ([{'host': 'h1', 'volumes': [{'name': ' '}]}], 'hosts[0].volumes[0].name is empty'),
    ([{'host': 'h1'}, {'host': 'h1'}], "hosts[0] and hosts[1] both name host 'h1'"),
    ([{'host': 'h1', 'iqns': [IQN1]}, {'host': 'h2', 'iqns': [IQN1.upper()]}], 'is given to both hosts[0] and hosts[1]'),
    ([{'host_fqdn': 'db01.example.com', 'unique_fqdn_network': False}], 'hosts[0]: Cannot derive a K2 host name'),
    ([{'host': 'h1', 'host_type': 'linux'}], 'value of host_type must be one of'),
])
def test_item_validation_names_the_item_before_any_request(k2_server, conn, capsys, hosts, message):
    result, failed = run(conn, capsys, hosts=hosts)
    assert failed
    assert message in result['msg']
    assert k2_server.received == []


def test_hosts_excludes_the_single_host_options(k2_server, conn, capsys):
    result, failed = run(conn, capsys, hosts=[{'host': 'h1'}], volumes=[{'name': 'v1'}])
    assert failed
    assert 'mutually exclusive: hosts|volumes' in result['msg']
    assert k2_server.received == []


def test_unknown_volumes_are_named_with_their_items(k2_server, conn, capsys):
    k2_server.register(
        find_hosts(['h1', 'h2'], []),
        find_volumes(['nope', 'v1'], [vol(7, 'v1')]),
    )
    result, failed = run(conn, capsys, hosts=[{'host': 'h1', 'volumes': [{'name': 'v1'}, {'name': 'nope'}]},
                                              {'host': 'h2', 'volumes': [{'name': 'nope'}]}])
    assert failed
    assert "Not on the array: 'nope' (hosts[0].volumes, hosts[1].volumes)." in result['msg']


def test_iqn_of_another_host_is_refused_naming_the_item(k2_server, conn, capsys):
    k2_server.register(
        find_hosts(['h1'], []),
        iqn_owners([IQN1], [iqn(25, IQN1, 9)]),
        search('hosts', {'id__in': '9'}, 'id,name', 1) + (None, 200, hits([{'id': 9, 'name': 'other'}])),
    )
    result, failed = run(conn, capsys, hosts=[{'host': 'h1', 'iqns': [IQN1]}])
    assert failed
    assert 'already registered on the array for another host: %s (host other) (hosts[0].iqns)' % IQN1 in result['msg']


def test_failing_bulk_mapping_post_rolls_back_what_the_run_created(k2_server, conn, capsys):
    create_reads(k2_server)
    k2_server.register(
        *new_hosts_posts(),
        ('POST', 'mappings/__bulk', None, HOSTS_MAPPINGS, 400, error('MC_ERR_LUN_IN_USE: no free LUN left')),
        # Is an explicit LUN of the batch held by another volume now (a race)? No: the array's own error stands.
        by_hosts('mappings', ['/hosts/4'], 'id,volume,lun,host', []),
        # Newest first: the IQNs, then the hosts.
        ('DELETE', 'host_iqns/__bulk', None, [{'id': 20}, {'id': 21}], 204, None),
        ('DELETE', 'hosts/__bulk', None, [{'id': 4}, {'id': 5}], 204, None),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert failed
    assert "Could not create mapping 'v2', 'v1', 'v3'" in result['msg']
    assert result['rollback'] == [
        {'step': "remove the new IQNs '%s', '%s'" % (IQN1, IQN2), 'error': None},
        {'step': "delete the new hosts 'h1', 'h2'", 'error': None},
    ]
    assert result['changed'] is True


def test_check_mode_plans_everything_and_writes_nothing(k2_server, conn, capsys):
    create_reads(k2_server)
    result, failed = run(conn, capsys, check=True, diff=True, hosts=HOSTS)
    assert not failed, result
    assert result['changed'] is True
    assert result['k2_requests'] == {'total': 3, 'GET': 3}
    assert len(result['actions']) == 7
    h1 = result['hosts'][0]
    assert h1['host']['id'] is None and h1['host']['iqns'] == [IQN1]
    assert [(m['volume'], m['lun'], m['id']) for m in h1['mappings']] == [('v2', 5, None), ('v1', None, None)]
    assert result['diff']['before'] == {'h1': {}, 'h2': {}}
    assert result['diff']['after']['h1']['mappings'] == {'v1': None, 'v2': 5}


def test_exclusive_moves_and_absent_items_in_bulk(k2_server, conn, capsys):
    # h1: v2 moves from LUN 5 to 6, the unlisted v3 is unmapped (exclusive); h2 (absent, remove_empty_host) loses v3 and goes.
    existing_reads(k2_server, maps=[mapping(11, '/volumes/7', 1, 4), mapping(12, '/volumes/8', 5, 4), mapping(15, '/volumes/9', 2, 4),
                                    mapping(13, '/volumes/9', 1, 5)])
    k2_server.register(
        ('DELETE', 'mappings/__bulk', None, [{'id': 15}, {'id': 13}], 204, None),
        ('PATCH', 'mappings/12', None, {'lun': 6}, 200, mapping(12, '/volumes/8', 6, 4)),
        ('DELETE', 'hosts/__bulk', None, [{'id': 5}], 204, None),
    )
    result, failed = run(conn, capsys, hosts=[
        {'host': 'h1', 'volumes': [{'name': 'v1'}, {'name': 'v2', 'lun': 6}], 'exclusive': True},
        {'host': 'h2', 'volumes': [{'name': 'v3'}], 'state': 'absent', 'remove_empty_host': True}])
    assert not failed, result
    assert [(a['action'], a['resource'], a['name']) for a in result['actions']] == [
        ('delete', 'mapping', 'v3'), ('delete', 'mapping', 'v3'), ('update', 'mapping', 'v2'), ('delete', 'host', 'h2')]
    h1, h2 = result['hosts']
    assert [(m['volume'], m['lun']) for m in h1['mappings']] == [('v1', 1), ('v2', 6)]
    assert h2 == {'name': 'h2', 'state': 'absent', 'host': {}, 'mappings': [], 'protocol': None}


def test_empty_list_sends_nothing(k2_server, conn, capsys):
    result, failed = run(conn, capsys, hosts=[])
    assert not failed, result
    assert result['hosts'] == [] and result['changed'] is False
    assert k2_server.received == []


def test_host_type_change_is_one_bulk_patch(k2_server, conn, capsys):
    existing_reads(k2_server)
    k2_server.register(('PATCH', 'hosts/__bulk', None, [{'id': 5, 'type': 'ESX'}], 200, hits([dict(host(5, 'h2'), type='ESX')])))
    result, failed = run(conn, capsys, hosts=[HOSTS[0], dict(HOSTS[1], host_type='ESX')])
    assert not failed, result
    assert result['actions'] == [{'action': 'update', 'resource': 'host', 'name': 'h2', 'changes': {'type': {'before': 'Linux', 'after': 'ESX'}}}]
    assert result['hosts'][1]['host']['type'] == 'ESX'
    assert result['hosts'][0]['host']['type'] == 'Linux'


# Races: eight runs at once (tests/reliability/test_concurrency.py). Another run creates a host, an IQN or a
# mapping between this run's read and its POST; the refused create re-reads it and uses it when it is what this
# run would have made, and never deletes it on rollback.

def exists(message):
    return {'error_code': 'MC_ERR_ALREADY_EXISTS', 'error_msg': message}


def lun_in_use(message):
    return {'error_code': 'MC_ERR_LUN_IN_USE', 'error_msg': message}


HOSTS_BULK = [{'name': 'h1', 'type': 'Linux'}, {'name': 'h2', 'type': 'Linux'}]
IQNS_BULK = [{'iqn': IQN1, 'host': {'ref': '/hosts/4'}}, {'iqn': IQN2, 'host': {'ref': '/hosts/5'}}]
MAPS_BULK = [
    {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/4'}, 'lun': 5},
    {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}},
    {'volume': {'ref': '/volumes/9'}, 'host': {'ref': '/hosts/5'}},
]
MAPS_MADE = hits([mapping(12, '/volumes/8', 5, 4), mapping(11, '/volumes/7', 1, 4), mapping(13, '/volumes/9', 1, 5)])


def test_race_host_and_its_iqn_made_by_another_run_are_used(k2_server, conn, capsys):
    # After this run read the hosts (none), another run created h1 with IQN1: the IQN check sees IQN1 on a host
    # named h1 - this item's host - and accepts it; the refused host and IQN creates re-read and use h1 and IQN1.
    k2_server.register(
        find_hosts(['h1', 'h2'], []),
        iqn_owners([IQN1, IQN2], [iqn(20, IQN1, 4)]),
        search('hosts', {'id__in': '4'}, 'id,name', 1) + (None, 200, hits([{'id': 4, 'name': 'h1'}])),
        find_volumes(['v1', 'v2', 'v3'], VOLS),
        ('POST', 'hosts/__bulk', None, HOSTS_BULK, 400, exists("bulk element 0: host 'h1' already exists (/hosts/4)")),
        ('GET', 'hosts', {'name__in': 'h1,h2', '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200, hits([host(4, 'h1')])),
        ('POST', 'hosts/__bulk', None, HOSTS_BULK[1:], 201, hits([host(5, 'h2')])),
        ('POST', 'host_iqns/__bulk', None, IQNS_BULK, 400, exists("bulk element 0: IQN %s already exists (/host_iqns/20)" % IQN1)),
        ('GET', 'host_iqns', {'iqn__in': '%s,%s' % (IQN1, IQN2), '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200,
         hits([iqn(20, IQN1, 4)])),
        ('POST', 'host_iqns/__bulk', None, IQNS_BULK[1:], 201, hits([iqn(21, IQN2, 5)])),
        ('POST', 'mappings/__bulk', None, MAPS_BULK, 201, MAPS_MADE),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert not failed, result
    assert [(h['host']['id'], h['host']['iqns']) for h in result['hosts']] == [(4, [IQN1]), (5, [IQN2])]
    assert [[(m['volume'], m['lun'], m['id']) for m in h['mappings']] for h in result['hosts']] == [
        [('v1', 1, 11), ('v2', 5, 12)], [('v3', 1, 13)]]
    assert result['k2_requests'] == {'total': 11, 'GET': 6, 'POST': 5}


def test_race_host_of_another_type_fails_naming_the_item(k2_server, conn, capsys):
    create_reads(k2_server)
    k2_server.register(
        ('POST', 'hosts/__bulk', None, HOSTS_BULK, 400, exists("bulk element 1: host 'h2' already exists (/hosts/5)")),
        ('GET', 'hosts', {'name__in': 'h1,h2', '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200,
         hits([dict(host(5, 'h2'), type='ESX')])),
        search('hosts', {'name__in': 'h1,h2'}, 'id,name,type', 2) + (None, 200, hits([{'id': 5, 'name': 'h2', 'type': 'ESX'}])),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert failed
    assert ("Host 'h2' (hosts[1]) was created by another writer after this task read the hosts, with type ESX where this "
            "task creates type Linux: set hosts[1].host_type: ESX") in result['msg']
    assert result['changed'] is False and 'rollback' not in result


def test_race_iqn_made_for_another_host_fails_naming_the_item_and_undoes_the_new_hosts(k2_server, conn, capsys):
    create_reads(k2_server)
    k2_server.register(
        ('POST', 'hosts/__bulk', None, HOSTS_BULK, 201, hits([host(4, 'h1'), host(5, 'h2')])),
        ('POST', 'host_iqns/__bulk', None, IQNS_BULK, 400, exists("bulk element 1: IQN %s already exists (/host_iqns/30)" % IQN2)),
        ('GET', 'host_iqns', {'iqn__in': '%s,%s' % (IQN1, IQN2), '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200,
         hits([iqn(30, IQN2, 9)])),
        iqn_owners([IQN1, IQN2], [iqn(30, IQN2, 9)]),
        search('hosts', {'id__in': '9'}, 'id,name', 1) + (None, 200, hits([{'id': 9, 'name': 'other'}])),
        ('DELETE', 'hosts/__bulk', None, [{'id': 4}, {'id': 5}], 204, None),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert failed
    assert ('iSCSI initiator(s) already registered on the array for another host: %s (host other) (hosts[1].iqns), '
            'registered there by another writer after this task read the array' % IQN2) in result['msg']
    assert result['rollback'] == [{'step': "delete the new hosts 'h1', 'h2'", 'error': None}]


def test_race_mapping_made_by_another_run_is_used(k2_server, conn, capsys):
    # Another run mapped v2 to h1 at LUN 5 (as this run asks) after this run's read: the refused batch is made one
    # mapping at a time, v2's re-read by volume and host and used; the others are created, explicit LUN first.
    existing_reads(k2_server, maps=[])
    k2_server.register(
        ('POST', 'mappings/__bulk', None, MAPS_BULK, 400, exists('bulk element 0: /volumes/8 is already mapped to host h1')),
        ('POST', 'mappings', None, MAPS_BULK[0], 400, exists('/volumes/8 is already mapped to host h1 (/mappings/30, LUN 5)')),
        ('GET', 'mappings', {'volume.ref': '/volumes/8', 'host.ref': '/hosts/4', '__limit': '2'}, None, 200,
         hits([mapping(30, '/volumes/8', 5, 4)])),
        ('POST', 'mappings', None, MAPS_BULK[1], 201, mapping(31, '/volumes/7', 1, 4)),
        ('POST', 'mappings', None, MAPS_BULK[2], 201, mapping(32, '/volumes/9', 1, 5)),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert not failed, result
    assert [[(m['volume'], m['lun'], m['id']) for m in h['mappings']] for h in result['hosts']] == [
        [('v1', 1, 31), ('v2', 5, 30)], [('v3', 1, 32)]]


def test_race_mapping_at_another_lun_fails_naming_the_item_and_keeps_the_other_runs_mapping(k2_server, conn, capsys):
    existing_reads(k2_server, maps=[])
    bodies = [{'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/4'}, 'lun': 1},
              {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/4'}, 'lun': 5},
              {'volume': {'ref': '/volumes/9'}, 'host': {'ref': '/hosts/5'}, 'lun': 2}]
    k2_server.register(
        ('POST', 'mappings/__bulk', None, bodies, 400, exists('bulk element 1: /volumes/8 is already mapped to host h1')),
        ('POST', 'mappings', None, bodies[0], 201, mapping(11, '/volumes/7', 1, 4)),
        # v2: mapped meanwhile at LUN 5 as this run asks: used.
        ('POST', 'mappings', None, bodies[1], 400, exists('/volumes/8 is already mapped to host h1 (/mappings/30, LUN 5)')),
        ('GET', 'mappings', {'volume.ref': '/volumes/8', 'host.ref': '/hosts/4', '__limit': '2'}, None, 200,
         hits([mapping(30, '/volumes/8', 5, 4)])),
        # v3: mapped meanwhile at LUN 4, this run asks for 2.
        ('POST', 'mappings', None, bodies[2], 400, exists('/volumes/9 is already mapped to host h2 (/mappings/31, LUN 4)')),
        ('GET', 'mappings', {'volume.ref': '/volumes/9', 'host.ref': '/hosts/5', '__limit': '2'}, None, 200,
         hits([mapping(31, '/volumes/9', 4, 5)])),
        ('GET', 'mappings', {'volume.ref': '/volumes/9', 'host.ref': '/hosts/5', '__fields': 'id,lun', '__limit': '2'}, None, 200,
         hits([{'id': 31, 'lun': 4}])),
        # Only this run's own mapping is undone; the one it used (30) and the other run's (31) stay.
        ('DELETE', 'mappings/11', None, None, 204, None),
    )
    result, failed = run(conn, capsys, hosts=[
        {'host': 'h1', 'iqns': [IQN1], 'volumes': [{'name': 'v1', 'lun': 1}, {'name': 'v2', 'lun': 5}]},
        {'host': 'h2', 'iqns': [IQN2], 'volumes': [{'name': 'v3', 'lun': 2}]}])
    assert failed
    assert ("'v3' (hosts[1].volumes[0]) was mapped to host h2 at LUN 4 by another writer after this task read the host, "
            "where this task maps it at LUN 2: set hosts[1].volumes[0].lun to 4, or unmap it first.") in result['msg']
    assert result['rollback'] == [{'step': "unmap 'v1' from host h1", 'error': None}]
    assert result['changed'] is True


def test_race_explicit_lun_taken_by_another_volume_fails_naming_the_item_and_the_lun(k2_server, conn, capsys):
    existing_reads(k2_server, maps=[])
    k2_server.register(
        ('POST', 'mappings/__bulk', None, MAPS_BULK, 400, lun_in_use('LUN 5 is already used on host h1')),
        by_hosts('mappings', ['/hosts/4'], 'id,volume,lun,host', [mapping(40, '/volumes/99', 5, 4)]),
        search('volumes', {'id__in': '99'}, 'id,name', 1) + (None, 200, hits([{'id': 99, 'name': 'v9'}])),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert failed
    assert ("LUN 5 (hosts[0].volumes[1].lun, for 'v2') was taken on host h1 by volume 'v9' after this task read the host "
            "(another writer mapped it meanwhile). Choose another LUN, or unmap 'v9' first.") in result['msg']
    assert result['changed'] is False


def test_rollback_does_not_delete_a_host_another_run_created(k2_server, conn, capsys):
    create_reads(k2_server)
    k2_server.register(
        ('POST', 'hosts/__bulk', None, HOSTS_BULK, 400, exists("bulk element 0: host 'h1' already exists (/hosts/4)")),
        ('GET', 'hosts', {'name__in': 'h1,h2', '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200, hits([host(4, 'h1')])),
        ('POST', 'hosts/__bulk', None, HOSTS_BULK[1:], 201, hits([host(5, 'h2')])),
        ('POST', 'host_iqns/__bulk', None, IQNS_BULK, 201, hits([iqn(20, IQN1, 4), iqn(21, IQN2, 5)])),
        ('POST', 'mappings/__bulk', None, MAPS_BULK, 404, error('volume /volumes/9 does not exist')),
        # Newest first: this run's IQNs, then only the host this run created (h2); h1 is the other run's.
        ('DELETE', 'host_iqns/__bulk', None, [{'id': 20}, {'id': 21}], 204, None),
        ('DELETE', 'hosts/__bulk', None, [{'id': 5}], 204, None),
    )
    result, failed = run(conn, capsys, hosts=HOSTS)
    assert failed
    assert result['rollback'] == [
        {'step': "remove the new IQNs '%s', '%s'" % (IQN1, IQN2), 'error': None},
        {'step': "delete the new hosts 'h2'", 'error': None},
    ]
