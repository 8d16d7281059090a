# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue 8: every module's options fuzzed with hypothesis against a k2sim process.

For each module, every option of its argument spec (read from the real ``AnsibleModule`` the module builds, at test
time: an option added later and not fuzzed here fails ``test_fuzz_<module>``) gets wrong types, empty and huge strings,
names past K2's limits and with bad characters, negative, zero, huge and unparsable sizes, unknown references, out of
range numbers, bad choices, and the conflicting pairs of the spec; plausible valid cases are mixed in.

The property, per example:

* the module never answers with a traceback;
* an example with bad options fails, and its ``msg`` names the bad option (for an example with exactly one bad
  option, that option; with several, one of them);
* a valid example succeeds;
* a failed example wrote nothing: the k2sim request log of both arrays holds no request other than GET since the
  example started, and the array inventory is the one before the example (k2_volume_copy, which works on the copy
  host: nothing was attached, os-brick was not even loaded).

The examples run in-process (``main()`` with real argument handling), against one k2sim process for the whole file,
so hypothesis tries hundreds of cases per module in seconds. The number of examples per module is printed at the end
and written as JSON to the file named by ``K2_FUZZ_REPORT`` when set. ``K2_FUZZ_EXAMPLES`` scales the examples.
"""

import contextlib
import io
import json
import os
import re
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible.module_utils import basic as ansible_basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kaminario.k2.plugins.module_utils import k2_copy
from ansible_collections.kaminario.k2.plugins.module_utils import k2_module as k2_module_utils
from ansible_collections.kaminario.k2.plugins.module_utils.k2_module import CONNECTION_OPTIONS
from ansible_collections.kaminario.k2.plugins.modules import (
    k2_facts, k2_failover, k2_host_mapping, k2_replication, k2_snapshot, k2_volume, k2_volume_copy,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from k2lab import INVENTORY_RESOURCES, Lab  # noqa: E402

SCALE = float(os.environ.get('K2_FUZZ_EXAMPLES', '1'))
COUNTS = {}            # module -> examples run
OUTCOMES = {}          # module -> {'failed': n, 'ok': n}
MUTATED = {}           # module -> options given a bad value at least once
SECONDS = {}           # module -> wall time of its fuzz run
SPECS = {}             # module -> the keyword arguments its AnsibleModule was built with
STATS = {}             # resets of the array after valid examples that wrote
SETTLE_SECONDS = 0.6   # longer than k2sim's --replication-delay plus --replication-transfer (0.2 + 0.2, k2lab.FAST_REPLICATION)

# --------------------------------------------------------------------------------------------- seeds

SEED_IQN = 'iqn.2020-01.com.example:fz-host'
OTHER_IQN = 'iqn.2020-01.com.example:fz-other'


# --------------------------------------------------------------------------------------------- running a module

class SpecSpy(ansible_basic.AnsibleModule):
    """The real AnsibleModule, remembering the argument spec and constraints it was built with."""

    current = None

    def __init__(self, *args, **kwargs):
        SPECS[SpecSpy.current] = dict(kwargs)
        super(SpecSpy, self).__init__(*args, **kwargs)


@pytest.fixture(scope='module', autouse=True)
def spy_spec():
    mp = pytest.MonkeyPatch()
    # K2Module builds K2AnsibleModule (AnsibleModule naming the option in every argument error): record what its
    # constructor gets, without replacing the class (its methods refer to it by name).
    base = getattr(k2_module_utils, 'K2AnsibleModule', None)
    if base is not None:
        original = base.__init__

        def recording_init(self, *args, **kwargs):
            SPECS[SpecSpy.current] = dict(kwargs)
            original(self, *args, **kwargs)
        mp.setattr(base, '__init__', recording_init)
    else:
        mp.setattr(k2_module_utils, 'AnsibleModule', SpecSpy)
    mp.setattr(k2_volume_copy, 'AnsibleModule', SpecSpy)
    yield
    mp.undo()


MAINS = {
    'k2_volume': k2_volume.main, 'k2_snapshot': k2_snapshot.main, 'k2_host_mapping': k2_host_mapping.main,
    'k2_facts': k2_facts.main, 'k2_replication': k2_replication.main, 'k2_failover': k2_failover.main,
    'k2_volume_copy': k2_volume_copy.main,
}


def run(module, args):
    """Run ``module``'s main() in-process with ``args``; return (result dict, failed)."""
    SpecSpy.current = module
    out = io.StringIO()
    code = 0
    with patch_module_args(args):
        with contextlib.redirect_stdout(out):
            try:
                MAINS[module]()
            except SystemExit as exc:
                code = exc.code
    text = out.getvalue()
    try:
        result = json.loads(text)
    except ValueError:
        raise AssertionError('%s printed no JSON result (exit %r): %r' % (module, code, text[:2000]))
    return result, bool(code) or bool(result.get('failed'))


def module_spec(module):
    """The argument spec (and constraints) the module's AnsibleModule is built with, read by running it once."""
    if module not in SPECS:
        run(module, {})
    return SPECS[module]


def fuzzable_options(module):
    spec = module_spec(module)['argument_spec']
    if module == 'k2_volume_copy':
        return set(spec)
    return set(spec) - set(CONNECTION_OPTIONS)


# --------------------------------------------------------------------------------------------- lab

