# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 8, outages: the array goes down in the middle of a run (or before it), and k2sim dies by SIGKILL in the
middle of a run and comes back on the same data directory.

Every run is a real ``ansible-playbook`` (playbooks/outage_steps.yml: a volume group, volumes created one task
each, then a host with its IQN and the mappings) with a small time budget from the environment. What must hold:

* the playbook fails, and fails within a bound computed from ``timeout`` (one deadline per API call, retries and
  back-off included): never a hang;
* the message is clear: no traceback, it names the array's address and the connection problem, and it reports at
  most ``retries + 1`` attempts;
* after a SIGKILL, every array database passes SQLite's ``PRAGMA integrity_check`` and the API serves the
  inventory;
* once the array is back, a re-run converges (rc 0), a second re-run changes nothing, and the array holds no
  orphans and no duplicates.
"""

import os
import re
import time

from k2lab import HERE, duplicates, integrity_check, lun_clashes, orphans

PLAYBOOK = os.path.join(HERE, 'playbooks', 'outage_steps.yml')

# The time budget of every API call in these runs (see plugins/doc_fragments/k2.py).
TIMEOUT, RETRIES, RETRY_MAX_WAIT = 4, 2, 1
BUDGET = {'K2_TEST_TIMEOUT': str(TIMEOUT), 'K2_TEST_RETRIES': str(RETRIES), 'K2_TEST_RETRY_MAX_WAIT': str(RETRY_MAX_WAIT)}
COUNT = 8                        # volumes of one run: 1 VG + 8 volumes + host + IQN + mappings = 12 writes
# The module that meets the outage makes one failing API call, then at most one undo call (a volume task
# that has just created the volume's group deletes it again), each within its own ``timeout``.
CALLS_AFTER_OUTAGE = 2
# Ansible's own share once the module has failed (result, recap, exit) on two loaded cores.
ANSIBLE_OVERHEAD = 8.0
FAILURE_BOUND = CALLS_AFTER_OUTAGE * TIMEOUT + ANSIBLE_OVERHEAD
# A run that starts against a down array: ansible-playbook's start, then one failing call.
STARTUP = 12.0


def env(prefix, count=COUNT, budget=True):
    out = {'OUTAGE_PREFIX': prefix, 'OUTAGE_COUNT': str(count)}
    if budget:
        out.update(BUDGET)
    return out


def assert_clear_failure(output, lab_host, reason):
    """The failure is an Ansible task failure with a one-line reason naming the array and the problem."""
    assert 'Traceback' not in output, output[-3000:]
    assert 'MODULE FAILURE' not in output, output[-3000:]
    messages = re.findall(r'"msg": "([^"]*)"', output)
    assert messages, output[-3000:]
    msg = messages[-1]
    assert lab_host in msg, msg
    assert re.search(reason, msg), msg
    attempts = re.search(r'(\d+) attempts', msg)
    assert attempts is None or int(attempts.group(1)) <= RETRIES + 1, msg
    return msg


def assert_converges(lab, prefix, count=COUNT, before=None):
    """A re-run (normal time budget) converges, the next changes nothing, and the array is clean."""
    again = lab.playbook(PLAYBOOK, env=env(prefix, count, budget=False), timeout=300)
    assert again.rc == 0, again.output[-3000:]
    third = lab.playbook(PLAYBOOK, env=env(prefix, count, budget=False), timeout=300)
    assert third.rc == 0, third.output[-3000:]
    assert third.recap().get('changed') == 0, third.stdout[-3000:]
    inv = lab.inventory()
    assert orphans(inv, before=before) == [], orphans(inv, before=before)
    assert duplicates(inv) == {}, duplicates(inv)
    assert lun_clashes(inv) == [], lun_clashes(inv)
    names = set(v['name'] for v in inv['volumes'])
    assert set('%s_vol%d' % (prefix, i) for i in range(count)) <= names
    host = [h for h in inv['hosts'] if h['name'] == '%s_host' % prefix]
    assert len(host) == 1
    mapped = [m for m in inv['mappings'] if m['host']['ref'] == '/hosts/%d' % host[0]['id']]
    assert len(mapped) == count
    return inv


def interrupt_run(lab, prefix, after_writes, interrupt, reason):
    """Start the playbook, call ``interrupt()`` once the array has taken ``after_writes`` writes, and check that
    the playbook then fails within FAILURE_BOUND with a clear message naming the array (its address before the
    interruption: a restarted k2sim listens on new ports) and ``reason``.
    Returns (seconds from the interruption to the failure, the message)."""
    host = lab.host()
    proc = lab.start_playbook(PLAYBOOK, env=env(prefix), log_name=prefix)
    try:
        lab.wait_for_writes(after_writes)
        interrupt()
        interrupted_at = time.time()
        proc.wait(FAILURE_BOUND + 60)          # a hang shows as TimeoutExpired here, long after the bound
        failed_after = time.time() - interrupted_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(proc.log_path) as fh:
        output = fh.read()
    assert proc.returncode == 2, output[-3000:]
    assert failed_after <= FAILURE_BOUND, (failed_after, FAILURE_BOUND, output[-3000:])
    return failed_after, assert_clear_failure(output, host, reason)


def test_array_down_mid_run_fails_fast_and_rerun_converges(lab):
    failed_after, msg = interrupt_run(lab, 'down', 5, lambda: lab.faults(down=True),
                                      r'Connection refused|Cannot talk to|did not answer|No answer')
    print('array down after 5 writes: failed %.1f s later (bound %.0f s = %d calls x timeout %d s + %.0f s); %s'
          % (failed_after, FAILURE_BOUND, CALLS_AFTER_OUTAGE, TIMEOUT, ANSIBLE_OVERHEAD, msg[:160]))

    lab.faults(down=False)
    assert_converges(lab, 'down')


def test_array_down_before_run_fails_fast(lab):
    lab.faults(down=True)
    run = lab.playbook(PLAYBOOK, env=env('before'), timeout=TIMEOUT + STARTUP + 60)
    assert run.rc == 2, run.output[-3000:]
    assert run.seconds <= TIMEOUT + STARTUP, (run.seconds, run.output[-3000:])
    msg = assert_clear_failure(run.output, lab.host(), r'Connection refused')
    assert run.recap().get('changed') == 0
    lab.faults(down=False)
    assert lab.writes() == []
    print('array down before the run: failed in %.1f s, ansible-playbook start included (bound %.0f s); %s'
          % (run.seconds, TIMEOUT + STARTUP, msg[:160]))


# Kill points: after the 3rd write (volumes being created one by one) and after the 10th (the host exists, its
# IQN and the mappings are being written). Every request waits LATENCY_MS, so the kill usually lands while a
# request is being handled.
KILL_POINTS = (3, 10)
LATENCY_MS = 60


def test_sigkill_mid_run_store_intact_and_rerun_converges(lab):
    db_paths = [info['db_path'] for info in lab.arrays_info().values()]
    for round_no, kill_after in enumerate(KILL_POINTS):
        prefix = 'kill%d' % round_no
        lab.clear_requests()
        lab.faults(latency_ms=LATENCY_MS)
        failed_after, msg = interrupt_run(lab, prefix, kill_after, lab.kill,
                                          r'Connection refused|Cannot talk to|may or may not have applied')

        # The store as the SIGKILL left it, then as the restarted k2sim serves it.
        dead = dict((path, integrity_check(path)) for path in db_paths)
        assert all(result == ['ok'] for result in dead.values()), dead
        lab.start()
        # New ports after every start: lab.env() (and so every later playbook) follows them.
        served = dict((path, integrity_check(path)) for path in db_paths)
        assert all(result == ['ok'] for result in served.values()), served
        inv = lab.inventory()
        assert duplicates(inv) == {}, duplicates(inv)
        print('SIGKILL after write %d (%s): playbook failed %.1f s later (bound %.0f s); integrity_check %s '
              'after the kill and after the restart; %d volumes, %d hosts served; %s'
              % (kill_after, prefix, failed_after, FAILURE_BOUND,
                 '/'.join(sorted(set(r[0] for r in list(dead.values()) + list(served.values())))),
                 len(inv['volumes']), len(inv['hosts']), msg[:120]))
        assert_converges(lab, prefix)
