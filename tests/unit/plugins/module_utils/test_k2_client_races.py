# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""K2Client and "create if missing" races (issue 8): another writer creates the object between our read and our
POST. The refused create re-reads by its unique key and uses the object when it is what we sent; an object that
differs stays a conflict. Found by tests/reliability/test_concurrency.py (eight playbooks at once)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import K2Client, K2ConflictError, same_attributes
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import hits


def exists(message):
    return {'error_code': 'MC_ERR_ALREADY_EXISTS', 'error_msg': message}


@pytest.fixture
def client(k2_server):
    return K2Client(k2_server.host, username='admin', password='pw', ca_path=k2_server.ca_path, timeout=30, retries=3,
                    retry_max_wait=4, sleep=lambda s: None, rand=lambda: 1.0)


def test_create_that_loses_the_race_uses_the_other_writers_equal_object(k2_server, client):
    body = {'name': 'h1', 'type': 'Linux'}
    k2_server.register(
        ('POST', 'hosts', None, body, 400, exists("host 'h1' already exists (/hosts/4)")),
        ('GET', 'hosts', {'name': 'h1', '__limit': '2'}, None, 200, hits([{'id': 4, 'name': 'h1', 'type': 'Linux', 'host_group': None}])),
    )
    assert client.create('hosts', body)['id'] == 4
    assert client.adopted('hosts', 4) and not client.adopted('hosts', 5)
    assert client.counters() == {'total': 2, 'POST': 1, 'GET': 1}


def test_create_that_loses_the_race_to_a_different_object_is_a_conflict(k2_server, client):
    body = {'name': 'h1', 'type': 'Linux'}
    k2_server.register(
        ('POST', 'hosts', None, body, 400, exists("host 'h1' already exists (/hosts/4)")),
        ('GET', 'hosts', {'name': 'h1', '__limit': '2'}, None, 200, hits([{'id': 4, 'name': 'h1', 'type': 'Windows'}])),
    )
    with pytest.raises(K2ConflictError, match='already exists'):
        client.create('hosts', body)
    assert not client.adopted('hosts', 4)


def test_create_without_unique_key_is_not_reread(k2_server, client):
    k2_server.register(('POST', 'hosts', None, {'type': 'Linux'}, 400, exists('already exists')))
    with pytest.raises(K2ConflictError):
        client.create('hosts', {'type': 'Linux'}, unique=False)


def test_mapping_already_mapped_is_reread_by_volume_and_host(k2_server, client):
    body = {'volume': {'ref': '/volumes/5'}, 'host': {'ref': '/hosts/4'}, 'lun': 3}
    k2_server.register(
        ('POST', 'mappings', None, body, 400, exists('/volumes/5 is already mapped to host h1 (/mappings/9, LUN 3)')),
        ('GET', 'mappings', {'volume.ref': '/volumes/5', 'host.ref': '/hosts/4', '__limit': '2'}, None, 200,
         hits([{'id': 9, 'volume': {'ref': '/volumes/5'}, 'host': {'ref': '/hosts/4'}, 'lun': 3}])),
    )
    found = client.create('mappings', body, unique={'volume': body['volume'], 'host': body['host']})
    assert found['id'] == 9 and client.adopted('mappings', 9)


def test_bulk_create_refused_for_another_writers_objects_resends_only_the_others(k2_server, client):
    items = [{'name': 'a', 'size': 1}, {'name': 'b', 'size': 1}, {'name': 'c', 'size': 1}]
    k2_server.register(
        ('POST', 'volumes/__bulk', None, items, 400, exists("bulk element 0: volume 'a' already exists (/volumes/1)")),
        ('GET', 'volumes', {'name__in': 'a,b,c', '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200,
         hits([{'id': 1, 'name': 'a', 'size': 1}])),
        ('POST', 'volumes/__bulk', None, items[1:], 200, hits([{'id': 2, 'name': 'b'}, {'id': 3, 'name': 'c'}])),
    )
    assert sorted(c['id'] for c in client.bulk_create('volumes', items)) == [1, 2, 3]
    assert client.adopted('volumes', 1) and not client.adopted('volumes', 2)


def test_bulk_create_refused_for_a_different_object_is_a_conflict(k2_server, client):
    items = [{'name': 'a', 'size': 1}, {'name': 'b', 'size': 1}]
    k2_server.register(
        ('POST', 'volumes/__bulk', None, items, 400, exists("bulk element 0: volume 'a' already exists (/volumes/1)")),
        ('GET', 'volumes', {'name__in': 'a,b', '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200,
         hits([{'id': 1, 'name': 'a', 'size': 2}])),
    )
    with pytest.raises(K2ConflictError):
        client.bulk_create('volumes', items)


def test_bulk_mappings_refused_are_created_one_by_one(k2_server, client):
    items = [{'volume': {'ref': '/volumes/5'}, 'host': {'ref': '/hosts/4'}},
             {'volume': {'ref': '/volumes/6'}, 'host': {'ref': '/hosts/4'}}]
    k2_server.register(
        ('POST', 'mappings/__bulk', None, items, 400, exists('bulk element 0: /volumes/5 is already mapped to host h1')),
        ('POST', 'mappings', None, items[0], 400, exists('/volumes/5 is already mapped to host h1 (/mappings/9, LUN 1)')),
        ('GET', 'mappings', {'volume.ref': '/volumes/5', 'host.ref': '/hosts/4', '__limit': '2'}, None, 200,
         hits([{'id': 9, 'volume': {'ref': '/volumes/5'}, 'host': {'ref': '/hosts/4'}, 'lun': 1}])),
        ('POST', 'mappings', None, items[1], 201, {'id': 10, 'volume': {'ref': '/volumes/6'}, 'host': {'ref': '/hosts/4'}, 'lun': 2}),
    )
    created = client.bulk_create('mappings', items, unique_field=('volume', 'host'))
    assert [m['id'] for m in created] == [9, 10]


def test_same_attributes():
    assert same_attributes({'quota': None, 'is_dedup': True, 'volume_group': {'ref': '/volume_groups/2'}},
                           {'quota': 0, 'is_dedup': 'True', 'volume_group': {'ref': '/volume_groups/2'}})
    assert same_attributes({'pwwn': '21:00:00:25:b5:aa:00:01'}, {'pwwn': '21000025B5AA0001'})
    assert same_attributes({'name': 'x'}, {'name': 'x', 'password': 'p'})
    assert not same_attributes({'volume_group': None}, {'volume_group': {'ref': '/volume_groups/2'}})
    assert not same_attributes({'size': 2}, {'size': 1})
    assert not same_attributes({'type': 'Windows'}, {'type': 'Linux'})
