# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""K2Module with a real AnsibleModule (args through patch_module_args, results read from stdout) and the scripted server."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

import pytest
import yaml

from ansible_collections.kaminario.k2.plugins.doc_fragments.k2 import ModuleDocFragment
from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import make_ref
from ansible_collections.kaminario.k2.plugins.module_utils.k2_sizes import K2SizeError
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import (
    K2Module, K2PlanError, Rollback, compute_plan, describe_rollback, k2_argument_spec, values_equal,
)
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import hits, error, run_module

GIB_KIB = 1048576


class DemoVolume(K2Module):
    """A minimal volume module, written the way the real modules will use the base."""

    def __init__(self):
        super(DemoVolume, self).__init__(argument_spec=dict(
            name=dict(type='str', required=True),
            new_name=dict(type='str'),
            size=dict(type='str'),
            description=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            with_group=dict(type='bool', default=False),
        ))

    def work(self):
        p = self.params
        current = self.find_current('volumes', p['name'], p['new_name'])
        desired = {'name': p['new_name'] or p['name'], 'size': p['size'], 'description': p['description']}
        plan = self.plan(current, desired, state=p['state'], resource='volume', grow_only=('size',))
        volume = self.apply(plan, create=self._create,
                            update=lambda cur, changes: self.client.update('volumes', cur['id'], changes),
                            delete=lambda cur: self.client.delete('volumes', cur['id']))
        return {'volume': volume}

    def _create(self, body):
        if not self.params['with_group']:
            return self.client.create('volumes', dict(body, volume_group=1))
        with self.rollback() as undo:
            group = self.client.create('volume_groups', {'name': 'vg-' + body['name'], 'quota': 0})
            undo.push("delete volume group 'vg-%s'" % body['name'], self.client.delete, 'volume_groups', group['id'])
            return self.client.create('volumes', dict(body, volume_group=group['id']))


def demo_main():
    DemoVolume().run()


class DemoVolumes(K2Module):
    """A list-of-volumes module: one paged read to plan, then one bulk request per action."""

    def __init__(self):
        super(DemoVolumes, self).__init__(argument_spec=dict(volumes=dict(type='list', elements='dict', required=True, options=dict(
            name=dict(type='str', required=True),
            size=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ))))

    def work(self):
        specs = self.params['volumes']
        with self.step('read the volumes'):
            existing = dict((v['name'], v) for v in self.client.search('volumes', {'name': [s['name'] for s in specs]}))
        plans = [self.plan(existing.get(s['name']), {'name': s['name'], 'size': s['size']}, state=s['state'],
                           resource='volume', grow_only=('size',)) for s in specs]
        volumes = self.apply_many(
            plans,
            create=lambda bodies: self.client.bulk_create('volumes', [dict(b, volume_group=1) for b in bodies]),
            update=lambda pairs: self.client.bulk_update('volumes', [dict(changes, id=cur['id']) for cur, changes in pairs]),
            delete=lambda currents: self.client.bulk_delete('volumes', [c['id'] for c in currents]))
        return {'volumes': volumes}


def demo_many_main():
    DemoVolumes().run()


@pytest.fixture
def conn(k2_server):
    return dict(k2_host=k2_server.host, k2_username='admin', k2_password='s3cr3t-pw', ca_path=k2_server.ca_path,
                retries=1, retry_max_wait=0)


def volume(obj_id=7, name='v1', size=GIB_KIB, description=None):
    return {'id': obj_id, 'name': name, 'size': size, 'description': description, 'volume_group': make_ref('volume_groups', 1)}


def lookup(name, found=None):
    return ('GET', 'volumes', {'name': name, '__limit': '2'}, None, 200, hits([found] if found else []))


# ------------------------------------------------------------------ create / update / delete / nothing

def test_create(k2_server, conn, capsys):
    body = {'name': 'v1', 'size': GIB_KIB, 'volume_group': {'ref': '/volume_groups/1'}}
    k2_server.register(lookup('v1'), ('POST', 'volumes', None, body, 201, volume()))
    result, failed = run_module(demo_main, dict(conn, name='v1', size='1GiB'), capsys)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'create', 'resource': 'volume', 'name': 'v1', 'attributes': {'name': 'v1', 'size': GIB_KIB}}]
    assert result['diff'] == {'before': {}, 'after': {'name': 'v1', 'size': GIB_KIB}}
    assert result['volume']['id'] == 7
    assert result['k2_requests'] == {'total': 2, 'GET': 1, 'POST': 1}