class FuzzLab(object):
    """The k2sim process of the file, its seeds, and the baseline inventory the failed examples are checked against."""

    def __init__(self, lab, tmp):
        self.lab = lab
        self.tmp = tmp
        self.resets = self.full_resets = 0
        self._rest = {}
        self.seed_replication()
        self.seed()

    def conn(self, array='primary'):
        return self.lab.conn(array)

    def target(self):
        return dict(self.lab.conn('secondary'))

    def ok(self, module, args):
        result, failed = run(module, dict(self.conn(), **args))
        assert not failed, 'seeding with %s %r failed: %s' % (module, args, result.get('msg'))
        return result

    def seed_replication(self):
        def mgmt(array):
            return self.lab.arrays[array].get('mgmt_host') or self.lab.host(array)

        password = self.conn()['k2_password']
        self.ok('k2_volume', dict(name='fz-rvol', size='1GiB', volume_group='fz-rvg'))
        self.ok('k2_replication', dict(peer=dict(name='fz-peer', mgmt_host=mgmt('secondary'), username='operator', password=password,
                                                 local_username='operator', local_password=password)))
        result, failed = run('k2_replication', dict(self.conn('secondary'), peer=dict(
            name='fz-back', mgmt_host=mgmt('primary'), username='operator', password=password, local_username='operator',
            local_password=password)))
        assert not failed, result.get('msg')
        self.ok('k2_replication', dict(name='fz-rep', volume_group='fz-rvg', peer_array='fz-peer', rpo=300, state='in_sync',
                                       target=self.target(), wait_timeout=60, poll_interval=0.1))
        self.replication_ids = dict((r, set(o['id'] for o in objs)) for r, objs in self.lab.inventory('primary').items())

    def seed(self):
        self.ok('k2_volume', dict(volume_group='fz-vg', size='1GiB', volumes=[dict(name='fz-vol1'), dict(name='fz-vol2')]))
        self.ok('k2_volume', dict(name='fz-solo', size='1GiB'))
        self.ok('k2_host_mapping', dict(host='fz-host', iqns=[SEED_IQN], volumes=[dict(name='fz-vol1', lun=1)]))
        self.ok('k2_snapshot', dict(name='fz-snap', volume_group='fz-vg'))
        self.baseline = self.settled_inventories()

    def inventory(self, array):
        """``Lab.inventory`` on one kept-alive session per array (a new TLS session per resource costs 10 ms)."""
        if array not in self._rest:
            self._rest[array] = self.lab.rest(array)
        s = self._rest[array]
        out = {}
        for resource in INVENTORY_RESOURCES:
            objs, offset = [], 0
            while True:
                r = s.get('%s/%s' % (s.base, resource), params=dict(__limit=500, __offset=offset, __sort='id'), timeout=60)
                r.raise_for_status()
                body = r.json()
                objs.extend(body['hits'])
                offset += len(body['hits'])
                if not body['hits'] or offset >= body['total']:
                    break
            out[resource] = objs
        return out

    def inventories(self):
        return dict((array, stable(self.inventory(array))) for array in ('primary', 'secondary'))

    def settled_inventories(self, quiet=SETTLE_SECONDS, timeout=60):
        """The inventories once the arrays have stopped changing by themselves: two reads ``quiet`` seconds apart agree.

        Replication goes on after the module that started it has returned: the peer follows a session state change
        ``--replication-delay`` later, and the first cycle after a session is made in_sync creates the replica snapshot
        on the target ``--replication-transfer`` later, with the session's counters. A baseline read before that
        (after the seed, or after a reset that followed a k2_replication example) differed from any later read, so a
        failed example that wrote nothing was reported as having changed the inventory (sessions 'state'/'stopped',
        the target's snapshots). The comparison of a failed example's inventory with the baseline stays exact.
        """
        deadline = time.time() + timeout
        last = self.inventories()
        while True:
            time.sleep(quiet)
            now = self.inventories()
            if now == last:
                return now
            assert time.time() < deadline, 'the arrays still change by themselves after %ss: %s' % (timeout, inventory_diff(last, now))
            last = now

    def clear(self):
        for array in ('primary', 'secondary'):
            self.lab.clear_requests(array)

    def writes(self):
        return [dict(r, array=array) for array in ('primary', 'secondary') for r in self.lab.writes(array)]

    def reset(self, writes):
        """After a valid example that wrote: delete what it created; when that is not enough to get back to the
        baseline, delete everything but the replication seed and seed again (which reads a new, settled, baseline).
        After a write to a replication session or to the secondary, the arrays are let settle first (see
        ``settled_inventories``)."""
        self.resets += 1
        keep = dict((resource, set(o['id'] for o in objs)) for resource, objs in self.baseline['primary'].items())
        self.delete_all_but(keep)
        replicated = any(w['array'] != 'primary' or 'replication' in str(w.get('path')) for w in writes)
        if (self.settled_inventories() if replicated else self.inventories()) != self.baseline:
            self.delete_all_but(self.replication_ids)
            self.seed()
            self.full_resets += 1

    def delete_all_but(self, keep):
        s = self._rest.get('primary') or self.lab.rest('primary')
        inv = self.inventory('primary')
        order = ('mappings', 'host_iqns', 'host_fc_ports', 'snapshots', 'volumes', 'volume_groups', 'hosts', 'host_groups')
        for resource in order:
            objs = inv[resource]
            if resource == 'snapshots':
                objs = sorted(objs, key=lambda o: not o.get('is_exposable'))   # views before their snapshots
            for obj in objs:
                if obj['id'] in keep.get(resource, ()):
                    continue
                r = s.delete('%s/%s/%s' % (s.base, resource, obj['id']), timeout=60)
                assert r.status_code in (200, 204, 404), 'reset: DELETE %s %s: %s %s' % (resource, obj['id'], r.status_code, r.text)


VOLATILE = ('generation_number', 'current_snapshot', 'current_snapshot_progress', 'current_snapshot_id',
            'last_sync', 'last_sync_time', 'replication_lag', 'time', 'creation_time', 'update_time', 'logical_capacity',
            'avg_compressed_ratio', 'queue')


def inventory_diff(before, after):
    out = []
    for array in sorted(set(before) | set(after)):
        for resource in sorted(set(before.get(array, {})) | set(after.get(array, {}))):
            b = dict((o['id'], o) for o in before.get(array, {}).get(resource, []))
            a = dict((o['id'], o) for o in after.get(array, {}).get(resource, []))
            for oid in sorted(set(a) | set(b)):
                if a.get(oid) != b.get(oid):
                    keys = sorted(k for k in set(a.get(oid) or {}) | set(b.get(oid) or {})
                                  if (a.get(oid) or {}).get(k) != (b.get(oid) or {}).get(k))
                    out.append('%s %s %s: %s' % (array, resource, oid, keys))
    return '; '.join(out[:10])


def stable(inventory):
    """The inventory without the fields that change by themselves (replication cycles, counters)."""
    out = {}
    for resource, objs in inventory.items():
        out[resource] = sorted((dict((k, v) for k, v in obj.items() if k not in VOLATILE) for obj in objs),
                               key=lambda o: o['id'])
    return out


@pytest.fixture(scope='module')
def fz(tmp_path_factory, pytestconfig):
    lab = Lab(tmp_path_factory.mktemp('fuzzlab'), arrays=('primary', 'secondary'))
    fz_lab = None
    try:
        fz_lab = FuzzLab(lab, tmp_path_factory.mktemp('fuzzfiles'))
        yield fz_lab
    finally:
        lab.stop()
        STATS.update(resets=getattr(fz_lab, 'resets', None), full_resets=getattr(fz_lab, 'full_resets', None))
        report(pytestconfig)


def report(config=None):
    total = sum(COUNTS.values())
    per_module = ', '.join('%s %d' % kv for kv in sorted(COUNTS.items()))
    line = 'k2 fuzz: %d cases (%s) in %.1fs' % (total, per_module, sum(SECONDS.values()))
    # pytest captures the output of a fixture's teardown (and shows it only when a test failed): print past it
    capman = config.pluginmanager.getplugin('capturemanager') if config is not None else None
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        sys.stdout.write('\n' + line + '\n')
        sys.stdout.flush()
    path = os.environ.get('K2_FUZZ_REPORT')
    if path:
        with open(path, 'w') as fh:
            json.dump({'total': total, 'per_module': COUNTS, 'lab': STATS, 'outcomes': OUTCOMES, 'seconds': SECONDS,
                       'mutated_options': dict((k, sorted(v)) for k, v in MUTATED.items())}, fh, indent=2, sort_keys=True)


