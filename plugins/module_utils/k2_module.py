# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
# SPDX-License-Identifier: BSD-2-Clause

"""The base every kaminario.k2 module stands on.

A module builds on ``K2Module``::

    class VolumeModule(K2Module):
        def __init__(self):
            super(VolumeModule, self).__init__(argument_spec=dict(name=dict(type='str', required=True), ...))

        def work(self):
            current = self.client.get_by_name('volumes', self.params['name'])
            plan = self.plan(current, {'name': ..., 'size': self.params['size']}, state=self.params['state'],
                             resource='volume', grow_only=('size',))
            volume = self.apply(plan, create=lambda body: self.client.create('volumes', body),
                                update=lambda cur, changes: self.client.update('volumes', cur['id'], changes),
                                delete=lambda cur: self.client.delete('volumes', cur['id']))
            return {'volume': volume}

    def main():
        VolumeModule().run()

What the base does, once for every module:

* the connection options of the ``kaminario.k2.k2`` doc fragment, with their
  environment fallbacks and the rule "k2_username + k2_password, or k2_token +
  k2_sdp_id";
* the ``K2Client``, created on first use;
* ``plan()``: create / update / rename / delete / nothing, the changed
  attributes, ``diff`` and the ``actions`` list;
* ``apply()``: the only place that writes, skipped in check mode;
* ``rollback()``: undo steps run in reverse when a later step fails;
* ``run()``: K2 and validation errors become ``fail_json`` with a sentence, a
  hint, ``k2_error_code`` and ``http_status``, never a traceback; the result
  carries ``changed``, ``actions``, ``diff`` and ``k2_requests`` (requests sent).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import copy
import json
import math
import os
import re
import sys
from collections import Counter
from contextlib import contextmanager

from ansible.module_utils import basic as ansible_basic
from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.kaminario.k2.plugins.module_utils.k2_client import (
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR, DEFAULT_RETRIES, DEFAULT_RETRY_MAX_WAIT, DEFAULT_TIMEOUT,
    K2Client, K2Error, K2ReferenceError, values_equal,
)
from ansible_collections.kaminario.k2.plugins.module_utils.k2_naming import K2NamingError
from ansible_collections.kaminario.k2.plugins.module_utils.k2_sizes import K2SizeError, size_to_kib, format_kib

CONNECTION_OPTIONS = ('k2_host', 'k2_username', 'k2_password', 'k2_token', 'k2_sdp_id', 'validate_certs',
                      'ca_path', 'timeout', 'retries', 'retry_max_wait', 'trace_file')


def k2_argument_spec():
    """The connection options, exactly as ``plugins/doc_fragments/k2.py`` documents them."""
    return dict(
        k2_host=dict(type='str', required=True, fallback=(env_fallback, ['K2_HOST'])),
        k2_username=dict(type='str', fallback=(env_fallback, ['K2_USERNAME'])),
        k2_password=dict(type='str', no_log=True, fallback=(env_fallback, ['K2_PASSWORD'])),
        k2_token=dict(type='str', no_log=True, fallback=(env_fallback, ['K2_TOKEN'])),
        k2_sdp_id=dict(type='str', fallback=(env_fallback, ['K2_SDP_ID'])),
        validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['K2_VALIDATE_CERTS'])),
        ca_path=dict(type='path', fallback=(env_fallback, ['K2_CA_PATH'])),
        timeout=dict(type='int', default=DEFAULT_TIMEOUT),
        retries=dict(type='int', default=DEFAULT_RETRIES),
        retry_max_wait=dict(type='int', default=DEFAULT_RETRY_MAX_WAIT),
        trace_file=dict(type='path', fallback=(env_fallback, ['K2_TRACE_FILE'])),
    )


# The two ways to log in: user and password, or Flex token and SDP id. The options of each go together.
LOGIN_METHODS = (('k2_username', 'k2_password'), ('k2_token', 'k2_sdp_id'))
K2_REQUIRED_TOGETHER = list(LOGIN_METHODS)
K2_MUTUALLY_EXCLUSIVE = [('k2_username', 'k2_token'), ('k2_password', 'k2_token'),
                         ('k2_username', 'k2_sdp_id'), ('k2_password', 'k2_sdp_id')]
K2_REQUIRED_ONE_OF = [('k2_username', 'k2_token')]


class K2PlanError(Exception):
    """A wanted state that cannot be reached without a forbidden change (shrink, immutable field...)."""

    def __init__(self, message, hint=None):
        self.message = message
        self.hint = hint
        super(K2PlanError, self).__init__(message if not hint else '%s %s' % (message, hint))


# --------------------------------------------------------------------------- plan

class Plan(object):
    """What one object needs: ``action`` is ``'create'``, ``'update'``, ``'delete'`` or ``None`` (nothing).

    ``changes`` holds the attributes to PATCH (``name`` included for a
    rename), ``body`` the attributes to POST on create, ``rename`` the pair
    ``(old, new)`` or ``None``. ``before``/``after`` are the diff views and
    ``actions`` the plan entries reported to the user. Sizes are in KiB.
    """

    def __init__(self, resource, name, state, action, current, body, changes, rename, before, after, sizes=()):
        self.resource = resource
        self.name = name
        self.state = state
        self.action = action
        self.current = current
        self.body = body
        self.changes = changes
        self.rename = rename
        self.before = before
        self.after = after
        self.sizes = tuple(sizes)

    @property
    def changed(self):
        return self.action is not None

    @property
    def label(self):
        return "%s '%s'" % (self.resource, self.name)

    @property
    def actions(self):
        """Plan entries, e.g. ``{"action": "update", "resource": "volume", "name": "v1", "changes": {"size": {"before": 1, "after": 2}}}``."""
        if self.action is None:
            return []
        if self.action == 'create':
            return [dict(action='create', resource=self.resource, name=self.name, attributes=self.body)]
        if self.action == 'delete':
            return [dict(action='delete', resource=self.resource, name=self.name)]
        entries = []
        if self.rename:
            entries.append(dict(action='rename', resource=self.resource, name=self.rename[0], new_name=self.rename[1]))
        others = dict((k, {'before': self.current.get(k), 'after': v}) for k, v in self.changes.items() if not self.rename or k != 'name')
        if others:
            entries.append(dict(action='update', resource=self.resource, name=self.rename[1] if self.rename else self.name, changes=others))
        return entries

    def predicted(self):
        """The object as it will be after the change (used as the result in check mode)."""
        if self.action == 'delete':
            return None
        if self.action == 'create':
            return copy.deepcopy(self.body)
        result = copy.deepcopy(self.current) if self.current is not None else None
        if result is not None and self.changes:
            result.update(copy.deepcopy(self.changes))
        return result


def compute_plan(current, desired, state='present', resource='object', name_key='name', sizes=('size',),
                 immutable=None, grow_only=(), create_only=(), ignore=()):
    """Decide what to do for one object. Pure: no I/O, no module.

    ``current``: the object from K2, or ``None`` when it does not exist.
    ``desired``: the attributes the user wants; ``None`` values mean "not set"
    and are never compared. A ``desired[name_key]`` that differs from
    ``current[name_key]`` is a rename.
    ``state``: ``'present'`` or ``'absent'``.
    ``sizes``: keys holding user sizes (bytes or ``"10GiB"``), converted to KiB;
    a tuple of keys, or a dict ``{key: option label for errors}`` such as
    ``{'size': 'volumes[3].size'}``.
    ``immutable``: keys that cannot change on an existing object; a list, or
    a dict ``{key: hint}``; a difference raises ``K2PlanError``.
    ``grow_only``: numeric keys that may only grow (a smaller value raises).
    ``create_only``: keys sent on create but never compared afterwards.
    ``ignore``: keys never sent nor compared (module-internal options).
    """
    if state not in ('present', 'absent'):
        raise ValueError("compute_plan handles state present or absent, not %r" % (state,))
    immutable = dict((k, None) for k in immutable) if isinstance(immutable, (list, tuple, set)) else dict(immutable or {})
    wanted = {}
    for key, value in (desired or {}).items():
        if value is None or key in ignore:
            continue
        wanted[key] = size_to_kib(value, sizes[key] if isinstance(sizes, dict) else key) if key in sizes else value
    name = wanted.get(name_key) if current is None else current.get(name_key, wanted.get(name_key))

    if state == 'absent':
        if current is None:
            return Plan(resource, wanted.get(name_key), state, None, None, None, {}, None, {}, {}, sizes)
        # The diff of a delete shows the whole object that goes away, not just the keys the task named.
        return Plan(resource, name, state, 'delete', current, None, {}, None, copy.deepcopy(current), {}, sizes)

    if current is None:
        return Plan(resource, wanted.get(name_key), state, 'create', None, wanted, {}, None, {}, dict(wanted), sizes)

    changes = {}
    for key, value in wanted.items():
        if key in create_only or values_equal(current.get(key), value):
            continue
        if key in immutable:
            shown = format_kib if key in sizes else _show
            raise K2PlanError("Cannot change %s of %s '%s' from %s to %s: it is fixed once the %s exists."
                              % (key, resource, name, shown(current.get(key)), shown(value), resource),
                              immutable[key] or 'Keep the current value, or create a new %s.' % resource)
        if key in grow_only and _as_number(current.get(key)) is not None and _as_number(value) < _as_number(current.get(key)):
            shown = format_kib if key in sizes else _show
            raise K2PlanError("Cannot shrink %s '%s': %s is %s and the task asks for %s."
                              % (resource, name, key, shown(current.get(key)), shown(value)),
                              'K2 only grows %s; give a value at least as large, or create a new %s and copy the data.' % (key, resource))
        changes[key] = value
    rename = None
    if name_key in changes:
        rename = (current.get(name_key), changes[name_key])
    before = _project(current, wanted, name_key)
    after = dict(before)
    after.update(changes)
    for key in create_only:
        after.pop(key, None)
        before.pop(key, None)
    return Plan(resource, name, state, 'update' if changes else None, current, None, changes, rename, before, after, sizes)


def _project(current, wanted, name_key):
    keys = [name_key] + [k for k in wanted if k != name_key]
    return dict((k, copy.deepcopy(current.get(k))) for k in keys if k in current or k in wanted)


def _as_number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _show(value):
    return json.dumps(value, sort_keys=True, default=str)


# --------------------------------------------------------------------------- rollback

class Rollback(object):
    """A stack of undo steps, run in reverse order if the ``with`` block fails.

    ::

        with self.rollback() as undo:
            group = self.client.create('volume_groups', {...})
            undo.push("delete volume group '%s'" % group['name'], self.client.delete, 'volume_groups', group['id'])
            self.client.create('volumes', {...})        # if this fails, the group is deleted again

    On failure every undo step runs (a failing step does not stop the
    others), the outcome is recorded in ``report`` and attached to the
    exception as ``rollback_report``, and the exception propagates.
    """

    def __init__(self):
        self._steps = []
        self.report = []

    def push(self, description, func, *args, **kwargs):
        self._steps.append((description, func, args, kwargs))

    def run(self):
        """Run and clear the undo steps, newest first; return ``[(description, None or error text)]``."""
        while self._steps:
            description, func, args, kwargs = self._steps.pop()
            try:
                func(*args, **kwargs)
                self.report.append((description, None))
            except Exception as exc:  # pylint: disable=broad-except
                # An undo step failing must not hide the original error nor skip the remaining steps.
                self.report.append((description, str(exc)))
        return self.report

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.run()
            try:
                exc.rollback_report = list(self.report)
            except AttributeError:  # pragma: no cover - exceptions without a __dict__
                pass
        self._steps = []
        return False


def describe_rollback(report):
    """Sentence for ``msg``: what was undone, and what could not be undone (left for the user to clean up)."""
    if not report:
        return ''
    done = [d for d, err in report if err is None]
    failed = ['%s (%s)' % (d, err) for d, err in report if err is not None]
    parts = []
    if done:
        parts.append('Rolled back: %s.' % '; '.join(done))
    if failed:
        parts.append('Could NOT roll back, clean up by hand: %s.' % '; '.join(failed))
    return ' '.join(parts)


# --------------------------------------------------------------------------- no_log scrubbing of results

# A subtree holding a no_log value is split into its items when its JSON is at least this long; shorter ones,
# and anything deeper than SCRUB_MAX_DEPTH, go to Ansible's remove_values whole.
SCRUB_SPLIT_CHARS = 4096
SCRUB_MAX_DEPTH = 32
# How deep (dict values only, never list items) the result is searched for containers it holds twice.
SHARED_DEPTH = 4


# The scrub compares exact types (type(x) is dict, not isinstance): a subclass (Ansible's tagged or unsafe
# values, an OrderedDict) may encode or scrub differently, so it always goes to Ansible's remove_values.


def _json_text(value):
    """``value`` as JSON text (non-ASCII kept), or None when the stdlib encoder refuses it."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RuntimeError):     # bytes, sets, dates, Ansible objects; NaN; cycles, recursion
        return None