def test_check_mode_plans_but_writes_nothing(k2_server, conn, capsys):
    k2_server.register(lookup('v1'))
    result, failed = run_module(demo_main, dict(conn, name='v1', size='1GiB', _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert not failed and result['changed']
    assert result['actions'][0]['action'] == 'create'
    assert result['volume'] == {'name': 'v1', 'size': GIB_KIB}
    assert [r.method for r in k2_server.received] == ['GET']


def test_no_change_costs_one_request(k2_server, conn, capsys):
    k2_server.register(lookup('v1', volume()))
    result, failed = run_module(demo_main, dict(conn, name='v1', size=str(1024 ** 3)), capsys)
    assert not failed and not result['changed']
    assert result['actions'] == []
    assert result['diff']['before'] == result['diff']['after'] == {'name': 'v1', 'size': GIB_KIB}
    assert result['k2_requests'] == {'total': 1, 'GET': 1}


def test_update_only_what_the_user_set(k2_server, conn, capsys):
    k2_server.register(lookup('v1', volume()),
                       ('PATCH', 'volumes/7', None, {'size': 2 * GIB_KIB}, 200, volume(size=2 * GIB_KIB)))
    result, failed = run_module(demo_main, dict(conn, name='v1', size='2G', _ansible_diff=True), capsys)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'update', 'resource': 'volume', 'name': 'v1',
                                  'changes': {'size': {'before': GIB_KIB, 'after': 2 * GIB_KIB}}}]
    assert result['diff'] == {'before': {'name': 'v1', 'size': GIB_KIB}, 'after': {'name': 'v1', 'size': 2 * GIB_KIB}}
    assert result['volume']['size'] == 2 * GIB_KIB


def test_check_mode_update_predicts_the_result(k2_server, conn, capsys):
    k2_server.register(lookup('v1', volume()))
    result, failed = run_module(demo_main, dict(conn, name='v1', size='2GiB', description='db', _ansible_check_mode=True), capsys)
    assert not failed and result['changed']
    assert result['volume']['size'] == 2 * GIB_KIB and result['volume']['description'] == 'db'
    assert result['k2_requests']['total'] == 1


def test_shrink_is_refused_without_writing(k2_server, conn, capsys):
    k2_server.register(lookup('v1', volume(size=2 * GIB_KIB)))
    result, failed = run_module(demo_main, dict(conn, name='v1', size='1GiB'), capsys)
    assert failed and not result['changed']
    assert result['msg'].startswith("Cannot shrink volume 'v1': size is 2 GiB and the task asks for 1 GiB.")
    assert 'only grows' in result['msg']


def test_bad_size_names_the_option(k2_server, conn, capsys):
    k2_server.register(lookup('v1'))
    result, failed = run_module(demo_main, dict(conn, name='v1', size='ten gigs'), capsys)
    assert failed and "option 'size'" in result['msg']


def test_delete_and_absent_when_missing(k2_server, conn, capsys):
    k2_server.register(lookup('v1', volume()), ('DELETE', 'volumes/7', None, None, 204, None))
    result, failed = run_module(demo_main, dict(conn, name='v1', state='absent'), capsys)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'delete', 'resource': 'volume', 'name': 'v1'}]
    assert result['diff']['after'] == {} and result['diff']['before']['name'] == 'v1'
    assert result['volume'] is None

    k2_server.register(lookup('v1'))
    result, failed = run_module(demo_main, dict(conn, name='v1', state='absent'), capsys)
    assert not failed and not result['changed'] and result['actions'] == []


def test_rename(k2_server, conn, capsys):
    k2_server.register(lookup('v2'), lookup('v1', volume()),
                       ('PATCH', 'volumes/7', None, {'name': 'v2'}, 200, volume(name='v2')))
    result, failed = run_module(demo_main, dict(conn, name='v1', new_name='v2'), capsys)
    assert not failed and result['changed']
    assert result['actions'] == [{'action': 'rename', 'resource': 'volume', 'name': 'v1', 'new_name': 'v2'}]
    assert result['volume']['name'] == 'v2'