# --------------------------------------------------------------------------------------------- the property

def names_option(msg, option):
    """``option`` appears in ``msg`` as a word of its own (``volume`` does not match ``volumes`` nor ``volume_group``)."""
    return re.search(r'(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])' % re.escape(option), msg) is not None


class Case(object):
    """One example: the module options, what is expected, and (when bad) which options may be named."""

    def __init__(self, args, expect, options=(), check_mode=False, note=''):
        self.args = args
        self.expect = expect          # 'ok', 'fail' or 'any' (valid or not: only no traceback, no write on failure)
        self.options = tuple(options)
        self.check_mode = check_mode
        self.note = note

    def __repr__(self):
        shown = dict((k, (v[:60] + '...(%d chars)' % len(v)) if isinstance(v, str) and len(v) > 80 else v)
                     for k, v in self.args.items())
        return 'Case(%s, expect=%s, options=%s, check_mode=%s%s)' % (shown, self.expect, self.options, self.check_mode,
                                                                     ', ' + self.note if self.note else '')


def check_case(fz, module, case, conn=True, after=None):
    COUNTS[module] = COUNTS.get(module, 0) + 1
    if case.expect != 'ok':
        MUTATED.setdefault(module, set()).update(o.split('.')[0].split('[')[0] for o in case.options)
    args = dict(case.args)
    if conn:
        args = dict(fz.conn(), **args)
    if case.check_mode:
        args['_ansible_check_mode'] = True
    fz.clear()
    result, failed = run(module, args)
    outcome = OUTCOMES.setdefault(module, {'failed': 0, 'ok': 0})
    outcome['failed' if failed else 'ok'] += 1
    msg = str(result.get('msg', ''))
    blob = json.dumps(result, default=str)
    assert 'Traceback' not in blob and 'exception' not in result, '%r: traceback in the result: %s' % (case, blob[:3000])
    writes = fz.writes()
    if failed:
        assert not writes, '%r failed (%s) after writing: %s' % (case, msg[:500], writes)
        if after is not None:
            after(case, result)
        else:
            now = fz.inventories()
            assert now == fz.baseline, '%r failed (%s) but the inventory changed: %s' % (case, msg[:500], inventory_diff(fz.baseline, now))
    if case.expect == 'ok':
        assert not failed, '%r: a valid case failed: %s' % (case, msg[:1000])
    elif case.expect == 'fail':
        assert failed, '%r: bad options, yet the task succeeded: %s' % (case, blob[:1000])
    if failed and case.expect in ('fail', 'any') and case.options:
        assert msg.strip(), '%r: failed without a message' % (case,)
        assert any(names_option(msg, o.split('.')[0].split('[')[0]) for o in case.options), \
            '%r: the message does not name %s: %s' % (case, ' or '.join(case.options), msg[:1000])
    if not failed and writes:
        fz.reset(writes)
    return result, failed


# --------------------------------------------------------------------------------------------- value strategies

def fresh(prefix='fz'):
    return st.from_regex(r'\A%s[a-z0-9]{3,8}\Z' % prefix)


BAD_CHARS = [' ', '/', 'é', '\x01', ':', '*', '\n', '中', '\t', '"', '%', '\\', '\x00', '?', '#', '&', ',']
BAD_NAME = st.one_of(
    st.sampled_from(['', 'a' * 43, 'x' * 10000, ' ', ['a'], {'a': 1}, [], 'a' * 100]),
    st.builds(lambda name, bad, tail: name + bad + tail, fresh(), st.sampled_from(BAD_CHARS), st.sampled_from(['', 'x'])),
    st.text(min_size=1, max_size=20).filter(lambda t: not re.match(r'^[A-Za-z0-9_.\-]{1,42}$', t)),
)
BAD_BOOL = st.sampled_from(['maybe', 2, -1, [], {'a': 1}, ['yes'], 'yes please', 'nope', 1.5])
BAD_CHOICE = st.one_of(st.sampled_from(['bogus', '', 'Present', 'PRESENT', [], {'a': 1}, 0, 'x' * 10000, 'absent ']),
                       st.text(max_size=12).filter(lambda t: t not in ('present', 'absent')))
BAD_INT_TYPE = st.sampled_from(['abc', 1.5, [], {'a': 1}, '', '12abc', '1.5'])   # ('1e3' is 1000 to Ansible)
BAD_SIZE = st.one_of(
    st.sampled_from(['-1GiB', '0', 0, -1, '1e30', '10XB', 2 ** 70, -2 ** 70, 1.5, 'abc', '', ' ', [], {'a': 1}, True, False,
                     float('inf'), float('-inf'), float('nan'), 1023, '1.5B', '10 GiB GiB', '0x10', '1e3GiB', 'GiB',
                     '1,5GiB', '17PiB', 10 ** 30, 1e30, '0.0001KiB', '1 KiB extra', 'inf', 'nan', '-0', '0GiB', ['1GiB']]),
    st.integers(max_value=0),
    st.integers(min_value=1, max_value=10 ** 6).filter(lambda n: n % 1024),
    st.text(max_size=10).filter(lambda t: not re.match(r'^\s*[0-9]', t)),
)
UNKNOWN = fresh('fzmissing')


# --------------------------------------------------------------------------------------------- driver

