# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A scripted K2 REST server for unit tests: an ordered, exact conversation over real HTTPS.

Tests register the requests they expect, in order, each with the answer to
give::

    k2_server.register(
        ('GET', 'volumes', {'name': 'v1', '__limit': '2'}, None, 200, hits([])),
        ('POST', 'volumes', None, {'name': 'v1', 'size': 1048576, ...}, 201, {'id': 7, ...}),
    )

* ``path`` without a leading ``/`` is relative to the API prefix (``/api/v2``);
* ``query`` is compared exactly (a dict of strings; ``None`` means no query);
* ``body`` is compared as JSON (``None`` means no body, ``ANY`` anything);
* an answer can also be ``Drop()`` (read the request, close the connection
  without answering: a lost response) or ``Delay(seconds, status, body)``.

Any request that is not the next expected one gets HTTP 418 and is recorded;
``verify()`` (run by the ``k2_server`` fixture at teardown) fails the test on
unexpected requests and on expected requests that never came.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from ansible.module_utils.testing import patch_module_args


class _Any(object):
    def __repr__(self):
        return 'ANY'


ANY = _Any()


class Drop(object):
    """Read the request, then close the connection without an answer."""

    def __repr__(self):
        return 'Drop()'


class Delay(object):
    """Answer after ``seconds`` (to provoke client read timeouts)."""

    def __init__(self, seconds, status=200, body=None):
        self.seconds = seconds
        self.status = status
        self.body = body


def hits(objects, total=None, limit=None, offset=0):
    """A K2 result set."""
    objects = list(objects)
    return {'hits': objects, 'total': len(objects) if total is None else total,
            'limit': len(objects) if limit is None else limit, 'offset': offset}


def error(message):
    """A K2 error body."""
    return {'error_msg': message}


def one(query, fields):
    """The query K2Client sends to find at most one object (``find_one``/``get_by_name``): two hits tell "ambiguous"."""
    out = dict(query)
    out.update({'__fields': fields, '__limit': '2'})
    return out


def paged(query, fields=None):
    """The query of the first page of a sorted, paged K2Client search."""
    out = dict(query)
    if fields:
        out['__fields'] = fields
    out.update({'__sort': 'id', '__limit': '100', '__offset': '0'})
    return out


class Expected(object):
    def __init__(self, method, path, query=None, body=None, status=200, answer=None, headers=None):
        self.method = method.upper()
        self.path = path
        self.query = query
        self.body = body
        self.status = status
        self.answer = answer
        self.headers = headers or {}

    def describe(self):
        return '%s %s query=%r body=%r' % (self.method, self.path, self.query, self.body)


class Received(object):
    def __init__(self, method, path, query, body, headers, client_port=None):
        self.client_port = client_port
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.headers = headers

    def describe(self):
        return '%s %s query=%r body=%r' % (self.method, self.path, self.query, self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, harness):
        self.harness = harness
        ThreadingHTTPServer.__init__(self, ('127.0.0.1', 0), _Handler)

    def finish_request(self, request, client_address):
        # TLS per connection in its own thread: a client that rejects our
        # certificate must not stall or crash the accept loop.
        try:
            request = self.harness.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.harness.tls_failures += 1
            return
        try:
            ThreadingHTTPServer.finish_request(self, request, client_address)
        except (ssl.SSLError, OSError):
            pass

    def handle_error(self, request, client_address):
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # keep test output clean
        pass

    def _serve(self):
        harness = self.server.harness
        parts = urlsplit(self.path)
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        try:
            body = json.loads(raw.decode('utf-8')) if raw else None
        except ValueError:
            body = raw.decode('utf-8', 'replace')
        query = dict(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else None
        received = Received(self.command, parts.path, query, body, dict(self.headers.items()), self.client_address[1])
        expected = harness.match(received)
        if expected is None:
            self._send(418, {'error_msg': 'k2 harness: unexpected request %s' % received.describe()})
            return
        answer = expected.answer
        status = expected.status
        if isinstance(answer, Drop):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(answer, Delay):
            time.sleep(answer.seconds)
            status, answer = answer.status, answer.body
        self._send(status, answer, expected.headers)

    def _send(self, status, answer, headers=None):
        if answer is None:
            payload = b''
        elif isinstance(answer, bytes):
            payload = answer
        else:
            payload = json.dumps(answer).encode('utf-8')
        self.send_response(status)
        if payload:
            self.send_header('Content-Type', (headers or {}).get('Content-Type', 'application/json'))
        self.send_header('Content-Length', str(len(payload)))
        for key, value in (headers or {}).items():
            if key != 'Content-Type':
                self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve


class K2Server(object):
    """The scripted server. ``host`` is ``127.0.0.1:<port>``; ``ca_path`` trusts its certificate."""

    def __init__(self, ca, ca_path, prefix='/api/v2'):
        self.prefix = prefix
        self.ca_path = ca_path
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(u'127.0.0.1', u'localhost').configure_cert(self.tls)
        self.tls_failures = 0
        self.received = []
        self.errors = []
        self._expected = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self.host = '127.0.0.1:%d' % self.port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05})
        self._thread.daemon = True
        self._thread.start()

    # ----------------------------------------------------------- script

    def register(self, *steps):
        """Append expected requests: tuples ``(method, path[, query[, body[, status[, answer]]]])`` or ``Expected``."""
        with self._lock:
            for step in steps:
                if not isinstance(step, Expected):
                    step = Expected(*step)
                if not step.path.startswith('/'):
                    step.path = '%s/%s' % (self.prefix, step.path)
                self._expected.append(step)

    def match(self, received):
        with self._lock:
            self.received.append(received)
            if not self._expected:
                self.errors.append('unexpected request (nothing more was expected): %s' % received.describe())
                return None
            expected = self._expected[0]
            problems = []
            if received.method != expected.method or received.path != expected.path:
                problems.append('expected %s %s' % (expected.method, expected.path))
            if received.query != expected.query:
                problems.append('expected query %r' % (expected.query,))
            if expected.body is not ANY and received.body != expected.body:
                problems.append('expected body %r' % (expected.body,))
            if problems:
                self.errors.append('request #%d %s: %s' % (len(self.received), received.describe(), '; '.join(problems)))
                return None
            return self._expected.pop(0)

    @property
    def pending(self):
        with self._lock:
            return list(self._expected)

    def verify(self):
        """Fail on unexpected requests and on expected requests that never came."""
        problems = list(self.errors)
        problems.extend('expected request never came: %s' % e.describe() for e in self.pending)
        if problems:
            pytest.fail('K2 harness: ' + ' | '.join(problems), pytrace=False)

    def reset(self):
        with self._lock:
            self._expected = []
            self.errors = []
            self.received = []

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def run_module(main, args, capsys, check=False, diff=False):
    """Run a module's ``main`` with real AnsibleModule argument handling; return ``(result, failed)``.

    ``check``/``diff`` run it as ``ansible-playbook --check``/``--diff`` would. The module's JSON result is read from
    stdout, as Ansible itself reads it.
    """
    args = dict(args)
    if check:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            main()
    out = capsys.readouterr().out
    result = json.loads(out)
    return result, caught.value.code != 0 or bool(result.get('failed'))
