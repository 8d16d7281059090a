# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Machinery of the chaos runs (issue 8): seeding without faults, a fault profile, a playbook run under faults with
lost create answers re-armed while it runs, the counts of what was injected, the checks after the run, and the
report lines (stdout and the JSON lines file named by ``K2_CHAOS_REPORT``)."""

import collections
import json
import os
import random
import threading
import time

from k2lab import OPERATOR, duplicates, lun_clashes, orphans, ref_id

MIB = 1 << 20

# The fault profile of issue 8: small latency, 10 % HTTP 500, 10 % MC_ERR_BUSY, 5 % dropped connections, and lost
# answers to successful creates (re-armed while a playbook runs, see ``Rearm``).
PROFILE = {'latency_ms': 10, 'error_500_rate': 0.1, 'busy_rate': 0.1, 'drop_rate': 0.05}
FAULT_KINDS = ('500', 'busy', 'drop', 'lost_response', '429')


# --------------------------------------------------------------------------------------------- seeding (no faults)

def create(lab, array, resource, body):
    s = lab.rest(array)
    r = s.post('%s/%s' % (s.base, resource), data=json.dumps(body), timeout=60)
    assert r.status_code in (200, 201), (resource, body, r.status_code, r.text)
    return r.json()


def seed_volume(lab, array, name, mib, volume_group=None, dedup=True):
    """A volume of ``mib`` MiB in ``volume_group`` (created when missing; default ``<name>_vg``)."""
    vg_name = volume_group or '%s_vg' % name
    found = lab.get_all(array, 'volume_groups', name=vg_name)
    vg = found[0] if found else create(lab, array, 'volume_groups', {'name': vg_name, 'quota': 0, 'is_dedup': dedup})
    return create(lab, array, 'volumes', {'name': name, 'size': mib * 1024,
                                          'volume_group': {'ref': '/volume_groups/%d' % vg['id']}})


def seed_host(lab, array, name, iqn=None):
    host = create(lab, array, 'hosts', {'name': name, 'type': 'Linux'})
    if iqn:
        create(lab, array, 'host_iqns', {'iqn': iqn, 'host': {'ref': '/hosts/%d' % host['id']}})
    return host


def seed_mapping(lab, array, volume, host):
    vol = lab.get_all(array, 'volumes', name=volume)[0]
    hst = lab.get_all(array, 'hosts', name=host)[0]
    return create(lab, array, 'mappings', {'volume': {'ref': '/volumes/%d' % vol['id']},
                                           'host': {'ref': '/hosts/%d' % hst['id']}})


def write_data(lab, array, volume, seed, chunks=((0, 1), (2, 1)), tail=True):
    """Write pseudo-random MiB chunks ``(offset MiB, length MiB)`` (holes between them) and, with ``tail``, a last
    4 KiB block into the volume's backing file, as a host writing to it would; return the volume's sha256."""
    rnd = random.Random(seed)
    path = lab.volume_file(array, volume)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, length in chunks:
            os.pwrite(fd, rnd.randbytes(length * MIB), offset * MIB)
        if tail:
            os.pwrite(fd, rnd.randbytes(4096), size - 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
    return lab.sha256(array, volume)


# --------------------------------------------------------------------------------------------- state of an array

def by_id(objects):
    return dict((o['id'], o) for o in objects)


def state(inv):
    """An array's objects by name, without ids and times: what a declared end state is compared with.

    ``vgs`` {name: is_dedup}, ``volumes`` {name: (size KiB, group)}, ``snapshots`` {name: is_exposable} (user
    snapshots and views only: replication snapshots come and go), ``hosts`` {name: (type, host group)}, ``iqns``
    {iqn: host}, ``wwpns`` {pwwn: host}, ``mappings`` {(volume or view, host or host group): lun}, ``peers``
    {name: mgmt_host}, ``sessions`` {name: (state, role, volume group)}.
    """
    vgs, vols, snaps = by_id(inv['volume_groups']), by_id(inv['volumes']), by_id(inv['snapshots'])
    hosts = by_id(inv['hosts'])
    groups = by_id(inv['host_groups'])

    def name_of(ref, table):
        obj = table.get(ref_id(ref))
        return obj['name'] if obj else None

    def mapped_object(ref):
        path = str(ref['ref'] if isinstance(ref, dict) else ref)
        return name_of(ref, snaps if path.startswith('/snapshots/') else vols)

    def mapped_host(ref):
        path = str(ref['ref'] if isinstance(ref, dict) else ref)
        return name_of(ref, groups if path.startswith('/host_groups/') else hosts)

    return {
        'vgs': dict((v['name'], bool(v.get('is_dedup'))) for v in inv['volume_groups']),
        'volumes': dict((v['name'], (int(v['size']), name_of(v.get('volume_group'), vgs)))
                        for v in inv['volumes'] if v.get('volume_group')),
        'snapshots': dict((s['name'], bool(s.get('is_exposable'))) for s in inv['snapshots']
                          if not s.get('replication_session') and s.get('triggered_by', 'api') == 'api'
                          and not s.get('is_originating_from_peer')),
        'hosts': dict((h['name'], (h.get('type'), name_of(h.get('host_group'), groups))) for h in inv['hosts']),
        'iqns': dict((i['iqn'], name_of(i.get('host'), hosts)) for i in inv['host_iqns']),
        'wwpns': dict((p['pwwn'], name_of(p.get('host'), hosts)) for p in inv['host_fc_ports']),
        'mappings': dict(((mapped_object(m['volume']), mapped_host(m['host'])), m.get('lun')) for m in inv['mappings']),
        'peers': dict((p['name'], p.get('mgmt_host')) for p in inv['replication/peer_k2arrays']),
        'sessions': dict((s['name'], (s.get('state'), s.get('current_role'), name_of(s.get('local_volume_group'), vgs)))
                         for s in inv['replication/sessions']),
    }


# --------------------------------------------------------------------------------------------- faults

class Rearm(object):
    """While a playbook runs, arm ``lose_next_create_response`` again on each array once the last one was used, up
    to ``times`` lost answers per array (the setting is one-shot)."""

    def __init__(self, lab, arrays, times):
        self.lab, self.arrays, self.times = lab, arrays, times
        self.armed = dict((a, 0) for a in arrays)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.2):
            for array in self.arrays:
                if self.armed[array] >= self.times:
                    continue
                try:
                    if not self.lab._admin('GET', '/arrays/%s/faults' % array).get('lose_next_create_response'):
                        self.lab.faults(array, lose_next_create_response=True)
                        self.armed[array] += 1
                except Exception:  # the admin API is loopback and always up; a hiccup only skips a round
                    pass

    def __enter__(self):
        for array in self.arrays:
            self.lab.faults(array, lose_next_create_response=True)
            self.armed[array] += 1
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def fault_counts(log):
    counts = collections.Counter(entry.get('fault') for entry in log)
    return dict((kind, counts.get(kind, 0)) for kind in FAULT_KINDS if counts.get(kind, 0) or kind != '429')


def failure_messages(result):
    """The ``msg`` of each failed task of a playbook's output (one line each)."""
    messages = []
    for line in result.stdout.splitlines():
        if line.startswith('fatal:') or line.startswith('failed:'):
            payload = line.split('=> ', 1)[1] if '=> ' in line else line
            try:
                messages.append(str(json.loads(payload).get('msg')))
            except ValueError:
                messages.append(payload[:500])
    return messages


