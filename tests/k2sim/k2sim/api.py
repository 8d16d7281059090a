"""HTTP layer of one simulated array: REST API v2, authentication, faults, request log."""

import asyncio
import base64
import binascii
import hmac
import json
import logging
import random
import time
from collections import deque

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from k2sim.array import Array
from k2sim.errors import ApiError
from k2sim.schema import RESOURCES

LOG = logging.getLogger("k2sim.api")
ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
REQUEST_LOG_MAX = 100000
RESOURCE_NAMES_LONGEST_FIRST = sorted(RESOURCES, key=len, reverse=True)


def json_response(data, status=200, pretty=False):
    if pretty:
        body = json.dumps(data, indent=2, sort_keys=False)
    else:
        body = json.dumps(data, separators=(",", ":"), check_circular=False)     # rendered objects are trees
    return Response(body, status_code=status, media_type="application/json")


def error_response(err, headers=None):
    resp = json_response(err.body(), err.status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


class Faults(object):
    """Fault injection settings of one array (see the README, "Admin API")."""

    FIELDS = ("latency_ms", "error_500_rate", "busy_rate", "busy_code", "drop_rate", "toofast_rate",
              "lose_next_create_response", "down", "seed")

    def __init__(self):
        self.reset()

    def reset(self):
        self.latency_ms = 0
        self.error_500_rate = 0.0
        self.busy_rate = 0.0
        self.busy_code = "MC_ERR_BUSY"
        self.drop_rate = 0.0
        self.toofast_rate = 0.0
        self.lose_next_create_response = False
        self.down = False
        self.seed = None
        self.rng = random.Random()

    def as_dict(self):
        return dict((k, getattr(self, k)) for k in self.FIELDS)

    def update(self, values):
        """Validate all values first, then apply them together (a bad request changes nothing)."""
        new = self.as_dict()
        for key, value in values.items():
            if key not in self.FIELDS:
                raise ValueError("unknown fault %r (known: %s)" % (key, ", ".join(self.FIELDS)))
            if key in ("error_500_rate", "busy_rate", "drop_rate", "toofast_rate"):
                value = float(value)
                if not 0.0 <= value <= 1.0:
                    raise ValueError("%s must be between 0 and 1, got %r" % (key, value))
            elif key == "latency_ms":
                value = float(value)
                if value < 0:
                    raise ValueError("latency_ms must be 0 or more")
            elif key in ("lose_next_create_response", "down"):
                if not isinstance(value, bool):
                    raise ValueError("%s must be true or false" % key)
            elif key == "busy_code":
                if value not in ("MC_ERR_BUSY", "MC_ERR_BUSY_SPECIFIC", "MC_ERR_INPROGRESS", "MC_ERR_START_TIMEOUT"):
                    raise ValueError("busy_code must be one of MC_ERR_BUSY, MC_ERR_BUSY_SPECIFIC, MC_ERR_INPROGRESS, MC_ERR_START_TIMEOUT")
            elif key == "seed" and value is not None:
                value = int(value)
            new[key] = value
        total = new["error_500_rate"] + new["busy_rate"] + new["drop_rate"] + new["toofast_rate"]
        if total > 1.0:
            raise ValueError("error_500_rate + busy_rate + drop_rate + toofast_rate must not exceed 1, got %s" % total)
        for key, value in new.items():
            setattr(self, key, value)
        if "seed" in values:
            self.rng = random.Random(self.seed)

    def roll(self):
        """Decide the fault of one request: None, "drop", "500", "busy" or "429"."""
        if not (self.drop_rate or self.error_500_rate or self.busy_rate or self.toofast_rate):
            return None
        u = self.rng.random()
        if u < self.drop_rate:
            return "drop"
        u -= self.drop_rate
        if u < self.error_500_rate:
            return "500"
        u -= self.error_500_rate
        if u < self.busy_rate:
            return "busy"
        u -= self.busy_rate
        if u < self.toofast_rate:
            return "429"
        return None


def abort_connection(send):
    """Close the client's TCP connection without an answer (uvicorn's send is bound to the cycle holding the transport)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


class ArrayService(object):
    """One array: its state, users, tokens, faults, request log and ASGI app."""

    def __init__(self, name, data_dir, users):
        self.name = name
        self.array = Array(name, data_dir)
        self.users = users                  # user -> (password, role)
        self.tokens = {}                    # bearer token -> (user, role)
        self.faults = Faults()
        self.requests = deque(maxlen=REQUEST_LOG_MAX)
        self.url = None
        self.ca_file = None
        self.listener = None
        self.starlette = Starlette(routes=[
            Route("/api/v2", self.handle, methods=ALL_METHODS),
            Route("/api/v2/{path:path}", self.handle, methods=ALL_METHODS),
            Route("/rest/sdps/{sdp}/api/v2", self.handle, methods=ALL_METHODS),
            Route("/rest/sdps/{sdp}/api/v2/{path:path}", self.handle, methods=ALL_METHODS),
            Route("/{path:path}", self.not_found, methods=ALL_METHODS),
        ], exception_handlers={HTTPException: self.http_exception})

    # ----- ASGI entry: faults and request log wrap the application ------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.starlette(scope, receive, send)
        started = time.time()
        qs = scope.get("query_string", b"").decode("latin-1")
        entry = {"method": scope["method"], "path": scope["path"] + ("?" + qs if qs else ""),
                 "status": None, "time": started, "duration_ms": None, "user": None, "fault": None}
        scope["k2sim"] = entry
        faults = self.faults
        try:
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000.0)
            fault = faults.roll()
            if fault == "drop":
                entry["fault"], entry["status"] = "drop", 0
                if abort_connection(send):
                    return
                raise RuntimeError("cannot drop the connection with this server")
            if fault in ("500", "busy", "429"):
                entry["fault"] = fault
                if fault == "500":
                    err = ApiError("MC_ERR_INTERNAL", "injected internal error")
                elif fault == "429":
                    err = ApiError("MC_ERR_TOO_MANY_REQUESTS", "too many requests; slow down and retry")
                else:
                    err = ApiError(faults.busy_code, faults.busy_code, status=400)
                entry["status"] = err.status
                return await error_response(err)(scope, receive, send)
            lose = faults.lose_next_create_response and scope["method"] == "POST"
            held = []

            async def capture(message):
                if message["type"] == "http.response.start":
                    entry["status"] = message["status"]
                if lose:
                    held.append(message)
                else:
                    await send(message)

            await self.starlette(scope, receive, capture)
            if lose:
                if entry["status"] is not None and 200 <= entry["status"] < 300 and abort_connection(send):
                    # The object was created and committed, but the client never hears about it.
                    faults.lose_next_create_response = False
                    entry["fault"] = "lost_response"
                    return
                for message in held:
                    await send(message)
        finally:
            entry["duration_ms"] = round((time.time() - started) * 1000.0, 3)
            self.requests.append(entry)

    async def http_exception(self, request, exc):
        """Starlette's own errors (an unusual method such as TRACE) answer JSON too."""
        code = {404: "MC_ERR_NOT_FOUND", 405: "MC_ERR_METHOD_NOT_ALLOWED"}.get(exc.status_code, "MC_ERR_INVALID_ARG")
        return error_response(ApiError(code, "%s %s: %s" % (request.method, request.url.path, exc.detail), status=exc.status_code))

    async def not_found(self, request):
        return error_response(ApiError("MC_ERR_NOT_FOUND", "no such path %s; the API lives under /api/v2" % request.url.path))

    # ----- authentication -----------------------------------------------------------------------
    def _authenticate(self, request):
        header = request.headers.get("authorization", "")
        scheme, dummy, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, dummy, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ApiError("MC_ERR_AUTH", "malformed basic authorization header")
            known = self.users.get(user)
            if known is not None and hmac.compare_digest(known[0].encode("utf-8"), password.encode("utf-8")):
                return user, known[1]
            raise ApiError("MC_ERR_AUTH", "wrong user name or password")
        if scheme.lower() == "bearer":
            for token, (user, role) in self.tokens.items():
                if hmac.compare_digest(token.encode("utf-8"), value.strip().encode("utf-8")):
                    return user, role
            raise ApiError("MC_ERR_AUTH", "unknown or expired bearer token")
        raise ApiError("MC_ERR_AUTH", "authentication required (HTTP basic, or a bearer token under /rest/sdps/<id>/api/v2)")

    # ----- dispatch ---------------------------------------------------------------------------
    async def handle(self, request):
        entry = request.scope.get("k2sim", {})
        try:
            user, role = self._authenticate(request)
            entry["user"] = user
            sdp = request.path_params.get("sdp")
            if sdp is not None and sdp != str(self.array.sdp_id):
                raise ApiError("MC_ERR_NOT_FOUND", "no SDP with id %s behind this endpoint (this array's sdp_id is %d)"
                               % (sdp, self.array.sdp_id))
            method = request.method
            if method not in ("GET", "HEAD") and role != "admin":
                raise ApiError("MC_ERR_PERMISSION_DENIED", "user %s has role %s, which may only read (GET)" % (user, role))
            seq = request.headers.get("x-k2-sequence")
            if seq:
                self.array.check_sequence(seq)
            raw = await request.body()
            body = None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as err:
                    raise ApiError("MC_ERR_INVALID_ARG", "the request body is not valid JSON: %s" % err)
            return self._dispatch(request, method, request.path_params.get("path", "").strip("/"), body,
                                  {"user": user, "role": role})
        except ApiError as err:
            headers = {"WWW-Authenticate": 'Basic realm="K2"'} if err.status == 401 else None
            return error_response(err, headers)
        except Exception as err:  # a k2sim bug must still answer JSON, and say what happened
            LOG.exception("internal error on %s %s", request.method, request.url.path)
            return error_response(ApiError("MC_ERR_INTERNAL", "k2sim internal error: %s: %s" % (type(err).__name__, err)))

    def _dispatch(self, request, method, path, body, ctx):
        params = list(request.query_params.multi_items())
        pretty = any(k == "__pretty" for k, dummy in params)
        if path == "":
            if method != "GET":
                raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "the discovery document only answers GET")
            return json_response({"resources": dict((name, {"url": res.url}) for name, res in RESOURCES.items())}, pretty=pretty)
        if path == "__full":
            if method != "GET":
                raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "__full only answers GET")
            dump = dict((name, [self.array.render(name, o, ctx) for o in self.array.store.all(name)]) for name in RESOURCES)
            return json_response(dump, pretty=pretty)
        res, rest = None, None
        for name in RESOURCE_NAMES_LONGEST_FIRST:
            if path == name or path.startswith(name + "/"):
                res, rest = name, path[len(name) + 1:]
                break
        if res is None:
            raise ApiError("MC_ERR_NOT_FOUND", "unknown resource %r (see GET /api/v2 for the list)" % path)
        spec = RESOURCES[res]
        if method not in spec.methods and method != "HEAD":
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "%s does not support %s (supported: %s)"
                           % (res, method, ", ".join(sorted(spec.methods))))
        array, user = self.array, ctx["user"]
        if rest == "":
            if method in ("GET", "HEAD"):
                result, q = array.search(res, params, ctx)
                return json_response(result, pretty=q.pretty)
            if method == "POST":
                with array.store.txn():
                    obj = array.create(res, body, user)
                return json_response(array.render(res, obj, ctx), 201)
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "%s on the collection %s is not supported; use %s/<id>" % (method, res, res))
        if rest == "__bulk":
            return self._bulk(res, method, body, ctx)
        if rest == "__meta":
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "k2sim does not implement __meta requests")
        try:
            oid = int(rest)
        except ValueError:
            raise ApiError("MC_ERR_NOT_FOUND", "%s has no sub-path %r" % (res, rest))
        if method in ("GET", "HEAD"):
            return json_response(array.get_one(res, oid, params, ctx), pretty=pretty)
        if method == "PATCH":
            with array.store.txn():
                obj = array.patch(res, oid, body, user)
            return json_response(array.render(res, obj, ctx))
        if method == "DELETE":
            with array.store.txn():
                array.delete(res, oid, user)
            return Response(status_code=204)
        raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "%s/<id> does not support %s" % (res, method))

    def _bulk(self, res, method, body, ctx):
        if method not in ("POST", "PATCH", "DELETE"):
            raise ApiError("MC_ERR_METHOD_NOT_ALLOWED", "__bulk takes POST, PATCH or DELETE")
        if not isinstance(body, list):
            raise ApiError("MC_ERR_INVALID_ARG", "a __bulk request needs a JSON array of objects")
        array, user = self.array, ctx["user"]
        out = []
        # All or nothing: one transaction for the whole batch.
        with array.store.txn():
            for index, item in enumerate(body):
                try:
                    if method == "POST":
                        out.append(array.create(res, item, user))
                        continue
                    if not isinstance(item, dict) or "id" not in item:
                        raise ApiError("MC_ERR_INVALID_ARG", "each element of a bulk %s needs an id" % method)
                    try:
                        oid = int(item["id"])
                    except (TypeError, ValueError):
                        raise ApiError("MC_ERR_INVALID_ARG", "id %r is not an integer" % (item["id"],))
                    if method == "PATCH":
                        out.append(array.patch(res, oid, item, user, bulk=True))
                    else:
                        array.delete(res, oid, user)
                except ApiError as err:
                    err.msg = "bulk element %d: %s" % (index, err.msg)
                    raise
        if method == "DELETE":
            return Response(status_code=204)
        hits = [array.render(res, o, ctx) for o in out]
        return json_response({"hits": hits, "total": len(hits), "limit": len(hits), "offset": 0}, 201 if method == "POST" else 200)
