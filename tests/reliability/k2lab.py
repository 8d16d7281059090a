# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A laboratory for the reliability and security tests (issue 8): k2sim as a real process, its admin API, and
the collection's playbooks run by ``ansible-playbook`` exactly as an operator runs them.

* ``Lab`` starts ``python -m k2sim serve`` on loopback (one process, several arrays, the users below), can
  SIGKILL it and start it again on the same data directory, injects faults, reads the request log, and reads
  every object of an array through the REST API (``inventory``) for the orphan, duplicate and LUN checks.
* ``Lab.playbook`` runs a playbook of ``playbooks/`` (or any path) with the collection importable as
  ``kaminario.k2`` and the array's connection in the environment (K2_HOST, K2_USERNAME, ...).

(A uniquely named module rather than conftest.py, so that an import never picks another suite's conftest.)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# USER:PASSWORD:ROLE. The modules log in as `operator`: its password (and the token below) appear nowhere
# else, so a search of any output for them finds only leaks, and Ansible's no_log masking of k2_password
# cannot blank out ordinary values such as a role named "admin".
OPERATOR = ('operator', 'Op3rator-Secret-42')
VIEWER = ('viewer', 'Vi3wer-Secret-77')
USERS = ('admin:admin:admin', '%s:%s:admin' % OPERATOR, '%s:%s:read_only' % VIEWER)

# What an inventory reads: every resource an orphan, duplicate or LUN check looks at.
INVENTORY_RESOURCES = ('volumes', 'volume_groups', 'snapshots', 'hosts', 'host_groups', 'host_iqns',
                       'host_fc_ports', 'mappings', 'replication/sessions', 'replication/peer_k2arrays',
                       'replication/peer_volumes')


def collections_root():
    """The directory holding ansible_collections/kaminario/k2 for this tree.

    The build copy (``.build/ansible_collections/kaminario/k2``, where ``./dev`` runs the stage) already is one;
    for a plain checkout, a private directory with a symlink named ansible_collections/kaminario/k2 is made.
    """
    parts = ROOT.split(os.sep)
    if parts[-3:-1] == ['ansible_collections', 'kaminario'] and parts[-1] == 'k2':
        return os.sep.join(parts[:-3])
    base = tempfile.mkdtemp(prefix='k2lab-coll-')
    os.makedirs(os.path.join(base, 'ansible_collections', 'kaminario'))
    os.symlink(ROOT, os.path.join(base, 'ansible_collections', 'kaminario', 'k2'))
    return base


class PlaybookResult(object):
    def __init__(self, argv, rc, stdout, stderr, seconds):
        self.argv, self.rc, self.stdout, self.stderr, self.seconds = argv, rc, stdout, stderr, seconds

    @property
    def output(self):
        return self.stdout + '\n' + self.stderr

    def recap(self):
        """{'ok': n, 'changed': n, 'failed': n, ...} of the PLAY RECAP (summed over hosts)."""
        totals = {}
        for line in self.stdout.splitlines():
            if ' : ok=' not in line:
                continue
            for field in line.split(':', 1)[1].split():
                key, value = field.partition('=')[::2]
                if value.isdigit():
                    totals[key] = totals.get(key, 0) + int(value)
        return totals

    def __repr__(self):
        return '<playbook rc=%s %.1fs %s>' % (self.rc, self.seconds, ' '.join(self.argv[-3:]))


class Lab(object):
    """One k2sim process (arrays ``arrays``) with its admin API, in ``workdir``."""

    # fast replication, so DR playbooks converge in seconds
    FAST_REPLICATION = ('--replication-delay', '0.2', '--replication-transfer', '0.2', '--rpo-scale', '0')

    def __init__(self, workdir, arrays=('primary',), users=USERS, extra_args=FAST_REPLICATION):
        self.workdir = str(workdir)
        self.data_dir = os.path.join(self.workdir, 'data')
        self.array_names = tuple(arrays)
        self.users = tuple(users)
        self.extra_args = tuple(extra_args)
        self.collections = collections_root()
        self.admin_http = requests.Session()
        self.admin_http.trust_env = False
        self.proc = None
        self.starts = 0
        self.start()

    # ----------------------------------------------------------------------------------------- process
    def start(self):
        """Start k2sim (again) on the same data directory; ports are new after every start."""
        cmd = [sys.executable, '-m', 'k2sim', 'serve', '--data-dir', self.data_dir, '--admin', '127.0.0.1:0']
        cmd += [arg for name in self.array_names for arg in ('--array', '%s@127.0.0.1:0' % name)]
        cmd += [arg for user in self.users for arg in ('--user', user)]
        cmd += list(self.extra_args)
        self.log_path = os.path.join(self.workdir, 'k2sim.log')
        self.starts += 1
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError('k2sim did not start (rc %s), see %s' % (self.proc.returncode, self.log_path))
        ready = json.loads(line)
        self.arrays = ready['arrays']
        self.admin = ready['admin']
        return self

    def kill(self, sig=signal.SIGKILL):
        """Stop k2sim with ``sig`` (SIGKILL: no chance to flush or close anything) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
        return self.proc.returncode if self.proc is not None else None

    def stop(self):
        return self.kill(signal.SIGTERM)

    def restart(self):
        self.kill(signal.SIGKILL)
        return self.start()

    # ----------------------------------------------------------------------------------------- connection
    def host(self, array='primary'):
        return self.arrays[array]['url'].split('://', 1)[1]

    def ca(self, array='primary'):
        return self.arrays[array]['ca_file']

    def conn(self, array='primary', user=OPERATOR):
        """Module connection options for ``array`` (k2_host, k2_username, k2_password, ca_path)."""
        return {'k2_host': self.host(array), 'k2_username': user[0], 'k2_password': user[1], 'ca_path': self.ca(array)}

    def env(self, array='primary', user=OPERATOR, target=None, target_user=OPERATOR):
        """The connection as the playbooks read it from the environment (K2_*, K2_TARGET_* for DR)."""
        env = {'K2_HOST': self.host(array), 'K2_USERNAME': user[0], 'K2_PASSWORD': user[1], 'K2_CA_PATH': self.ca(array)}
        if target:
            env.update({'K2_TARGET_HOST': self.host(target), 'K2_TARGET_USERNAME': target_user[0],
                        'K2_TARGET_PASSWORD': target_user[1], 'K2_TARGET_CA_PATH': self.ca(target)})
        return env

    def rest(self, array='primary', user=('admin', 'admin')):
        """A requests session on the array's REST API (base URL in ``.base``), verifying k2sim's CA."""
        s = requests.Session()
        s.trust_env = False
        s.verify = self.ca(array)
        s.auth = user
        s.headers['content-type'] = 'application/json'
        s.base = self.arrays[array]['url'] + '/api/v2'
        return s

    # ----------------------------------------------------------------------------------------- admin API
    def _admin(self, method, path, **kw):
        r = self.admin_http.request(method, self.admin + path, timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def faults(self, array='primary', **settings):
        """Change fault settings (PATCH: only the keys given); see tests/k2sim/README.md "Admin API"."""
        return self._admin('PATCH', '/arrays/%s/faults' % array, json=settings)

    def clear_faults(self, array='primary'):
        return self._admin('DELETE', '/arrays/%s/faults' % array)

    def requests_log(self, array='primary', method=None):
        params = {'method': method} if method else {}
        return self._admin('GET', '/arrays/%s/requests' % array, params=params)['requests']

    def clear_requests(self, array='primary'):
        return self._admin('DELETE', '/arrays/%s/requests' % array)

    def writes(self, array='primary'):
        """Requests of the log that could have changed something (anything but GET)."""
        return [r for r in self.requests_log(array) if r['method'] != 'GET']

    def arrays_info(self):
        """``{name: {"url", "ca_file", "db_path", "down", ...}}`` of every array (admin ``GET /arrays``)."""
        return self._admin('GET', '/arrays')['arrays']

    def wait_for_writes(self, count, array='primary', timeout=60, poll=0.03):
        """Wait until the request log holds ``count`` writes (anything but GET); return the time they were seen."""
        deadline = time.time() + timeout
        while len(self.writes(array)) < count:
            if time.time() > deadline:
                raise AssertionError('%d writes not seen on %s within %ss' % (count, array, timeout))
            time.sleep(poll)
        return time.time()

    def token(self, array='primary', user='operator'):
        return self._admin('POST', '/arrays/%s/tokens' % array, json={'user': user})

    def volume_file(self, array, volume):
        return self._admin('GET', '/arrays/%s/volume_file' % array, params={'volume': volume})['path']

    def replication(self):
        return self._admin('GET', '/replication')

    def set_replication(self, **settings):
        return self._admin('PATCH', '/replication', json=settings)

    # ----------------------------------------------------------------------------------------- state
    def get_all(self, array, resource, **filters):
        """Every object of ``resource`` (paged), as the array returns them."""
        s = self.rest(array)
        out, offset = [], 0
        while True:
            params = dict(filters, __limit=500, __offset=offset, __sort='id')
            r = s.get('%s/%s' % (s.base, resource), params=params, timeout=60)
            r.raise_for_status()
            body = r.json()
            out.extend(body['hits'])
            offset += len(body['hits'])
            if not body['hits'] or offset >= body['total']:
                return out

    def inventory(self, array='primary'):
        """{resource: [objects]} of every resource in INVENTORY_RESOURCES."""
        return {resource: self.get_all(array, resource) for resource in INVENTORY_RESOURCES}

    def sha256(self, array, volume):
        """sha256 of a volume's data as the array stores it (its backing file)."""
        import hashlib
        digest = hashlib.sha256()
        with open(self.volume_file(array, volume), 'rb') as fh:
            for block in iter(lambda: fh.read(1 << 20), b''):
                digest.update(block)
        return digest.hexdigest()

    # ----------------------------------------------------------------------------------------- ansible
    def playbook(self, playbook, extra_vars=None, array='primary', user=OPERATOR, target=None, env=None,
                 timeout=600, verbosity=0, check=False, diff=False, args=()):
        """Run ``ansible-playbook`` (a name of ``playbooks/`` or a path) against ``array``; never raises on rc."""
        path = playbook if os.path.isabs(playbook) else os.path.join(ROOT, 'playbooks', playbook)
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), path]
        if extra_vars:
            argv += ['-e', json.dumps(extra_vars)]
        if verbosity:
            argv.append('-' + 'v' * verbosity)
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        argv += list(args)
        full_env = dict(os.environ)
        full_env.update({
            'ANSIBLE_COLLECTIONS_PATH': self.collections,
            'ANSIBLE_LOCALHOST_WARNING': 'false',
            'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'false',
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_FORCE_COLOR': '0',
            'ANSIBLE_RETRY_FILES_ENABLED': 'false',
            'ANSIBLE_LOCAL_TEMP': os.path.join(self.workdir, 'ansible-tmp'),
            'PYTHONDONTWRITEBYTECODE': '1',
        })
        full_env.pop('REQUESTS_CA_BUNDLE', None)
        full_env.update(self.env(array, user, target))
        full_env.update(env or {})
        started = time.time()
        try:
            done = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, cwd=self.workdir, check=False)
            rc, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            rc = 'timeout'
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or '')
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or '')
        return PlaybookResult(argv, rc, out, err, time.time() - started)

    def start_playbook(self, playbook, extra_vars=None, array='primary', user=OPERATOR, env=None, log_name='play'):
        """Start ``ansible-playbook`` in the background (for concurrency and kill-mid-run tests): a Popen whose
        stdout/stderr go to ``<workdir>/<log_name>.out``."""
        path = playbook if os.path.isabs(playbook) else os.path.join(ROOT, 'playbooks', playbook)
        argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), path]
        if extra_vars:
            argv += ['-e', json.dumps(extra_vars)]
        full_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_LOCALHOST_WARNING='false',
                        ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1',
                        ANSIBLE_LOCAL_TEMP=os.path.join(self.workdir, 'ansible-tmp-%s' % log_name))
        full_env.pop('REQUESTS_CA_BUNDLE', None)
        full_env.update(self.env(array, user))
        full_env.update(env or {})
        out = open(os.path.join(self.workdir, '%s.out' % log_name), 'w')
        proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir)
        proc.log_path = out.name
        out.close()
        return proc