def fuzz(fz, module, table, valid, contexts, examples, conn=True, after=None, check_modes=(False, True), valid_check_modes=None):
    """Run ``examples`` hypothesis examples of ``module``.

    ``table``: {option: (bad value strategy, base adjuster or None)}; the adjuster gets the base args and returns the
    args the bad value goes into (dropping options that would conflict). ``valid``: strategy of valid args.
    ``contexts``: strategy of ready-made Cases (unknown references, context conflicts). Conflicting pairs come
    from the spec's mutually_exclusive list.
    """
    spec = module_spec(module)
    options = fuzzable_options(module)
    assert set(table) == options, ('%s: options of the argument spec and fuzzed options differ: not fuzzed %s, '
                                   'fuzzed but not in the spec %s' % (module, sorted(options - set(table)),
                                                                      sorted(set(table) - options)))
    pairs = [tuple(p) for p in spec.get('mutually_exclusive') or [] if not set(p) & set(CONNECTION_OPTIONS)]

    mutable = sorted(o for o, (bad, adjust) in table.items() if bad is not None)   # None: free text, see contexts

    @st.composite
    def single(draw):
        base = draw(valid)
        option = draw(st.sampled_from(mutable))
        bad, adjust = table[option]
        args = adjust(dict(base)) if adjust else dict(base)
        args[option] = draw(bad)
        return Case(args, 'fail', [option], check_mode=draw(st.sampled_from(check_modes)), note='single')

    @st.composite
    def several(draw):
        base = draw(valid)
        chosen = draw(st.lists(st.sampled_from(mutable), min_size=2, max_size=4, unique=True))
        args = dict(base)
        for option in chosen:
            bad, adjust = table[option]
            args = adjust(args) if adjust else args
        for option in chosen:
            args[option] = draw(table[option][0])
        return Case(args, 'fail', chosen, check_mode=draw(st.sampled_from(check_modes)), note='several')

    @st.composite
    def conflict(draw):
        pair = draw(st.sampled_from(pairs))
        args = dict(draw(valid))
        others = draw(valid_values(module, fz))
        for option in pair:
            if option not in args:
                args[option] = others[option]
        return Case(args, 'fail', pair, check_mode=draw(st.sampled_from(check_modes)), note='mutually exclusive')

    @st.composite
    def valid_case(draw):
        return Case(draw(valid), 'ok', check_mode=draw(st.sampled_from(valid_check_modes or check_modes)), note='valid')

    strategies = [valid_case(), single(), single(), single(), several(), contexts]
    if pairs:
        strategies.append(conflict())

    started = time.time()

    @settings(max_examples=max(10, int(examples * SCALE)), deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=st.one_of(strategies))
    def prop(case):
        check_case(fz, module, case, conn=conn, after=after)

    try:
        prop()
    finally:
        SECONDS[module] = round(SECONDS.get(module, 0) + time.time() - started, 2)
    not_mutated = options - MUTATED.get(module, set())
    assert not not_mutated, '%s: options never given a bad value: %s' % (module, sorted(not_mutated))


def valid_values(module, fz):
    """A dict of a valid value for every option that takes part in a mutually exclusive pair."""
    return st.just(VALID_VALUES[module](fz))


VALID_VALUES = {
    'k2_volume': lambda fz: dict(name='fz-solo', volumes=[dict(name='fz-vol2')], new_name='fzrenamed', adopt_from='fz-vol2'),
    'k2_snapshot': lambda fz: dict(volume_group='fz-vg', volume='fz-vol1'),
    'k2_host_mapping': lambda fz: dict(hosts=[dict(host='fz-host')], host='fz-host', initiator=SEED_IQN, host_fqdn='fz.example.com',
                                       host_group='fzgroup', iqns=[SEED_IQN], wwpns=['5001438001234567'],
                                       volumes=[dict(name='fz-vol1', lun=1)]),
    'k2_facts': lambda fz: {},
    'k2_replication': lambda fz: {},
    'k2_failover': lambda fz: dict(sessions=[dict(name='fz-rep')], volume_groups=['fz-rvg']),
    'k2_volume_copy': lambda fz: {},
}


def drop(*keys):
    def adjust(args):
        for key in keys:
            args.pop(key, None)
        return args
    return adjust


def with_(**values):
    def adjust(args):
        args.update(values)
        return args
    return adjust


# --------------------------------------------------------------------------------------------- k2_volume

def test_fuzz_k2_volume(fz):
    valid = st.one_of(
        st.just(dict(name='fz-solo', size='1GiB')),
        st.builds(lambda n, size: dict(name=n, size=size), fresh(), st.sampled_from(['1GiB', 1073741824, '10 MiB', '1.5GiB', '4K'])),
        st.builds(lambda n: dict(name=n, size='1GiB', volume_group='fz-vg', description='fuzz'), fresh()),
        st.builds(lambda n: dict(name=n, state='absent'), fresh()),
        st.builds(lambda a, b: dict(size='1GiB', volumes=[dict(name=a), dict(name=b, size='2GiB')]), fresh('fza'), fresh('fzb')),
    )
    single_form = drop('volumes')
    table = {
        'name': (st.one_of(BAD_NAME, st.just('CTRL'), st.just('n' * 40)), single_form),
        'state': (BAD_CHOICE, None),
        'size': (BAD_SIZE, None),
        'volume_group': (BAD_NAME, None),
        'create_group': (BAD_BOOL, None),
        'dedup': (BAD_BOOL, None),
        'description': (None, None),
        'read_only': (BAD_BOOL, None),
        'new_name': (st.one_of(BAD_NAME, st.just('CTRL')), lambda a: dict(drop('volumes', 'adopt_from')(a), name=a.get('name') or 'fz-solo')),
        'force': (BAD_BOOL, None),
        'adopt_from': (st.one_of(BAD_NAME, st.just('CTRL'), UNKNOWN),
                       lambda a: dict(drop('volumes', 'new_name', 'state')(a), name=a.get('name') or 'fzadopter')),
        'volumes': (st.one_of(
            st.sampled_from(['notalist', {'a': 1}, [1], [{}], [{'name': 'fzok', 'bogus': 1}], [{'name': 'fzok', 'size': '-1GiB'}],
                             [{'name': 'fzdup', 'size': '1GiB'}, {'name': 'fzdup', 'size': '1GiB'}],
                             [{'name': 'fzok', 'state': 'bogus'}], [{'name': 'fzok', 'lun': 1}], [None], [['x']],
                             [{'name': 'fzok', 'size': '1GiB', 'create_group': 'maybe'}]]),
            st.builds(lambda n: [{'name': n, 'size': '1GiB'}], BAD_NAME),
            st.builds(lambda s: [{'name': 'fzok', 'size': s}], BAD_SIZE),
        ), drop('name', 'new_name', 'adopt_from')),
    }
    # description: free text; a list or dict becomes its text (Ansible's str conversion): any value may be fine.
    description_ok = st.builds(lambda n, d: Case(dict(name=n, size='1GiB', description=d), 'any', ['description']),
                               fresh(), st.sampled_from([['a', 'b'], {'a': 1}, 'x' * 10000, 'ctrl\x01chars', '', 'é中']))
    contexts = st.one_of(
        description_ok,
        st.builds(lambda n, g: Case(dict(name=n, size='1GiB', volume_group=g, create_group=False), 'fail', ['volume_group'],
                                    note='unknown group'), fresh(), UNKNOWN),
        st.builds(lambda n, a: Case(dict(name=n, adopt_from=a), 'fail', ['adopt_from'], note='unknown adopt_from'), fresh(), UNKNOWN),
        st.builds(lambda n: Case(dict(name=n, size='1GiB', volume_group='fz-vg', dedup=False), 'fail', ['dedup'],
                                 note='dedup differs from the group'), fresh()),
        st.builds(lambda s: Case(dict(name='fz-solo', size=s), 'fail', ['size'], note='shrink'),
                  st.sampled_from(['512MiB', '4K', 1024, '1023MiB'])),
        st.builds(lambda n: Case(dict(name='fz-solo', new_name=n, state='absent'), 'fail', ['new_name', 'state']), fresh()),
        st.builds(lambda n: Case(dict(name=n), 'fail', ['size'], note='create without size'), fresh()),
        st.builds(lambda n: Case(dict(name='fz-vol1', volume_group=n), 'fail', ['volume_group'], note='volume in another group'), fresh()),
        st.just(Case(dict(volumes=[dict(name='fz-vol1', size='512MiB')]), 'fail', ['volumes'], note='shrink in list')),
        st.just(Case(dict(name='fz-solo', new_name='fz-vol1'), 'fail', ['new_name', 'name'], note='rename onto an existing volume')),
    )
    fuzz(fz, 'k2_volume', table, valid, contexts, examples=450)


