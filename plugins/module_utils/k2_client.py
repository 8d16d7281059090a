# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
# SPDX-License-Identifier: BSD-2-Clause

"""REST client for the Kaminario K2 / Silk SDP API (``/api/v2``), built on requests.

One ``K2Client`` serves one module run: one ``requests.Session`` (keep-alive),
one request counter, one optional trace file.

Design decisions worth knowing:

* **No discovery request.** K2's discovery document maps each resource name to
  ``/<name>`` (``volumes`` -> ``/volumes``, ``system/state`` ->
  ``/system/state``), so the client uses that well-known layout and spends no
  request on ``GET /api/v2``. This keeps a no-change module run at one or two
  requests. ``discover()`` fetches and caches the document (once per client)
  for callers that want to check a resource exists.
* **Time budget.** ``timeout`` is the longest one API call may take, retries
  and back-off sleeps included; every attempt gets what is left of it. The
  number of attempts is ``retries + 1`` at most. Back-off is capped
  exponential with jitter: ``min(retry_max_wait, 2 ** n * BACKOFF_BASE)``,
  scaled by a random factor in [0.5, 1].
* **What is retried:** connection errors and timeouts, HTTP 5xx, HTTP 429, and
  HTTP 400 whose K2 error is MC_ERR_BUSY, MC_ERR_BUSY_SPECIFIC,
  MC_ERR_INPROGRESS or MC_ERR_START_TIMEOUT. Never 401, 403 or other 4xx.
* **Lost POST.** When a POST may have reached the array but its answer was
  lost (connection dropped or read timeout after sending, 500, 502, 504), the
  client does not repeat it blindly: given ``unique`` filters (for example
  ``{"name": "vol1"}``) it re-reads the object and returns it if it exists,
  and only re-sends the POST if it does not. Without ``unique`` it gives up
  with ``K2ConnectionError`` saying the outcome is unknown, unless the caller
  says any such object serves (``resend_if_lost``).
* **Create races.** When a POST is refused because the object already exists
  (another writer created it between our read and our POST), ``create`` and
  ``bulk_create`` re-read it by the same ``unique`` key and use it if it has
  every attribute we sent; ``adopted(resource, id)`` then tells the caller it
  was not ours (so an undo step must not delete it). An object that differs
  is still a conflict.
* **Refs.** K2 links objects with ``{"ref": "/volume_groups/3"}``. Use
  ``make_ref``, ``ref_path``, ``ref_id`` and ``parse_ref``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import random
import re
import ssl
import time
import traceback
from collections import Counter
from urllib.parse import quote

try:
    import requests
    from requests.adapters import HTTPAdapter
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    HTTPAdapter = object

API_PREFIX = '/api/v2'
DEFAULT_TIMEOUT = 60
DEFAULT_RETRIES = 5
DEFAULT_RETRY_MAX_WAIT = 30
CONNECT_TIMEOUT = 10
BACKOFF_BASE = 1.0
PAGE_SIZE = 100
BULK_CHUNK_SIZE = 100
# Searches by a list of values (name__in, ref__in) are split so that the comma-joined, URL-encoded query stays well
# under the 8 KiB request line common HTTP front ends accept.
QUERY_BUDGET = 6000
QUERY_MAX_VALUES = 500
RETRYABLE_K2_CODES = frozenset(('MC_ERR_BUSY', 'MC_ERR_BUSY_SPECIFIC', 'MC_ERR_INPROGRESS', 'MC_ERR_START_TIMEOUT'))
# Statuses after which a POST may or may not have been applied ("recheck the state of the object").
AMBIGUOUS_STATUSES = frozenset((500, 502, 504))
SECRET_KEY_RE = re.compile(r'pass(word)?|secret|token|authorization|chap|private|credential', re.IGNORECASE)
REDACTED = '********'

# Fields whose value is a ref to a fixed resource: lets callers filter and write
# them with a plain id or a whole object. Fields that can point at several
# resources (``source``, a mapping's ``volume`` when it is a view) need a real ref.
REF_FIELDS = {
    'volume_group': 'volume_groups',
    'local_volume_group': 'volume_groups',
    'host': 'hosts',
    'host_group': 'host_groups',
    'volume': 'volumes',
    'snapshot': 'snapshots',
    'retention_policy': 'retention_policies',
    'capacity_policy': 'vg_capacity_policies',
    'replication_session': 'replication/sessions',
    'last_restored_from': 'snapshots',
}

# Keys that hold refs to more than one kind of resource: a path string is turned into a ref.
_OTHER_REF_KEYS = frozenset(('source', 'source_snapshot', 'source_volume', 'interface', 'net_port'))

_REF_RE = re.compile(r'^/(?P<resource>[a-z0-9_]+(?:/[a-z0-9_]+)*)/(?P<id>[0-9]+)$')


# --------------------------------------------------------------------------- refs

class K2ReferenceError(ValueError):
    """A value that cannot be turned into a K2 reference (a user error, not an array error)."""


def make_ref(resource, obj_id):
    """Return the K2 reference object ``{"ref": "/<resource>/<id>"}``."""
    return {'ref': '/%s/%d' % (resource.strip('/'), int(obj_id))}


def ref_path(value, resource=None):
    """Return the ref path (``/volumes/3``) of a ref dict, a path string, an object or an id.

    An object (a dict from the API with an ``id``) or a bare id needs
    ``resource`` to say what it is. Returns ``None`` for ``None``.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        if 'ref' in value:
            return ref_path(value['ref'])
        if 'id' in value and resource:
            return make_ref(resource, value['id'])['ref']
    elif isinstance(value, str) and _REF_RE.match(value):
        return value
    elif isinstance(value, int) and not isinstance(value, bool) and resource:
        return make_ref(resource, value)['ref']
    elif isinstance(value, str) and value.isdigit() and resource:
        return make_ref(resource, int(value))['ref']
    raise K2ReferenceError('Cannot make a K2 reference from %r%s: give a name, an id or a path such as /volumes/3'
                           % (value, ' (resource %s)' % resource if resource else ''))