def _shared_containers(value, max_depth=SHARED_DEPTH):
    """``(shared, above)``: ``{id: container}`` of the dicts and lists met more than once among the values of plain
    dicts, down to ``max_depth`` levels (each container is looked into once, list items are never looked at), and the
    ids of the plain dicts on the way to them (``value`` included)."""
    if type(value) is not dict:  # pylint: disable=unidiomatic-typecheck
        return {}, set()
    seen, shared = set([id(value)]), {}

    def count(item, depth):
        for child in item.values():
            kind = type(child)
            if kind is dict or kind is list:
                if id(child) in seen:
                    shared[id(child)] = child
                else:
                    seen.add(id(child))
                    if kind is dict and depth < max_depth:
                        count(child, depth + 1)

    count(value, 1)
    above = set()

    def mark(item, depth):
        found = False
        for child in item.values():
            if id(child) in shared:
                found = True
            elif type(child) is dict and depth < max_depth and id(child) not in above and mark(child, depth + 1):  # pylint: disable=unidiomatic-typecheck
                found = True
        if found:
            above.add(id(item))
        return found

    if shared:
        mark(value, 1)
    return shared, above


def _plain(value):
    """True when ``value`` is made only of dicts with str keys, lists, strs, ints, finite floats, booleans and None
    (exactly those types, no subclass)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(k) is str for k in item):  # pylint: disable=unidiomatic-typecheck
                return False
            children = item.values()
        elif kind is list:
            children = item
        else:
            return False
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append(child)
            elif kind is float:
                if not math.isfinite(child):
                    return False
            elif kind not in _PLAIN_SCALARS:
                return False
    return True


_PLAIN_SCALARS = frozenset([str, int, bool, type(None)])


def scrub_no_log(value, no_log_strings, remove_values, encode=None, texts=None):
    """What ``remove_values(value, no_log_strings)`` returns, without walking the parts that hold no no_log value.

    Soundness. ``remove_values`` (ansible-core 2.16 to 2.19) changes only strings, ints and floats whose text
    (``str()``) contains a no_log value, and returns an equal copy of everything else: dict keys, booleans and None
    pass unchanged, and containers are copied item by item. ``json.dumps(..., ensure_ascii=False)`` escapes character
    by character, so a string containing ``v`` has a JSON text containing the escaped form of ``v``; an int's or a
    finite float's JSON text is its ``str()`` (NaN and infinities are refused here, as are bytes, sets and every type
    the stdlib encoder does not know). So a subtree whose JSON text holds no escaped no_log value would come back
    from ``remove_values`` equal to itself, and is returned as it is. A subtree that does hold one is split into its
    items when it is a large plain dict (whose keys hold none) or list, and otherwise handed to ``remove_values``
    whole. A container met twice (k2_facts returns its facts as ``ansible_facts.k2`` and as ``k2``) is checked and
    scrubbed once: the plain dicts above it (found among dict values a few levels down, see ``_shared_containers``),
    and that container itself when it is a dict, are split into their items without being encoded first (splitting a
    plain dict whose keys hold no no_log value gives what ``remove_values`` gives, whether or not its values hold
    one), so that its JSON text is computed once.
    With ``encode`` (the module's own encoder, or its ``stdlib_twin``: ``record_sharing`` prints the result with it, see
    there), the parts of
    a container met twice that are made only of plain JSON types (``_plain``: exactly dict with str keys, list, str,
    int, finite float, bool, None) are checked on ``encode``'s text instead, kept in ``texts`` (``{id: (container,
    text)}``, those that hold no no_log value) for ``record_sharing``: for those types the module encoder is the
    stdlib encoder (ensure_ascii on or off), which escapes character by character and writes an int or a finite float
    as its ``str()``, so the argument above holds with the no_log values escaped by ``encode`` too. The result equals
    ``remove_values(value, no_log_strings)``.
    """
    needles = [json.dumps(to_native(s, errors='surrogate_or_strict'), ensure_ascii=False)[1:-1] for s in no_log_strings]
    if not isinstance(value, dict) or not all(needles):
        return remove_values(value, no_log_strings)
    memo = {}
    texts = {} if texts is None else texts
    shared, above = _shared_containers(value)
    if encode is not None and shared:
        try:
            encoded_needles = [encode(to_native(s, errors='surrogate_or_strict'))[1:-1] for s in no_log_strings]
        except Exception:  # pylint: disable=broad-except
            encoded_needles = None
        if encoded_needles is None or not all(encoded_needles):
            encode = None

    def holds_secret(text):
        return any(needle in text for needle in needles)

    def split_dict(item, depth, inside):
        keys = list(item)
        keys_text = _json_text(keys) if all(type(k) is str for k in keys) else None  # pylint: disable=unidiomatic-typecheck
        if keys_text is None or holds_secret(keys_text):
            return remove_values(item, no_log_strings)
        return dict((k, scrub(v, depth + 1, inside)) for k, v in item.items())

    def check(item, inside):
        """``(text, clean)``: the container's JSON text, and whether it holds no no_log value."""
        if inside and _plain(item):
            text = encode(item)
            if text is not None:
                clean = not any(needle in text for needle in encoded_needles)
                if clean:
                    texts[id(item)] = (item, text)
                return text, clean
        text = _json_text(item)
        return text, text is not None and not holds_secret(text)

    def scrub(item, depth, inside=False):
        kind = type(item)
        if kind is not dict and kind is not list:
            text = _json_text(item)
            return item if text is not None and not holds_secret(text) else remove_values(item, no_log_strings)
        if id(item) in memo:
            return memo[id(item)][1]
        # inside a container met twice, plain parts are checked on the module encoder's text, kept for record_sharing
        inside = encode is not None and (inside or id(item) in shared)
        if kind is dict and (depth == 0 or id(item) in above or id(item) in shared) and depth < SCRUB_MAX_DEPTH:
            # the result dict itself (depth 0) is always split: it holds the invocation, with the password, next to
            # the data; the dicts above a container met twice are split so that it is encoded once, and a dict met
            # twice too, so that a no_log value in one of its parts does not make the others encoded again
            out = split_dict(item, depth, inside)
        else:
            text, clean = check(item, inside)
            if clean:
                out = item
            elif depth >= SCRUB_MAX_DEPTH or (text is not None and len(text) < SCRUB_SPLIT_CHARS):
                out = remove_values(item, no_log_strings)
            elif kind is list:
                out = [scrub(elem, depth + 1, inside) for elem in item]
            else:
                out = split_dict(item, depth, inside)
        memo[id(item)] = (item, out)      # the item is kept alive with its id
        return out

    return scrub(value, 0)


