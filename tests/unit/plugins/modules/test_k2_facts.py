# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_facts through main() with a real AnsibleModule, against the scripted K2 server (ordered, exact requests)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.modules import k2_facts
from ansible_collections.kaminario.k2.plugins.modules.k2_facts import (
    FactsError, check_fields, check_filters, check_ratio, cinder_capacity, resolve_subsets,
)
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import error, hits, run_module

GIB = 2 ** 20          # KiB in a GiB
TIB = 2 ** 30          # KiB in a TiB


def page(resource, answer, offset=0, limit=9999, fields=None, status=200, **filters):
    """One expected paged GET as the client sends it: filters, __fields, __sort=id, __limit, __offset."""
    query = dict((k, str(v)) for k, v in filters.items())
    if fields:
        query['__fields'] = ','.join(fields)
    query.update({'__sort': 'id', '__limit': str(limit), '__offset': str(offset)})
    return ('GET', resource, query, None, status, answer)


def ref(resource, obj_id):
    return {'ref': '/%s/%d' % (resource, obj_id)}


def volume(obj_id, name, size=GIB, group=1):
    return {'id': obj_id, 'name': name, 'size': size, 'volume_group': ref('volume_groups', group)}


CTRL = {'id': 1, 'name': 'CTRL', 'size': 0, 'volume_group': None}
STATE = {'id': 1, 'system_name': 'k2-lab', 'system_id': 'd575', 'rest_api_version': '2.2.0', 'state': 'ONLINE',
         'iscsi_qualified_target_name': 'iqn.2009-01.com.kaminario:storage.k2.54645'}
CAPACITY = {'id': 1, 'total': 10 * TIB, 'free': 8 * TIB, 'provisioned': 30 * TIB, 'provisioned_volumes': 24 * TIB,
            'provisioned_snapshots': 6 * TIB, 'provisioned_views': 0, 'allocated': 2 * TIB, 'state': 'ok'}


def run(args, capsys):
    return run_module(k2_facts.main, args, capsys)


# ------------------------------------------------------------------ default subsets


def test_default_subsets_read_state_capacity_and_count_volumes(k2_server, conn, capsys):
    k2_server.register(
        page('system/state', hits([STATE])),
        page('system/capacity', hits([CAPACITY])),
        ('GET', 'volumes', {'name__neq': 'CTRL', '__limit': '0'}, None, 200, hits([], total=250, limit=0)),
    )
    result, failed = run(conn, capsys)
    assert not failed, result
    assert result['changed'] is False
    facts = result['k2']
    assert result['ansible_facts']['k2'] == facts
    assert facts['gathered_subsets'] == ['system', 'capacity']
    assert facts['system'] == STATE
    cap = facts['capacity']
    assert cap['total'] == 10 * TIB and cap['state'] == 'ok'           # the raw K2 figures stay
    assert cap['total_capacity_gb'] == 10240.0
    assert cap['free_capacity_gb'] == 8192.0
    assert cap['provisioned_capacity_gb'] == 24576.0                 # provisioned_volumes, not provisioned
    assert cap['total_bytes'] == 10 * 2 ** 40
    assert cap['total_volumes'] == 250
    assert cap['thin_provisioning_support'] is True and cap['thick_provisioning_support'] is False
    assert cap['max_over_subscription_ratio'] == 20.0
    assert cap['max_over_subscription_ratio_calculated'] is False
    assert result['k2_requests'] == {'total': 3, 'GET': 3}
    assert set(facts) == {'gathered_subsets', 'system', 'capacity'}


def test_check_mode_reads_the_same(k2_server, conn, capsys):
    k2_server.register(
        page('system/state', hits([STATE])),
    )
    result, failed = run(dict(conn, gather_subset=['system'], _ansible_check_mode=True), capsys)
    assert not failed, result
    assert result['changed'] is False
    assert result['ansible_facts']['k2']['system']['system_name'] == 'k2-lab'


# ------------------------------------------------------------------ paging