def assert_no_leak(result):
    assert OPERATOR[1] not in result.output, 'the password shows in the output of %r' % (result,)


def assert_clean_failure(result):
    """A failed run must say why in a message of the collection: no traceback, no module crash, no empty msg."""
    out = result.output
    assert result.rc != 'timeout', 'the playbook hung: %s' % out[-3000:]
    assert 'Traceback' not in out, out[-6000:]
    assert 'MODULE FAILURE' not in out, out[-6000:]
    messages = failure_messages(result)
    assert messages, 'rc=%s without a failed task: %s' % (result.rc, out[-3000:])
    for msg in messages:
        assert msg and msg != 'None' and len(msg) > 20, (msg, out[-3000:])
    return messages


class Report(object):
    """The figures of one chaos run, printed and appended to $K2_CHAOS_REPORT as a JSON line."""

    def __init__(self, name, seed, arrays):
        self.entry = {'playbook': name, 'seed': seed, 'arrays': list(arrays)}

    def faulted(self, result, logs):
        merged = [entry for log in logs.values() for entry in log]
        self.entry.update({
            'requests': len(merged),
            'requests_by_array': dict((a, len(log)) for a, log in logs.items()),
            'faults': fault_counts(merged),
            'rc': result.rc,
            'seconds': round(result.seconds, 1),
        })

    def rerun(self, changed_second, changed_third, objects_checked, messages=None):
        self.entry.update({'rerun_changed': changed_second, 'third_run_changed': changed_third,
                           'objects_checked_for_orphans': objects_checked, 'converged': True})
        if messages:
            self.entry['failure'] = messages[0][:300]

    def line(self):
        e = self.entry
        f = e.get('faults', {})
        return ('chaos %s (seed %s): %d requests, %d x 500, %d busy, %d drops, %d lost responses; rc=%s%s; '
                're-run converged (changed %s then %s); %d objects checked for orphans'
                % (e['playbook'], e['seed'], e.get('requests', 0), f.get('500', 0), f.get('busy', 0), f.get('drop', 0),
                   f.get('lost_response', 0), e.get('rc'),
                   (' (%s)' % e['failure'][:160]) if e.get('failure') else '',
                   e.get('rerun_changed'), e.get('third_run_changed'), e.get('objects_checked_for_orphans', 0)))

    def emit(self):
        print(self.line())
        path = os.environ.get('K2_CHAOS_REPORT')
        if path:
            with open(path, 'a') as fh:
                fh.write(json.dumps(self.entry, sort_keys=True) + '\n')