# ------------------------------------------------------------------ many objects, bulk requests

MANY = [dict(name='v1', size='1GiB'), dict(name='v2', size='2GiB'), dict(name='v3', size='1GiB'), dict(name='v4', state='absent')]
MANY_QUERY = {'name__in': 'v1,v2,v3,v4', '__sort': 'id', '__limit': '100', '__offset': '0'}
MANY_FOUND = hits([volume(1, 'v1'), volume(2, 'v2'), volume(4, 'v4')])


def test_apply_many_uses_one_bulk_request_per_action(k2_server, conn, capsys):
    k2_server.register(
        ('GET', 'volumes', MANY_QUERY, None, 200, MANY_FOUND),
        ('POST', 'volumes/__bulk', None, [{'name': 'v3', 'size': GIB_KIB, 'volume_group': {'ref': '/volume_groups/1'}}], 200,
         hits([volume(3, 'v3')])),
        ('PATCH', 'volumes/__bulk', None, [{'id': 2, 'size': 2 * GIB_KIB}], 200, hits([volume(2, 'v2', size=2 * GIB_KIB)])),
        ('DELETE', 'volumes/__bulk', None, [{'id': 4}], 204, None),
    )
    result, failed = run_module(demo_many_main, dict(conn, volumes=MANY), capsys)
    assert not failed and result['changed']
    assert [v and v['id'] for v in result['volumes']] == [1, 2, 3, None]
    assert [(a['action'], a['name']) for a in result['actions']] == [('update', 'v2'), ('create', 'v3'), ('delete', 'v4')]
    assert result['diff']['before']['volume v2'] == {'name': 'v2', 'size': GIB_KIB}
    assert result['diff']['after']['volume v2'] == {'name': 'v2', 'size': 2 * GIB_KIB}
    assert result['diff']['after']['volume v4'] == {}
    assert result['k2_requests'] == {'total': 4, 'GET': 1, 'POST': 1, 'PATCH': 1, 'DELETE': 1}


def test_apply_many_in_check_mode_only_reads(k2_server, conn, capsys):
    k2_server.register(('GET', 'volumes', MANY_QUERY, None, 200, MANY_FOUND))
    result, failed = run_module(demo_many_main, dict(conn, volumes=MANY, _ansible_check_mode=True), capsys)
    assert not failed and result['changed'] and len(result['actions']) == 3
    assert result['volumes'][2] == {'name': 'v3', 'size': GIB_KIB} and result['volumes'][3] is None
    assert result['k2_requests'] == {'total': 1, 'GET': 1}


def test_step_names_what_failed(k2_server, conn, capsys):
    k2_server.register(('GET', 'volumes', MANY_QUERY, None, 403, error('Permission denied')))
    result, failed = run_module(demo_many_main, dict(conn, volumes=MANY), capsys)
    assert failed and result['msg'].startswith('Could not read the volumes: Permission denied (HTTP 403, GET /api/v2/volumes).')
    assert 'admin role' in result['msg'] and result['http_status'] == 403


# ------------------------------------------------------------------ rollback and errors

def test_failed_create_rolls_back_the_group(k2_server, conn, capsys):
    k2_server.register(
        lookup('v1'),
        ('POST', 'volume_groups', None, {'name': 'vg-v1', 'quota': 0}, 201, {'id': 5, 'name': 'vg-v1'}),
        ('POST', 'volumes', None, {'name': 'v1', 'size': GIB_KIB, 'volume_group': {'ref': '/volume_groups/5'}}, 400,
         error('Volume size exceeds the group quota')),
        ('DELETE', 'volume_groups/5', None, None, 204, None),
    )
    result, failed = run_module(demo_main, dict(conn, name='v1', size='1GiB', with_group=True), capsys)
    assert failed and not result['changed']
    assert result['msg'].startswith("Could not create volume 'v1': Volume size exceeds the group quota (HTTP 400, POST /api/v2/volumes).")
    assert "Rolled back: delete volume group 'vg-v1'." in result['msg']
    assert result['http_status'] == 400
    assert result['rollback'] == [{'step': "delete volume group 'vg-v1'", 'error': None}]