def test_volumes_are_paged_past_one_page_and_never_truncated(k2_server, conn, capsys):
    """251 volumes (CTRL included) with page_size 100: three pages, every volume returned, CTRL left out."""
    everything = [CTRL] + [volume(i, 'vol-%03d' % i, group=1 + i % 2) for i in range(2, 252)]
    k2_server.register(
        page('volumes', hits(everything[0:100], total=251, limit=100), limit=100),
        page('volumes', hits(everything[100:200], total=251, limit=100, offset=100), offset=100, limit=100),
        page('volumes', hits(everything[200:], total=251, limit=100, offset=200), offset=200, limit=100),
        page('system/capacity', hits([CAPACITY]), limit=100),
        # The volume group names come from one name list, not one request per volume.
        page('volume_groups', hits([{'id': 1, 'name': 'vg-a'}, {'id': 2, 'name': 'vg-b'}]), limit=100, fields=['id', 'name']),
    )
    result, failed = run(dict(conn, gather_subset=['volumes', 'capacity'], page_size=100), capsys)
    assert not failed, result
    vols = result['k2']['volumes']
    assert len(vols) == 250
    assert [v['name'] for v in vols] == ['vol-%03d' % i for i in range(2, 252)]
    assert vols[0]['volume_group'] == 'vg-a' and vols[0]['volume_group_id'] == 1
    assert vols[1]['volume_group'] == 'vg-b'
    assert vols[0]['size'] == GIB and vols[0]['size_bytes'] == 2 ** 30
    # total_volumes comes from the list already read: no count request.
    assert result['k2']['capacity']['total_volumes'] == 250
    assert result['k2_requests']['total'] == 5


def test_array_capping_pages_below_page_size_is_followed(k2_server, conn, capsys):
    """An array that answers fewer objects than asked (a server-side cap) is read on until ``total``."""
    groups = [{'id': i, 'name': 'vg-%d' % i, 'quota': 0} for i in range(1, 6)]
    k2_server.register(
        page('volume_groups', hits(groups[:3], total=5, limit=3)),
        page('volume_groups', hits(groups[3:], total=5, limit=3, offset=3), offset=3),
    )
    result, failed = run(dict(conn, gather_subset=['volume_groups']), capsys)
    assert not failed, result
    assert [g['name'] for g in result['k2']['volume_groups']] == ['vg-1', 'vg-2', 'vg-3', 'vg-4', 'vg-5']
    assert result['k2']['volume_groups'][0]['quota_bytes'] == 0


# ------------------------------------------------------------------ filters and fields


def test_filters_and_fields_are_passed_to_the_query_language(k2_server, conn, capsys):
    k2_server.register(
        # The group named in the filter is looked up once, by name ...
        page('volume_groups', hits([{'id': 3, 'name': 'vg-db'}]), fields=['id', 'name'], name__in='vg-db'),
        # ... and becomes a reference filter; name is always selected besides the fields asked for.
        page('volumes', hits([volume(7, 'db-1', size=100 * GIB, group=3)]), fields=['id', 'name', 'size', 'volume_group'],
             **{'name__prefix': 'db-', 'size__gte': '1048576', 'volume_group.ref': '/volume_groups/3', 'read_only': 'False'}),
        page('hosts', hits([{'id': 4, 'name': 'h1', 'type': 'Linux'}]), fields=['id', 'name', 'type'], type__in='Linux,ESX'),
        page('host_iqns', hits([{'id': 1, 'iqn': 'iqn.x:h1', 'host': ref('hosts', 4)}]), fields=['id', 'iqn', 'host']),
    )
    result, failed = run(dict(conn, gather_subset=['volumes', 'hosts'],
                              filters={'volumes': {'name__prefix': 'db-', 'size__gte': 1048576, 'volume_group': 'vg-db',
                                                   'read_only': False},
                                       'hosts': {'type': ['Linux', 'ESX']}},
                              fields={'volumes': ['size', 'volume_group'], 'hosts': ['type', 'iqns']}), capsys)
    assert not failed, result
    # The group's name was learnt from the filter lookup: no further request for it.
    assert result['k2']['volumes'] == [{'id': 7, 'name': 'db-1', 'size': 100 * GIB, 'size_bytes': 100 * 2 ** 30,
                                        'volume_group': 'vg-db', 'volume_group_id': 3}]
    # Only the initiators selected are read: IQNs, not FC ports.
    assert result['k2']['hosts'] == [{'id': 4, 'name': 'h1', 'type': 'Linux', 'iqns': ['iqn.x:h1']}]


