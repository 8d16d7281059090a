# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""K2Module.exit() / fail(): no_log values are scrubbed from the result only where they occur (scrub_no_log), and
facts held twice are encoded once (record_sharing).

Modules run through a real AnsibleModule (patch_module_args, result read from stdout). Every result is compared with
the one Ansible's own path gives (``scrubbing_only_what_holds_secrets`` replaced by a no-op, so exit_json scrubs with
plain ``remove_values``), and the calls of ``remove_values`` are counted with a spy on the module-level function
exit_json calls (``ansible.module_utils.basic.remove_values``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json
import sys

import pytest
from hypothesis import given, strategies as st

from ansible.module_utils import basic as ansible_basic
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.kaminario.k2.plugins.module_utils import k2_module
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import K2Module, scrub_no_log
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import run_module

PASSWORD = 's3cr3t-pw'
ENCODER = get_module_encoder('legacy', Direction.MODULE_TO_CONTROLLER)
MASK = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'

# The module's result: `build(payload)`, set per test (the payload says where the password goes).
RESULT = {}


class DemoResult(K2Module):
    """Returns RESULT as is, twice (as k2_facts does), or fails with it."""

    def __init__(self):
        super(DemoResult, self).__init__(argument_spec=dict(fail=dict(type='bool', default=False)))

    def work(self):
        if self.params['fail']:
            self.fail('could not do it with %s' % RESULT.get('message', 'nothing'), details=RESULT['facts'])
        return {'ansible_facts': {'demo': RESULT['facts']}, 'demo': RESULT['facts']}


def demo_main():
    DemoResult().run()


def facts(secret_at=None):
    """About 60 kB of facts; ``secret_at`` puts the password in one place."""
    volumes = [{'id': i, 'name': 'vol-%04d' % i, 'size': 1048576 * i, 'ratio': 1.5, 'mapped': bool(i % 2),
                'description': None, 'tags': ['a', 'b "quoted" \\ \n', u'\u00e9t\u00e9']} for i in range(400)]
    out = {'volumes': volumes, 'system': {'name': 'k2', 'role': 'admin'}, 'hosts': [{'name': 'h%d' % i} for i in range(50)]}
    if secret_at == 'nested':
        volumes[123]['tags'][1] = PASSWORD
    elif secret_at == 'substring':
        volumes[321]['description'] = 'made by %s, keep' % PASSWORD
    elif secret_at == 'key':
        volumes[7]['labels'] = {PASSWORD: 'x', 'other': 'made by ' + PASSWORD}
    elif secret_at == 'number':
        # a password made of digits masks ints whose text holds it (as remove_values does)
        volumes[5]['size'] = 77
    return out


def run(conn, capsys, monkeypatch, secret_at=None, plain=False, password=PASSWORD, **args):
    """Run DemoResult; returns (result, failed, calls of remove_values on a dict or list, as JSON text)."""
    RESULT.clear()
    RESULT['facts'] = facts(secret_at)
    RESULT['message'] = 'password %s' % password if secret_at == 'message' else 'nothing'
    calls = []
    original = ansible_basic.remove_values

    def spy(value, no_log_strings):
        if isinstance(value, (dict, list)):     # not the module's log of its parameters, one string each
            calls.append(json.dumps(value, default=repr))
        return original(value, no_log_strings)

    monkeypatch.setattr(ansible_basic, 'remove_values', spy)
    if plain:
        monkeypatch.setattr(k2_module, 'scrubbing_only_what_holds_secrets', contextlib.nullcontext)
    try:
        result, failed = run_module(demo_main, dict(conn, k2_password=password, **args), capsys)
    finally:
        monkeypatch.undo()
    return result, failed, calls


@pytest.fixture
def no_server_conn(k2_ca_path):
    # work() sends no request: the address is never contacted
    return dict(k2_host='127.0.0.1:9', k2_username='admin', ca_path=k2_ca_path, retries=0, retry_max_wait=0)


def test_result_without_secret_is_returned_unchanged_and_not_walked(no_server_conn, capsys, monkeypatch):
    result, failed, calls = run(no_server_conn, capsys, monkeypatch)
    plain, plain_failed, plain_calls = run(no_server_conn, capsys, monkeypatch, plain=True)
    assert not failed and not plain_failed
    assert result == plain
    assert result['demo'] == facts() and result['ansible_facts']['demo'] == facts()
    assert result['invocation']['module_args']['k2_password'] == MASK
    # the fast path: remove_values saw only the invocation (which holds the password), never the facts
    assert len(calls) == 1 and 'module_args' in calls[0] and 'vol-0001' not in calls[0]
    assert len(plain_calls) == 1 and 'vol-0001' in plain_calls[0]


@pytest.mark.parametrize('secret_at', ['nested', 'substring', 'key'])
def test_result_with_secret_is_scrubbed_as_ansible_does(no_server_conn, capsys, monkeypatch, secret_at):
    result, failed, calls = run(no_server_conn, capsys, monkeypatch, secret_at=secret_at)
    plain, dummy, dummy = run(no_server_conn, capsys, monkeypatch, secret_at=secret_at, plain=True)
    assert not failed
    assert result == plain
    for copy in (result['demo'], result['ansible_facts']['demo']):
        if secret_at == 'nested':
            assert copy['volumes'][123]['tags'][1] == MASK
        elif secret_at == 'substring':
            assert copy['volumes'][321]['description'] == 'made by ********, keep'
        else:
            # remove_values never rewrites dict keys; the value next to it is masked
            assert copy['volumes'][7]['labels'] == {PASSWORD: 'x', 'other': 'made by ********'}
    values = json.dumps([result['demo'], result['ansible_facts']['demo'], result['invocation']])
    if secret_at != 'key':
        assert PASSWORD not in values
    # only the small part that holds the password went through remove_values, once for both copies
    assert all(len(c) < k2_module.SCRUB_SPLIT_CHARS for c in calls)
    assert sum(1 for c in calls if 'vol-' in c) == 1


def test_digit_password_masks_numbers_as_ansible_does(no_server_conn, capsys, monkeypatch):
    result, failed, calls = run(no_server_conn, capsys, monkeypatch, secret_at='number', password='77')
    plain, dummy, dummy = run(no_server_conn, capsys, monkeypatch, secret_at='number', password='77', plain=True)
    assert not failed
    assert result == plain
    assert result['demo']['volumes'][5]['size'] == MASK
    assert result['demo']['volumes'][77]['id'] == MASK
    assert result['demo']['volumes'][77]['name'] == 'vol-00********'
    assert result['demo']['volumes'][6]['size'] == 1048576 * 6


@pytest.mark.parametrize('secret_at', [None, 'message', 'nested'])
def test_fail_is_scrubbed_as_ansible_does(no_server_conn, capsys, monkeypatch, secret_at):
    result, failed, calls = run(no_server_conn, capsys, monkeypatch, secret_at=secret_at, fail=True)
    plain, plain_failed, dummy = run(no_server_conn, capsys, monkeypatch, secret_at=secret_at, fail=True, plain=True)
    assert failed and plain_failed
    assert result == plain
    assert PASSWORD not in json.dumps(result)
    if secret_at == 'message':
        assert result['msg'] == 'could not do it with password ********'


def test_warnings_are_handled_as_ansible_does(no_server_conn, capsys, monkeypatch):
    # validate_certs false makes K2Module warn; exit_json adds the warning to the result
    result, failed, dummy = run(no_server_conn, capsys, monkeypatch, validate_certs=False)
    plain, dummy, dummy = run(no_server_conn, capsys, monkeypatch, validate_certs=False, plain=True)
    assert not failed
    assert result == plain
    assert any('validate_certs is false' in str(w) for w in result['warnings'])


def test_remove_values_is_restored_after_exit(no_server_conn, capsys, monkeypatch):
    RESULT.clear()
    RESULT['facts'] = facts()
    original = ansible_basic.remove_values
    result, failed = run_module(demo_main, dict(no_server_conn, k2_password=PASSWORD), capsys)
    assert not failed and result['demo'] == facts()
    assert ansible_basic.remove_values is original


# ------------------------------------------------------------------ scrub_no_log against remove_values

TEXT = st.text(alphabet=st.sampled_from(list(u'ab"\\\n\t/*-\u00e9\u2603\U0001f600 ') + ['\x00', '\x7f']), max_size=8)
SCALARS = st.one_of(TEXT, st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), st.none())
VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(TEXT, children, max_size=5),
    st.tuples(children, children)), max_leaves=40)


