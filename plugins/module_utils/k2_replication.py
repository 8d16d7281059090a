# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
# SPDX-License-Identifier: BSD-2-Clause

"""What k2_replication and k2_failover share: the second (peer) array, bounded waits, session views.

* ``target_argument_spec()`` and ``K2TwoArrayModule``: the ``target`` option (a
  connection block for the peer array, secrets ``no_log``) and a second
  ``K2Client`` built from it, created on first use; request counters of both
  arrays in ``k2_requests``.
* ``wait_for()``: poll a predicate until it holds or ``timeout`` seconds pass;
  a timeout raises ``K2WaitTimeout`` naming the step and what was last seen.
* ``session_view()``: the user-facing summary of one session object (state,
  role, rpo, last synced generation and time).

Naming follows the Cinder K2 driver: the peer-side objects of ``X`` are named
``rX`` (``rep_name``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import (
    DEFAULT_RETRIES, DEFAULT_RETRY_MAX_WAIT, DEFAULT_TIMEOUT, K2BusyError, K2Client, K2ConnectionError, K2NotFoundError,
    K2TLSError, make_ref, ref_id, ref_path,
)
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import K2Module

SESSIONS = 'replication/sessions'
PEERS = 'replication/peer_k2arrays'
PEER_VOLUMES = 'replication/peer_volumes'
SESSION_STATES = ('idle', 'in_sync', 'suspended', 'failed_over')


def rep_name(name):
    """The Cinder driver's peer-side name of an object: ``r`` + the name (``vg1`` -> ``rvg1``)."""
    return 'r' + name