def test_filter_on_an_unknown_name_matches_nothing_without_reading_the_list(k2_server, conn, capsys):
    k2_server.register(
        page('hosts', hits([])),
        page('host_groups', hits([{'id': 2, 'name': 'rac'}])),
        # A mapping host may be a host or a host group: both are searched, the group matches.
        page('hosts', hits([]), fields=['id', 'name'], name__in='rac'),
        page('host_groups', hits([{'id': 2, 'name': 'rac'}]), fields=['id', 'name'], name__in='rac'),
        page('mappings', hits([]), **{'host.ref': '/host_groups/2'}),
    )
    result, failed = run(dict(conn, gather_subset=['hosts', 'host_groups', 'mappings'], filters={'mappings': {'host': 'rac'}}), capsys)
    assert not failed, result
    assert result['k2']['mappings'] == []

    k2_server.reset()
    k2_server.register(
        page('volume_groups', hits([]), fields=['id', 'name'], name__in='no-such-group'),
    )
    result, failed = run(dict(conn, gather_subset=['volumes'], filters={'volumes': {'volume_group': 'no-such-group'}}), capsys)
    assert not failed, result
    assert result['k2']['volumes'] == []
    assert result['k2_requests']['total'] == 1


@pytest.mark.parametrize('options, expected', [
    ({'filters': {'volumes': {'colour': 'red'}}}, "filters.volumes.colour: volumes has no field 'colour'"),
    ({'filters': {'volumes': {'name__like': 'db'}}}, "filters.volumes.name__like: unknown modifier '__like'"),
    ({'filters': {'volumes': {'name__eq': 'db'}}}, "filters.volumes.name__eq: unknown modifier '__eq'"),
    ({'filters': {'volumes': {'__limit': 5}}}, 'filters.volumes.__limit: __limit is set by the module'),
    ({'filters': {'volumes': {'name.ref': '/volumes/1'}}}, "filters.volumes.name.ref: 'name' is not a reference field"),
    ({'filters': {'volumes': {'volume_group__contains': 'db'}}}, "filters.volumes.volume_group__contains: 'volume_group' is a reference"),
    ({'filters': {'volumes': {'size__gt': [1, 2]}}}, 'filters.volumes.size__gt: a list value needs no modifier or __in'),
    ({'filters': {'volumes': {'name__in': []}}}, 'filters.volumes.name__in: the list is empty'),
    ({'filters': {'volumes': {'name': {'a': 1}}}}, 'filters.volumes.name: a filter value must be'),
    ({'filters': {'volumes': 'name=db'}}, 'filters.volumes must be a dictionary'),
    ({'filters': {'volumes': {'name': {'ref': '/volumes/1'}}}}, 'filters.volumes.name: a filter value must be'),
    ({'filters': {'volumes': {'name': ['a', {'ref': '/volumes/1'}]}}}, 'filters.volumes.name: list elements must be'),
    ({'filters': {'volumes': {'volume_group': {'ref': 'vg1'}}}}, "filters: 'volume_group' value {'ref': 'vg1'} is not a reference"),
    ({'filters': {'snapshots': {'name': 'x'}}}, "filters.snapshots is set but the subset 'snapshots' is not gathered"),
    ({'filters': {'capacity': {'total__gt': 1}}}, "filters: 'capacity' takes no filters"),
    ({'fields': {'volumes': ['name', 'colour']}}, "fields.volumes: volumes has no field 'colour'"),
    ({'fields': {'volumes': []}}, 'fields.volumes must be a non-empty list'),
    ({'gather_subset': ['volumes', 'lun']}, "gather_subset: unknown subset 'lun'"),
    ({'page_size': 0}, 'page_size must be between 1 and 9999'),
    ({'page_size': 10000}, 'page_size must be between 1 and 9999'),
    ({'max_over_subscription_ratio': '0.5'}, "max_over_subscription_ratio must be 'auto' or a number of at least 1"),
    ({'max_over_subscription_ratio': 'lots'}, "max_over_subscription_ratio must be 'auto' or a number of at least 1"),
])
def test_bad_options_fail_before_any_request(k2_server, conn, capsys, options, expected):
    args = dict(conn, gather_subset=['volumes', 'capacity'])
    args.update(options)
    result, failed = run(args, capsys)
    assert failed
    assert expected in result['msg'], result['msg']
    assert result['k2_requests'] == {'total': 0}
    assert k2_server.received == []