# --------------------------------------------------------------------------------------------- k2_snapshot

def test_fuzz_k2_snapshot(fz):
    valid = st.one_of(
        st.just(dict(name='fz-snap', volume_group='fz-vg')),
        st.builds(lambda n: dict(name=n, volume_group='fz-vg'), fresh()),
        st.builds(lambda n: dict(name=n, volume='fz-vol1', auto_delete=True), fresh()),
        st.builds(lambda n: dict(name=n, volume_group='fz-vg', state='absent'), fresh()),
        st.builds(lambda n: dict(name=n, volume_group='fz-vg', exposable=True, source_snapshot='fz-snap'), fresh()),
    )
    table = {
        'name': (BAD_NAME, None),
        'volume_group': (st.one_of(BAD_NAME, UNKNOWN), drop('volume', 'state')),
        'volume': (st.one_of(BAD_NAME, UNKNOWN), drop('volume_group', 'state')),
        'state': (BAD_CHOICE, None),
        'retention_policy': (st.one_of(st.sampled_from(['NoSuchPolicy', '', 'x' * 10000, ['a'], {'a': 1}]), UNKNOWN),
                             lambda a: dict((k, v) for k, v in dict(a, name='fzretention', state='present').items()
                                            if k not in ('exposable', 'source_snapshot'))),
        'auto_delete': (BAD_BOOL, None),
        'exposable': (BAD_BOOL, None),
        'source_snapshot': (st.one_of(BAD_NAME, UNKNOWN), with_(exposable=True, state='present')),
        'force': (BAD_BOOL, None),
    }
    contexts = st.one_of(
        st.builds(lambda n, s: Case(dict(name=n, volume_group='fz-vg', source_snapshot=s), 'fail', ['source_snapshot', 'exposable'],
                                    note='source_snapshot without exposable'), fresh(), st.sampled_from(['fz-snap', 'fzother'])),
        st.builds(lambda n: Case(dict(name=n, volume_group='fz-vg', exposable=True), 'fail', ['source_snapshot', 'exposable'],
                                 note='view without source'), fresh()),
        st.just(Case(dict(name='fz-snap', volume_group='fz-vg', exposable=True, state='restored', source_snapshot='fz-snap'),
                     'fail', ['source_snapshot', 'exposable', 'state'])),
        st.builds(lambda n: Case(dict(name=n, volume_group='fz-vg', exposable=True, source_snapshot=n), 'fail',
                                 ['source_snapshot', 'name'], note='source is itself'), fresh()),
        st.builds(lambda n: Case(dict(name=n, volume_group='fz-vg', state='restored'), 'fail', ['name'], note='restore from nothing'), fresh()),
        st.builds(lambda n: Case(dict(name=n, volume_group='fz-vg', exposable=True, source_snapshot=n + 'x'), 'fail',
                                 ['source_snapshot'], note='unknown source'), fresh()),
        st.builds(lambda g: Case(dict(name='fz-snap', volume_group=g), 'fail', ['volume_group'], note='unknown group'), UNKNOWN),
        st.builds(lambda v: Case(dict(name='fz-snap', volume=v), 'fail', ['volume'], note='unknown volume'), UNKNOWN),
        st.just(Case(dict(name='fz-snap', volume_group='fz-vg', exposable=True, source_snapshot='fz-snap'),
                     'fail', ['source_snapshot', 'name'])),
    )
    fuzz(fz, 'k2_snapshot', table, valid, contexts, examples=350)


# --------------------------------------------------------------------------------------------- k2_host_mapping

BAD_IQN = st.one_of(st.sampled_from(['iqn.bad', 'foo', 'iqn.2020-13.com.example:x', '', 'x' * 10000, 'iqn.2020-01.com..x',
                                     'iqn.2020-01.com.example:' + 'x' * 300, 'eui.123', 'naa.12', ' ', 'iqn.2020-01.-x']),
                    st.text(max_size=15).filter(lambda t: not t.strip().lower().startswith(('iqn.', 'eui.', 'naa.'))))
BAD_WWN = st.one_of(st.sampled_from(['zz', '1234', '50:01:43:80:01:23:45:6', 'g' * 16, '', '5001438001234567aa', 'x' * 10000,
                                     '50:01:43:80:01:23:45:67:89']),
                    st.text(max_size=20).filter(lambda t: not re.match(r'^(0x)?[0-9a-fA-F:\-\s]+$', t)))
BAD_LUN = st.one_of(st.sampled_from([0, 255, -1, 2 ** 70, -2 ** 70, 'abc', 1.5, [], 1000]),
                    st.integers().filter(lambda n: not 1 <= n <= 254))