# secrets from the same small alphabet (and digits), so that they often occur in the values, keys and numbers
SECRETS = st.lists(st.one_of(st.text(alphabet=st.sampled_from(list(u'ab"\\\n*-\u00e9\U0001f600 ')), max_size=2),
                             st.integers(0, 99).map(str)), max_size=3)


@given(value=st.dictionaries(TEXT, VALUES, max_size=6), secrets=SECRETS,
       split=st.sampled_from([0, 8, 64, 4096]))
def test_scrub_no_log_equals_remove_values(value, secrets, split):
    saved = k2_module.SCRUB_SPLIT_CHARS
    k2_module.SCRUB_SPLIT_CHARS = split
    try:
        expected = remove_values(value, secrets)
        got = scrub_no_log(value, secrets, remove_values)
    finally:
        k2_module.SCRUB_SPLIT_CHARS = saved
    assert json.dumps(got, sort_keys=False) == json.dumps(expected, sort_keys=False)


def test_scrub_no_log_shares_one_scrub_between_two_copies():
    shared = {'big': ['x' * 100] * 100, 'small': {'who': 'admin'}}
    calls = []

    def counting(value, no_log_strings):
        calls.append(value)
        return remove_values(value, no_log_strings)

    got = scrub_no_log({'a': {'k2': shared}, 'b': shared}, ['admin'], counting)
    assert got['a']['k2'] is got['b']
    assert got['b']['small'] == {'who': MASK} and got['b']['big'] is shared['big']
    assert calls == [{'who': 'admin'}]