def test_failed_rollback_is_reported_for_manual_cleanup(k2_server, conn, capsys):
    k2_server.register(
        lookup('v1'),
        ('POST', 'volume_groups', None, {'name': 'vg-v1', 'quota': 0}, 201, {'id': 5, 'name': 'vg-v1'}),
        ('POST', 'volumes', None, {'name': 'v1', 'size': GIB_KIB, 'volume_group': {'ref': '/volume_groups/5'}}, 400, error('nope')),
        ('DELETE', 'volume_groups/5', None, None, 403, error('Permission denied')),
    )
    result, failed = run_module(demo_main, dict(conn, name='v1', size='1GiB', with_group=True), capsys)
    assert failed
    assert "Could NOT roll back, clean up by hand: delete volume group 'vg-v1' (Permission denied" in result['msg']
    assert result['changed']  # the group is still there


def test_auth_error_becomes_fail_json_with_hint(k2_server, conn, capsys):
    k2_server.register(('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 401, error('Authentication required')))
    result, failed = run_module(demo_main, dict(conn, name='v1'), capsys)
    assert failed
    assert result['http_status'] == 401 and result['k2_error_code'] is None
    assert result['msg'].startswith('K2 request failed: Authentication required (HTTP 401, GET /api/v2/volumes).')
    assert 'k2_username' in result['msg']
    assert 'Traceback' not in result['msg'] and 'exception' not in result


def test_busy_error_carries_the_k2_code(k2_server, conn, capsys):
    k2_server.register(lookup('v1', volume()),
                       *[('PATCH', 'volumes/7', None, {'size': 2 * GIB_KIB}, 400, error('MC_ERR_BUSY'))] * 2)
    result, failed = run_module(demo_main, dict(conn, name='v1', size='2GiB'), capsys)
    assert failed and result['k2_error_code'] == 'MC_ERR_BUSY' and result['http_status'] == 400
    assert result['msg'].startswith("Could not update volume 'v1': MC_ERR_BUSY")
    assert 'retries' in result['msg']


def test_password_never_reaches_the_output(k2_server, conn, capsys):
    k2_server.register(('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 400, error('bad request for s3cr3t-pw')))
    result, failed = run_module(demo_main, dict(conn, name='v1'), capsys)
    assert failed
    assert 's3cr3t-pw' not in repr(result)


# ------------------------------------------------------------------ options

def test_connection_options_from_environment(k2_server, capsys, monkeypatch):
    monkeypatch.setenv('K2_HOST', k2_server.host)
    monkeypatch.setenv('K2_USERNAME', 'admin')
    monkeypatch.setenv('K2_PASSWORD', 's3cr3t-pw')
    monkeypatch.setenv('K2_CA_PATH', k2_server.ca_path)
    k2_server.register(lookup('v1', volume()))
    result, failed = run_module(demo_main, dict(name='v1'), capsys)
    assert not failed and not result['changed']
    assert k2_server.received[0].headers['Authorization'].startswith('Basic ')


def test_token_on_the_task_wins_over_a_user_in_the_environment(k2_server, capsys, monkeypatch):
    # The environment's K2_USERNAME/K2_PASSWORD must not make a task that logs in with a Flex token fail as
    # "mutually exclusive" (ansible-core applies the fallbacks before that check).
    monkeypatch.setenv('K2_USERNAME', 'admin')
    monkeypatch.setenv('K2_PASSWORD', 's3cr3t-pw')
    k2_server.register(('GET', '/rest/sdps/3/api/v2/volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([volume()])))
    result, failed = run_module(demo_main, dict(name='v1', k2_host=k2_server.host, ca_path=k2_server.ca_path,
                                                k2_token='tok-123', k2_sdp_id='3'), capsys)
    assert not failed, result
    assert k2_server.received[0].headers['Authorization'] == 'Bearer tok-123'


def test_user_on_the_task_wins_over_a_token_in_the_environment(k2_server, conn, capsys, monkeypatch):
    monkeypatch.setenv('K2_TOKEN', 'tok-123')
    monkeypatch.setenv('K2_SDP_ID', '3')
    k2_server.register(lookup('v1', volume()))
    result, failed = run_module(demo_main, dict(conn, name='v1'), capsys)
    assert not failed, result
    assert k2_server.received[0].headers['Authorization'].startswith('Basic ')


def test_both_login_methods_in_the_environment_fail_naming_the_variables(k2_server, capsys, monkeypatch):
    for var, value in (('K2_USERNAME', 'admin'), ('K2_PASSWORD', 's3cr3t-pw'), ('K2_TOKEN', 'tok-123'), ('K2_SDP_ID', '3')):
        monkeypatch.setenv(var, value)
    result, failed = run_module(demo_main, dict(name='v1', k2_host=k2_server.host, ca_path=k2_server.ca_path), capsys)
    assert failed
    assert 'the environment sets K2_USERNAME/K2_PASSWORD and K2_TOKEN/K2_SDP_ID' in result['msg']
    assert 'k2_token and k2_sdp_id' in result['msg']
    assert k2_server.received == []


@pytest.mark.parametrize('make_path, problem', [
    (lambda tmp: str(tmp / 'missing' / 'ca.pem'), 'No such file or directory'),
    (lambda tmp: (tmp / 'notpem.pem').write_text('not a certificate') and str(tmp / 'notpem.pem'), ''),
])
def test_unusable_ca_path_fails_naming_the_option(k2_server, conn, capsys, tmp_path, make_path, problem):
    path = make_path(tmp_path)
    result, failed = run_module(demo_main, dict(conn, name='v1', ca_path=path), capsys)
    assert failed
    assert result['msg'].startswith('ca_path %s cannot be used as CA certificates (%s' % (path, problem)), result['msg']
    assert 'exception' not in result
    assert k2_server.received == []


def test_trace_file_in_a_missing_directory_fails_before_any_request(k2_server, conn, capsys, tmp_path):
    path = str(tmp_path / 'missing' / 'trace.jsonl')
    result, failed = run_module(demo_main, dict(conn, name='v1', trace_file=path), capsys)
    assert failed
    assert result['msg'] == ('trace_file %s cannot be written (No such file or directory): give a file in an existing '
                             'directory this user may write to, or leave trace_file unset.' % path)
    assert k2_server.received == []


def test_k2_host_is_required_without_environment(capsys, monkeypatch):
    monkeypatch.delenv('K2_HOST', raising=False)
    result, failed = run_module(demo_main, dict(name='v1', k2_username='a', k2_password='b'), capsys)
    assert failed and 'k2_host' in result['msg']


def test_validate_certs_false_from_environment_warns(k2_server, conn, capsys, monkeypatch):
    monkeypatch.setenv('K2_VALIDATE_CERTS', 'false')
    k2_server.register(lookup('v1', volume()))
    args = dict(conn)
    del args['ca_path']
    result, failed = run_module(demo_main, dict(args, name='v1'), capsys)
    assert not failed
    # ansible-core 2.19 returns warnings as structured events; their text is what matters here.
    assert 'validate_certs is false' in json.dumps(result['warnings'])


@pytest.mark.parametrize('extra, message', [
    (dict(k2_token='tok-123456', k2_sdp_id='1'), 'mutually exclusive'),
    (dict(k2_username=None, k2_password=None, k2_token='tok-123456'), 'together: k2_token, k2_sdp_id'),
    (dict(k2_password=None), 'together: k2_username, k2_password'),
    (dict(k2_username=None, k2_password=None), 'one of the following is required'),
])
def test_credential_rules(conn, capsys, monkeypatch, extra, message):
    for var in ('K2_USERNAME', 'K2_PASSWORD', 'K2_TOKEN', 'K2_SDP_ID'):
        monkeypatch.delenv(var, raising=False)
    args = dict(conn, name='v1')
    args.update(extra)
    args = dict((k, v) for k, v in args.items() if v is not None)
    result, failed = run_module(demo_main, args, capsys)
    assert failed and re.search(message, result['msg'])


def test_bad_host_fails_before_any_request(capsys):
    result, failed = run_module(demo_main, dict(name='v1', k2_host='https://k2/', k2_username='a', k2_password='b'), capsys)
    assert failed and 'without https://' in result['msg'] and result['k2_requests'] == {'total': 0}


def test_doc_fragment_matches_argument_spec():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    spec = k2_argument_spec()
    assert sorted(doc) == sorted(spec)
    for name, option in spec.items():
        assert doc[name]['type'] == option['type'], name
        assert doc[name].get('default') == option.get('default'), name
        assert bool(doc[name].get('required')) == bool(option.get('required')), name
        env = option.get('fallback', (None, []))[1]
        documented = re.findall(r'E\((K2_[A-Z_]+)\)', ' '.join(doc[name]['description']))
        assert documented == list(env), name
    assert spec['k2_password']['no_log'] and spec['k2_token']['no_log']
    for fragment in (ModuleDocFragment.ATTRIBUTES, ModuleDocFragment.FACTS_ATTRIBUTES):
        attributes = yaml.safe_load(fragment)['attributes']
        assert attributes['check_mode']['support'] == 'full'


# ------------------------------------------------------------------ the plan helper itself

def test_plan_compares_only_keys_the_user_set():
    current = {'id': 1, 'name': 'h', 'type': 'Linux', 'description': 'x'}
    plan = compute_plan(current, {'name': 'h', 'type': None, 'description': 'x'})
    assert plan.action is None and not plan.changed


def test_plan_lists_are_multisets_and_refs_compare_by_path():
    current = {'name': 'h', 'iqns': ['b', 'a', 'a'], 'host_group': {'ref': '/host_groups/2'}}
    assert compute_plan(current, {'name': 'h', 'iqns': ['a', 'b', 'a'], 'host_group': '/host_groups/2'}).action is None
    plan = compute_plan(current, {'name': 'h', 'iqns': ['a', 'b']})
    assert plan.changes == {'iqns': ['a', 'b']}


def test_plan_tolerates_loose_typing_but_not_for_strings():
    assert values_equal('True', True) and values_equal(True, 'true') and values_equal('10', 10) and values_equal(10.0, 10)
    assert not values_equal('007', '7') and not values_equal(1, True) and not values_equal('x', 1)
    assert values_equal({'a': 1, 'b': 2}, {'a': 1}) and not values_equal(None, {'a': 1})


def test_plan_immutable_and_create_only():
    current = {'name': 'g', 'is_dedup': True, 'quota': 0}
    with pytest.raises(K2PlanError, match='Cannot change is_dedup') as caught:
        compute_plan(current, {'name': 'g', 'is_dedup': False}, resource='volume group',
                     immutable={'is_dedup': 'Use the migrate role to move the data.'})
    assert caught.value.hint == 'Use the migrate role to move the data.'
    plan = compute_plan(current, {'name': 'g', 'is_dedup': True, 'quota': 5}, create_only=('quota',))
    assert plan.action is None and 'quota' not in plan.after
    created = compute_plan(None, {'name': 'g', 'quota': 5, 'private': 1}, create_only=('quota',), ignore=('private',))
    assert created.action == 'create' and created.body == {'name': 'g', 'quota': 5}


def test_rename_rerun_finds_the_new_name_in_one_request(k2_server, conn, capsys):
    k2_server.register(lookup('v2', volume(name='v2')))
    result, failed = run_module(demo_main, dict(conn, name='v1', new_name='v2'), capsys)
    assert not failed and not result['changed'] and result['k2_requests']['total'] == 1


def test_plan_size_errors_use_the_given_option_label():
    with pytest.raises(K2SizeError, match=r"option 'volumes\[3\]\.size'"):
        compute_plan(None, {'name': 'v', 'size': '3 apples'}, sizes={'size': 'volumes[3].size'})
    assert compute_plan(None, {'name': 'v', 'size': '1GiB'}, sizes={'size': 'x'}).body['size'] == GIB_KIB


def test_plan_rejects_unknown_states():
    with pytest.raises(ValueError):
        compute_plan(None, {'name': 'x'}, state='restored')


def test_rollback_runs_in_reverse_and_survives_failing_steps():
    calls = []

    def boom():
        calls.append('boom')
        raise RuntimeError('cannot')

    with pytest.raises(KeyError) as caught:
        with Rollback() as undo:
            undo.push('first', calls.append, 'first')
            undo.push('second', boom)
            undo.push('third', calls.append, 'third')
            raise KeyError('later step failed')
    assert calls == ['third', 'boom', 'first']
    assert caught.value.rollback_report == [('third', None), ('second', 'cannot'), ('first', None)]
    assert describe_rollback(caught.value.rollback_report) == 'Rolled back: third; first. Could NOT roll back, clean up by hand: second (cannot).'


def test_rollback_does_nothing_on_success():
    calls = []
    with Rollback() as undo:
        undo.push('undo', calls.append, 'x')
    assert calls == [] and undo.report == []


class DemoBadRef(K2Module):
    """A module that filters by a user-given reference, as k2_facts does with its ``filters`` option."""

    def __init__(self):
        super(DemoBadRef, self).__init__(argument_spec=dict(group=dict(type='raw', required=True)))

    def work(self):
        return {'volumes': self.client.search('volumes', {'volume_group': self.params['group']})}


def test_unusable_reference_fails_cleanly_before_any_request(capsys):
    """A reference that cannot be built is a user error: fail_json naming the value, never a traceback."""
    args = dict(group={'ref': 'garbage'}, k2_host='127.0.0.1:1', k2_username='a', k2_password='s3cr3t-pw')
    result, failed = run_module(lambda: DemoBadRef().run(), args, capsys)
    assert failed
    assert "Cannot make a K2 reference from 'garbage'" in result['msg']
    assert 'Traceback' not in json.dumps(result)
    assert result['k2_requests'] == {'total': 0}


class DemoHostWithMappings(K2Module):
    """A multi-step change (host, then its mappings) that relies on the base's undo stack, as k2_host_mapping does."""

    def __init__(self):
        super(DemoHostWithMappings, self).__init__(argument_spec=dict(volumes=dict(type='list', elements='int', required=True)))

    def work(self):
        host = self.client.create('hosts', {'name': 'h1', 'type': 'Linux'})
        self.note_write()
        self.undo.push("delete the new host 'h1'", self.client.delete, 'hosts', host['id'])
        for volume_id in self.params['volumes']:
            with self.step('map volume %d' % volume_id):
                mapping = self.client.create('mappings', {'volume': make_ref('volumes', volume_id), 'host': make_ref('hosts', host['id'])},
                                             unique=False)
            self.note_write()
            self.undo.push('unmap volume %d' % volume_id, self.client.delete, 'mappings', mapping['id'])
        return {'host': host}


def test_undo_stack_runs_newest_first_before_the_failure_is_reported(k2_server, conn, capsys):
    k2_server.register(
        ('POST', 'hosts', None, {'name': 'h1', 'type': 'Linux'}, 201, {'id': 3, 'name': 'h1'}),
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/3'}}, 201, {'id': 11, 'lun': 1}),
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/8'}, 'host': {'ref': '/hosts/3'}}, 400, error('LUN in use')),
        ('DELETE', 'mappings/11', None, None, 204, None),
        ('DELETE', 'hosts/3', None, None, 204, None),
    )
    result, failed = run_module(lambda: DemoHostWithMappings().run(), dict(conn, volumes=[7, 8]), capsys)
    assert failed
    assert result['msg'].startswith('Could not map volume 8: LUN in use')
    assert result['msg'].endswith("Rolled back: unmap volume 7; delete the new host 'h1'.")
    assert result['rollback'] == [{'step': 'unmap volume 7', 'error': None}, {'step': "delete the new host 'h1'", 'error': None}]
    assert result['changed']  # two writes happened, even though both were undone


def test_undo_stack_is_dropped_on_success(k2_server, conn, capsys):
    k2_server.register(
        ('POST', 'hosts', None, {'name': 'h1', 'type': 'Linux'}, 201, {'id': 3, 'name': 'h1'}),
        ('POST', 'mappings', None, {'volume': {'ref': '/volumes/7'}, 'host': {'ref': '/hosts/3'}}, 201, {'id': 11, 'lun': 1}),
    )
    result, failed = run_module(lambda: DemoHostWithMappings().run(), dict(conn, volumes=[7]), capsys)
    assert not failed and 'rollback' not in result and result['host']['id'] == 3