# --------------------------------------------------------------------------------------------- checks

def ref_id(ref):
    """The id of a ``{"ref": "/resource/N"}`` (None for null)."""
    if not ref:
        return None
    return int(str(ref['ref'] if isinstance(ref, dict) else ref).rstrip('/').rsplit('/', 1)[1])


def duplicates(inventory):
    """Names that occur more than once per resource (K2 names are unique per resource: a duplicate is a bug)."""
    found = {}
    for resource, objects in inventory.items():
        seen = {}
        for obj in objects:
            key = obj.get('name') or obj.get('iqn') or obj.get('pwwn')
            if key is None:
                continue
            seen[key] = seen.get(key, 0) + 1
        dup = sorted(k for k, n in seen.items() if n > 1)
        if dup:
            found[resource] = dup
    return found


def lun_clashes(inventory):
    """(host or host group ref, lun) pairs mapped more than once: LUNs must be unique per host."""
    seen, clashes = set(), []
    for mapping in inventory['mappings']:
        key = (str(mapping.get('host')), mapping.get('lun'))
        if key in seen:
            clashes.append(key)
        seen.add(key)
    return clashes


def orphans(inventory, temp_prefix='k2tmp-', before=None):
    """Objects left behind: volume groups without volumes (and without snapshots: a group holding only
    snapshots is kept on purpose by nothing of ours), temporary (``k2tmp-``) objects of any kind, and hosts with
    no mapping and no host group that were not there in ``before`` (an earlier inventory)."""
    before_hosts = set(h['name'] for h in (before or {}).get('hosts', []))
    volume_groups_used = set(ref_id(v.get('volume_group')) for v in inventory['volumes'])
    mapped_hosts = set(ref_id(m.get('host')) for m in inventory['mappings'])
    found = []
    for vg in inventory['volume_groups']:
        if vg['id'] not in volume_groups_used:
            found.append('volume group %s has no volume' % vg['name'])
    for resource in ('volumes', 'volume_groups', 'snapshots', 'hosts', 'host_groups'):
        for obj in inventory[resource]:
            if str(obj.get('name', '')).startswith(temp_prefix):
                found.append('%s %s is a temporary object' % (resource, obj['name']))
    for host in inventory['hosts']:
        if host['id'] not in mapped_hosts and not host.get('host_group') and host['name'] not in before_hosts:
            found.append('host %s has no mapping' % host['name'])
    return found


def integrity_check(db_path):
    """SQLite ``PRAGMA integrity_check`` of a k2sim store: ``['ok']`` when it is sound."""
    import sqlite3
    con = sqlite3.connect(db_path, timeout=30)
    try:
        return [row[0] for row in con.execute('PRAGMA integrity_check')]
    finally:
        con.close()