class _Capture(object):
    """A stand-in for ``sys.stdout`` that keeps what is written."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass

    def text(self):
        return ''.join(self.parts)


def _captured(record, value):
    """What ``record(value)`` prints (``'\\n' + JSON + '\\n'``), as a string, printing nothing."""
    capture, saved = _Capture(), sys.stdout
    sys.stdout = capture
    try:
        record(value)
    finally:
        sys.stdout = saved
    return capture.text()


def module_text(record, value):
    """The JSON text ``record`` (Ansible's ``_record_module_result``) writes for ``value`` where it is nested in the
    result (the one item of a list), or None when it refuses it or prints something else."""
    try:
        text = _captured(record, [value])
    except Exception:  # pylint: disable=broad-except
        return None
    return text[2:-2] if text.startswith('\n[') and text.endswith(']\n') else None


# Plain JSON values of every kind whose encoding could differ between encoders: escapes, non-ASCII and the line
# separators, the number forms, nesting. The probe of ``stdlib_twin``.
_ENCODER_PROBE = {'text': u'a "q" \\ / \n\t\x01 \u00e9 \u2028 \U0001f600', 'numbers': [0, -7, 2 ** 70, 1.5, -0.0, 1e300, 1e-7],
                  'flags': [True, False, None], 'nested': {'': [], 'x': {}}}


def stdlib_twin(record):
    """A function that encodes plain JSON values (see ``_plain``) exactly as ``record`` (Ansible's
    ``_record_module_result``) writes them nested in the result, with the stdlib's C encoder; or None.

    For plain values ansible-core 2.19's module encoder is the stdlib encoder with ``ensure_ascii`` on or off, but it
    visits every dict and list in Python (its ``default`` hook wraps each container to look at its items): on k2_facts'
    10,000 volumes that is most of the exit. Which setting applies is read from ``record`` itself on a probe holding
    every kind of plain value, and the twin is given only when the stdlib's text is the same to the character;
    otherwise (another ansible-core, another encoder) None, and ``module_text`` stays the way.
    """
    expected = module_text(record, _ENCODER_PROBE)
    if expected is None:
        return None
    for ensure_ascii in (False, True):
        if json.dumps(_ENCODER_PROBE, ensure_ascii=ensure_ascii) == expected:
            return lambda item, ensure_ascii=ensure_ascii: json.dumps(item, ensure_ascii=ensure_ascii)
    return None


def record_sharing(record, result, texts=None):
    """``record(result)`` (Ansible's ``_record_module_result``: ``print('\\n' + JSON of result)``), with each container
    the result holds twice (k2_facts: ``ansible_facts.k2`` and ``k2``) encoded once.

    Ansible's module encoder (no indent) writes a value's JSON text from the value alone, wherever it sits. So the
    result is encoded by ``record`` itself with each shared container replaced by a marker string, the container is
    encoded by ``record`` too (as the one item of a list, that is where a nested value is encoded), and the marker's
    text is replaced by the container's: the same characters ``record(result)`` prints. ``texts``: ``{id: (container,
    text)}`` made by ``module_text`` already (by ``scrub_no_log``); a container in it, still the same object, is
    replaced by a marker too (in the shared container's own text) and its text is not made again. Anything unexpected
    (a marker text found other than where it was placed, a text not shaped as ``print`` makes it, an error) falls
    back to ``record(result)`` itself, before anything was printed.
    """
    texts = texts or {}
    shared, above = _shared_containers(result)
    if not shared:
        return record(result)
    token = 'k2-shared-%s-' % binascii.hexlify(os.urandom(12)).decode('ascii')
    markers, encoded, expected = {}, {}, {}

    def known(child):
        entry = texts.get(id(child))
        return entry is not None and entry[0] is child

    def mark(child):
        if id(child) not in markers:
            marker = markers[id(child)] = '%s%d' % (token, len(markers))
            if known(child):
                encoded[marker] = texts[id(child)][1]
                expected[marker] = Counter()
            else:
                placed = Counter()
                text = module_text(record, frame(child, placed, True) if type(child) is dict else child)  # pylint: disable=unidiomatic-typecheck
                if text is None:
                    raise ValueError('unexpected text')
                encoded[marker], expected[marker] = text, placed
        return markers[id(child)]

    def frame(item, placed, inner=False):
        out = {}
        for key, child in item.items():
            if id(child) in shared or (inner and known(child)):
                out[key] = mark(child)
                placed[out[key]] += 1
            elif type(child) is dict and (id(child) in above or inner):  # pylint: disable=unidiomatic-typecheck
                out[key] = frame(child, placed, inner)
            else:
                out[key] = child
        return out

    def split(text, placed):
        pieces = re.split('"(%s[0-9]+)"' % token, text)
        if Counter(pieces[1::2]) != placed or any(token in piece for piece in pieces[0::2]):
            raise ValueError('unexpected text')
        return pieces

    try:
        placed = Counter()
        framed = _captured(record, frame(result, placed))
        if not (framed.startswith('\n') and framed.endswith('\n')):
            raise ValueError('unexpected text')
        pieces = dict((marker, split(encoded[marker], expected[marker])) for marker in encoded)
        top = split(framed, placed)
    except Exception:  # pylint: disable=broad-except
        # whatever went wrong, Ansible's own path prints the result or raises its own error
        return record(result)

    def write(parts):
        for number, part in enumerate(parts):
            if number % 2:
                write(pieces[part])
            else:
                sys.stdout.write(part)

    write(top)
    return None


@contextmanager
def scrubbing_only_what_holds_secrets(module=None):
    """While exit_json / fail_json run, Ansible's ``remove_values`` on the result goes through ``scrub_no_log``, and
    ``module``'s ``_record_module_result`` (ansible-core 2.19: the print of the result) through ``record_sharing``."""
    original = getattr(ansible_basic, 'remove_values', None)
    if original is None:
        yield
        return

    record = getattr(module, '_record_module_result', None)
    # only Ansible's own print of the result (ansible.netcommon replaces it to run modules in the worker)
    func = getattr(record, '__func__', None)
    patched = (func is not None and getattr(func, '__module__', None) == 'ansible.module_utils.basic'
               and getattr(func, '__qualname__', None) == 'AnsibleModule._record_module_result'
               and '_record_module_result' not in vars(module))
    texts = {}        # {id: (container, its JSON text by record)}: made by the scrub, used by record_sharing
    encode = None
    if patched:
        # the scrub encodes only plain values (_plain) with it: the stdlib's C encoder when it writes the same text
        encode = stdlib_twin(record) or (lambda item: module_text(record, item))

    def remove_values(value, no_log_strings):
        return scrub_no_log(value, no_log_strings, original, encode=encode, texts=texts)

    ansible_basic.remove_values = remove_values
    if patched:
        module._record_module_result = lambda result: record_sharing(record, result, texts)
    try:
        yield
    finally:
        ansible_basic.remove_values = original
        if patched:
            del module._record_module_result


# --------------------------------------------------------------------------- module

def _holds_text(kind, value):
    """A value of an option with sub-options (``kind`` dict, or list of dicts) that ansible-core parses as JSON or
    key=value: the value itself, or for a list one of its elements, is a string."""
    if isinstance(value, str):
        return True
    return kind == 'list' and isinstance(value, list) and any(isinstance(item, str) for item in value)


class K2AnsibleModule(AnsibleModule):
    """AnsibleModule whose argument errors always name the option.

    ansible-core reports a dict option with sub-options (``target``, ``peer``) given a string that is neither JSON nor
    key=value as just "dictionary requested, could not parse JSON or key=value" (its no_log scan raises before the type
    check names the option); the option is added to that message. The same for a list of dicts with sub-options
    (``peer_volumes``) given a string or a list holding one.

    Given anything else that is not a dict (a number, a list: ``peer: 1``, ``target: [1]``), ansible-core's sub-option
    validation raises TypeError ("argument of type 'int' is not iterable": set_fallbacks() runs on each element before
    the element is checked to be a dict), a traceback instead of a failed task. Such a value is taken out before
    ansible-core validates the arguments, and the task fails naming the option.
    """

    def _load_params(self):
        super(K2AnsibleModule, self)._load_params()
        self._k2_shape_errors = []
        params = self.params if isinstance(self.params, dict) else {}
        self._k2_given = dict(params)     # as given: validation replaces a list option's bad elements
        self._choose_login_method(params)
        for name, opt in (self.argument_spec or {}).items():
            if opt.get('type') != 'dict' or not opt.get('options'):
                continue
            for key in [name] + list(opt.get('aliases') or []):
                value = params.get(key)
                if value is not None and not isinstance(value, (dict, str)):
                    self._k2_shape_errors.append("argument '%s' is of type %s and we were unable to convert to dict: a "
                                                 "dictionary of its sub-options is required" % (key, type(value).__name__))
                    params[key] = None

    def _choose_login_method(self, params):
        """The login method the task names wins over the environment's other one.

        Every connection option falls back to an environment variable, and ansible-core applies the fallbacks before
        it checks that user/password and token/SDP id are not both given: with K2_USERNAME and K2_PASSWORD exported,
        a task that sets k2_token and k2_sdp_id would fail as "mutually exclusive". An option of the method
        the task does not name is not looked up in the environment (its fallback is taken out of this run's argument
        spec). When the task names neither and the environment holds both, the failure says so.
        """
        spec = self.argument_spec or {}
        if not all(key in spec for key in LOGIN_METHODS[0] + LOGIN_METHODS[1]):
            return
        named = [any(params.get(key) is not None for key in keys) for keys in LOGIN_METHODS]
        if named[0] != named[1]:
            for key in LOGIN_METHODS[1 if named[0] else 0]:
                spec[key] = dict((k, v) for k, v in spec[key].items() if k != 'fallback')
        elif not any(named):
            # the variables each method's options fall back to (k2_argument_spec), those that are set
            in_env = [[var for key in keys for var in spec[key].get('fallback', (None, ()))[1] if os.environ.get(var)]
                      for keys in LOGIN_METHODS]
            if in_env[0] and in_env[1]:
                self._k2_shape_errors.append(
                    'the environment sets %s and %s, two ways to log in: choose one by setting k2_username and '
                    'k2_password, or k2_token and k2_sdp_id, on the task (or in module_defaults), or unset the other '
                    'variables' % ('/'.join(in_env[0]), '/'.join(in_env[1])))

    def __init__(self, *args, **kwargs):
        super(K2AnsibleModule, self).__init__(*args, **kwargs)
        if getattr(self, '_k2_shape_errors', None):
            self.fail_json(msg='; '.join(self._k2_shape_errors))

    def fail_json(self, msg, **kwargs):
        if isinstance(msg, str) and msg.startswith('dictionary requested') and isinstance(getattr(self, 'params', None), dict):
            given = getattr(self, '_k2_given', None) or self.params
            bad = sorted(name for name, opt in (getattr(self, 'argument_spec', None) or {}).items()
                         if opt.get('options') and _holds_text(opt.get('type'), given.get(name)))
            if bad:
                msg = 'argument %s: %s' % (', '.join("'%s'" % name for name in bad), msg)
        shape = getattr(self, '_k2_shape_errors', None)
        if shape and isinstance(msg, str) and not msg.startswith(shape[0]):
            msg = '%s; %s' % ('; '.join(shape), msg)
        super(K2AnsibleModule, self).fail_json(msg=msg, **kwargs)


class K2Module(object):
    """AnsibleModule plus K2 client, planning, single write gate and error handling.

    Subclasses pass their own ``argument_spec`` (merged with the connection
    options) and the usual AnsibleModule constraints, then implement
    ``work()`` returning a dict of extra results, and call ``run()``.
    Attributes: ``module`` (the AnsibleModule), ``params``, ``check_mode``,
    ``diff_mode``, ``result`` (accumulates ``changed``, ``actions``, ``diff``).
    """

    def __init__(self, argument_spec=None, supports_check_mode=True, mutually_exclusive=None, required_together=None,
                 required_one_of=None, required_if=None, required_by=None):
        spec = k2_argument_spec()
        spec.update(argument_spec or {})
        # Optional constraints are passed only when set: validate-modules checks these
        # keyword values against its schema and refuses None.
        constraints = {}
        if required_if:
            constraints['required_if'] = required_if
        if required_by:
            constraints['required_by'] = required_by
        self.module = K2AnsibleModule(
            argument_spec=spec,
            supports_check_mode=supports_check_mode,
            mutually_exclusive=K2_MUTUALLY_EXCLUSIVE + list(mutually_exclusive or []),
            required_together=K2_REQUIRED_TOGETHER + list(required_together or []),
            required_one_of=K2_REQUIRED_ONE_OF + list(required_one_of or []),
            **constraints
        )
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.diff_mode = bool(getattr(self.module, '_diff', False))
        self.result = {'changed': False, 'actions': []}
        # Undo steps for changes that span several writes (a new host, then its initiators, then its
        # mappings): fail() runs them before reporting, so a failed run leaves nothing half-made.
        self.undo = Rollback()
        self._diffs = []
        self._client = None
        self._writes = 0
        if not HAS_REQUESTS:
            self.module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
        if not self.params['validate_certs']:
            self.module.warn('validate_certs is false: the K2 certificate is not checked, so anyone on the network path can '
                             'impersonate the array and read its credentials. Set ca_path to the CA that signed the array '
                             'certificate instead.')

    # ------------------------------------------------------------- client

    @property
    def client(self):
        """The ``K2Client`` for this run, created on first use (modules that fail validation send nothing)."""
        if self._client is None:
            p = self.params
            try:
                self._client = K2Client(
                    p['k2_host'], username=p['k2_username'], password=p['k2_password'], token=p['k2_token'],
                    sdp_id=p['k2_sdp_id'], validate_certs=p['validate_certs'], ca_path=p['ca_path'],
                    timeout=p['timeout'], retries=p['retries'], retry_max_wait=p['retry_max_wait'], trace_file=p['trace_file'])
            except ValueError as exc:
                self.fail(str(exc))
        return self._client

    def find_current(self, resource, name, new_name=None, name_field='name', fields=None):
        """The object to plan against, by name, for modules with a ``new_name`` option.

        Looks up ``new_name`` first (a re-run after the rename finds the object
        in one request), then ``name``. Returns ``None`` when neither exists;
        the module then decides whether that means create or an error.
        """
        if new_name:
            found = self.client.get_by_name(resource, new_name, name_field=name_field, fields=fields)
            if found is not None:
                return found
        return self.client.get_by_name(resource, name, name_field=name_field, fields=fields)

    def request_counters(self):
        return self._client.counters() if self._client is not None else {'total': 0}

    def list_items(self, option, inherited):
        """The items of the list option ``option`` as ``(index, dict)``, each option of ``inherited`` that an item
        leaves unset taken from the task's option of the same name (the list forms' defaults)."""
        for index, raw in enumerate(self.params[option] or []):
            spec = dict(raw)
            for key in inherited:
                if spec.get(key) is None:
                    spec[key] = self.params[key]
            yield index, spec

    # ------------------------------------------------------------- plan and apply

    def plan(self, current, desired, state='present', resource='object', **kwargs):
        """``compute_plan`` (see there) with errors turned into ``fail_json``."""
        try:
            return compute_plan(current, desired, state=state, resource=resource, **kwargs)
        except (K2PlanError, K2SizeError) as exc:
            self.fail(str(exc))

    def record(self, plan):
        """Add a plan to the result (changed, actions, diff) without writing anything."""
        if plan.changed:
            self.result['changed'] = True
            self.result['actions'].extend(plan.actions)
        self._diffs.append(plan)

    def writes_allowed(self):
        """False in check mode: the one test every write goes through."""
        return not self.check_mode

    def apply(self, plan, create=None, update=None, delete=None, rename=None):
        """Record ``plan`` and, unless in check mode, carry it out. Returns the object afterwards.

        ``create(body)`` -> new object; ``update(current, changes)`` -> updated
        object (``changes`` includes ``name`` on a rename unless ``rename`` is
        given); ``rename(current, new_name)`` -> renamed object;
        ``delete(current)``. A callable returning ``None`` leaves the predicted
        object as the result. In check mode nothing is called and the
        predicted object is returned. When the plan changes nothing, the
        result is ``plan.current``: the object exactly as it was passed to
        ``plan()`` (the caller's view of it, not a fresh read). Errors become
        ``fail_json`` naming the action and the object, after the ``undo``
        steps ran.
        """
        self.record(plan)
        if not plan.changed:
            return plan.current
        if not self.writes_allowed():
            return plan.predicted()
        handler = {'create': create, 'update': update, 'delete': delete}[plan.action]
        if handler is None and not (plan.action == 'update' and rename is not None):
            raise ValueError('apply() needs a %s callable for %s' % (plan.action, plan.label))
        verb = {'create': 'create', 'update': 'update', 'delete': 'delete'}[plan.action]
        try:
            if plan.action == 'create':
                outcome = create(copy.deepcopy(plan.body))
            elif plan.action == 'delete':
                delete(plan.current)
                outcome = None
            else:
                changes = dict(plan.changes)
                outcome = plan.current
                if plan.rename and rename is not None:
                    verb = 'rename'
                    outcome = rename(plan.current, changes.pop('name')) or outcome
                if changes:
                    verb = 'update'
                    if update is None:
                        raise ValueError('apply() needs an update callable for %s' % plan.label)
                    outcome = update(outcome, changes)
            self.note_write()
        except (K2Error, K2NamingError, K2SizeError, K2PlanError) as exc:
            self.fail_error('Could not %s %s' % (verb, plan.label), exc)
        return outcome if outcome is not None or plan.action == 'delete' else plan.predicted()

    def apply_many(self, plans, create=None, update=None, delete=None):
        """Bulk form of ``apply`` for modules that manage a list of objects in one task.

        Records every plan, then (unless in check mode) calls each callable
        once with all the plans of its action, in the order create, update,
        delete (deletes last, so a failed create never follows a deletion):
        ``create(bodies)``, ``update([(current, changes), ...])`` and
        ``delete([current, ...])``; create and update return the objects in
        the same order (for example from ``K2Client.bulk_create``).
        Returns the objects after the change, aligned with ``plans``
        (``None`` for deleted ones, predicted objects in check mode).
        """
        results = []
        for plan in plans:
            self.record(plan)
            results.append(plan.current if not plan.changed else plan.predicted())
        if not self.writes_allowed():
            return results
        steps = (('create', create, lambda p: copy.deepcopy(p.body)),
                 ('update', update, lambda p: (p.current, dict(p.changes))),
                 ('delete', delete, lambda p: p.current))
        for action, func, argument in steps:
            indexes = [i for i, plan in enumerate(plans) if plan.action == action]
            if not indexes:
                continue
            if func is None:
                raise ValueError('apply_many() needs a %s callable' % action)
            names = ', '.join("'%s'" % plans[i].name for i in indexes[:5]) + (' and %d more' % (len(indexes) - 5) if len(indexes) > 5 else '')
            try:
                outcome = func([argument(plans[i]) for i in indexes])
                self.note_write()
            except (K2Error, K2NamingError, K2SizeError, K2PlanError) as exc:
                self.fail_error('Could not %s %s %s' % (action, plans[indexes[0]].resource, names), exc)
            if action == 'delete':
                for i in indexes:
                    results[i] = None
            elif outcome:
                for i, obj in zip(indexes, outcome):
                    results[i] = obj
        return results

    @contextmanager
    def step(self, description):
        """Name what a block of work does, so a K2 error inside it fails with ``"Could not <description>: ..."``.

        ``with self.step("look up host 'h1'"): host = self.client.get_by_name('hosts', 'h1')``
        """
        try:
            yield
        except (K2Error, K2NamingError, K2SizeError, K2PlanError) as exc:
            self.fail_error('Could not %s' % description, exc)

    def rollback(self):
        """A new ``Rollback`` (see there) for a multi-step change."""
        return Rollback()

    # ------------------------------------------------------------- results and errors

    def _diff(self):
        if not self._diffs:
            return None
        if len(self._diffs) == 1:
            return {'before': self._diffs[0].before, 'after': self._diffs[0].after}
        # Several objects: key each view by "<resource> <name>" so nothing is overwritten.
        before, after = {}, {}
        for plan in self._diffs:
            key = '%s %s' % (plan.resource, plan.name)
            before[key] = plan.before
            after[key] = plan.after
        return {'before': before, 'after': after}

    def exit(self, **extra):
        """``exit_json`` with ``changed``, ``actions``, ``diff``, ``k2_requests`` and ``extra``."""
        result = dict(self.result)
        result.update(extra)
        diff = self._diff()
        if diff is not None and 'diff' not in extra:
            result['diff'] = diff
        result['k2_requests'] = self.request_counters()
        self.undo = Rollback()  # success: the undo steps are no longer wanted
        self._close()
        with scrubbing_only_what_holds_secrets(self.module):
            self.module.exit_json(**result)

    def note_write(self):
        """Count a write made outside ``apply()`` (bulk helpers, multi-step changes), so a later failure reports ``changed``."""
        self._writes += 1

    def fail(self, msg, **extra):
        """``fail_json`` with ``msg``, after running the ``undo`` steps (their outcome is added to ``msg`` and ``rollback``).

        ``changed`` is true when anything was written, even if it was undone: ``rollback`` says what was.
        """
        report = self.undo.run()
        if report:
            msg = '%s %s' % (msg.rstrip(), describe_rollback(report))
            extra.setdefault('rollback', [dict(step=d, error=e) for d, e in report])
        result = dict(extra)
        result.setdefault('changed', self._writes > 0)
        result.setdefault('actions', self.result['actions'])
        result['k2_requests'] = self.request_counters()
        self._close()
        with scrubbing_only_what_holds_secrets(self.module):
            self.module.fail_json(msg=msg, **result)

    def fail_error(self, what, exc):
        """Fail for an exception: ``"<what>: <error>. <hint>"`` plus ``k2_error_code``, ``http_status`` and any rollback outcome."""
        extra = {}
        hint = getattr(exc, 'hint', None)
        if isinstance(exc, K2Error):
            text = exc.describe()
            extra['k2_error_code'] = exc.k2_code
            extra['http_status'] = exc.status
        elif isinstance(exc, K2PlanError):
            text = exc.message
        else:
            text = str(exc)
        msg = '%s: %s' % (what, text.rstrip('.')) + '.'
        if hint:
            msg += ' ' + hint
        rollback = describe_rollback(getattr(exc, 'rollback_report', None))
        if rollback:
            msg += ' ' + rollback
            extra['rollback'] = [dict(step=d, error=e) for d, e in exc.rollback_report]
            if any(e is not None for d, e in exc.rollback_report):
                extra['changed'] = True  # something could not be undone: the array did change
        self.fail(msg, **extra)

    def _close(self):
        if self._client is not None:
            self._client.close()
            if self._client.trace_error:
                self.module.warn(self._client.trace_error)

    def work(self):
        """Override: do the module's job, return a dict of extra results."""
        raise NotImplementedError('K2Module subclasses implement work()')

    def run(self, work=None):
        """Run ``work`` (default ``self.work``) and exit with its results; every K2 or validation error becomes ``fail_json``."""
        try:
            extra = (work or self.work)() or {}
        except K2Error as exc:
            self.fail_error('K2 request failed', exc)
        except (K2PlanError, K2SizeError, K2NamingError, K2ReferenceError) as exc:
            self.fail_error('Invalid request', exc)
        self.exit(**extra)