def parse_ref(value):
    """Split a ref (dict or path) into ``(resource, id)``: ``/replication/sessions/4`` -> ``('replication/sessions', 4)``."""
    path = ref_path(value)
    match = _REF_RE.match(path)
    return match.group('resource'), int(match.group('id'))


def ref_id(value):
    """Return the integer id of a ref (dict or path), or ``None`` for ``None``."""
    if value is None:
        return None
    return parse_ref(value)[1]


# --------------------------------------------------------------------------- errors

class K2Error(Exception):
    """Any failure talking to K2.

    Attributes: ``status`` (HTTP status or None), ``k2_code`` (the ``MC_ERR_*``
    code when K2 gave one), ``message`` (K2's ``error_msg`` or a description),
    ``method`` and ``path`` of the request, and ``hint`` (how to fix it).
    """

    hint = 'Check the K2 event log and the request details above.'

    def __init__(self, message, status=None, k2_code=None, method=None, path=None, hint=None, attempts=None):
        self.message = message
        self.status = status
        self.k2_code = k2_code
        self.method = method
        self.path = path
        self.attempts = attempts
        if hint is not None:
            self.hint = hint
        super(K2Error, self).__init__(self.describe())

    def describe(self):
        """One line: message, then status and request, e.g. ``no such volume (HTTP 404, GET /api/v2/volumes/9)``."""
        where = []
        if self.status is not None:
            where.append('HTTP %s' % self.status)
        if self.k2_code and self.k2_code not in self.message:
            where.append(self.k2_code)
        if self.method and self.path:
            where.append('%s %s' % (self.method, self.path))
        if self.attempts and self.attempts > 1:
            where.append('%d attempts' % self.attempts)
        return '%s (%s)' % (self.message, ', '.join(where)) if where else self.message


class K2NotFoundError(K2Error):
    """HTTP 404: the object in the URL does not exist."""
    hint = 'The object may have been deleted meanwhile; re-run the task.'


class K2ConflictError(K2Error):
    """HTTP 409, or a 400 saying the object already exists."""
    hint = 'Another object already uses that name or the change conflicts with another writer; choose another name or re-run the task.'


class K2AuthError(K2Error):
    """HTTP 401: missing or wrong credentials."""
    hint = ('Check k2_username and k2_password (or K2_USERNAME / K2_PASSWORD), or for Flex access k2_token and k2_sdp_id; '
            'an array upgrade can also reset passwords.')


class K2PermissionError(K2Error):
    """HTTP 403: the user's role does not allow the request."""
    hint = 'The K2 user lacks the role for this change: use a user with the admin role (read-only users can only gather facts).'


class K2BusyError(K2Error):
    """The array stayed busy (MC_ERR_BUSY..., 429, 5xx) through every retry."""
    hint = 'The array is busy or unhealthy: wait and re-run, or raise retries, retry_max_wait or timeout.'


class K2ConnectionError(K2Error):
    """The array could not be reached, or the connection broke."""
    hint = 'Check k2_host (host or host:port), that the management address is reachable from this machine, and any firewall.'


class K2TimeoutError(K2ConnectionError):
    """The array did not answer within the time budget."""
    hint = 'The array did not answer in time: raise timeout, or check the array and network health.'


class K2TLSError(K2ConnectionError):
    """The TLS handshake failed, usually because the certificate is not trusted."""
    hint = ('The array certificate is not trusted: set ca_path (K2_CA_PATH) to the CA bundle that signed it, '
            'add the CA to the system trust store, or as a last resort set validate_certs to false.')


class K2ProtocolError(K2Error):
    """The array answered something that is not the expected JSON."""
    hint = 'k2_host may point at something that is not a K2 REST API (a proxy, or Flex without k2_sdp_id).'


class K2AmbiguousError(K2Error):
    """A lookup that must match at most one object matched several."""
    hint = 'Names should be unique on K2; rename or delete the duplicates.'


def error_from_response(status, body, method, path, attempts=None):
    """Build the typed ``K2Error`` for a failed HTTP response."""
    message, k2_code = _error_message(body)
    if not message:
        message = 'K2 answered HTTP %s' % status
    kwargs = dict(status=status, k2_code=k2_code, method=method, path=path, attempts=attempts)
    if status == 401:
        return K2AuthError(message or 'Authentication failed', **kwargs)
    if status == 403:
        return K2PermissionError(message, **kwargs)
    if status == 404:
        return K2NotFoundError(message, **kwargs)
    if status == 409 or (status == 400 and (re.search(r'already exist|duplicate|not unique|in use by', message, re.IGNORECASE)
                                            or (isinstance(body, dict) and body.get('error_code') == 'MC_ERR_ALREADY_EXISTS'))):
        return K2ConflictError(message, **kwargs)
    if status == 429 or status >= 500 or k2_code in RETRYABLE_K2_CODES:
        return K2BusyError(message, **kwargs)
    return K2Error(message, **kwargs)


