# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 8: secrets never appear in task output, -vvvv logs, diffs, facts, trace files or k2sim's log.

One playbook (playbooks/security_secrets.yml) runs every module of the collection -- succeeding and failing tasks,
check mode, --diff, k2_facts with every subset, replication and a failover drill between two arrays, a local
k2_volume_copy, trace files, a bearer token -- with -vvvv and ANSIBLE_LOG_PATH set. Then every byte it left is
searched for every secret: the passwords of the three users involved (operator: the modules; replicator: the peer
array credentials; viewer: a facts task), the bearer token, and the base64 of each user:password (what a Basic
Authorization header carries). The search must find nothing, and must find a planted canary everywhere it was
planted, so that it cannot pass by searching the wrong thing.
"""

import base64
import json
import os
import time

import pytest

from k2lab import OPERATOR, USERS, VIEWER, Lab

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYBOOK = os.path.join(HERE, 'playbooks', 'security_secrets.yml')

# The peer array credentials (k2_replication peer.password / local_password): a user of their own, so that their
# password is a no_log parameter of one task only and any other appearance is a leak Ansible cannot have masked.
REPLICATOR = ('replicator', 'R3plicat0r-Secret-19')
CANARY = 'canary-5e9d1c7b'


@pytest.fixture
def sec_lab(tmp_path, monkeypatch):
    """Two arrays, k2sim logging at DEBUG (so that its log has something to search), an extra peer user."""
    monkeypatch.setenv('K2SIM_LOG_LEVEL', 'DEBUG')
    for name in list(os.environ):
        if name.startswith('K2_') or name in ('ANSIBLE_KEEP_REMOTE_FILES', 'ANSIBLE_LOG_PATH', 'REQUESTS_CA_BUNDLE'):
            monkeypatch.delenv(name)
    lab = Lab(tmp_path, arrays=('primary', 'secondary'), users=USERS + ('%s:%s:admin' % REPLICATOR,))
    yield lab
    lab.stop()


def b64(user, password):
    return base64.b64encode(('%s:%s' % (user, password)).encode()).decode()


def corpus_files(root, skip):
    """Every regular file under ``root`` except those under ``skip`` (the arrays' own databases and volumes)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def search(corpus, needles):
    """{(source, needle): count} of every needle found in every source (``corpus``: {source: text})."""
    hits = {}
    for source, text in corpus.items():
        for needle in needles:
            count = text.count(needle)
            if count:
                hits[(source, needle)] = count
    return hits


def test_no_secret_in_any_output(sec_lab, tmp_path):
    lab = sec_lab
    work = os.path.join(str(tmp_path), 'work')
    os.makedirs(work)
    ansible_log = os.path.join(work, 'ansible.log')
    token = lab.token('primary', user='operator')
    assert token['token'] and token['sdp_id'] is not None

    secrets = {
        'operator password': OPERATOR[1],
        'viewer password': VIEWER[1],
        'replicator password': REPLICATOR[1],
        'bearer token': token['token'],
        'operator basic auth': b64(*OPERATOR),
        'viewer basic auth': b64(*VIEWER),
        'replicator basic auth': b64(*REPLICATOR),
    }
    for value in secrets.values():
        assert len(value) >= 16, 'a short secret could match by chance: %r' % value

    env = {
        'SEC_WORK': work, 'SEC_ADMIN': lab.admin, 'SEC_CANARY': CANARY,
        'SEC_PRIMARY_HOST': lab.host('primary'), 'SEC_PRIMARY_CA': lab.ca('primary'),
        'SEC_SECONDARY_HOST': lab.host('secondary'), 'SEC_SECONDARY_CA': lab.ca('secondary'),
        'SEC_USERNAME': OPERATOR[0], 'SEC_PASSWORD': OPERATOR[1],
        'SEC_VIEWER_USERNAME': VIEWER[0], 'SEC_VIEWER_PASSWORD': VIEWER[1],
        'SEC_PEER_USERNAME': REPLICATOR[0], 'SEC_PEER_PASSWORD': REPLICATOR[1],
        'SEC_TOKEN': token['token'], 'SEC_SDP_ID': str(token['sdp_id']),
        'ANSIBLE_LOG_PATH': ansible_log,
    }
    # The play takes its connections from SEC_* only: without K2_USERNAME/K2_PASSWORD in the environment, the
    # token play is not contradicted by the modules' env fallbacks.
    lab.env = lambda *args, **kwargs: {}
    run = lab.playbook(PLAYBOOK, verbosity=4, diff=True, env=env, timeout=300)
    assert run.rc == 0, run.output[-6000:]
    recap = run.recap()
    assert recap.get('failed', 0) == 0 and recap.get('ignored', 0) == 7, recap
    assert recap.get('changed', 0) >= 10, recap
    time.sleep(0.3)  # k2sim writes its log from the event loop; let the last lines land

    # ------------------------------------------------------------------ what is searched
    corpus = {'ansible-playbook stdout': run.stdout, 'ansible-playbook stderr': run.stderr}
    data_dir = lab.data_dir
    for path in corpus_files(str(tmp_path), skip=data_dir):
        with open(path, 'rb') as handle:
            corpus[os.path.relpath(path, str(tmp_path))] = handle.read().decode('utf-8', 'replace')
    # k2sim's own records: its log file (above) and the request log of each array (admin API).
    for array in ('primary', 'secondary'):
        corpus['k2sim request log %s' % array] = json.dumps(lab.requests_log(array), indent=1)
    sizes = dict((source, len(text)) for source, text in corpus.items())
    print('searched %d sources, %d bytes: %s' % (len(corpus), sum(sizes.values()), sorted(sizes.items())))

    traces = ['work/trace-%s.jsonl' % name
              for name in ('volume', 'snapshot', 'mapping', 'peer', 'replication', 'failover', 'facts', 'token')]
    expected = ['work/ansible.log', 'work/results-1.json', 'work/results-2.json', 'k2sim.log'] + traces
    missing = [name for name in expected if name not in corpus]
    assert not missing, 'expected outputs were not written: %s (have %s)' % (missing, sorted(corpus))

    # The search is real: the texts are substantial and hold what is known to be in them.
    assert len(run.stdout) > 100000, len(run.stdout)
    assert 'ESTABLISH LOCAL CONNECTION' in run.stdout  # -vvvv
    assert '"changed": true' in corpus['work/ansible.log']
    assert 'k2sim is serving' in corpus['k2sim.log'], corpus['k2sim.log'][-2000:]
    assert corpus['k2sim request log primary'].count('"user": "operator"') > 50
    for name in traces:
        assert corpus[name].count('\n') >= 1, name
    # Redaction is visible where a secret was sent: the peer passwords in a POST body, the bearer header.
    assert '"password": "********"' in corpus['work/trace-peer.jsonl']
    assert '"Authorization": "********"' in corpus['work/trace-token.jsonl']
    assert OPERATOR[0] in run.stdout and REPLICATOR[0] in run.stdout and VIEWER[0] in run.stdout
    assert '/rest/sdps/%s/api/v2' % token['sdp_id'] in corpus['work/trace-token.jsonl']
    assert '"peer_k2arrays"' in corpus['work/results-1.json'] or 'peer_arrays' in corpus['work/results-1.json']
    assert 'connection_info' in corpus['work/results-1.json'] and '"bytes_copied"' in corpus['work/results-1.json']

    # The planted canary is found where it was planted, by the same search.
    planted = search(corpus, [CANARY])
    for source in ['ansible-playbook stdout', 'work/ansible.log', 'work/results-1.json', 'work/trace-volume.jsonl',
                   'work/trace-mapping.jsonl', 'k2sim request log primary']:
        assert (source, CANARY) in planted, 'the search does not find the canary in %s: %s' % (source, planted)
    # ... and so would a secret: plant one in a copy of the corpus.
    planted_text = 'x Authorization: Basic %s y, Bearer %s' % (secrets['operator basic auth'], secrets['bearer token'])
    assert search({'planted': planted_text}, secrets.values()) == {
        ('planted', secrets['operator basic auth']): 1, ('planted', secrets['bearer token']): 1}

    # ------------------------------------------------------------------ the verdict
    leaks = search(corpus, secrets.values())
    names = dict((v, k) for k, v in secrets.items())
    report = ['%s in %s (%d times)' % (names[needle], source, count) for (source, needle), count in sorted(leaks.items())]
    assert not leaks, 'secrets leaked:\n' + '\n'.join(report)
