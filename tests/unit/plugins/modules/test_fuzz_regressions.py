# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The exact inputs with which tests/reliability/test_fuzz.py (issue 8) found a traceback, a message that does not
name the option, or a value let through; each must now fail cleanly, naming the option, before anything is done."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.modules import k2_volume_copy
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import run_module


def local(path):
    return {'driver_volume_type': 'local', 'data': {'device_path': str(path)}}


@pytest.fixture
def devices(tmp_path):
    paths = []
    for name in ('src', 'dst'):
        path = tmp_path / name
        path.write_bytes(b'\0' * 65536)
        paths.append(path)
    return paths


@pytest.mark.parametrize('transport', [['local'], {'a': 1}])
def test_volume_copy_unhashable_driver_volume_type(devices, capsys, transport):
    """A list as driver_volume_type raised TypeError (unhashable) in validate_connection_info: a traceback."""
    src, dst = devices
    args = dict(source=local(src), destination={'driver_volume_type': transport, 'data': {'device_path': '/x'}},
                _ansible_check_mode=True)
    result, failed = run_module(k2_volume_copy.main, args, capsys)
    assert failed
    assert 'destination.driver_volume_type' in result['msg']
    assert 'exception' not in result


@pytest.mark.parametrize('interval', [float('nan'), 'nan', float('inf')])
def test_volume_copy_progress_interval_not_a_number(devices, capsys, interval):
    """progress_interval=nan passed the '<= 0' check (nan compares false) and reached the copy."""
    src, dst = devices
    args = dict(source=local(src), destination=local(dst), progress_interval=interval, _ansible_check_mode=True)
    result, failed = run_module(k2_volume_copy.main, args, capsys)
    assert failed
    assert "option 'progress_interval'" in result['msg']


def test_host_mapping_iqn_of_another_host_names_the_option(k2_server, conn, capsys):
    """The refusal of an IQN registered for another host said "iSCSI initiator(s) already registered ..." without naming
    the option (fuzz case: host=fz000, iqns=[the IQN of the seeded host fz-host])."""
    from ansible_collections.kaminario.k2.plugins.modules import k2_host_mapping
    from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import hits, paged
    from ansible_collections.kaminario.k2.tests.unit.plugins.modules.test_k2_host_mapping import IQN, find_host
    k2_server.register(
        find_host('h1'),
        ('GET', 'host_iqns', paged({'iqn__in': IQN}, 'id,iqn,host'), None, 200, hits([{'id': 20, 'iqn': IQN, 'host': {'ref': '/hosts/9'}}])),
        ('GET', 'hosts', paged({'id__in': '9'}, 'id,name'), None, 200, hits([{'id': 9, 'name': 'other'}])),
    )
    result, failed = run_module(k2_host_mapping.main, dict(conn, host='h1', iqns=[IQN]), capsys)
    assert failed
    assert 'options initiator/iqns' in result['msg']
    assert all(r.method == 'GET' for r in k2_server.received)


def _target(conn):
    return dict((k, conn[k]) for k in ('k2_host', 'k2_username', 'k2_password') if k in conn)


@pytest.mark.parametrize('option', ['target', 'peer'])
def test_replication_dict_option_given_a_string_names_the_option(k2_server, conn, capsys, option):
    """ansible-core said only "dictionary requested, could not parse JSON or key=value" for target='x'."""
    from ansible_collections.kaminario.k2.plugins.modules import k2_replication
    result, failed = run_module(k2_replication.main, dict(conn, name='fz-rep', **{option: 'x'}), capsys)
    assert failed
    assert result['msg'].startswith("argument '%s': dictionary requested" % option)
    assert k2_server.received == []