def test_fuzz_k2_host_mapping(fz):
    valid = st.one_of(
        st.just(dict(host='fz-host', iqns=[SEED_IQN], volumes=[dict(name='fz-vol1', lun=1)])),
        st.just(dict(host='fz-host', connection_info=False)),
        st.builds(lambda n: dict(host=n, iqns=['iqn.2021-02.org.example:' + n], volumes=[dict(name='fz-vol2')]), fresh()),
        st.builds(lambda n: dict(host=n, state='absent'), fresh()),
        st.builds(lambda n: dict(host=n, wwpns=['50:01:43:80:01:23:45:67'], host_type='ESX', protocol='fc',
                                 volumes=[dict(name='fz-solo', lun=7)], connection_info=False), fresh()),
    )
    table = {
        'host': (BAD_NAME, drop('hosts')),
        'initiator': (BAD_IQN, drop('hosts')),
        'host_fqdn': (st.just(''), lambda a: dict((k, v) for k, v in a.items() if k not in ('hosts', 'host', 'initiator'))),
        'unique_fqdn_network': (BAD_BOOL, None),
        'host_type': (BAD_CHOICE, None),
        'host_group': (st.one_of(BAD_NAME.filter(lambda v: v != ''), UNKNOWN.map(lambda n: n + ' x')), drop('hosts')),
        'iqns': (st.one_of(st.lists(BAD_IQN, min_size=1, max_size=3), st.sampled_from([{'a': 1}, [''], [SEED_IQN, 'nope']])),
                 drop('hosts')),
        'wwpns': (st.one_of(st.lists(BAD_WWN, min_size=1, max_size=3), st.sampled_from([{'a': 1}, ['']])), drop('hosts')),
        'volumes': (st.one_of(
            st.builds(lambda lun: [dict(name='fz-vol1', lun=lun)], BAD_LUN),
            st.sampled_from([[{'name': ''}], [{'lun': 1}], [{'name': 'fz-vol1'}, {'name': 'fz-vol1'}],
                             [{'name': 'fz-vol1', 'lun': 3}, {'name': 'fz-vol2', 'lun': 3}], 'x', {'a': 1}, [1],
                             [{'name': 'fz-vol1', 'bogus': 1}], [{'name': 'fzmissingvol'}], [{'name': 'fz-vg:nosuchview'}],
                             [{'name': 'fz-vg:fz-snap'}], [{'name': ' '}]]),
            st.builds(lambda n: [dict(name=n)], UNKNOWN),
        ), lambda a: dict((k, v) for k, v in a.items() if k not in ('hosts', 'state'))),
        'exclusive': (BAD_BOOL, None),
        'state': (BAD_CHOICE, None),
        'remove_empty_host': (BAD_BOOL, None),
        'protocol': (BAD_CHOICE, None),
        'multipath': (BAD_BOOL, None),
        'connection_info': (BAD_BOOL, None),
    }
    single_only = getattr(k2_host_mapping, 'SINGLE_ONLY', ())
    if 'hosts' in fuzzable_options('k2_host_mapping'):
        def list_form(args):
            return dict((k, v) for k, v in args.items() if k not in single_only)
        table['hosts'] = (st.one_of(
            st.sampled_from(['x', {'a': 1}, [1], [{'bogus': 1}], [None], [['x']],
                             [{'host': 'fzok', 'volumes': [{'name': 'fz-vol1', 'lun': 0}]}],
                             [{'host': 'fzok', 'iqns': ['bad']}], [{'host': 'fzok', 'wwpns': ['zz']}],
                             [{'host': 'fzok', 'host_type': 'bogus'}], [{'host': 'fzok', 'state': 'bogus'}],
                             [{'host': 'fzok', 'volumes': [{'name': 'fzmissingvol'}]}],
                             [{'host': 'fzdup'}, {'host': 'fzdup'}]]),
            st.builds(lambda n: [{'host': n}], BAD_NAME),
            st.builds(lambda i: [{'initiator': i}], BAD_IQN),
        ), list_form)
    contexts = st.one_of(
        st.just(Case(dict(host_group='fzgrp', iqns=[OTHER_IQN]), 'fail', ['iqns', 'host'], note='iqns without a host')),
        st.builds(lambda n: Case(dict(host=n, iqns=[SEED_IQN]), 'fail', ['iqns'], note='IQN of another host'), fresh()),
        st.builds(lambda n: Case(dict(host=n, iqns=[OTHER_IQN], wwpns=['5001438001234567'], volumes=[dict(name='fz-vol2')]),
                                 'fail', ['protocol'], note='both protocols, no protocol'), fresh()),
        st.builds(lambda n: Case(dict(host='fz-host', volumes=[dict(name=n)]), 'fail', ['volumes'], note='unknown volume'), UNKNOWN),
        st.builds(lambda n: Case(dict(host=n, volumes=[dict(name='fz-vol2', lun=1)], host_fqdn='x', initiator=OTHER_IQN),
                                 'any', ['host_fqdn', 'initiator', 'host']), fresh()),
        st.builds(lambda f: Case(dict(host_fqdn=f, unique_fqdn_network=True, volumes=[dict(name='fz-vol2')]), 'any', ['host_fqdn'],
                                 check_mode=True, note='free-text fqdn'),
                  st.one_of(st.text(max_size=50), st.just('x' * 10000), st.sampled_from([['a'], {'a': 1}]))),
    )
    fuzz(fz, 'k2_host_mapping', table, valid, contexts, examples=450)


# --------------------------------------------------------------------------------------------- k2_facts

def test_fuzz_k2_facts(fz):
    subsets = list(k2_facts.ALL_SUBSETS)
    valid = st.one_of(
        st.builds(lambda s: dict(gather_subset=s), st.lists(st.sampled_from(subsets + ['all'] + ['!' + x for x in subsets]),
                                                            max_size=4)),
        st.just(dict(gather_subset=['volumes'], filters={'volumes': {'name': 'fz-vol1'}}, fields={'volumes': ['name', 'size']})),
        st.builds(lambda n: dict(gather_subset=['volumes', 'mappings'], filters={'volumes': {'name__in': [n, 'fz-vol1']},
                                                                                 'mappings': {'host': n}}), UNKNOWN),
        st.builds(lambda p, r: dict(gather_subset=['capacity'], page_size=p, max_over_subscription_ratio=r),
                  st.integers(1, k2_facts.MAX_PAGE_SIZE), st.sampled_from(['auto', '1', '20.0', '1.5', 5])),
    )

    def with_volumes(args):
        args = dict((k, v) for k, v in args.items() if k not in ('filters', 'fields'))
        args['gather_subset'] = ['volumes', 'hosts']
        return args

    table = {
        'gather_subset': (st.one_of(st.sampled_from([['bogus'], ['!bogus'], {'a': 1}, [['x']], [''], ['all', 'nope'], 'bogus']),
                                    st.lists(st.text(max_size=10).filter(lambda t: t.strip().lstrip('!').strip() not in subsets + ['all']),
                                             min_size=1, max_size=3)), None),
        'filters': (st.sampled_from([{'bogus': {}}, {'volumes': {'nofield': 1}}, {'volumes': {'name__bogus': 'x'}},
                                     {'volumes': {'name': []}}, {'snapshots': {'name': 'x'}}, 'notadict', [1], {'volumes': 'x'},
                                     {'volumes': {'__limit': 1}}, {'volumes': {'name': {'a': 1}}},
                                     {'volumes': {'volume_group.ref': '/bogus/1'}}, {'volumes': {'volume_group': '/hosts/1'}},
                                     {'volumes': {'Name': 'x'}}, {'volumes': {'name__in': [['x']]}}, {'volumes': {'volume_group__gt': 'x'}},
                                     {'system': {'name': 'x'}}, {'volumes': {'name.ref': 'x'}}]), with_volumes),
        'fields': (st.sampled_from([{'volumes': []}, {'volumes': ['nofield']}, {'bogus': ['name']}, {'volumes': 5}, 'x', [1],
                                    {'snapshots': ['name']}, {'volumes': ''}, {'volumes': [['name']]}, {'volumes': {'a': 1}}]),
                   with_volumes),
        'page_size': (st.one_of(st.sampled_from([0, -1, k2_facts.MAX_PAGE_SIZE + 1, 2 ** 70, -2 ** 70]), BAD_INT_TYPE,
                                st.integers().filter(lambda n: not 1 <= n <= k2_facts.MAX_PAGE_SIZE)), None),
        'max_over_subscription_ratio': (st.sampled_from(['abc', '0.5', '-1', 'nan', 'inf', '', [], '1e400', '1e3', ' ', 0, 0.5,
                                                         'x' * 10000, 'Auto', '1.', {'a': 1}]), None),
        'auto_calc_max_oversubscription_ratio': (BAD_BOOL, None),
    }
    contexts = st.just(Case(dict(gather_subset=['system'], filters={'volumes': {'name': 'x'}}), 'fail', ['filters'],
                            note='filter of a subset not gathered'))
    fuzz(fz, 'k2_facts', table, valid, contexts, examples=300)


