# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The replication helpers: bounded waits, RPO rule, what counts as an unreachable array, session views."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kaminario.k2.plugins.module_utils import k2_replication as rep
from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import (
    K2AuthError, K2BusyError, K2ConnectionError, K2Error, K2TimeoutError, K2TLSError,
)


class FakeClock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(rep, '_now', fake.monotonic)
    monkeypatch.setattr(rep, '_pause', fake.sleep)
    return fake


def test_wait_for_returns_what_it_saw_when_done(clock):
    answers = iter([(False, 'idle'), (False, 'idle'), (True, 'in_sync')])
    assert rep.wait_for(lambda: next(answers), timeout=10, interval=2, step='x') == 'in_sync'
    assert clock.sleeps == [2, 2]


def test_wait_for_times_out_naming_the_step_and_the_last_state(clock):
    calls = []

    def check():
        calls.append(clock.now)
        return False, 'suspended/target'
    with pytest.raises(rep.K2WaitTimeout) as caught:
        rep.wait_for(check, timeout=3, interval=1, step="remote session 'rs1' idle")
    assert calls == [0.0, 1.0, 2.0, 3.0]
    assert str(caught.value) == "Timed out after 3s waiting for remote session 'rs1' idle (last seen: suspended/target)"
    assert caught.value.step == "remote session 'rs1' idle"
    assert 're-run the task' in caught.value.hint


def test_wait_for_with_zero_timeout_checks_once(clock):
    with pytest.raises(rep.K2WaitTimeout):
        rep.wait_for(lambda: (False, None), timeout=0, interval=1, step='s')
    assert clock.sleeps == []


def test_wait_for_lets_k2_errors_through(clock):
    def check():
        raise K2ConnectionError('gone')
    with pytest.raises(K2ConnectionError):
        rep.wait_for(check, timeout=5, interval=1, step='s')


@pytest.mark.parametrize('rpo,problem', [
    (60, None), (300, None), (600, None), (86400, None),
    (0, 'for example 300 or 600'), (30, 'for example 300 or 600'), (120, 'for example 300 or 600'),
    (301, 'for example 300 or 600'), (899, 'for example 600 or 900'), (-300, 'for example 300 or 600'),
])
def test_rpo_rule(rpo, problem):
    got = rep.rpo_problem(rpo)
    if problem is None:
        assert got is None
    else:
        assert problem in got and 'rpo=%d' % rpo in got


@pytest.mark.parametrize('exc,unreachable', [
    (K2ConnectionError('refused'), True),
    (K2TimeoutError('slow'), True),
    (K2BusyError('503', status=503), True),
    (K2TLSError('bad cert'), False),
    (K2AuthError('nope', status=401), False),
    (K2Error('invalid', status=400), False),
])
def test_what_counts_as_an_unreachable_array(exc, unreachable):
    assert rep.is_unreachable(exc) is unreachable


def test_rep_name_is_cinders_rule():
    assert rep.rep_name('vg1') == 'rvg1'
    assert rep.rep_name('ssn-1') == 'rssn-1'


def test_session_view_prefers_the_data_time_of_the_replica():
    session = {'id': 7, 'name': 'rs1', 'local_volume_group': {'ref': '/volume_groups/8'}, 'state': 'in_sync',
               'current_role': 'target', 'rpo': '300', 'generation_number': 4, 'current_snapshot_progress': 100}
    snap = {'name': 'rvg1:r1-g4', 'creation_time': 200.0, 'data_creation_time': 150.0}
    view = rep.session_view(session, snap, array='dr:443', group_name='rvg1')
    assert view == {'id': 7, 'name': 'rs1', 'array': 'dr:443', 'volume_group': 'rvg1', 'volume_group_id': 8,
                    'state': 'in_sync', 'role': 'target', 'rpo': 300, 'generation_number': 4,
                    'current_snapshot_progress': 100, 'last_synced_snapshot': 'rvg1:r1-g4', 'last_synced_time': 150.0}
    assert rep.snapshot_time({'creation_time': 200}) == 200.0
    assert rep.snapshot_time(None) is None
    assert rep.session_view(None) == {}


def test_client_from_connection_keeps_the_secret_out_of_errors():
    client = rep.client_from_connection({'k2_host': '127.0.0.1:1', 'k2_username': 'u', 'k2_password': 'pw-123', 'timeout': 5,
                                         'retries': 0, 'retry_max_wait': 0})
    assert client.base_url == 'https://127.0.0.1:1'
    assert client.retries == 0 and client.timeout == 5.0
    with pytest.raises(ValueError) as caught:
        rep.client_from_connection({'k2_host': 'https://x/', 'k2_username': 'u', 'k2_password': 'pw-123'})
    assert 'pw-123' not in str(caught.value)