def test_ambiguous_bare_id_on_a_multi_kind_reference_fails_before_any_request(k2_server, conn, capsys):
    result, failed = run(dict(conn, gather_subset=['mappings'], filters={'mappings': {'volume': 5}}), capsys)
    assert failed
    assert "'volume' can point at volumes or snapshots, so a bare id 5 is ambiguous" in result['msg']
    assert k2_server.received == []


# ------------------------------------------------------------------ capacity arithmetic


def test_capacity_auto_ratio_and_filtered_volume_count(k2_server, conn, capsys):
    k2_server.register(
        page('volumes', hits([volume(2, 'db-1')]), name__prefix='db-'),
        page('system/capacity', hits([CAPACITY])),
        # The volumes list is filtered, so it cannot give the total: one count, without CTRL.
        ('GET', 'volumes', {'name__neq': 'CTRL', '__limit': '0'}, None, 200, hits([], total=42, limit=0)),
        page('volume_groups', hits([{'id': 1, 'name': 'vg'}]), fields=['id', 'name']),
    )
    result, failed = run(dict(conn, gather_subset=['capacity', 'volumes'], filters={'volumes': {'name__prefix': 'db-'}},
                              auto_calc_max_oversubscription_ratio=True), capsys)
    assert not failed, result
    cap = result['k2']['capacity']
    assert cap['total_volumes'] == 42
    # provisioned_volumes / (total - free) = 24 TiB / 2 TiB
    assert cap['max_over_subscription_ratio'] == 12.0
    assert cap['max_over_subscription_ratio_calculated'] is True


@pytest.mark.parametrize('cap, auto, configured, expected, calculated', [
    (dict(total=4 * GIB, free=3 * GIB, provisioned=10 * GIB, provisioned_volumes=6 * GIB), True, 20.0, 6.0, True),
    # Nothing used yet: Cinder falls back to the configured ratio.
    (dict(total=4 * GIB, free=4 * GIB, provisioned=10 * GIB, provisioned_volumes=6 * GIB), True, 20.0, 20.0, False),
    # Nothing provisioned: the configured ratio too, even 'auto'.
    (dict(total=4 * GIB, free=3 * GIB, provisioned=0, provisioned_volumes=0), True, 'auto', 'auto', False),
    (dict(total=4 * GIB, free=3 * GIB, provisioned=10 * GIB, provisioned_volumes=6 * GIB), False, 1.5, 1.5, False),
])
def test_cinder_ratio_rules(cap, auto, configured, expected, calculated):
    figures = cinder_capacity(cap, 7, configured, auto)
    assert figures['max_over_subscription_ratio'] == expected
    assert figures['max_over_subscription_ratio_calculated'] is calculated
    assert figures['total_capacity_gb'] == 4.0
    assert figures['free_capacity_gb'] == cap['free'] / float(GIB)
    assert figures['provisioned_capacity_gb'] == cap['provisioned_volumes'] / float(GIB)
    assert figures['total_volumes'] == 7


def test_configured_ratio_auto_is_reported_as_the_string(k2_server, conn, capsys):
    k2_server.register(page('system/capacity', hits([dict(CAPACITY, free=CAPACITY['total'])])),
                       ('GET', 'volumes', {'name__neq': 'CTRL', '__limit': '0'}, None, 200, hits([], total=0, limit=0)))
    result, failed = run(dict(conn, gather_subset=['capacity'], max_over_subscription_ratio='auto',
                              auto_calc_max_oversubscription_ratio=True), capsys)
    assert not failed, result
    assert result['k2']['capacity']['max_over_subscription_ratio'] == 'auto'


# ------------------------------------------------------------------ joins without per-object requests