def _error_message(body):
    """Return ``(message, k2_code)`` from an error body (``{"error_msg": ...}`` or text)."""
    if isinstance(body, dict):
        message = body.get('error_msg') or body.get('message') or body.get('error')
        if message is None:
            message = json.dumps(body, sort_keys=True) if body else ''
    elif body is None:
        message = ''
    else:
        message = str(body)
    message = str(message).strip()
    # The code field when the array sends one (K2 and k2sim do: {"error_code": "MC_ERR_...", "error_msg": ...}),
    # else the first MC_ERR_* in the text (older answers carry it only there).
    code = body.get('error_code') if isinstance(body, dict) else None
    if isinstance(code, str) and re.match(r'^MC_ERR_[A-Z_]+$', code):
        return message, code
    match = re.search(r'\bMC_ERR_[A-Z_]+\b', message)
    return message, (match.group(0) if match else None)


# --------------------------------------------------------------------------- redaction

def redact(data, secrets=()):
    """Return a copy of ``data`` with secret-looking keys and the given secret strings masked."""
    if isinstance(data, dict):
        return dict((k, REDACTED if SECRET_KEY_RE.search(str(k)) and v is not None else redact(v, secrets)) for k, v in data.items())
    if isinstance(data, (list, tuple)):
        return [redact(v, secrets) for v in data]
    if isinstance(data, str):
        for secret in secrets:
            if secret:
                data = data.replace(secret, REDACTED)
    return data


# --------------------------------------------------------------------------- transport

class _TLSAdapter(HTTPAdapter):
    """HTTPAdapter whose TLS context trusts the system store, or only ``ca_path`` when given.

    requests alone trusts only its certifi bundle; arrays are usually signed by
    an in-house CA that administrators add to the operating system's store.
    """

    def __init__(self, ca_path=None, **kwargs):
        try:
            if ca_path and os.path.isdir(ca_path):
                self._context = ssl.create_default_context(capath=ca_path)
            elif ca_path:
                self._context = ssl.create_default_context(cafile=ca_path)
            else:
                self._context = ssl.create_default_context()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: not PEM, no certificate in it
            raise ValueError('ca_path %s cannot be used as CA certificates (%s): give the PEM file (or a directory of '
                             'hashed PEM files) of the CA that signed the array certificate.'
                             % (ca_path, getattr(exc, 'strerror', None) or exc))
        super(_TLSAdapter, self).__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs['ssl_context'] = self._context
        return super(_TLSAdapter, self).init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args, **kwargs):
        kwargs['ssl_context'] = self._context
        return super(_TLSAdapter, self).proxy_manager_for(*args, **kwargs)


class _Attempt(object):
    """Outcome of one HTTP attempt: a response, or an exception and whether the request may have been applied."""

    def __init__(self, response=None, error=None, maybe_sent=False):
        self.response = response
        self.error = error
        self.maybe_sent = maybe_sent


def split_host(k2_host):
    """Validate ``host`` / ``host:port`` / ``[v6]:port`` and return the ``https://`` base URL."""
    value = (k2_host or '').strip()
    if not value:
        raise ValueError("k2_host is empty: set k2_host (or K2_HOST) to the array's management address, e.g. k2.example.com or 10.0.0.5:443.")
    if '://' in value or '/' in value:
        raise ValueError("k2_host %r must be a host name or address with an optional port, without https:// or a path, "
                         "e.g. k2.example.com or 10.0.0.5:8443." % k2_host)
    match = re.match(r'^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+)(?::([0-9]{1,5}))?$', value)
    if not match and value.count(':') > 1:
        # A bare IPv6 address without brackets has no port.
        return 'https://[%s]' % value
    if not match or (match.group(2) and not 0 < int(match.group(2)) < 65536):
        raise ValueError("k2_host %r is not host or host:port (port 1-65535); IPv6 addresses with a port go in brackets: [fd00::5]:443." % k2_host)
    return 'https://%s' % value