def rpo_problem(rpo, option='rpo'):
    """``None`` when ``rpo`` (seconds) is one K2 accepts (60, or a positive multiple of 300), else the sentence why not."""
    if rpo is None:
        return None
    if rpo == 60 or (rpo > 0 and rpo % 300 == 0):
        return None
    lower = max(300, (rpo // 300) * 300)
    return ('%s=%s is not an RPO K2 accepts: use 60 (one minute) or a multiple of 300 seconds (five minutes), '
            'for example %d or %d.' % (option, rpo, lower, lower + 300))


# --------------------------------------------------------------------------- the peer connection

def target_argument_spec():
    """The ``target`` option: the peer (secondary) array's connection, documented in each module."""
    return dict(
        type='dict',
        options=dict(
            k2_host=dict(type='str', required=True),
            k2_username=dict(type='str'),
            k2_password=dict(type='str', no_log=True),
            k2_token=dict(type='str', no_log=True),
            k2_sdp_id=dict(type='str'),
            validate_certs=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            timeout=dict(type='int', default=DEFAULT_TIMEOUT),
            retries=dict(type='int', default=DEFAULT_RETRIES),
            retry_max_wait=dict(type='int', default=DEFAULT_RETRY_MAX_WAIT),
        ),
        required_together=[('k2_username', 'k2_password'), ('k2_token', 'k2_sdp_id')],
        mutually_exclusive=[('k2_username', 'k2_token'), ('k2_password', 'k2_token')],
        required_one_of=[('k2_username', 'k2_token')],
    )


def client_from_connection(conn, trace_file=None):
    """A ``K2Client`` from a connection dict (the ``target`` option's keys). Raises ``ValueError`` on bad values."""
    return K2Client(conn['k2_host'], username=conn.get('k2_username'), password=conn.get('k2_password'),
                    token=conn.get('k2_token'), sdp_id=conn.get('k2_sdp_id'),
                    validate_certs=conn.get('validate_certs', True), ca_path=conn.get('ca_path'),
                    timeout=DEFAULT_TIMEOUT if conn.get('timeout') is None else conn['timeout'],
                    retries=DEFAULT_RETRIES if conn.get('retries') is None else conn['retries'],
                    retry_max_wait=DEFAULT_RETRY_MAX_WAIT if conn.get('retry_max_wait') is None else conn['retry_max_wait'],
                    trace_file=trace_file)


def is_unreachable(exc):
    """True for errors that mean "the array is not there or not serving" (not for TLS, auth or validation errors)."""
    return isinstance(exc, (K2ConnectionError, K2BusyError)) and not isinstance(exc, K2TLSError)


class K2TwoArrayModule(K2Module):
    """``K2Module`` with a second array: ``self.target`` is the client of the ``target`` connection block.

    ``k2_requests`` counts the requests to both arrays (``total`` and per
    method) and gives each array's own counts under ``source`` and ``target``.
    """

    def __init__(self, **kwargs):
        super(K2TwoArrayModule, self).__init__(**kwargs)
        self._target = None
        conn = self.params.get('target')
        if conn and not conn.get('validate_certs', True):
            self.module.warn('target.validate_certs is false: the peer array certificate is not checked, so anyone on the '
                             'network path can impersonate it and read its credentials. Set target.ca_path instead.')
        if conn:
            # Only builds the client (no request): a bad target option fails here, before the first request to either array.
            try:
                self._target = client_from_connection(conn, trace_file=self.params.get('trace_file'))
            except ValueError as exc:
                self.fail('target: %s' % exc)

    @property
    def target(self):
        if self._target is None:
            self.fail('This task needs the peer array: set target (k2_host, k2_username and k2_password, or '
                      'k2_token and k2_sdp_id, and ca_path) to the connection of the secondary array.')
        return self._target

    def request_counters(self):
        source = self._client.counters() if self._client is not None else {'total': 0}
        target = self._target.counters() if self._target is not None else {'total': 0}
        merged = {}
        for counts in (source, target):
            for key, value in counts.items():
                merged[key] = merged.get(key, 0) + value
        merged['source'] = source
        merged['target'] = target
        return merged

    def _close(self):
        super(K2TwoArrayModule, self)._close()
        if self._target is not None:
            self._target.close()
            if self._target.trace_error and self._target.trace_error != getattr(self._client, 'trace_error', None):
                self.module.warn('target: ' + self._target.trace_error)


# --------------------------------------------------------------------------- waits

class K2WaitTimeout(Exception):
    """A bounded wait ran out: ``step`` names what was awaited, ``seen`` what was last observed."""

    def __init__(self, step, timeout, seen=None):
        self.step = step
        self.timeout = timeout
        self.seen = seen
        self.hint = ('The arrays may still be converging: re-run the task (it continues from the observed state), or '
                     'raise wait_timeout.')
        text = 'Timed out after %ss waiting for %s' % (_num(timeout), step)
        if seen is not None:
            text += ' (last seen: %s)' % seen
        super(K2WaitTimeout, self).__init__(text)


def _now():
    return time.monotonic()


def _pause(seconds):
    time.sleep(seconds)


def wall_clock():
    """Seconds since the epoch (array timestamps use it); a function so that tests can fix it."""
    return time.time()


def wait_for(check, timeout, interval, step):
    """Call ``check()`` until it returns ``(True, seen)``; return ``seen``.

    ``check`` returns ``(done, seen)``: ``seen`` describes the observed state
    for the timeout message. The first check happens at once; then one every
    ``interval`` seconds until ``timeout`` seconds have passed, when
    ``K2WaitTimeout`` names ``step``. A K2 error inside ``check`` propagates.
    """
    deadline = _now() + max(0, timeout)
    while True:
        done, seen = check()
        if done:
            return seen
        if _now() + interval > deadline:
            raise K2WaitTimeout(step, timeout, seen)
        _pause(interval)


# --------------------------------------------------------------------------- sessions

def find_session(client, name):
    """The session named ``name`` on ``client``'s array, or ``None``."""
    return client.get_by_name(SESSIONS, name)


def session_state(session):
    if session is None:
        return 'absent'
    return '%s/%s' % (session.get('state'), session.get('current_role'))


def replicated_snapshot(client, session):
    """The last snapshot replicated by ``session`` on ``client``'s array, or ``None`` (at most one request).

    Uses the session's ``latest_replicated_snapshot`` ref.
    """
    ref = session.get('latest_replicated_snapshot') if session else None
    if not ref:
        return None
    try:
        return client.get('snapshots', ref_id(ref))
    except K2NotFoundError:
        # A snapshot deleted between the two reads is not an error: there is just no time to report.
        return None


def snapshot_time(snap):
    """The point in time a replicated snapshot holds: ``data_creation_time`` when K2 gives it, else ``creation_time``."""
    if not snap:
        return None
    for key in ('data_creation_time', 'creation_time'):
        if snap.get(key) is not None:
            try:
                return float(snap[key])
            except (TypeError, ValueError):
                continue
    return None


def session_view(session, snapshot=None, array=None, group_name=None):
    """The ``session`` return value of one side: name, state, role, rpo, last synced generation and time."""
    if session is None:
        return {}
    synced = snapshot_time(snapshot)
    return {
        'id': session.get('id'),
        'name': session.get('name'),
        'array': array,
        'volume_group': group_name,
        'volume_group_id': ref_id(session['local_volume_group']) if session.get('local_volume_group') else None,
        'state': session.get('state'),
        'role': session.get('current_role'),
        'rpo': _int_or_none(session.get('rpo')),
        'generation_number': session.get('generation_number'),
        'current_snapshot_progress': session.get('current_snapshot_progress'),
        'last_synced_snapshot': snapshot.get('name') if snapshot else None,
        'last_synced_time': synced,
    }


def session_ref(session):
    return make_ref(SESSIONS, session['id'])


def same_ref(a, b):
    try:
        return a is not None and b is not None and ref_path(a) == ref_path(b)
    except ValueError:
        return False


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _num(value):
    return ('%f' % value).rstrip('0').rstrip('.')