MAPPINGS = [
    {'id': 1, 'volume': ref('volumes', 2), 'host': ref('hosts', 4), 'lun': 1, 'unique_target': False},
    {'id': 2, 'volume': ref('snapshots', 7), 'host': ref('host_groups', 1), 'lun': 2, 'unique_target': False},
    {'id': 3, 'volume': ref('volumes', 3), 'host': ref('hosts', 4), 'lun': 3, 'unique_target': False},
]
JOINED = [
    {'id': 1, 'volume': 'db-1', 'volume_id': 2, 'volume_type': 'volume', 'host': 'h1', 'host_id': 4, 'host_type': 'host',
     'lun': 1, 'unique_target': False},
    {'id': 2, 'volume': 'vg:view', 'volume_id': 7, 'volume_type': 'snapshot', 'host': 'rac', 'host_id': 1,
     'host_type': 'host_group', 'lun': 2, 'unique_target': False},
    {'id': 3, 'volume': 'db-2', 'volume_id': 3, 'volume_type': 'volume', 'host': 'h1', 'host_id': 4, 'host_type': 'host',
     'lun': 3, 'unique_target': False},
]


def test_mappings_alone_are_joined_through_one_name_list_per_resource(k2_server, conn, capsys):
    k2_server.register(
        page('mappings', hits(MAPPINGS)),
        page('volumes', hits([{'id': 2, 'name': 'db-1'}, {'id': 3, 'name': 'db-2'}]), fields=['id', 'name']),
        page('hosts', hits([{'id': 4, 'name': 'h1'}]), fields=['id', 'name']),
        page('snapshots', hits([{'id': 7, 'name': 'vg:view'}]), fields=['id', 'name']),
        page('host_groups', hits([{'id': 1, 'name': 'rac'}]), fields=['id', 'name']),
    )
    result, failed = run(dict(conn, gather_subset=['mappings']), capsys)
    assert not failed, result
    assert result['k2']['mappings'] == JOINED
    assert result['k2_requests']['total'] == 5       # not 1 + one per mapping


def test_gathering_the_lists_joins_from_them_with_no_extra_request(k2_server, conn, capsys):
    k2_server.register(
        page('volumes', hits([CTRL, volume(2, 'db-1'), volume(3, 'db-2')])),
        page('snapshots', hits([{'id': 7, 'name': 'vg:view', 'short_name': 'view', 'source': ref('snapshots', 6),
                                 'volume_group': ref('volume_groups', 1), 'is_exposable': True, 'retention_policy': None},
                                {'id': 6, 'name': 'vg:snap', 'short_name': 'snap', 'source': ref('volume_groups', 1),
                                 'volume_group': ref('volume_groups', 1), 'is_exposable': False, 'retention_policy': None}])),
        page('hosts', hits([{'id': 4, 'name': 'h1', 'type': 'Linux', 'host_group': None}])),
        page('host_groups', hits([{'id': 1, 'name': 'rac'}])),
        page('mappings', hits(MAPPINGS)),
        page('host_iqns', hits([{'id': 1, 'iqn': 'iqn.b:h1', 'host': ref('hosts', 4)}, {'id': 2, 'iqn': 'iqn.a:h1', 'host': ref('hosts', 4)},
                                {'id': 3, 'iqn': 'iqn.c:gone', 'host': None}]), fields=['id', 'iqn', 'host']),
        page('host_fc_ports', hits([]), fields=['id', 'pwwn', 'host']),
        page('volume_groups', hits([{'id': 1, 'name': 'vg'}]), fields=['id', 'name']),
    )
    result, failed = run(dict(conn, gather_subset=['volumes', 'snapshots', 'hosts', 'host_groups', 'mappings']), capsys)
    assert not failed, result
    facts = result['k2']
    assert facts['mappings'] == JOINED
    assert [v['name'] for v in facts['volumes']] == ['db-1', 'db-2']
    assert facts['hosts'] == [{'id': 4, 'name': 'h1', 'type': 'Linux', 'host_group': None, 'host_group_id': None,
                               'iqns': ['iqn.a:h1', 'iqn.b:h1'], 'pwwns': []}]
    view, snap = facts['snapshots']
    assert (view['source'], view['source_type'], view['source_id']) == ('vg:snap', 'snapshot', 6)
    assert (snap['source'], snap['source_type'], snap['volume_group']) == ('vg', 'volume_group', 'vg')
    assert snap['retention_policy'] is None and snap['retention_policy_id'] is None
    assert result['k2_requests']['total'] == 8


# ------------------------------------------------------------------ replication, network, subsets


