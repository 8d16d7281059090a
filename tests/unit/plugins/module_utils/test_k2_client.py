# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""K2Client against the scripted HTTPS server: every test is an exact, ordered conversation."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import os
import shutil
import stat
import time

import pytest
import trustme

from ansible_collections.kaminario.k2.plugins.module_utils import k2_client
from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import (
    K2Client, K2Error, K2AuthError, K2PermissionError, K2NotFoundError, K2ConflictError, K2BusyError,
    K2ConnectionError, K2TimeoutError, K2TLSError, K2ProtocolError, K2AmbiguousError,
    make_ref, parse_ref, ref_id, ref_path, redact, split_host, REDACTED,
)
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import Delay, Drop, Expected, hits, error


class FakeTime(object):
    """Injected clock and sleep: back-off is observed, never actually waited."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def client(k2_server, fake_time):
    return make_client(k2_server, fake_time)


def make_client(server, fake_time=None, **kwargs):
    options = dict(username='admin', password='s3cr3t-pw', ca_path=server.ca_path, timeout=30, retries=3, retry_max_wait=4)
    if fake_time is not None:
        options.update(sleep=fake_time.sleep, clock=fake_time.clock, rand=lambda: 1.0)
    options.update(kwargs)
    return K2Client(server.host, **options)


def vol(obj_id, name=None, **extra):
    obj = {'id': obj_id, 'name': name or 'vol%d' % obj_id, 'size': 1048576, 'volume_group': make_ref('volume_groups', obj_id)}
    obj.update(extra)
    return obj


# ------------------------------------------------------------------ auth and transport

def test_basic_auth_headers_and_prefix(k2_server, client):
    k2_server.register(('GET', 'volumes/7', None, None, 200, vol(7)))
    assert client.get('volumes', 7)['name'] == 'vol7'
    request = k2_server.received[0]
    assert request.path == '/api/v2/volumes/7'
    expected = 'Basic ' + base64.b64encode(b'admin:s3cr3t-pw').decode()
    assert request.headers['Authorization'] == expected
    assert request.headers['Content-Type'] == 'application/json'


def test_bearer_token_through_flex_prefix(k2_server, fake_time):
    client = make_client(k2_server, fake_time, username=None, password=None, token='tok-123', sdp_id='7')
    k2_server.register(('GET', '/rest/sdps/7/api/v2/volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([vol(1, 'v1')])))
    assert client.get_by_name('volumes', 'v1')['id'] == 1
    assert k2_server.received[0].headers['Authorization'] == 'Bearer tok-123'


def test_keep_alive_reuses_one_connection(k2_server, client):
    k2_server.register(*[('GET', 'volumes/%d' % i, None, None, 200, vol(i)) for i in range(1, 4)])
    for i in range(1, 4):
        client.get('volumes', i)
    # one TCP connection (same client port) for the three requests
    assert len(set(r.client_port for r in k2_server.received)) == 1


@pytest.mark.parametrize('kwargs, message', [
    (dict(username='a', password='b', token='t', sdp_id='1'), 'not both'),
    (dict(token='t'), 'go together'),
    (dict(sdp_id='3'), 'go together'),
    (dict(username='a'), 'credentials are missing'),
    (dict(), 'credentials are missing'),
])
def test_auth_option_rules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        K2Client('k2.example.com', **kwargs)


@pytest.mark.parametrize('host, url', [
    ('k2.example.com', 'https://k2.example.com'),
    ('10.0.0.5:8443', 'https://10.0.0.5:8443'),
    ('[fd00::5]:443', 'https://[fd00::5]:443'),
    ('fd00::5', 'https://[fd00::5]'),
])
def test_split_host_accepts_host_and_port(host, url):
    assert split_host(host) == url


@pytest.mark.parametrize('host', ['https://k2.example.com', 'k2/api', 'k2:0', 'k2:70000', '', 'k2:port'])
def test_split_host_rejects_urls_and_bad_ports(host):
    with pytest.raises(ValueError, match='k2_host'):
        split_host(host)


def test_untrusted_certificate_fails_clearly_without_retry(k2_server, fake_time, monkeypatch):
    # The system store of this machine does not hold the test CA.
    monkeypatch.delenv('SSL_CERT_FILE', raising=False)
    client = make_client(k2_server, fake_time, ca_path=None)
    with pytest.raises(K2TLSError) as caught:
        client.get('volumes', 1)
    assert 'TLS verification failed' in caught.value.message
    assert 'ca_path' in caught.value.hint
    assert client.request_count == 1 and fake_time.sleeps == []
    assert k2_server.received == []


@pytest.mark.parametrize('variable', ['REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'])
def test_ca_bundle_variables_do_not_change_what_is_trusted(k2_server, fake_time, monkeypatch, variable):
    # requests swaps verify=True for these variables; a bundle exported for another tool must not make the
    # collection trust an array that neither the system store nor ca_path vouches for.
    monkeypatch.delenv('SSL_CERT_FILE', raising=False)
    monkeypatch.delenv('REQUESTS_CA_BUNDLE', raising=False)
    monkeypatch.delenv('CURL_CA_BUNDLE', raising=False)
    monkeypatch.setenv(variable, k2_server.ca_path)
    client = make_client(k2_server, fake_time, ca_path=None)
    with pytest.raises(K2TLSError) as caught:
        client.get('volumes', 1)
    assert 'ca_path' in caught.value.hint
    assert client.request_count == 1 and fake_time.sleeps == []
    assert k2_server.received == []


def test_ca_bundle_variable_does_not_override_ca_path(k2_server, fake_time, monkeypatch, tmp_path):
    other = tmp_path / 'other-ca.pem'
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', str(other))
    client = make_client(k2_server, fake_time)
    k2_server.register(('GET', 'volumes/1', None, None, 200, vol(1)))
    assert client.get('volumes', 1)['id'] == 1


def test_ca_bundle_variable_does_not_reenable_verification(k2_server, fake_time, monkeypatch, tmp_path):
    other = tmp_path / 'other-ca.pem'
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', str(other))
    client = make_client(k2_server, fake_time, ca_path=None, validate_certs=False)
    k2_server.register(('GET', 'volumes/1', None, None, 200, vol(1)))
    assert client.get('volumes', 1)['id'] == 1


def test_ca_path_is_trusted(k2_server, client):
    k2_server.register(('GET', 'volumes/1', None, None, 200, vol(1)))
    assert client.get('volumes', 1)['id'] == 1


def test_system_trust_store_is_used_by_default(k2_server, fake_time, monkeypatch):
    # OpenSSL's default verify paths honour SSL_CERT_FILE: pointing it at the test CA stands in for
    # an administrator adding the array's CA to the operating system store.
    monkeypatch.setenv('SSL_CERT_FILE', k2_server.ca_path)
    monkeypatch.delenv('REQUESTS_CA_BUNDLE', raising=False)
    monkeypatch.delenv('CURL_CA_BUNDLE', raising=False)
    client = make_client(k2_server, fake_time, ca_path=None)
    k2_server.register(('GET', 'volumes/1', None, None, 200, vol(1)))
    assert client.get('volumes', 1)['id'] == 1


def test_ca_path_replaces_the_system_store(k2_server, fake_time, monkeypatch, tmp_path):
    # Even when the system store trusts the array, an explicit ca_path is the only trust anchor.
    monkeypatch.setenv('SSL_CERT_FILE', k2_server.ca_path)
    other = tmp_path / 'other-ca.pem'
    trustme.CA().cert_pem.write_to_path(str(other))
    client = make_client(k2_server, fake_time, ca_path=str(other))
    with pytest.raises(K2TLSError):
        client.get('volumes', 1)


def test_validate_certs_false_skips_verification(k2_server, fake_time):
    client = make_client(k2_server, fake_time, ca_path=None, validate_certs=False)
    k2_server.register(('GET', 'volumes/1', None, None, 200, vol(1)))
    assert client.get('volumes', 1)['id'] == 1


def test_unreachable_array_is_retried_then_reported(fake_time):
    client = K2Client('127.0.0.1:1', username='a', password='b', retries=2, retry_max_wait=4,
                      sleep=fake_time.sleep, clock=fake_time.clock, rand=lambda: 1.0)
    with pytest.raises(K2ConnectionError) as caught:
        client.get('volumes', 1)
    assert 'Connection refused' in str(caught.value)
    assert caught.value.attempts == 3
    assert fake_time.sleeps == [1.0, 2.0]
    assert 'k2_host' in caught.value.hint


# ------------------------------------------------------------------ errors and retries

@pytest.mark.parametrize('status, body, cls', [
    (401, error('Authentication required'), K2AuthError),
    (403, error('Permission denied'), K2PermissionError),
    (404, error('Object not found'), K2NotFoundError),
    (409, error('Sequence conflict'), K2ConflictError),
    (400, error('Volume name already exists'), K2ConflictError),
    (400, error('Invalid size'), K2Error),
    (405, error('Method not allowed'), K2Error),
])
def test_client_errors_are_typed_and_never_retried(k2_server, client, fake_time, status, body, cls):
    k2_server.register(('PATCH', 'volumes/3', None, {'size': 5}, status, body))
    with pytest.raises(cls) as caught:
        client.update('volumes', 3, {'size': 5})
    err = caught.value
    assert err.__class__.__name__ == cls.__name__
    assert (err.status, err.method, err.path) == (status, 'PATCH', '/api/v2/volumes/3')
    assert err.message == body['error_msg']
    assert fake_time.sleeps == []


@pytest.mark.parametrize('body, code', [
    ({'error_code': 'MC_ERR_PERMISSION_DENIED', 'error_msg': 'User viewer (role read_only) may not write'},
     'MC_ERR_PERMISSION_DENIED'),
    ({'error_msg': 'MC_ERR_PERMISSION_DENIED: not allowed'}, 'MC_ERR_PERMISSION_DENIED'),
    ({'error_code': 'not a code', 'error_msg': 'denied'}, None),
    (error('denied'), None),
])
def test_the_k2_code_comes_from_error_code_or_the_text(k2_server, client, fake_time, body, code):
    # the module reports it as k2_error_code: an operator's playbook can branch on it
    k2_server.register(('PATCH', 'volumes/3', None, {'size': 5}, 403, body))
    with pytest.raises(K2PermissionError) as caught:
        client.update('volumes', 3, {'size': 5})
    assert caught.value.k2_code == code
    assert caught.value.message == body['error_msg']


@pytest.mark.parametrize('status, body', [
    (503, error('busy')), (500, error('general error')), (429, error('too many requests')),
    (400, error('MC_ERR_BUSY')), (400, error('MC_ERR_BUSY_SPECIFIC')), (400, error('MC_ERR_INPROGRESS')),
    (400, error('MC_ERR_START_TIMEOUT')),
])
def test_transient_errors_are_retried_with_capped_backoff(k2_server, client, fake_time, status, body):
    k2_server.register(*([('GET', 'volumes/1', None, None, status, body)] * 3 + [('GET', 'volumes/1', None, None, 200, vol(1))]))
    assert client.get('volumes', 1)['id'] == 1
    assert fake_time.sleeps == [1.0, 2.0, 4.0]
    assert client.counters() == {'total': 4, 'GET': 4}


def test_retry_after_is_honoured_within_retry_max_wait(k2_server, client, fake_time):
    k2_server.register(
        Expected('GET', 'volumes/1', None, None, 429, error('slow down'), headers={'Retry-After': '3'}),
        Expected('GET', 'volumes/1', None, None, 429, error('slow down'), headers={'Retry-After': '120'}),
        ('GET', 'volumes/1', None, None, 200, vol(1)),
    )
    client.get('volumes', 1)
    assert fake_time.sleeps == [3.0, 4.0]  # 3 s as asked, then 120 s capped at retry_max_wait=4


def test_retries_exhausted_raises_busy_error_with_code(k2_server, client, fake_time):
    k2_server.register(*[('GET', 'volumes/1', None, None, 400, error('MC_ERR_BUSY'))] * 4)
    with pytest.raises(K2BusyError) as caught:
        client.get('volumes', 1)
    assert caught.value.k2_code == 'MC_ERR_BUSY'
    assert caught.value.attempts == 4
    assert 'retries' in caught.value.hint


def test_backoff_is_capped_and_jittered(k2_server, fake_time):
    draws = iter([0.0, 1.0, 0.5, 0.0, 1.0])
    client = make_client(k2_server, fake_time, retries=5, retry_max_wait=3, rand=lambda: next(draws), timeout=1000)
    k2_server.register(*([('GET', 'volumes/1', None, None, 503, error('busy'))] * 5 + [('GET', 'volumes/1', None, None, 200, vol(1))]))
    client.get('volumes', 1)
    # exponential 1, 2, 4, 8, 16 capped at 3, each scaled by a jitter factor in [0.5, 1]
    assert fake_time.sleeps == [0.5, 2.0, 2.25, 1.5, 3.0]


def test_total_deadline_stops_retrying_before_retries_run_out(k2_server, fake_time):
    client = make_client(k2_server, fake_time, retries=10, retry_max_wait=8, timeout=10)
    k2_server.register(*[('GET', 'volumes/1', None, None, 503, error('busy'))] * 4)
    with pytest.raises(K2BusyError) as caught:
        client.get('volumes', 1)
    # waits 1 + 2 + 4 fit in 10 s; the next (8) would end after the deadline
    assert fake_time.sleeps == [1.0, 2.0, 4.0]
    assert caught.value.attempts == 4
    assert 'timeout=10' in caught.value.message


def test_read_timeout_is_bounded_by_the_deadline(k2_server):
    client = make_client(k2_server, None, retries=3, retry_max_wait=0.01, timeout=0.4)
    k2_server.register(('GET', 'volumes/1', None, None, 200, Delay(1.0, 200, vol(1))))
    started = time.monotonic()
    with pytest.raises(K2TimeoutError):
        client.get('volumes', 1)
    assert time.monotonic() - started < 0.9


def test_non_json_success_is_a_protocol_error(k2_server, client):
    k2_server.register(('GET', 'volumes/1', None, None, 200, b'<html>proxy login</html>'))
    with pytest.raises(K2ProtocolError):
        client.get('volumes', 1)


# ------------------------------------------------------------------ lost POST

def test_lost_post_is_reread_by_name_not_repeated(k2_server, client):
    body = {'name': 'v1', 'size': 1048576, 'volume_group': {'ref': '/volume_groups/2'}}
    k2_server.register(
        ('POST', 'volumes', None, body, 201, Drop()),
        ('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([vol(9, 'v1')])),
    )
    assert client.create('volumes', body)['id'] == 9
    assert client.counters() == {'total': 2, 'POST': 1, 'GET': 1}


def test_lost_post_is_resent_when_reread_finds_nothing(k2_server, client):
    body = {'name': 'v1', 'size': 1048576, 'volume_group': 2}
    sent = {'name': 'v1', 'size': 1048576, 'volume_group': {'ref': '/volume_groups/2'}}
    k2_server.register(
        ('POST', 'volumes', None, sent, 201, Drop()),
        ('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([])),
        ('POST', 'volumes', None, sent, 201, vol(9, 'v1')),
    )
    assert client.create('volumes', body)['id'] == 9


def test_resent_post_meeting_its_own_earlier_create_returns_it(k2_server, client):
    # The first POST was applied but the array only showed it after the re-read: the resend
    # conflicts, and a second look finds the object instead of failing.
    body = {'name': 'v1', 'size': 1048576}
    k2_server.register(
        ('POST', 'volumes', None, body, 201, Drop()),
        ('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([])),
        ('POST', 'volumes', None, body, 400, error('Volume name already exists')),
        ('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([vol(9, 'v1')])),
    )
    assert client.create('volumes', body)['id'] == 9


def test_lost_post_whose_lookup_fails_is_reported_not_resent(k2_server, client):
    body = {'name': 'v1', 'size': 1048576}
    k2_server.register(
        ('POST', 'volumes', None, body, 201, Drop()),
        ('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 403, error('Permission denied')),
    )
    with pytest.raises(K2ConnectionError, match='may or may not.*looking it up failed too: Permission denied'):
        client.create('volumes', body)
    assert client.counters()['POST'] == 1


def test_post_answered_502_is_reread(k2_server, client):
    body = {'short_name': 's1', 'source': {'ref': '/volume_groups/4'}, 'retention_policy': {'ref': '/retention_policies/1'}}
    k2_server.register(
        ('POST', 'snapshots', None, body, 502, error('K2 REST service became unavailable')),
        ('GET', 'snapshots', {'short_name': 's1', 'source.ref': '/volume_groups/4', '__limit': '2'}, None, 200,
         hits([{'id': 3, 'short_name': 's1'}])),
    )
    assert client.create('snapshots', body)['id'] == 3


def test_lost_post_without_unique_key_is_not_repeated(k2_server, client):
    k2_server.register(('POST', 'host_iqns', None, {'iqn': 'iqn.2000-01.x:y', 'host': {'ref': '/hosts/1'}}, 201, Drop()))
    with pytest.raises(K2ConnectionError) as caught:
        client.create('host_iqns', {'iqn': 'iqn.2000-01.x:y', 'host': 1})
    assert 'may or may not' in caught.value.message
    assert client.counters()['POST'] == 1


def test_lost_post_is_sent_again_when_any_such_object_serves(k2_server, client, fake_time):
    body = {'replication_session': {'ref': '/replication/sessions/4'}, 'is_application_consistent': False}
    k2_server.register(('POST', 'snapshots', None, body, 201, Drop()),
                       ('POST', 'snapshots', None, body, 201, {'id': 9, 'generation_number': 3}))
    snap = client.create('snapshots', body, unique=False, resend_if_lost=True)
    assert snap == {'id': 9, 'generation_number': 3}
    assert client.counters()['POST'] == 2


def test_retried_delete_that_finds_object_gone_succeeds(k2_server, client):
    k2_server.register(
        ('DELETE', 'volumes/5', None, None, 502, error('unavailable')),
        ('DELETE', 'volumes/5', None, None, 404, error('not found')),
    )
    client.delete('volumes', 5)


def test_plain_delete_of_missing_object_is_not_found(k2_server, client):
    k2_server.register(('DELETE', 'volumes/5', None, None, 404, error('not found')))
    with pytest.raises(K2NotFoundError):
        client.delete('volumes', 5)


# ------------------------------------------------------------------ queries

def test_paging_beyond_100_is_sorted_and_never_truncated(k2_server, client):
    objects = [vol(i) for i in range(1, 251)]
    for offset in (0, 100, 200):
        k2_server.register(('GET', 'volumes', {'__sort': 'id', '__limit': '100', '__offset': str(offset)}, None, 200,
                            hits(objects[offset:offset + 100], total=250, limit=100, offset=offset)))
    result = client.search('volumes')
    assert [v['id'] for v in result] == list(range(1, 251))
    assert client.counters()['GET'] == 3


def test_paging_trusts_total_when_the_array_caps_pages(k2_server, client):
    objects = [vol(i) for i in range(1, 101)]
    for offset in (0, 40, 80):
        k2_server.register(('GET', 'volumes', {'__sort': 'id', '__limit': '100', '__offset': str(offset)}, None, 200,
                            hits(objects[offset:offset + 40], total=100, limit=40, offset=offset)))
    assert len(client.search('volumes')) == 100


def test_paging_exact_multiple_stops_on_total(k2_server, client):
    objects = [vol(i) for i in range(1, 201)]
    for offset in (0, 100):
        k2_server.register(('GET', 'volumes', {'__sort': 'id', '__limit': '100', '__offset': str(offset)}, None, 200,
                            hits(objects[offset:offset + 100], total=200)))
    assert len(client.search('volumes')) == 200


def test_iter_search_is_lazy(k2_server, client):
    k2_server.register(('GET', 'hosts', {'__sort': 'id', '__limit': '2', '__offset': '0'}, None, 200,
                        hits([{'id': 1}, {'id': 2}], total=5)))
    iterator = client.iter_search('hosts', page_size=2)
    assert next(iterator)['id'] == 1 and next(iterator)['id'] == 2
    assert client.request_count == 1


def test_descending_sort_and_field_selection(k2_server, client):
    k2_server.register(('GET', 'snapshots', {'volume_group.ref': '/volume_groups/4', '__fields': 'id,short_name,creation_time',
                                             '__sort': 'creation_time', '__sort_order': 'desc', '__limit': '100', '__offset': '0'},
                        None, 200, hits([{'id': 2, 'short_name': 'b', 'creation_time': 2}])))
    found = client.search('snapshots', {'volume_group': 4}, fields=['short_name', 'creation_time'], sort='-creation_time')
    assert found == [{'id': 2, 'short_name': 'b', 'creation_time': 2}]


def test_first_reads_one_object_in_sort_order(k2_server, client):
    k2_server.register(
        ('GET', 'snapshots', {'volume_group.ref': '/volume_groups/4', 'is_exposable': 'False',
                              '__sort': 'creation_time', '__sort_order': 'desc', '__limit': '1'},
         None, 200, hits([{'id': 9, 'creation_time': 30}], total=3)),
        ('GET', 'snapshots', {'volume_group.ref': '/volume_groups/5', '__sort': 'id', '__limit': '1'}, None, 200, hits([])),
    )
    assert client.first('snapshots', {'volume_group': 4, 'is_exposable': False}, sort='-creation_time') == {'id': 9, 'creation_time': 30}
    assert client.first('snapshots', {'volume_group': 5}) is None
    assert client.request_count == 2


def test_search_values_asks_each_value_once_in_url_sized_chunks(k2_server, client, monkeypatch):
    monkeypatch.setattr(k2_client, 'QUERY_MAX_VALUES', 2)
    k2_server.register(
        # unique values: one page of the chunk's length holds its objects
        ('GET', 'volumes', {'name__in': 'a,b', '__sort': 'id', '__limit': '2', '__offset': '0'}, None, 200,
         hits([{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'b'}])),
        ('GET', 'volumes', {'name__in': 'c', '__sort': 'id', '__limit': '1', '__offset': '0'}, None, 200, hits([])),
        # several objects per value (mappings of a host): pages of at least many_page
        ('GET', 'mappings', {'host.ref__in': '/hosts/1', '__sort': 'id', '__limit': '50', '__offset': '0'}, None, 200,
         hits([{'id': 7}, {'id': 8}])),
    )
    found = client.search_values('volumes', 'name__in', ['c', 'a', 'b', 'a'])
    assert [v['name'] for v in found] == ['a', 'b']
    assert client.search_values('mappings', 'host.ref__in', ['/hosts/1'], unique=False, many_page=50) == [{'id': 7}, {'id': 8}]
    assert client.request_count == 3


def test_count_only_uses_limit_zero(k2_server, client):
    k2_server.register(('GET', 'volumes', {'name__contains': 'db', '__limit': '0'}, None, 200, hits([], total=1234)))
    assert client.count('volumes', {'name__contains': 'db'}) == 1234


def test_filters_refs_lists_and_modifiers(client):
    query = dict(client.build_query({
        'volume_group': 3,                              # id of a known ref field
        'host': {'id': 8, 'name': 'h'},                 # an object
        'source': {'ref': '/snapshots/2'},              # a ref
        'snapshot.ref': '/snapshots/5',                 # explicit .ref key
        'name': ['a', 'b'],                             # list -> __in
        'volume': [make_ref('volumes', 1), '/volumes/2'],
        'id__gt': 10,
        'is_dedup': False,
        'description': None,                            # None is "not filtered"
    }))
    assert query == {
        'volume_group.ref': '/volume_groups/3', 'host.ref': '/hosts/8', 'source.ref': '/snapshots/2',
        'snapshot.ref': '/snapshots/5', 'name__in': 'a,b', 'volume.ref__in': '/volumes/1,/volumes/2',
        'id__gt': '10', 'is_dedup': 'False',
    }


def test_empty_list_filter_matches_nothing_without_a_request(client):
    assert client.search('volumes', {'name': []}) == []
    assert client.count('volumes', {'id': []}) == 0
    assert client.find_one('volumes', {'id': []}) is None
    assert client.request_count == 0


def test_get_by_name_none_when_absent_and_error_when_ambiguous(k2_server, client):
    k2_server.register(
        ('GET', 'hosts', {'name': 'h1', '__limit': '2'}, None, 200, hits([])),
        ('GET', 'hosts', {'name': 'h2', '__limit': '2'}, None, 200, hits([{'id': 1}, {'id': 2}], total=2)),
    )
    assert client.get_by_name('hosts', 'h1') is None
    with pytest.raises(K2AmbiguousError, match="name 'h2' matches 2 objects"):
        client.get_by_name('hosts', 'h2')


def test_get_with_fields(k2_server, client):
    k2_server.register(('GET', 'volumes/3', {'__fields': 'id,name'}, None, 200, {'id': 3, 'name': 'x'}))
    assert client.get('volumes', 3, fields=['name']) == {'id': 3, 'name': 'x'}


def test_discovery_is_fetched_once_and_used(k2_server, client):
    k2_server.register(
        ('GET', '/api/v2', None, None, 200, {'resources': {'volumes': {'url': '/volumes'}, 'sessions': {'url': '/replication/sessions'}}}),
        ('GET', 'replication/sessions/2', None, None, 200, {'id': 2}),
    )
    assert client.discover()['sessions'] == '/replication/sessions'
    assert client.discover()['volumes'] == '/volumes'
    assert client.get('sessions', 2) == {'id': 2}
    assert client.counters()['GET'] == 2


# ------------------------------------------------------------------ writes and bulk

def test_create_update_delete_bodies(k2_server, client):
    k2_server.register(
        ('POST', 'volume_groups', None, {'name': 'g', 'quota': 0, 'is_dedup': True}, 201, {'id': 4, 'name': 'g'}),
        ('PATCH', 'volume_groups/4', None, {'description': 'x'}, 200, {'id': 4, 'name': 'g', 'description': 'x'}),
        ('DELETE', 'volume_groups/4', None, None, 204, None),
    )
    group = client.create('volume_groups', {'name': 'g', 'quota': 0, 'is_dedup': True})
    assert client.update('volume_groups', group['id'], {'description': 'x'})['description'] == 'x'
    assert client.delete('volume_groups', 4) is None
    assert client.counters() == {'total': 3, 'POST': 1, 'PATCH': 1, 'DELETE': 1}


def test_bulk_create_is_chunked(k2_server, client):
    items = [{'name': 'v%03d' % i, 'size': 1048576, 'volume_group': 1} for i in range(250)]
    sent = [dict(i, volume_group={'ref': '/volume_groups/1'}) for i in items]
    for start in (0, 100, 200):
        chunk = sent[start:start + 100]
        k2_server.register(('POST', 'volumes/__bulk', None, chunk, 200,
                            hits([dict(c, id=n + start + 1) for n, c in enumerate(chunk)])))
    created = client.bulk_create('volumes', items)
    assert [c['id'] for c in created] == list(range(1, 251))
    assert client.counters() == {'total': 3, 'POST': 3}


def test_bulk_create_lost_answer_resends_only_missing(k2_server, client):
    items = [{'name': 'a', 'size': 1}, {'name': 'b', 'size': 1}, {'name': 'c', 'size': 1}]
    k2_server.register(
        ('POST', 'volumes/__bulk', None, items, 200, Drop()),
        ('GET', 'volumes', {'name__in': 'a,b,c', '__sort': 'id', '__limit': '100', '__offset': '0'}, None, 200,
         hits([{'id': 1, 'name': 'a'}])),
        ('POST', 'volumes/__bulk', None, items[1:], 200, hits([{'id': 2, 'name': 'b'}, {'id': 3, 'name': 'c'}])),
    )
    assert sorted(c['id'] for c in client.bulk_create('volumes', items)) == [1, 2, 3]


def test_bulk_update_and_delete_are_chunked(k2_server, client):
    k2_server.register(
        ('PATCH', 'volumes/__bulk', None, [{'id': 1, 'size': 2}, {'id': 2, 'size': 2}], 200, hits([{'id': 1}, {'id': 2}])),
        ('PATCH', 'volumes/__bulk', None, [{'id': 3, 'size': 2}], 200, hits([{'id': 3}])),
        ('DELETE', 'volumes/__bulk', None, [{'id': 1}, {'id': 2}], 204, None),
        ('DELETE', 'volumes/__bulk', None, [{'id': 3}], 204, None),
    )
    assert len(client.bulk_update('volumes', [{'id': i, 'size': 2} for i in (1, 2, 3)], chunk_size=2)) == 3
    client.bulk_delete('volumes', [1, 2, 3], chunk_size=2)
    with pytest.raises(ValueError, match='need an id'):
        client.bulk_update('volumes', [{'size': 3}])


# ------------------------------------------------------------------ trace and counters

def test_trace_file_redacts_secrets(k2_server, fake_time, tmp_path):
    trace = tmp_path / 'k2-trace.jsonl'
    client = make_client(k2_server, fake_time, trace_file=str(trace))
    k2_server.register(
        ('POST', 'users', None, {'name': 'bob', 'password': 'bobs-pw'}, 201, {'id': 1, 'name': 'bob'}),
        ('GET', 'volumes/1', None, None, 400, error('bad login for admin:s3cr3t-pw')),
    )
    client.create('users', {'name': 'bob', 'password': 'bobs-pw'})
    with pytest.raises(K2Error):
        client.get('volumes', 1)
    text = trace.read_text()
    assert 's3cr3t-pw' not in text and 'bobs-pw' not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e['method'], e['status']) for e in lines] == [('POST', 201), ('GET', 400)]
    assert lines[0]['body']['password'] == REDACTED
    assert REDACTED in lines[1]['response']['error_msg']
    assert stat.S_IMODE(os.stat(str(trace)).st_mode) == 0o600


def test_trace_file_redacts_bearer_token(k2_server, fake_time, tmp_path):
    trace = tmp_path / 'trace.jsonl'
    client = make_client(k2_server, fake_time, username=None, password=None, token='tok-XYZ', sdp_id='3', trace_file=str(trace))
    k2_server.register(('GET', '/rest/sdps/3/api/v2/volumes/1', None, None, 200, vol(1)))
    client.get('volumes', 1)
    entry = json.loads(trace.read_text())
    assert 'tok-XYZ' not in trace.read_text()
    assert entry['headers']['Authorization'] == REDACTED


def test_trace_that_cannot_be_written_mid_run_stops_tracing_not_the_run(k2_server, fake_time, tmp_path):
    # The request has been applied by the time its trace line is written: losing the trace must not fail it.
    folder = tmp_path / 'traces'
    folder.mkdir()
    client = make_client(k2_server, fake_time, trace_file=str(folder / 'trace.jsonl'))
    shutil.rmtree(str(folder))
    k2_server.register(('POST', 'volume_groups', None, {'name': 'g1'}, 201, {'id': 4, 'name': 'g1'}),
                       ('GET', 'volume_groups/4', None, None, 200, {'id': 4, 'name': 'g1'}))
    assert client.create('volume_groups', {'name': 'g1'})['id'] == 4
    assert client.trace_error == ('trace_file %s could not be written (No such file or directory); tracing stopped.'
                                  % (folder / 'trace.jsonl'))
    assert client.get('volume_groups', 4)['id'] == 4
    assert not folder.exists()


def test_redact_nested_structures():
    data = {'a': [{'k2_password': 'x', 'chap_secret': 'y'}], 'msg': 'token is abc', 'n': None, 'api_token': None}
    assert redact(data, ('abc',)) == {'a': [{'k2_password': REDACTED, 'chap_secret': REDACTED}], 'msg': 'token is ' + REDACTED,
                                      'n': None, 'api_token': None}


def test_counters_count_retries_per_method(k2_server, client):
    k2_server.register(
        ('GET', 'volumes/1', None, None, 503, error('busy')),
        ('GET', 'volumes/1', None, None, 200, vol(1)),
        ('PATCH', 'volumes/1', None, {'size': 2}, 200, vol(1)),
    )
    client.get('volumes', 1)
    client.update('volumes', 1, {'size': 2})
    assert client.counters() == {'total': 3, 'GET': 2, 'PATCH': 1}


def test_unexpected_request_is_caught_by_the_harness(k2_server, client):
    # The harness itself must fail a conversation that differs from its script.
    k2_server.register(('GET', 'volumes/1', None, None, 200, vol(1)))
    with pytest.raises(K2Error):
        client.get('volumes', 2)
    assert len(k2_server.errors) == 1 and 'expected GET /api/v2/volumes/1' in k2_server.errors[0]
    with pytest.raises(pytest.fail.Exception, match='never came'):
        k2_server.verify()
    k2_server.reset()


# ------------------------------------------------------------------ refs

def test_ref_helpers():
    assert make_ref('volume_groups', 3) == {'ref': '/volume_groups/3'}
    assert parse_ref({'ref': '/replication/sessions/4'}) == ('replication/sessions', 4)
    assert ref_id('/volumes/12') == 12 and ref_id(None) is None
    assert ref_path({'id': 5, 'name': 'h'}, 'hosts') == '/hosts/5'
    assert ref_path('7', 'hosts') == '/hosts/7'
    with pytest.raises(ValueError):
        ref_path('volumes')
    with pytest.raises(ValueError):
        ref_path(5)


def test_body_refs_from_ids_and_objects(k2_server, client):
    k2_server.register(('POST', 'mappings', None, {'volume': {'ref': '/volumes/3'}, 'host': {'ref': '/hosts/4'}, 'lun': 2}, 201,
                        {'id': 1, 'lun': 2}))
    client.create('mappings', {'volume': {'id': 3}, 'host': 4, 'lun': 2}, unique=False)
    assert k2_server.received[0].body['volume'] == {'ref': '/volumes/3'}