def test_scrub_no_log_hands_unknown_types_to_remove_values():
    value = {'raw': b'bytes s3cr3t', 'nan': float('nan'), 'set': set(['s3cr3t']), 'ok': 'fine'}
    got = scrub_no_log(value, ['s3cr3t'], remove_values)
    expected = remove_values(value, ['s3cr3t'])
    assert got['raw'] == expected['raw'] == b'bytes ********'
    assert got['set'] == expected['set'] and got['ok'] == 'fine'


# ------------------------------------------------------------------ record_sharing: the facts held twice are encoded once

def raw_stdout(conn, capsys, monkeypatch, plain, secret_at=None, **args):
    """Run DemoResult; returns exactly what it printed."""
    RESULT.clear()
    RESULT['facts'] = facts(secret_at)
    RESULT['message'] = 'nothing'
    if plain:
        monkeypatch.setattr(k2_module, 'scrubbing_only_what_holds_secrets', contextlib.nullcontext)
    try:
        with patch_module_args(dict(conn, k2_password=PASSWORD, **args)):
            with pytest.raises(SystemExit):
                demo_main()
    finally:
        monkeypatch.undo()
    return capsys.readouterr().out


@pytest.mark.parametrize('secret_at', [None, 'nested', 'key'])
@pytest.mark.parametrize('fail', [False, True])
def test_exit_prints_the_same_characters_as_ansible(no_server_conn, capsys, monkeypatch, secret_at, fail):
    calls = []
    original = k2_module.record_sharing

    def spy(record, result, texts=None):
        calls.append(dict(texts or {}))
        return original(record, result, texts)

    monkeypatch.setattr(k2_module, 'record_sharing', spy)
    fast = raw_stdout(no_server_conn, capsys, monkeypatch, False, secret_at=secret_at, fail=fail)
    plain = raw_stdout(no_server_conn, capsys, monkeypatch, True, secret_at=secret_at, fail=fail)
    assert fast == plain
    assert len(calls) == 1
    if not fail:
        parsed = json.loads(fast)
        assert parsed['demo'] == parsed['ansible_facts']['demo']
    # facts held twice: the scrub checked the texts Ansible's encoder made (of the whole facts without the password,
    # else of their parts without it), which are printed twice; fail() holds them once (details)
    texts = calls[0]
    if fail:
        assert texts == {}
    elif secret_at is None:
        assert len(texts) == 3      # volumes, system, hosts: the facts dict itself is split
    else:
        assert len(texts) > 100 and all(PASSWORD not in text for dummy, text in texts.values())