def test_replication_missing_on_the_array_gives_empty_lists(k2_server, conn, capsys):
    not_found = error('unknown resource')
    k2_server.register(
        page('replication/peer_k2arrays', hits([{'id': 1, 'name': 'dr', 'mgmt_host': '10.0.1.5', 'password': 'x', 'local_password': 'y'}])),
        page('replication/sessions', hits([{'id': 3, 'name': 'ssn-1', 'state': 'in_sync',
                                            'replication_peer_k2array': ref('replication/peer_k2arrays', 1),
                                            'local_volume_group': ref('volume_groups', 5), 'retention_policy': None}])),
        page('replication/peer_volume_groups', not_found, status=404),
        page('replication/peer_volumes', not_found, status=404),
        page('volume_groups', hits([{'id': 5, 'name': 'vg-rep'}]), fields=['id', 'name']),
    )
    result, failed = run(dict(conn, gather_subset=['replication']), capsys)
    assert not failed, result
    rep = result['k2']['replication']
    assert rep['peer_arrays'] == [{'id': 1, 'name': 'dr', 'mgmt_host': '10.0.1.5'}]      # passwords left out
    assert rep['sessions'] == [{'id': 3, 'name': 'ssn-1', 'state': 'in_sync', 'replication_peer_k2array': 'dr',
                                'replication_peer_k2array_id': 1, 'local_volume_group': 'vg-rep', 'local_volume_group_id': 5,
                                'retention_policy': None, 'retention_policy_id': None}]
    assert rep['peer_volume_groups'] == [] and rep['peer_volumes'] == []
    assert rep['unavailable'] == ['replication/peer_volume_groups', 'replication/peer_volumes']


def test_network_portals_skip_wan_interfaces_and_reuse_the_system_state(k2_server, conn, capsys):
    k2_server.register(
        page('system/state', hits([STATE])),
        page('system/net_ips', hits([
            {'id': 1, 'ip_address': '10.0.0.21', 'net_port': ref('system/net_ports', 1), 'wan_port': None},
            {'id': 2, 'ip_address': '10.0.0.22', 'net_port': ref('system/net_ports', 2), 'wan_port': None},
            {'id': 3, 'ip_address': '10.9.0.1', 'net_port': None, 'wan_port': ref('system/wan_ports', 1)}])),
        page('system/fc_ports', hits([{'id': 1, 'name': 'fc01', 'pwwn': '50:02:4f:40:d6:02:01:00'}, {'id': 2, 'name': 'fc02', 'pwwn': ''}])),
    )
    result, failed = run(dict(conn, gather_subset=['system', 'network']), capsys)
    assert not failed, result
    net = result['k2']['network']
    assert net['iscsi_target_iqn'] == STATE['iscsi_qualified_target_name']
    assert net['iscsi_portals'] == ['10.0.0.21:3260', '10.0.0.22:3260']
    assert net['fc_target_wwns'] == ['50024f40d6020100']
    assert net['net_ips'][0]['net_port'] == '/system/net_ports/1' and net['net_ips'][0]['net_port_id'] == 1
    assert net['net_ips'][2]['wan_port_id'] == 1
    assert result['k2_requests']['total'] == 3        # system/state read once for both subsets


def test_k2_error_becomes_a_clear_failure(k2_server, conn, capsys):
    k2_server.register(page('system/state', {'error_msg': 'user viewer lacks the role'}, status=403))
    result, failed = run(dict(conn, gather_subset=['system']), capsys)
    assert failed
    assert 'user viewer lacks the role' in result['msg']
    assert result['http_status'] == 403


@pytest.mark.parametrize('requested, expected', [
    (['system', 'capacity'], ['system', 'capacity']),
    (['all'], list(k2_facts.ALL_SUBSETS)),
    (['all', '!snapshots', '!replication'],
     ['system', 'capacity', 'volumes', 'volume_groups', 'hosts', 'host_groups', 'mappings', 'network']),
    (['!capacity'], ['system']),
    (['mappings', 'volumes', 'volumes'], ['volumes', 'mappings']),
    (['volumes', '!volumes'], []),
])
def test_resolve_subsets(requested, expected):
    assert resolve_subsets(requested) == expected