class K2Client(object):
    """A session with one K2 array.

    Constructor arguments mirror the collection's connection options:
    ``host`` (``host`` or ``host:port``), ``username``/``password`` (basic
    auth) or ``token``/``sdp_id`` (bearer through Flex, prefix
    ``/rest/sdps/<sdp_id>/api/v2``), ``validate_certs``, ``ca_path``,
    ``timeout`` (seconds for one API call, retries included), ``retries``,
    ``retry_max_wait`` (cap of one back-off sleep), ``trace_file``.

    ``sleep``, ``clock`` and ``rand`` are injectable for tests.
    Counters: ``request_count`` (HTTP requests sent) and ``requests_by_method``.
    """

    def __init__(self, host, username=None, password=None, token=None, sdp_id=None,
                 validate_certs=True, ca_path=None, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES,
                 retry_max_wait=DEFAULT_RETRY_MAX_WAIT, trace_file=None,
                 sleep=time.sleep, clock=time.monotonic, rand=random.random, backoff_base=BACKOFF_BASE):
        if not HAS_REQUESTS:
            raise K2Error('The Python library requests is required by the K2 client.', hint='Install it: pip install requests')
        self.base_url = split_host(host)
        if token or sdp_id:
            if not token or sdp_id in (None, ''):
                raise ValueError('k2_token and k2_sdp_id go together: Flex bearer access needs both.')
            if username or password:
                raise ValueError('Use either k2_username/k2_password or k2_token/k2_sdp_id, not both.')
            self.prefix = '/rest/sdps/%s%s' % (sdp_id, API_PREFIX)
        else:
            if not (username and password):
                raise ValueError('K2 credentials are missing: set k2_username and k2_password (K2_USERNAME, K2_PASSWORD), '
                                 'or k2_token and k2_sdp_id for Flex.')
            self.prefix = API_PREFIX
        self.timeout = float(timeout)
        if self.timeout <= 0:
            raise ValueError('timeout must be a positive number of seconds.')
        self.retries = max(0, int(retries))
        self.retry_max_wait = max(0.0, float(retry_max_wait))
        self.trace_file = trace_file
        # Set when writing the trace failed during the run: tracing stops, the run goes on (a request already
        # applied must not turn into a failure because its log line could not be written), and modules warn.
        self.trace_error = None
        if trace_file:
            try:
                os.close(self._open_trace())
            except OSError as exc:
                raise ValueError('trace_file %s cannot be written (%s): give a file in an existing directory this '
                                 'user may write to, or leave trace_file unset.' % (trace_file, exc.strerror))
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._backoff_base = backoff_base
        self._secrets = tuple(s for s in (password, token) if s)
        self._resources = None
        self.request_count = 0
        self.requests_by_method = {}
        self._adopted = set()

        self.session = requests.Session()
        if token:
            self.session.headers['Authorization'] = 'Bearer %s' % token
        else:
            self.session.auth = (username, password)
        self.session.headers['Content-Type'] = 'application/json'
        self.session.headers['Accept'] = 'application/json'
        # Passed on every request, and never as True: requests replaces verify=True (and only that value) with
        # REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment, which would let a variable set for some other
        # tool decide which arrays are trusted (and re-enable verification that validate_certs=false turned off).
        # The certifi bundle is what verify=True stands for; the system store comes from _TLSAdapter's context.
        self._verify = (ca_path if ca_path else requests.utils.DEFAULT_CA_BUNDLE_PATH) if validate_certs else False
        if validate_certs:
            self.session.mount('https://', _TLSAdapter(ca_path=ca_path))
        else:
            try:
                import urllib3
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            except (ImportError, AttributeError):  # pragma: no cover
                pass

    # ------------------------------------------------------------- counters

    def counters(self):
        """``{"total": n, "GET": n, ...}``: the requests this client has sent (retries included)."""
        result = {'total': self.request_count}
        result.update(self.requests_by_method)
        return result

    def close(self):
        self.session.close()

    # ------------------------------------------------------------- low level

    def url_for(self, resource, obj_id=None, suffix=None):
        """Path (with API prefix) of a resource, an object, or a special suffix such as ``__bulk``."""
        if self._resources and resource in self._resources:
            path = self._resources[resource]
        else:
            path = '/' + resource.strip('/')
        if obj_id is not None:
            path += '/%d' % int(obj_id)
        if suffix:
            path += '/' + suffix
        return self.prefix + path

    def discover(self):
        """Fetch ``GET /api/v2`` once and cache ``{resource name: url}``."""
        if self._resources is None:
            data = self.request('GET', self.prefix) or {}
            resources = data.get('resources') if isinstance(data, dict) else None
            if not isinstance(resources, dict):
                raise K2ProtocolError('The discovery document has no resources', method='GET', path=self.prefix)
            self._resources = dict((name, info.get('url') if isinstance(info, dict) else info) for name, info in resources.items())
        return dict(self._resources)

    def _backoff(self, attempt):
        wait = min(self.retry_max_wait, self._backoff_base * (2 ** attempt))
        return wait * (0.5 + 0.5 * self._rand())

    def _send_once(self, method, path, params, body, remaining):
        self.request_count += 1
        self.requests_by_method[method] = self.requests_by_method.get(method, 0) + 1
        kwargs = {'params': params, 'timeout': (min(CONNECT_TIMEOUT, remaining), remaining), 'verify': self._verify}
        if body is not None:
            kwargs['data'] = json.dumps(body)
        started = self._clock()
        try:
            response = self.session.request(method, self.base_url + path, **kwargs)
        except requests.exceptions.SSLError as exc:
            self._trace(method, path, params, body, error=exc, started=started)
            return _Attempt(error=K2TLSError('TLS verification failed for %s: %s' % (self.base_url, _short(exc)),
                                             method=method, path=path))
        except requests.exceptions.ConnectTimeout as exc:
            self._trace(method, path, params, body, error=exc, started=started)
            return _Attempt(error=K2TimeoutError('Timed out connecting to %s' % self.base_url, method=method, path=path))
        except requests.exceptions.ReadTimeout as exc:
            self._trace(method, path, params, body, error=exc, started=started)
            return _Attempt(error=K2TimeoutError('No answer from %s within the time budget' % self.base_url, method=method, path=path),
                            maybe_sent=True)
        except requests.exceptions.ConnectionError as exc:
            self._trace(method, path, params, body, error=exc, started=started)
            # A refused or unresolvable connection sent nothing; anything else may have delivered the request.
            text = str(exc)
            maybe_sent = not re.search(r'NewConnectionError|NameResolutionError|Connection refused|Failed to resolve|Name or service', text)
            return _Attempt(error=K2ConnectionError('Cannot talk to %s: %s' % (self.base_url, _short(exc)), method=method, path=path),
                            maybe_sent=maybe_sent)
        except requests.exceptions.RequestException as exc:
            self._trace(method, path, params, body, error=exc, started=started)
            return _Attempt(error=K2ConnectionError('Request to %s failed: %s' % (self.base_url, _short(exc)), method=method, path=path))
        self._trace(method, path, params, body, response=response, started=started)
        return _Attempt(response=response)

    def _decode(self, response, method, path):
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if response.ok:
                raise K2ProtocolError('Expected JSON from %s but got %r' % (path, response.text[:200]),
                                      status=response.status_code, method=method, path=path)
            return response.text

    def request(self, method, path, params=None, body=None, reconcile=None):
        """Send one API call with retries and return the decoded JSON (``None`` for an empty body).

        ``path`` includes the API prefix (see ``url_for``). ``reconcile`` is
        used when a write may have been applied although its answer was lost:
        it is called with the body sent and returns ``(True, result)`` when the
        effect is visible on the array (the call then returns ``result``), or
        ``(False, new_body)`` to resend ``new_body`` (``None`` to resend the same).
        Without ``reconcile``, a POST whose outcome is unknown raises
        ``K2ConnectionError`` instead of being repeated; PATCH and DELETE are
        repeated (a repeated DELETE that meets 404 counts as done).
        """
        method = method.upper()
        deadline = self._clock() + self.timeout
        attempt = 0
        uncertain = False
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise K2TimeoutError('Gave up after %.0f s' % self.timeout, method=method, path=path, attempts=attempt)
            result = self._send_once(method, path, params, body, remaining)
            attempt += 1
            error = result.error
            retryable = False
            retry_after = 0.0
            if result.response is not None:
                response = result.response
                status = response.status_code
                if 200 <= status < 300:
                    return self._decode(response, method, path)
                if method == 'DELETE' and status == 404 and uncertain:
                    return None
                error = error_from_response(status, self._decode(response, method, path), method, path, attempts=attempt)
                retry_after = _retry_after(response.headers.get('Retry-After'))
                retryable = status == 429 or status >= 500 or error.k2_code in RETRYABLE_K2_CODES
                maybe_applied = status in AMBIGUOUS_STATUSES
            else:
                retryable = True
                maybe_applied = result.maybe_sent
                if isinstance(error, K2TLSError):
                    retryable = False
            if not retryable:
                if method == 'POST' and uncertain and reconcile is not None and isinstance(error, K2ConflictError):
                    # Our own earlier, unanswered POST may be what now conflicts: look once more.
                    done, value = self._reconcile(reconcile, body, error, method, path, attempt)
                    if done:
                        return value
                raise error
            if maybe_applied and method != 'GET':
                uncertain = True
                if method == 'POST':
                    done, value = self._reconcile(reconcile, body, error, method, path, attempt)
                    if done:
                        return value
                    if value is not None:
                        body = value
            if attempt > self.retries:
                error.attempts = attempt
                error.args = (error.describe(),)
                raise error
            # A server-given Retry-After (429/503) is honoured, still within retry_max_wait.
            wait = min(max(self._backoff(attempt - 1), retry_after), max(self.retry_max_wait, 0.0))
            if self._clock() + wait >= deadline:
                error.attempts = attempt
                error.message = '%s; gave up after %d attempts within timeout=%ss' % (error.message, attempt, _num(self.timeout))
                error.args = (error.describe(),)
                raise error
            self._sleep(wait)

    @staticmethod
    def _reconcile(reconcile, body, error, method, path, attempt):
        """Ask ``reconcile`` whether a POST with a lost answer took effect; refuse to guess when it cannot tell."""
        unknown = 'The array may or may not have applied this request; its answer was lost: %s' % error.message
        hint = 'Check on the array whether the object exists, then re-run the task (it is idempotent).'
        if reconcile is None:
            raise K2ConnectionError(unknown, status=error.status, method=method, path=path, attempts=attempt, hint=hint)
        try:
            return reconcile(body)
        except K2Error as exc:
            raise K2ConnectionError('%s; looking it up failed too: %s' % (unknown, exc.message), status=exc.status,
                                    method=method, path=path, attempts=attempt, hint=hint)

    # ------------------------------------------------------------- trace

    def _trace(self, method, path, params, body, response=None, error=None, started=None):
        if not self.trace_file:
            return
        entry = {
            'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'method': method,
            'url': self.base_url + path,
            'params': redact(params, self._secrets),
            'headers': redact(dict(self.session.headers), self._secrets),
            'body': redact(body, self._secrets),
        }
        if started is not None:
            entry['seconds'] = round(self._clock() - started, 3)
        if response is not None:
            entry['status'] = response.status_code
            try:
                answer = response.json()
            except ValueError:
                answer = response.text[:2000]
            entry['response'] = redact(answer, self._secrets)
        if error is not None:
            entry['error'] = redact(_short(error), self._secrets)
        line = json.dumps(entry, sort_keys=True, default=str)
        try:
            with os.fdopen(self._open_trace(), 'a') as handle:
                handle.write(line + '\n')
        except OSError as exc:
            self.trace_error = 'trace_file %s could not be written (%s); tracing stopped.' % (self.trace_file, exc.strerror)
            self.trace_file = None

    def _open_trace(self):
        """A descriptor appending to ``trace_file``, which is created 0600: a trace holds object names and addresses
        even with secrets removed."""
        return os.open(self.trace_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    # ------------------------------------------------------------- queries

    def build_query(self, filters=None):
        """Turn filters into K2 query parameters.

        * ``{"name": "v1"}`` -> ``name=v1`` (equality); ``True``/``False`` -> ``True``/``False``;
        * a modifier passes through: ``{"name__contains": "db"}``, ``{"id__gt": 5}``;
        * a ref field (see ``REF_FIELDS``) given as an id, an object or a ref ->
          ``volume_group.ref=/volume_groups/3``;
        * a list, tuple or set -> ``name__in=a,b`` or ``volume_group.ref__in=/volume_groups/3,/volume_groups/4``;
        * ``None`` values are skipped.

        Returns ``None`` when a list filter is empty: nothing can match.
        """
        params = []
        for key, value in (filters or {}).items():
            if value is None:
                continue
            field, _sep, modifier = key.partition('__')
            base_field = field[:-4] if field.endswith('.ref') else field
            is_ref = field.endswith('.ref') or _looks_like_ref(value) or (base_field in REF_FIELDS and not _is_scalar_text(value))
            if isinstance(value, (list, tuple, set, frozenset)):
                values = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
                if not values:
                    return None
                if is_ref or any(_looks_like_ref(v) for v in values):
                    text = ','.join(ref_path(v, REF_FIELDS.get(base_field)) for v in values)
                    name = base_field + '.ref'
                else:
                    text = ','.join(_query_text(v) for v in values)
                    name = field
                params.append((name + '__' + (modifier or 'in'), text))
            elif is_ref:
                name = base_field + '.ref' + ('__' + modifier if modifier else '')
                params.append((name, ref_path(value, REF_FIELDS.get(base_field))))
            else:
                params.append((key, _query_text(value)))
        return params

    def iter_search(self, resource, filters=None, fields=None, sort='id', page_size=PAGE_SIZE):
        """Yield every matching object, page by page, sorted by ``sort`` (``-field`` for descending).

        Paging continues until a short page, so objects created meanwhile are
        not cut off; with ``sort='id'`` the order is stable.
        """
        base = self.build_query(filters)
        if base is None:
            return
        base = list(base) + _fields_params(fields) + _sort_params(sort)
        offset = 0
        path = self.url_for(resource)
        while True:
            page = self.request('GET', path, params=base + [('__limit', str(page_size)), ('__offset', str(offset))])
            hits = _hits(page, 'GET', path)
            yield from hits
            offset += len(hits)
            total = page.get('total')
            # Trust ``total`` over the page length: the array may cap pages below page_size.
            if not hits or (offset >= total if isinstance(total, int) else len(hits) < page_size):
                return

    def first(self, resource, filters=None, sort='id', fields=None):
        """The first matching object in ``sort`` order (``-field`` for descending), or ``None``. One request.

        For "the newest snapshot of a group": ``first('snapshots', {'volume_group': 3}, sort='-creation_time')``.
        """
        params = self.build_query(filters)
        if params is None:
            return None
        path = self.url_for(resource)
        page = self.request('GET', path, params=list(params) + _fields_params(fields) + _sort_params(sort) + [('__limit', '1')])
        hits = _hits(page, 'GET', path)
        return hits[0] if hits else None

    def search(self, resource, filters=None, fields=None, sort='id', page_size=PAGE_SIZE):
        """Return the list of every matching object (see ``iter_search``); never truncated."""
        return list(self.iter_search(resource, filters, fields=fields, sort=sort, page_size=page_size))

    def search_values(self, resource, key, values, fields=None, unique=True, many_page=PAGE_SIZE):
        """Every object whose ``key`` (a field such as ``name`` or ``host``; the list of values makes it an ``__in``
        filter) is one of ``values``, read in URL-sized chunks of values (``chunk_values``), each page by page;
        duplicates in ``values`` are asked once.

        ``unique``: at most one object per value (names, ids), so one page of ``len(chunk)`` holds a chunk's objects;
        otherwise pages of at least ``many_page``.
        """
        found = []
        for chunk in chunk_values(sorted(set(values), key=str)):
            size = len(chunk) if unique else max(len(chunk), many_page)
            found.extend(self.search(resource, {key: chunk}, fields=fields, page_size=size))
        return found

    def count(self, resource, filters=None):
        """Number of matching objects, in one request (``__limit=0``)."""
        params = self.build_query(filters)
        if params is None:
            return 0
        path = self.url_for(resource)
        page = self.request('GET', path, params=list(params) + [('__limit', '0')])
        _hits(page, 'GET', path)
        return int(page.get('total', 0))

    def find_one(self, resource, filters, fields=None, what=None):
        """The single object matching ``filters``, or ``None``; ``K2AmbiguousError`` if several match. One request."""
        params = self.build_query(filters)
        if params is None:
            return None
        path = self.url_for(resource)
        page = self.request('GET', path, params=list(params) + _fields_params(fields) + [('__limit', '2')])
        hits = _hits(page, 'GET', path)
        total = page.get('total', len(hits))
        if not hits:
            return None
        if len(hits) > 1 or (isinstance(total, int) and total > 1):
            raise K2AmbiguousError('%s matches %s objects in %s' % (what or _describe_filters(filters), total, resource),
                                   method='GET', path=path)
        return hits[0]

    def get_by_name(self, resource, name, name_field='name', fields=None):
        """The object whose ``name_field`` equals ``name`` (exact), or ``None``. One request."""
        return self.find_one(resource, {name_field: name}, fields=fields, what="%s '%s'" % (name_field, name))

    def get(self, resource, obj_id, fields=None):
        """The object with this id (``K2NotFoundError`` when absent)."""
        params = [('__fields', ','.join(_with_id(fields)))] if fields else None
        return self.request('GET', self.url_for(resource, obj_id), params=params)

    # ------------------------------------------------------------- writes

    def create(self, resource, body, unique=None, resend_if_lost=False):
        """POST a new object and return it as K2 answers it.

        ``unique``: filters that identify the object (``{"name": body["name"]}``
        by default when the body has a name, ``False`` to disable). They are
        used only when the answer to the POST is lost, to re-read instead of
        creating a duplicate.
        ``resend_if_lost``: without ``unique``, a lost answer sends the POST
        again instead of failing; for objects of which any one serves the
        caller (a replication snapshot taken for a sync round).
        """
        if unique is None and isinstance(body, dict) and body.get('name'):
            unique = {'name': body['name']}
        elif unique is None and isinstance(body, dict) and body.get('short_name') and body.get('source'):
            unique = {'short_name': body['short_name'], 'source': body['source']}
        path = self.url_for(resource)
        reconcile = None
        if unique:
            def reconcile(_sent):
                found = self.find_one(resource, unique)
                return (True, found) if found is not None else (False, None)
        elif resend_if_lost:
            def reconcile(_sent):
                return False, None
        sent = _jsonable(body)
        try:
            return self.request('POST', path, body=sent, reconcile=reconcile)
        except K2ConflictError as exc:
            if not unique:
                raise
            # Lost a "create if missing" race: use the other writer's object when it is the one we wanted.
            found = self.find_one(resource, unique)
            if found is None or not same_attributes(found, sent):
                raise
            self._adopted.add((resource, found['id']))
            return found

    def adopted(self, resource, obj_id):
        """True when ``create``/``bulk_create`` returned this object because another writer had just created it."""
        return (resource, obj_id) in self._adopted

    def update(self, resource, obj_id, changes):
        """PATCH only ``changes`` onto the object and return the updated object."""
        return self.request('PATCH', self.url_for(resource, obj_id), body=_jsonable(changes))

    def delete(self, resource, obj_id):
        """DELETE the object. A retried DELETE that finds it already gone succeeds."""
        self.request('DELETE', self.url_for(resource, obj_id))

    def bulk_create(self, resource, items, unique_field='name', chunk_size=BULK_CHUNK_SIZE):
        """Create many objects with ``POST /<resource>/__bulk``, ``chunk_size`` per request; return the created objects.

        When a chunk's answer is lost, the objects of that chunk that now exist
        (found by ``unique_field``) are kept and only the missing ones are resent.
        When a chunk is refused because another writer created some of its objects
        meanwhile, those are re-read and used (if they are what we sent) and the
        others resent. ``unique_field`` may be a tuple of fields (a mapping: volume
        and host); such a chunk, when refused, is created one object at a time.
        """
        created = []
        path = self.url_for(resource, suffix='__bulk')
        for chunk in chunks([_jsonable(i) for i in items], chunk_size):
            already = []
            if isinstance(unique_field, tuple):
                # No single unique key (a mapping is unique by volume and host): a batch that meets another
                # writer's objects is done one by one, each create re-reading its own on a conflict.
                try:
                    answer = self.request('POST', path, body=chunk)
                except K2ConflictError:
                    created.extend(self.create(resource, item, unique=dict((f, item[f]) for f in unique_field)) for item in chunk)
                    continue
                created.extend(_hits(answer, 'POST', path))
                continue
            reconcile = self._bulk_reconcile(resource, unique_field, already) if unique_field else None
            for _race in range(3):
                try:
                    answer = self.request('POST', path, body=chunk, reconcile=reconcile)
                    break
                except K2ConflictError:
                    # Some items were created by another writer meanwhile (a batch is all or nothing): use
                    # those that are what we wanted, resend the others; a different object is a conflict.
                    if not unique_field or any(item.get(unique_field) is None for item in chunk):
                        raise
                    existing = dict((obj.get(unique_field), obj)
                                    for obj in self.search(resource, {unique_field: [item[unique_field] for item in chunk]}))
                    theirs = [item for item in chunk if item[unique_field] in existing]
                    if not theirs or not all(same_attributes(existing[item[unique_field]], item) for item in theirs):
                        raise
                    for item in theirs:
                        self._adopted.add((resource, existing[item[unique_field]]['id']))
                        already.append(existing[item[unique_field]])
                    chunk = [item for item in chunk if item[unique_field] not in existing]
                    if not chunk:
                        answer = None
                        break
            else:
                raise K2ConflictError('Other writers kept creating the same objects', method='POST', path=path)
            created.extend(already)
            if answer is not None:
                created.extend(_hits(answer, 'POST', path))
        return created

    def _bulk_reconcile(self, resource, unique_field, already):
        """Reconcile for a bulk POST: keep the items that now exist (into ``already``), resend the others."""
        def reconcile(sent):
            names = [item.get(unique_field) for item in sent]
            if any(n is None for n in names):
                return False, None
            existing = self.search(resource, {unique_field: names})
            found = set(obj.get(unique_field) for obj in existing)
            already.extend(existing)
            missing = [item for item in sent if item.get(unique_field) not in found]
            if not missing:
                return True, {'hits': [], 'total': 0}
            return False, missing
        return reconcile

    def bulk_update(self, resource, changes, chunk_size=BULK_CHUNK_SIZE):
        """PATCH many objects with ``PATCH /<resource>/__bulk``; each item holds ``id`` and the changed fields."""
        updated = []
        path = self.url_for(resource, suffix='__bulk')
        for chunk in chunks([_jsonable(c) for c in changes], chunk_size):
            if any('id' not in item for item in chunk):
                raise ValueError('bulk_update items need an id')
            answer = self.request('PATCH', path, body=chunk)
            if answer is not None:
                updated.extend(_hits(answer, 'PATCH', path))
        return updated

    def bulk_delete(self, resource, ids, chunk_size=BULK_CHUNK_SIZE):
        """Delete many objects with ``DELETE /<resource>/__bulk`` (body ``[{"id": n}, ...]``)."""
        path = self.url_for(resource, suffix='__bulk')
        for chunk in chunks([{'id': int(i)} for i in ids], chunk_size):
            self.request('DELETE', path, body=chunk)


# --------------------------------------------------------------------------- helpers

def same_attributes(found, sent):
    """True when the object ``found`` on the array has every attribute of the POST body ``sent``.

    Each attribute compares as ``values_equal`` does (refs by path, K2's loose typing of numbers and booleans),
    with two additions for objects re-read after a create race: an empty value (None, 0, "") matches an empty one
    (K2 shows a quota of 0 as null), and initiator names compare without regard to case and colons. Keys the array
    does not show (passwords) are not compared.
    """
    for key, value in sent.items():
        if key not in found:
            continue
        have = found[key]
        if value in (None, '', 0) and have in (None, '', 0):
            continue
        if key in ('iqn', 'pwwn'):
            if str(value).lower().replace(':', '') != str(have).lower().replace(':', ''):
                return False
        elif not values_equal(have, value):
            return False
    return True


def _canonical(value):
    """Hashable form for multiset comparison: refs as paths, dicts as sorted items, lists as sorted counts."""
    if isinstance(value, dict):
        if 'ref' in value:
            return ['ref', ref_path(value)]
        return ['dict', sorted([k, _canonical(v)] for k, v in value.items())]
    if isinstance(value, (list, tuple, set, frozenset)):
        counts = Counter(json.dumps(_canonical(v), sort_keys=True, default=str) for v in value)
        return ['multiset', sorted(counts.items())]
    return value


def _is_ref(value):
    return isinstance(value, dict) and 'ref' in value


def _scalar_equal(current, desired):
    """Scalars, tolerating K2's loose typing: ``"True"`` equals True and ``"10"`` equals 10, but two strings compare exactly."""
    if isinstance(current, str) and isinstance(desired, str):
        return current == desired
    if isinstance(current, str):
        current, desired = desired, current
    if isinstance(desired, str):
        text = desired.strip()
        if isinstance(current, bool):
            return text.lower() == ('true' if current else 'false')
        if isinstance(current, (int, float)):
            try:
                return float(text) == float(current)
            except ValueError:
                return False
        return False
    if isinstance(current, bool) or isinstance(desired, bool):
        return isinstance(current, bool) and isinstance(desired, bool) and current == desired
    return current == desired


def values_equal(current, desired):
    """True when ``current`` (from K2) already satisfies ``desired`` (from the user).

    Dicts compare only the keys ``desired`` sets; lists compare as multisets
    (order ignored, duplicates counted); refs compare by path, whether given
    as ``{"ref": ...}`` or as a path string; K2's loose typing (``"True"``,
    ``"10"``) is tolerated for booleans and numbers.
    """
    if _is_ref(desired) or _is_ref(current):
        try:
            return ref_path(current) == ref_path(desired)
        except ValueError:
            return False
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return False
        return all(values_equal(current.get(k), v) for k, v in desired.items() if v is not None)
    if isinstance(desired, (list, tuple, set, frozenset)):
        if not isinstance(current, (list, tuple, set, frozenset)):
            return False
        return _canonical(list(current)) == _canonical(list(desired))
    return _scalar_equal(current, desired)


def _short(exc):
    """The useful part of a requests/urllib3 error: ``[Errno 111] Connection refused`` rather than the pool dump."""
    text = str(exc)
    for pattern in (r'\[Errno -?[0-9]+\] [^\'")]+', r"RemoteDisconnected\('([^']+)'", r'\[SSL: [A-Z_]+\] [^(\'")]+', r'(Read timed out)'):
        match = re.search(pattern, text)
        if match:
            return (match.group(1) if match.groups() else match.group(0)).strip()
    return text if len(text) <= 300 else text[:297] + '...'


def _retry_after(value):
    """Seconds from a ``Retry-After`` header in its delay form; 0 when absent or an HTTP date."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def _num(value):
    return ('%f' % value).rstrip('0').rstrip('.')


def _is_scalar_text(value):
    return isinstance(value, str) and not _REF_RE.match(value) and not value.isdigit()


def _looks_like_ref(value):
    return (isinstance(value, dict) and 'ref' in value) or (isinstance(value, str) and bool(_REF_RE.match(value)))


def _query_text(value):
    if isinstance(value, bool):
        return 'True' if value else 'False'
    return str(value)


def _with_id(fields):
    fields = [fields] if isinstance(fields, str) else list(fields)
    return fields if 'id' in fields else ['id'] + fields


def _describe_filters(filters):
    return ', '.join('%s=%s' % (k, v) for k, v in (filters or {}).items())


def _hits(page, method, path):
    if not isinstance(page, dict) or not isinstance(page.get('hits'), list):
        raise K2ProtocolError('Expected a result set with hits from %s' % path, method=method, path=path)
    return page['hits']


def chunks(items, size):
    """``items`` (a list) in consecutive slices of ``size``."""
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield items[start:start + size]


def chunk_values(values, budget=None, max_values=None):
    """Split query values into lists whose comma-joined, URL-encoded text stays within ``budget`` characters and
    ``max_values`` values (defaults: ``QUERY_BUDGET``, ``QUERY_MAX_VALUES``, read at call time)."""
    budget = budget or QUERY_BUDGET
    max_values = max_values or QUERY_MAX_VALUES
    chunk, used = [], 0
    for value in values:
        cost = len(quote(str(value), safe='')) + 3
        if chunk and (used + cost > budget or len(chunk) >= max_values):
            yield chunk
            chunk, used = [], 0
        chunk.append(value)
        used += cost
    if chunk:
        yield chunk


def _jsonable(value):
    """Copy of a body where ref-valued fields given as ids or objects become ``{"ref": ...}``."""
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        resource = REF_FIELDS.get(key)
        if resource and item is not None and not isinstance(item, (str, bool)) and not (isinstance(item, dict) and 'ref' in item):
            result[key] = {'ref': ref_path(item, resource)}
        elif isinstance(item, str) and _REF_RE.match(item) and (key in REF_FIELDS or key in _OTHER_REF_KEYS):
            result[key] = {'ref': item}
        else:
            result[key] = item
    return result


def _fields_params(fields):
    """``__fields`` for a field selection (``id`` always included), or nothing."""
    return [('__fields', ','.join(_with_id(fields)))] if fields else []


def _sort_params(sort):
    """``__sort`` (and ``__sort_order=desc`` for ``-field``), or nothing."""
    if not sort:
        return []
    if sort.startswith('-'):
        return [('__sort', sort[1:]), ('__sort_order', 'desc')]
    return [('__sort', sort)]