def test_record_sharing_encodes_the_shared_facts_once(capsys, monkeypatch):
    monkeypatch.setattr(ansible_basic, '_ANSIBLE_PROFILE', 'legacy')
    shared = facts()
    result = {'changed': False, 'ansible_facts': {'demo': shared, 'other': 1}, 'demo': shared, 'n': None}
    encoded = []

    def record(value):
        encoded.append(value)
        ansible_basic.AnsibleModule._record_module_result(None, value)

    record(result)
    expected = capsys.readouterr().out
    del encoded[:]
    k2_module.record_sharing(record, result)
    assert capsys.readouterr().out == expected
    # the facts once (as the item of a list), and the result with a marker in place of the facts
    assert len(encoded) == 2 and encoded[0] == [shared]
    assert isinstance(encoded[1]['demo'], str) and encoded[1]['ansible_facts']['demo'] == encoded[1]['demo']


@given(value=st.dictionaries(TEXT, VALUES, max_size=4), shared=VALUES, keys=st.lists(TEXT, min_size=2, max_size=4))
def test_record_sharing_prints_what_record_prints(value, shared, keys):
    if not isinstance(shared, (dict, list)):
        shared = [shared]
    result = dict(value)
    result[keys[0]] = shared
    result.setdefault('nested', {})
    if isinstance(result['nested'], dict):
        result['nested'] = dict(result['nested'], **{keys[-1]: shared})
    out = {}

    def record(item):
        # what AnsibleModule._record_module_result prints, with the encoder of the legacy profile
        sys.stdout.write('\n%s\n' % json.dumps(item, cls=ENCODER))

    for name, func in (('plain', record), ('sharing', lambda item: k2_module.record_sharing(record, item))):
        capture = k2_module._Capture()
        saved, sys.stdout = sys.stdout, capture
        try:
            func(result)
        finally:
            sys.stdout = saved
        out[name] = capture.text()
    assert out['sharing'] == out['plain']


def test_scrub_no_log_encodes_facts_held_twice_once(monkeypatch):
    shared = facts()
    texts = []
    original = k2_module._json_text

    def spy(value):
        text = original(value)
        texts.append(text or '')
        return text

    monkeypatch.setattr(k2_module, '_json_text', spy)
    got = scrub_no_log({'ansible_facts': {'demo': shared}, 'demo': shared, 'invocation': {'pw': PASSWORD}},
                       [PASSWORD], remove_values)
    assert got['demo'] is got['ansible_facts']['demo'] and got['demo'] == shared
    assert got['demo']['volumes'] is shared['volumes']
    assert got['invocation'] == {'pw': MASK}
    assert sum(1 for text in texts if 'vol-0001' in text) == 1


def module_encode(item):
    """What ``k2_module.module_text`` gives with Ansible's own ``_record_module_result`` (legacy profile)."""
    text = json.dumps([item], cls=ENCODER)
    return text[1:-1]


@given(value=st.dictionaries(TEXT, VALUES, max_size=4), shared=VALUES, secrets=SECRETS,
       split=st.sampled_from([0, 64, 4096]))