def count_objects(inv):
    return sum(len(inv[r]) for r in ('volumes', 'volume_groups', 'snapshots', 'hosts', 'host_groups'))


def chaos_run(lab, name, playbook, extra_vars=None, arrays=('primary',), faulted=None, seed=1, lost=3,
              target=None, check_done=None, profile=None, timeout=300):
    """One chaos round of ``playbook``:

    1. with the fault profile (and ``seed``) on ``faulted`` arrays (default all of ``arrays``) and up to ``lost``
       lost create answers per array, run it: rc 0 and ``check_done()`` holds, or rc != 0 with a clear message;
    2. without faults, run it again: rc 0 (and changed=0 if the first run succeeded: it had reached the state);
    3. when the second run changed something, a third run changes nothing;
    4. ``check_done()`` holds, and on every array of ``arrays``: no orphans, duplicates or LUN clashes.

    Returns the report (already printed and written).
    """
    faulted = tuple(faulted if faulted is not None else arrays)
    report = Report(name, seed, faulted)
    before = dict((a, lab.inventory(a)) for a in arrays)
    for array in faulted:
        lab.clear_requests(array)
        lab.faults(array, seed=seed + sum(map(ord, array)), **(profile or PROFILE))
    try:
        with Rearm(lab, faulted, lost):
            first = lab.playbook(playbook, extra_vars, target=target, timeout=timeout)
    finally:
        logs = dict((a, lab.requests_log(a)) for a in faulted)
        for array in faulted:
            lab.clear_faults(array)
    report.faulted(first, logs)
    assert_no_leak(first)
    messages = None
    if first.rc == 0:
        assert 'Traceback' not in first.output, first.output[-6000:]
        if check_done:
            check_done()
    else:
        messages = assert_clean_failure(first)
        print('chaos %s: failed cleanly under faults: %s' % (name, messages[0][:300]))

    second = lab.playbook(playbook, extra_vars, target=target, timeout=timeout)
    assert second.rc == 0, second.output[-4000:]
    assert_no_leak(second)
    changed_second = second.recap().get('changed')
    changed_third = None
    if first.rc == 0:
        assert changed_second == 0, ('a run that succeeded under faults had not reached the end state',
                                     second.stdout[-4000:])
    elif changed_second:
        third = lab.playbook(playbook, extra_vars, target=target, timeout=timeout)
        assert third.rc == 0, third.output[-4000:]
        changed_third = third.recap().get('changed')
        assert changed_third == 0, third.stdout[-4000:]
    if check_done:
        check_done()
    checked = 0
    for array in arrays:
        inv = lab.inventory(array)
        checked += count_objects(inv)
        assert orphans(inv, before=before[array]) == [], (array, orphans(inv, before=before[array]))
        assert duplicates(inv) == {}, (array, duplicates(inv))
        assert lun_clashes(inv) == [], (array, lun_clashes(inv))
    report.rerun(changed_second, changed_third, checked, messages)
    report.emit()
    return report


def wait_for(predicate, timeout=60, interval=0.2, what='condition'):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out waiting for %s' % what)


def sha256_file(path):
    import hashlib
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for block in iter(lambda: fh.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