# --------------------------------------------------------------------------------------------- replication

def bad_target(fz):
    host = fz.lab.host('secondary')
    good = fz.target()
    # No one-letter secrets (the token was 't', the password 'p'): k2_token and k2_password are no_log, and Ansible
    # (rightly) masks every occurrence of a no_log value in the result, so the message's 'target' became
    # '********arge********' and 'poll_interval' '********oll_interval', hiding the option name the module did give.
    return st.sampled_from(['x', [1], {}, {'k2_host': host}, {'k2_host': host, 'k2_username': 'operator'},
                            dict(good, k2_token='fz-token-value'), dict(good, bogus=1), dict(good, timeout='abc'),
                            dict(good, validate_certs='maybe'), dict(good, k2_host=['a']), {'k2_username': 'fz-user', 'k2_password': 'fz-password-value'},
                            dict(good, k2_sdp_id='x'), dict(good, retries=[])])


BAD_SECONDS = st.one_of(st.sampled_from([-1, -2 ** 70, 'abc', 1.5, [], '']), st.integers(max_value=-1))
BAD_INTERVAL = st.sampled_from([0, -1, 'abc', float('nan'), 'nan', float('-inf'), [], '', -0.5, 0.0])


def test_fuzz_k2_replication(fz):
    conn_target = fz.target()
    valid = st.one_of(
        st.just(dict(name='fz-rep', target=conn_target)),
        st.just(dict(name='fz-rep', volume_group='fz-rvg', peer_array='fz-peer', rpo=300, state='in_sync', target=conn_target)),
        st.builds(lambda n: dict(name=n, state='absent', target=conn_target), fresh()),
        st.builds(lambda n: dict(peer=dict(name=n, state='absent')), fresh()),
    )
    table = {
        'name': (BAD_NAME, None),
        'volume_group': (BAD_NAME, None),
        'peer_array': (BAD_NAME, None),
        'peer_volume_group': (BAD_NAME, None),
        'remote_session_name': (BAD_NAME, None),
        'rpo': (st.one_of(st.sampled_from([0, -1, 61, 301, 2 ** 70 + 1, 'abc', 1.5, [], 59, -300]),
                          st.integers().filter(lambda n: not (n == 60 or (n > 0 and n % 300 == 0)))), None),
        'peer_volumes': (st.one_of(st.sampled_from(['x', {'a': 1}, [1], [{'name': 'x'}], [{'volume': 'fz-rvol', 'bogus': 1}]]),
                                   st.builds(lambda n: [{'volume': n}], BAD_NAME),
                                   st.builds(lambda n: [{'volume': 'fz-rvol', 'name': n}], BAD_NAME)), None),
        'state': (BAD_CHOICE, None),
        'confirm_teardown': (BAD_BOOL, None),
        'wait_timeout': (BAD_SECONDS, None),
        'poll_interval': (BAD_INTERVAL, None),
        'peer': (st.one_of(st.sampled_from(['x', [1], 1, {}, {'name': ''}, {'name': 'fz-peer', 'state': 'bogus'}, {'name': 'fz-peer', 'bogus': 1},
                                            {'name': 'fznewpeer'}, {'name': 'fznewpeer', 'mgmt_host': 'h'}]),
                           st.builds(lambda n: {'name': n}, BAD_NAME)), None),
        'target': (bad_target(fz), with_(name='fz-rep')),
    }
    contexts = st.one_of(
        st.builds(lambda n, g: Case(dict(name=n, volume_group=g, peer_array='fz-peer', rpo=300, target=conn_target), 'fail',
                                    ['volume_group'], note='unknown group'), fresh(), UNKNOWN),
        st.builds(lambda n, p: Case(dict(name=n, volume_group='fz-vg', peer_array=p, rpo=300, target=conn_target), 'fail',
                                    ['peer_array'], note='unknown peer'), fresh(), UNKNOWN),
        st.builds(lambda n: Case(dict(name=n, target=conn_target), 'fail', ['volume_group', 'name'], note='unknown session'), fresh()),
        st.builds(lambda g: Case(dict(name='fz-rep', volume_group=g, target=conn_target), 'fail', ['volume_group'],
                                 note='other group of a session'), UNKNOWN),
        st.just(Case(dict(name='fz-rep', state='present', peer=dict(name='fz-peer', state='absent'), target=conn_target), 'fail',
                     ['peer', 'state'])),
        st.builds(lambda n: Case(dict(name=n, volume_group='fz-vg', peer_array='fz-peer', target=conn_target,
                                      peer_volumes=[dict(volume='fzmissingvol')]), 'fail', ['peer_volumes'],
                                 check_mode=True, note='peer volume of no volume'), fresh()),
    )
    fuzz(fz, 'k2_replication', table, valid, contexts, examples=300)


