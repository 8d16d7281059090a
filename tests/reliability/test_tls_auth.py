# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 8: TLS is verified by default; a read-only user gets a clear permission error and changes nothing; wrong
credentials fail fast, with a clear message, and are not retried.

One playbook (playbooks/security_tls_auth.yml) runs every case against one k2sim array and keeps the registered
results; the request log tells what reached the array. k2sim's certificate is signed by its own CA, which no
system trust store holds: the "untrusted certificate" of an array with an in-house CA.
"""

import json
import os

import pytest

from k2lab import OPERATOR, VIEWER

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYBOOK = os.path.join(HERE, 'playbooks', 'security_tls_auth.yml')


@pytest.fixture
def results(lab, tmp_path, monkeypatch):
    """Prepare a volume (as admin, through REST), run the playbook, return (lab, results, run, before)."""
    import certifi
    for name in list(os.environ):
        if name.startswith('K2_') or name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
            monkeypatch.delenv(name)
    rest = lab.rest()
    vg = rest.post(rest.base + '/volume_groups', json={'name': 'ro-vg', 'quota': 0}).json()
    rest.post(rest.base + '/volumes', json={'name': 'ro-vol', 'size': 1024, 'volume_group': {'ref': '/volume_groups/%d' % vg['id']}}).raise_for_status()
    before = lab.inventory()
    lab.clear_requests()
    work = os.path.join(str(tmp_path), 'work')
    os.makedirs(work)
    token = lab.token()
    env = {'SEC_WORK': work, 'SEC_CA': lab.ca(), 'SEC_OTHER_BUNDLE': certifi.where(), 'SEC_HOST': lab.host(),
           'SEC_USERNAME': OPERATOR[0], 'SEC_PASSWORD': OPERATOR[1], 'SEC_VIEWER_USERNAME': VIEWER[0],
           'SEC_VIEWER_PASSWORD': VIEWER[1], 'SEC_SDP_ID': str(token['sdp_id'])}
    lab.env = lambda *args, **kwargs: {}   # no K2_* at all: each task names its own TLS settings
    run = lab.playbook(PLAYBOOK, env=env, timeout=300)
    assert run.rc == 0, run.output[-5000:]
    with open(os.path.join(work, 'results.json')) as handle:
        return lab, json.load(handle), run, before


def clear(result):
    """A failed result's message is one readable sentence, not a traceback."""
    assert result.get('failed') is True, result
    msg = result['msg']
    assert 'Traceback' not in msg and 'Traceback' not in result.get('module_stderr', ''), result
    # ansible-core 2.19 puts this placeholder in every fail_json result that carries no traceback.
    assert result.get('exception', '(traceback unavailable)') == '(traceback unavailable)', result
    assert 'module_stdout' not in result or not result['module_stdout'].strip(), result
    return msg


def test_tls_and_authentication(results):
    lab, r, run, before = results
    log = lab.requests_log()

    # ------------------------------------------------------------ untrusted certificate: refused, clearly, untouched
    for name in ('tls_default', 'tls_env_bundle'):
        msg = clear(r[name])
        assert 'TLS verification failed' in msg and 'CERTIFICATE_VERIFY_FAILED' in msg, (name, msg)
        assert 'ca_path' in msg and 'validate_certs' in msg, (name, msg)
        assert r[name]['k2_requests']['total'] == 1, (name, r[name]['k2_requests'])  # a TLS failure is not retried
        assert not r[name].get('changed'), r[name]
    # No request got through the handshake: the array logged none of the operator's requests before ca_path was set.
    assert log and log[0]['user'] == OPERATOR[0]
    assert lab.inventory()['volumes'] == before['volumes']

    # ------------------------------------------------------------ ca_path: passes; REQUESTS_CA_BUNDLE changes nothing
    for name in ('tls_ca_path', 'tls_ca_path_env'):
        assert not r[name].get('failed'), r[name]
        assert r[name]['k2']['system']['system_name'] == 'primary', r[name]['k2']['system']
        assert not r[name].get('warnings'), r[name].get('warnings')

    # ------------------------------------------------------------ validate_certs false: passes and warns
    for name in ('tls_off', 'tls_off_env'):
        assert not r[name].get('failed'), r[name]
        warnings = ' '.join(r[name].get('warnings', []))
        assert 'validate_certs is false' in warnings and 'ca_path' in warnings, r[name].get('warnings')
    assert '[WARNING]: validate_certs is false' in run.output  # shown to the operator (once: Ansible deduplicates)

    # ------------------------------------------------------------ wrong credentials: fast, clear, one request
    msg = clear(r['auth_password'])
    assert r['auth_password']['http_status'] == 401, r['auth_password']
    assert 'wrong user name or password' in msg and 'k2_username' in msg and 'k2_password' in msg, msg
    assert r['auth_password']['k2_requests']['total'] == 1, r['auth_password']['k2_requests']
    assert r['auth_password_seconds'] < 5, r['auth_password_seconds']
    msg = clear(r['auth_token'])
    assert r['auth_token']['http_status'] == 401, r['auth_token']
    assert 'token' in msg and 'k2_token' in msg, msg
    assert r['auth_token']['k2_requests']['total'] == 1, r['auth_token']['k2_requests']
    assert r['auth_token_seconds'] < 5, r['auth_token_seconds']
    refused = [e for e in log if e['status'] == 401]
    assert len(refused) == 2, refused
    assert sum(1 for e in refused if e['path'].startswith('/api/v2/')) == 1, refused
    assert sum(1 for e in refused if e['path'].startswith('/rest/sdps/')) == 1, refused
    assert all(e['method'] == 'GET' for e in refused), refused

    # ------------------------------------------------------------ read-only user: reads work, every write refused
    assert not r['ro_facts'].get('failed'), r['ro_facts']
    assert [v['name'] for v in r['ro_facts']['k2']['volumes']] == ['ro-vol'], r['ro_facts']['k2']['volumes']
    writers = ('ro_volume_create', 'ro_volume_grow', 'ro_volume_delete', 'ro_snapshot', 'ro_mapping', 'ro_replication')
    for name in writers:
        msg = clear(r[name])
        assert r[name]['http_status'] == 403, (name, r[name])
        assert 'lacks the role' in msg, (name, msg)  # the client's hint for K2PermissionError
        assert VIEWER[0] in msg and 'read_only' in msg and 'role' in msg, (name, msg)
        assert r[name]['changed'] is False, (name, r[name])
        assert r[name]['k2_requests'].get('POST', 0) + r[name]['k2_requests'].get('PATCH', 0) + \
            r[name]['k2_requests'].get('DELETE', 0) == 1, (name, r[name]['k2_requests'])  # one refused write, no retry
    viewer_writes = [e for e in log if e['user'] == VIEWER[0] and e['method'] != 'GET']
    assert len(viewer_writes) == len(writers), viewer_writes
    assert all(e['status'] == 403 for e in viewer_writes), viewer_writes
    assert all(e['status'] == 403 for e in log if e['method'] != 'GET'), [e for e in log if e['method'] != 'GET']
    assert lab.inventory() == before