def test_scrub_no_log_with_module_encoder_equals_remove_values(value, shared, secrets, split):
    if not isinstance(shared, (dict, list)):
        shared = [shared]
    value = dict(value, one={'facts': shared}, two=shared)
    saved = k2_module.SCRUB_SPLIT_CHARS
    k2_module.SCRUB_SPLIT_CHARS = split
    texts = {}
    try:
        expected = remove_values(value, secrets)
        got = scrub_no_log(value, secrets, remove_values, encode=module_encode, texts=texts)
    finally:
        k2_module.SCRUB_SPLIT_CHARS = saved
    assert json.dumps(got, sort_keys=False) == json.dumps(expected, sort_keys=False)
    for item, text in texts.values():
        assert text == module_encode(item)


def test_scrub_no_log_uses_module_text_only_for_plain_values():
    ok = {'a': [1, 2.5, None, True, u'\u00e9']}
    assert k2_module._plain(ok)
    for bad in ({'a': (1, 2)}, {'a': float('nan')}, {1: 'x'}, {'a': b'x'}, {'a': set()}, {'a': [type('S', (str,), {})('x')]}):
        assert not k2_module._plain(bad)
    texts = {}
    shared = {'when': (1, 2), 'who': 'x'}
    got = scrub_no_log({'one': {'f': shared}, 'two': shared}, ['zz'], remove_values, encode=module_encode, texts=texts)
    assert got['two'] == shared and texts == {}


# ------------------------------------------------------------------ stdlib_twin: the C encoder where it writes the same text

PLAIN_VALUES = st.recursive(
    st.one_of(TEXT, st.integers(-2 ** 80, 2 ** 80), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none()),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(TEXT, children, max_size=5)), max_leaves=40)


def ansible_record(monkeypatch):
    """Ansible's own _record_module_result, with the module profile exit_json uses."""
    monkeypatch.setattr(ansible_basic, '_ANSIBLE_PROFILE', 'legacy')
    return lambda value: ansible_basic.AnsibleModule._record_module_result(None, value)


@given(value=PLAIN_VALUES)
def test_stdlib_twin_writes_what_ansible_writes_for_plain_values(value):
    with pytest.MonkeyPatch.context() as monkeypatch:
        record = ansible_record(monkeypatch)
        twin = k2_module.stdlib_twin(record)
        assert twin is not None           # ansible-core 2.19: the stdlib encoder, ensure_ascii off
        assert twin(value) == k2_module.module_text(record, value)


def test_stdlib_twin_is_refused_when_the_module_encoder_writes_otherwise():
    def sorted_record(value):
        sys.stdout.write('\n%s\n' % json.dumps(value, sort_keys=True, ensure_ascii=False))

    def spaced_record(value):
        sys.stdout.write('\n%s\n' % json.dumps(value, separators=(',', ':')))

    for record in (sorted_record, spaced_record):
        assert k2_module.stdlib_twin(record) is None
    assert k2_module.stdlib_twin(lambda value: sys.stdout.write('\n%s\n' % json.dumps(value))) is not None


def test_exit_encodes_the_facts_with_the_c_encoder_not_ansibles(no_server_conn, capsys, monkeypatch):
    # The scrub's texts of the facts come from the twin: Ansible's encoder is called for the result with markers only.
    calls = []
    original = ENCODER.default

    def counting_default(self, o):
        calls.append(type(o).__name__)
        return original(self, o)

    monkeypatch.setattr(ENCODER, 'default', counting_default)
    fast = raw_stdout(no_server_conn, capsys, monkeypatch, False)
    fast_calls = len(calls)
    del calls[:]
    monkeypatch.setattr(ENCODER, 'default', counting_default)
    plain = raw_stdout(no_server_conn, capsys, monkeypatch, True)
    assert fast == plain
    # 400 volumes of 7 fields with a tags list each, held twice: Ansible's path visits every container of both copies
    assert len(calls) > 2 * 400 and fast_calls < 100, (fast_calls, len(calls))