def test_fuzz_k2_failover(fz):
    conn_target = fz.target()
    base = dict(sessions=[dict(name='fz-rep')], state='test_cleanup', target=conn_target)
    valid = st.one_of(
        st.just(base),
        st.just(dict(volume_groups=['fz-rvg'], state='test_cleanup', target=conn_target)),
        st.just(dict(base, test_view='fz-view', max_data_loss=600, source_probe_timeout=5)),
    )
    sessions_form = drop('volume_groups')
    table = {
        'sessions': (st.one_of(st.sampled_from(['x', {'a': 1}, [1], [{}], [{'name': 'fz-rep', 'bogus': 1}], [None]]),
                               st.builds(lambda n: [{'name': n}], st.one_of(BAD_NAME, UNKNOWN)),
                               st.builds(lambda n: [{'name': 'fz-rep', 'remote_session_name': n}], st.one_of(BAD_NAME, UNKNOWN))),
                     drop('volume_groups')),
        'volume_groups': (st.one_of(st.sampled_from(['', {'a': 1}, [{'a': 1}], [['x']]]), st.builds(lambda n: [n], st.one_of(BAD_NAME, UNKNOWN))),
                          drop('sessions')),
        'state': (BAD_CHOICE.filter(lambda v: v not in ('failed_over', 'failed_back', 'test', 'test_cleanup')), None),
        'allow_source_unreachable': (BAD_BOOL, None),
        'allow_reachable_source': (BAD_BOOL, None),
        'max_data_loss': (BAD_SECONDS, None),
        'source_probe_timeout': (st.one_of(BAD_SECONDS, st.just(0)), None),
        'test_host': (BAD_NAME, None),
        'test_view': (BAD_NAME, None),
        'wait_timeout': (BAD_SECONDS, None),
        'poll_interval': (BAD_INTERVAL, None),
        'sync_round_seconds': (st.one_of(BAD_SECONDS, st.just(0)), None),
        'target': (bad_target(fz), None),
    }
    del sessions_form
    contexts = st.one_of(
        st.builds(lambda n: Case(dict(sessions=[dict(name=n)], state='test_cleanup', target=conn_target), 'fail', ['sessions'],
                                 note='unknown session'), UNKNOWN),
        st.builds(lambda n: Case(dict(volume_groups=[n], state='test_cleanup', target=conn_target), 'fail', ['volume_groups'],
                                 note='unknown group'), UNKNOWN),
        st.builds(lambda n: Case(dict(base, state='test', test_host=n), 'fail', ['test_host'], check_mode=True,
                                 note='unknown test host'), UNKNOWN),
        st.just(Case(dict(base, state='test'), 'fail', ['test_host'], note='test without test_host')),
    )
    fuzz(fz, 'k2_failover', table, valid, contexts, examples=300)


# --------------------------------------------------------------------------------------------- k2_volume_copy

def test_fuzz_k2_volume_copy(fz):
    files = fz.tmp
    paths = {}
    for name, size in (('src', 1 << 20), ('dst', 1 << 20), ('small', 64 << 10)):
        path = str(files / name)
        with open(path, 'wb') as fh:
            fh.truncate(size)
        paths[name] = path

    def local(name):
        return {'driver_volume_type': 'local', 'data': {'device_path': paths[name]}}

    reached = []

    def no_os_brick():
        reached.append(True)
        return None, 'k2 fuzz: os-brick is not loaded by the fuzz tests'

    mp = pytest.MonkeyPatch()
    mp.setattr(k2_volume_copy, 'load_os_brick', no_os_brick)

    def after(case, result):
        was = bool(reached)
        del reached[:]
        assert not was, '%r failed (%s) after loading os-brick to attach: validation came too late' % (case, result.get('msg'))

    base = dict(source=local('src'), destination=local('dst'))
    valid = st.one_of(
        st.just(base),
        st.builds(lambda bs, depth, d: dict(base, block_size=bs, io_depth=depth, direct_io=d, size='512KiB', verify=True),
                  st.sampled_from(['4KiB', '1MiB', 65536, '64MiB']), st.integers(1, k2_copy.MAX_IO_DEPTH),
                  st.sampled_from(['auto', 'always', 'never'])),
        st.just(dict(base, multipath=True, enforce_multipath=True, device_scan_attempts=5, progress_interval=0.5,
                     root_helper='sudo', lock_path=str(files / 'locks'), progress_file=str(files / 'progress.json'))),
    )
    bad_info = st.sampled_from(['x', [], {}, {'a': 1}, {'driver_volume_type': 'bogus'}, {'driver_volume_type': 'iscsi', 'data': {}},
                                {'driver_volume_type': 'local', 'data': 'x'}, {'driver_volume_type': 'local', 'data': {'device_path': ''}},
                                {'driver_volume_type': 'fibre_channel', 'data': {'target_lun': 1}}, {'data': {'device_path': '/x'}},
                                {'driver_volume_type': ['local'], 'data': {'device_path': '/x'}},
                                {'driver_volume_type': {'a': 1}, 'data': {'device_path': '/x'}}])
    table = {
        'source': (bad_info, None),
        'destination': (bad_info, None),
        'size': (BAD_SIZE, None),
        'block_size': (st.one_of(BAD_SIZE, st.sampled_from(['1KiB', '128MiB', '6KiB', 1024, '1GiB', '100000'])), None),
        'io_depth': (st.one_of(st.sampled_from([0, -1, k2_copy.MAX_IO_DEPTH + 1, 2 ** 70, -2 ** 70]), BAD_INT_TYPE), None),
        'dest_is_zeroed': (BAD_BOOL, None),
        'direct_io': (BAD_CHOICE.filter(lambda v: v not in ('auto', 'always', 'never')), None),
        'verify': (BAD_BOOL, None),
        'multipath': (BAD_BOOL, None),
        'enforce_multipath': (BAD_BOOL, None),
        'device_scan_attempts': (st.one_of(st.sampled_from([0, -1, -2 ** 70]), BAD_INT_TYPE), None),
        'root_helper': (None, None),      # free text (a list becomes its text): see the 'any' contexts
        'lock_path': (None, None),
        'progress_file': (None, None),
        'progress_interval': (st.sampled_from([0, -1, 'abc', float('nan'), 'nan', float('-inf'), [], -0.5, 'inf']), None),
    }
    contexts = st.one_of(
        st.just(Case(dict(base, enforce_multipath=True), 'fail', ['enforce_multipath', 'multipath'])),
        st.just(Case(dict(source=local('src'), destination=local('src')), 'fail', ['source', 'destination'], note='same volume')),
        st.just(Case(dict(source=local('src'), destination=local('small')), 'fail', ['destination'], check_mode=True,
                     note='destination too small')),
        st.just(Case(dict(base, size='2MiB'), 'fail', ['size'], check_mode=True, note='larger than the source')),
        st.builds(lambda v: Case(dict(base, root_helper=v), 'any', ['root_helper'], check_mode=True),
                  st.sampled_from(['', 'x' * 10000, ['a'], {'a': 1}, 'sudo -n'])),
        st.builds(lambda v: Case(dict(base, lock_path=v, progress_file=v), 'any', ['lock_path', 'progress_file'], check_mode=True),
                  st.sampled_from(['', 'x' * 10000, ['a'], '/nonexistent/dir/file', '\x01'])),
    )
    # Valid examples run in check mode (a real copy would attach with os-brick); bad ones in both modes.
    valid_cm = valid.map(lambda a: a)
    try:
        fuzz(fz, 'k2_volume_copy', table, valid_cm, contexts, examples=300, conn=False, after=after,
             check_modes=(True,))
        # And the bad options once more outside check mode: they must fail before os-brick is loaded.
        fuzz(fz, 'k2_volume_copy', table, valid_cm, st.nothing(), examples=150, conn=False, after=after, check_modes=(False,),
             valid_check_modes=(True,))
    finally:
        mp.undo()