def test_checks_return_what_is_sent():
    assert check_filters('mappings', {'host.ref__in': ['/hosts/1'], 'lun__gt': 3}) == [
        ('host', 'in', ['/hosts/1'], ('hosts', 'host_groups')), ('lun', 'gt', 3, None)]
    assert check_fields('volumes', 'size,scsi_sn') == (['name', 'size', 'scsi_sn'], [])
    assert check_fields('mappings', ['lun']) == (['lun'], [])
    assert check_fields('hosts', ['pwwns']) == (['name'], ['pwwns'])
    assert check_ratio('1') == 1.0 and check_ratio('auto') == 'auto'
    with pytest.raises(FactsError):
        check_ratio('-2')


def test_reference_filter_names_resolve_across_kinds_and_known_names_are_reused(k2_server, conn, capsys):
    """A mapping's volume may be a volume or a view: names are looked up in both, in one request each."""
    k2_server.register(
        page('volumes', hits([{'id': 2, 'name': 'db-1'}]), fields=['id', 'name'], name__in='db-1,vg:view'),
        page('snapshots', hits([{'id': 7, 'name': 'vg:view'}]), fields=['id', 'name'], name__in='db-1,vg:view'),
        page('mappings', hits(MAPPINGS[:2]), **{'volume.ref__in': '/volumes/2,/snapshots/7'}),
        # Hosts were not named in the filter: one name list each, nothing per mapping.
        page('hosts', hits([{'id': 4, 'name': 'h1'}]), fields=['id', 'name']),
        page('host_groups', hits([{'id': 1, 'name': 'rac'}]), fields=['id', 'name']),
    )
    result, failed = run(dict(conn, gather_subset=['mappings'], filters={'mappings': {'volume': ['db-1', 'vg:view']}}), capsys)
    assert not failed, result
    assert result['k2']['mappings'] == JOINED[:2]


def test_neq_on_an_unknown_name_is_dropped_and_paths_pass_unchanged(k2_server, conn, capsys):
    k2_server.register(
        page('volume_groups', hits([]), fields=['id', 'name'], name__in='gone'),
        page('volumes', hits([]), **{'last_restored_from.ref': '/snapshots/9'}),
    )
    result, failed = run(dict(conn, gather_subset=['volumes'],
                              filters={'volumes': {'volume_group__neq': 'gone', 'last_restored_from': '/snapshots/9'}}), capsys)
    assert not failed, result
    assert result['k2']['volumes'] == []


def test_host_fields_without_initiators_skip_the_initiator_lists(k2_server, conn, capsys):
    k2_server.register(
        page('hosts', hits([{'id': 4, 'name': 'h1', 'type': 'Linux'}]), fields=['id', 'name', 'type']),
    )
    result, failed = run(dict(conn, gather_subset=['hosts'], fields={'hosts': 'type'}), capsys)
    assert not failed, result
    assert result['k2']['hosts'] == [{'id': 4, 'name': 'h1', 'type': 'Linux'}]
    assert result['k2_requests']['total'] == 1


def test_reference_path_of_the_wrong_kind_is_refused(k2_server, conn, capsys):
    result, failed = run(dict(conn, gather_subset=['volumes'], filters={'volumes': {'volume_group': '/hosts/3'}}), capsys)
    assert failed
    assert "'volume_group' points at volume_groups, not hosts" in result['msg']
    assert k2_server.received == []


@pytest.mark.parametrize('count, page_size', [(0, 1), (1, 1), (3, 1), (99, 100), (100, 100), (101, 100), (250, 7), (9998, 9999)])
def test_paging_reads_every_object_in_ceil_count_over_page_size_requests(k2_server, conn, capsys, count, page_size):
    groups = [{'id': i, 'name': 'vg-%d' % i} for i in range(1, count + 1)]
    pages = [groups[start:start + page_size] for start in range(0, count, page_size)] or [[]]
    for number, chunk in enumerate(pages):
        offset = number * page_size
        k2_server.register(page('volume_groups', hits(chunk, total=count, limit=page_size, offset=offset), offset=offset, limit=page_size))
    result, failed = run(dict(conn, gather_subset=['volume_groups'], page_size=page_size), capsys)
    assert not failed, result
    assert [g['id'] for g in result['k2']['volume_groups']] == list(range(1, count + 1))
    assert result['k2_requests']['total'] == max(1, -(-count // page_size))