@pytest.mark.parametrize('extra, says', [
    (dict(source_probe_timeout=0), 'source_probe_timeout is 0'),
    (dict(max_data_loss=-1), 'max_data_loss is -1'),
    (dict(sync_round_seconds=-5), 'sync_round_seconds is -5'),
    (dict(test_view='a b'), "test_view 'a b' is not a valid K2 name"),
    (dict(test_host='x' * 43), 'test_host'),
    (dict(poll_interval=float('nan')), 'poll_interval'),
    (dict(sessions=[dict(name='fz-rep', remote_session_name='a/b')]), 'sessions[0].remote_session_name'),
])
def test_failover_options_checked_before_any_request(k2_server, conn, capsys, extra, says):
    """These values were ignored by state test_cleanup (or passed a '<= 0' test as nan) and the task succeeded."""
    from ansible_collections.kaminario.k2.plugins.modules import k2_failover
    args = dict(conn, sessions=[dict(name='fz-rep')], state='test_cleanup', target=_target(conn))
    args.update(extra)
    result, failed = run_module(k2_failover.main, args, capsys)
    assert failed
    assert says in result['msg']
    assert k2_server.received == []


def test_replication_poll_interval_nan(k2_server, conn, capsys):
    from ansible_collections.kaminario.k2.plugins.modules import k2_replication
    result, failed = run_module(k2_replication.main, dict(conn, name='fz-rep', poll_interval=float('nan')), capsys)
    assert failed and 'poll_interval' in result['msg']
    assert k2_server.received == []


@pytest.mark.parametrize('option, value', [('target', [1]), ('peer', 1), ('peer', [1]), ('peer', 1.5), ('target', ['a']),
                                           ('target', True)])
def test_replication_dict_option_given_a_non_dict_names_the_option(k2_server, conn, capsys, option, value):
    """ansible-core's sub-option validation raised TypeError ("argument of type 'int' is not iterable") for target=[1] or
    peer=1: a traceback instead of a failed task (fuzz case: name=fz-rep, target=[1])."""
    from ansible_collections.kaminario.k2.plugins.modules import k2_replication
    result, failed = run_module(k2_replication.main, dict(conn, name='fz-rep', **{option: value}), capsys)
    assert failed
    assert result['msg'].startswith("argument '%s' is of type %s" % (option, type(value).__name__))
    assert 'exception' not in result
    assert k2_server.received == []


def test_failover_target_given_a_list_names_the_option(k2_server, conn, capsys):
    from ansible_collections.kaminario.k2.plugins.modules import k2_failover
    result, failed = run_module(k2_failover.main, dict(conn, sessions=[dict(name='fz-rep')], state='test_cleanup', target=[1]), capsys)
    assert failed
    assert result['msg'].startswith("argument 'target' is of type list")
    assert k2_server.received == []


@pytest.mark.parametrize('name', ['', 'a b', 'x' * 43, 'fz/peer'])
def test_replication_peer_name_checked_before_any_request(k2_server, conn, capsys, name):
    """peer.name was not checked: peer={'name': ''} looked the peer up with an empty name filter, which K2 does not
    take as a filter, so the one peer array object there (fz-peer) was taken for it and the task succeeded
    (fuzz case: name=fz-rep, peer={'name': ''})."""
    from ansible_collections.kaminario.k2.plugins.modules import k2_replication
    result, failed = run_module(k2_replication.main, dict(conn, name='fz-rep', target=_target(conn), peer=dict(name=name)), capsys)
    assert failed
    assert result['msg'].startswith('peer.name %r is not a valid K2 name' % name)
    assert k2_server.received == []


@pytest.mark.parametrize('value', ['x', ['x'], [{'volume': 'fz-rvol'}, 'y']])
def test_replication_peer_volumes_given_text_names_the_option(k2_server, conn, capsys, value):
    """A list of dicts with sub-options given a string said only "dictionary requested, could not parse JSON or
    key=value" (fuzz case: name=fz-rep, confirm_teardown='maybe', peer_volumes='x')."""
    from ansible_collections.kaminario.k2.plugins.modules import k2_replication
    result, failed = run_module(k2_replication.main, dict(conn, name='fz-rep', confirm_teardown='maybe', peer_volumes=value), capsys)
    assert failed
    assert result['msg'].startswith("argument 'peer_volumes': dictionary requested")
    assert k2_server.received == []
