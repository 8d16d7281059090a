"""Admin API (plain HTTP, loopback labs only): faults, request log, backing files, tokens.

See the README section "Admin API" for the contract.
"""

import json
import secrets

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from k2sim.errors import ApiError


def _json(data, status=200):
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def _err(status, msg):
    return _json({"error_code": "ADMIN_ERROR", "error_msg": msg}, status)


def build_admin_app(services, engine=None):
    """services: dict name -> ArrayService (each with a .listener that can stop and start); engine: ReplicationEngine."""

    def describe(svc):
        return {"name": svc.name, "url": svc.url, "ca_file": svc.ca_file, "sdp_id": svc.array.sdp_id,
                "system_id": svc.array.system_id, "data_dir": svc.array.data_dir, "db_path": svc.array.db_path,
                "down": svc.faults.down, "mgmt_host": svc.array.netloc}

    def lookup(request):
        svc = services.get(request.path_params["name"])
        if svc is None:
            raise KeyError(request.path_params["name"])
        return svc

    async def array_and_body(request):
        """(array service, JSON body, None), or (None, None, the 404/400 answer) for an unknown array or a bad body."""
        try:
            return lookup(request), await body_of(request), None
        except KeyError as err:
            return None, None, _err(404, "no array named %s" % err)
        except ValueError as err:
            return None, None, _err(400, str(err))

    async def body_of(request):
        raw = await request.body()
        if not raw.strip():
            return {}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    async def health(request):
        return _json({"ok": True})

    async def arrays(request):
        return _json({"arrays": dict((name, describe(svc)) for name, svc in services.items())})

    async def array(request):
        try:
            return _json(describe(lookup(request)))
        except KeyError as err:
            return _err(404, "no array named %s" % err)

    async def set_down(svc, down):
        if down and svc.listener.running:
            await svc.listener.stop()
        elif not down and not svc.listener.running:
            await svc.listener.start()

    async def faults(request):
        try:
            svc = lookup(request)
        except KeyError as err:
            return _err(404, "no array named %s" % err)
        if request.method == "GET":
            return _json(svc.faults.as_dict())
        if request.method == "DELETE":
            svc.faults.reset()
            await set_down(svc, False)
            return _json(svc.faults.as_dict())
        try:
            values = await body_of(request)
            if request.method == "PUT":
                svc.faults.reset()
            svc.faults.update(values)
        except (ValueError, TypeError) as err:
            return _err(400, str(err))
        await set_down(svc, svc.faults.down)
        return _json(svc.faults.as_dict())

    async def requests_log(request):
        try:
            svc = lookup(request)
        except KeyError as err:
            return _err(404, "no array named %s" % err)
        if request.method == "DELETE":
            svc.requests.clear()
            return _json({"requests": [], "count": 0})
        method = request.query_params.get("method")
        prefix = request.query_params.get("path_prefix")
        rows = [r for r in svc.requests
                if (not method or r["method"] == method.upper()) and (not prefix or r["path"].startswith(prefix))]
        return _json({"requests": rows, "count": len(rows)})

    async def backing(request):
        try:
            svc = lookup(request)
        except KeyError as err:
            return _err(404, "no array named %s" % err)
        qp = request.query_params
        host, volume, view = qp.get("host"), qp.get("volume"), qp.get("view")
        if not host or (volume is None) == (view is None):
            return _err(400, "give host=<host name> and exactly one of volume=<volume name> or view=<vg>:<view>")
        try:
            return _json(svc.array.backing(host, volume, view))
        except ApiError as err:
            return _err(404, err.msg)

    async def tokens(request):
        svc, data, error = await array_and_body(request)
        if error is not None:
            return error
        user = data.get("user", "admin")
        if user not in svc.users:
            return _err(400, "no user %r on array %s (users: %s)" % (user, svc.name, ", ".join(sorted(svc.users))))
        token = secrets.token_urlsafe(24)
        svc.tokens[token] = (user, svc.users[user][1])
        return _json({"token": token, "user": user, "role": svc.users[user][1], "sdp_id": svc.array.sdp_id,
                      "prefix": "/rest/sdps/%d/api/v2" % svc.array.sdp_id}, 201)

    async def replication(request):
        if engine is None:
            return _err(404, "replication is not running in this process")
        if request.method == "PATCH":
            try:
                engine.settings.update(await body_of(request))
            except (ValueError, TypeError) as err:
                return _err(400, str(err))
        return _json(engine.describe())

    async def replication_cycle(request):
        svc, data, error = await array_and_body(request)
        if error is not None:
            return error
        arr = svc.array
        name = data.get("session")
        sessions = [s for s in arr.store.all("replication/sessions") if name is None or s["name"] == name]
        if name is not None and not sessions:
            return _err(404, "array %s has no replication session named %r" % (svc.name, name))
        queued = []
        for sess in sessions:
            if sess["current_role"] != "source" or sess["state"] != "in_sync":
                if name is not None:
                    return _err(400, "session %s is %s with role %s; cycles run on in_sync source sessions"
                                % (sess["name"], sess["state"], sess["current_role"]))
                continue
            queued.append({"session": sess["name"], "generation_number": engine.queue_cycle(arr, sess, "rpo")})
        return _json({"queued": queued})

    async def volume_file(request):
        try:
            svc = lookup(request)
        except KeyError as err:
            return _err(404, "no array named %s" % err)
        name = request.query_params.get("volume")
        vol = svc.array.store.by_ukey("volumes", name or "")
        if vol is None or vol["name"] == "CTRL":
            return _err(404, "array %s has no volume named %r" % (svc.name, name))
        return _json({"volume": vol["name"], "id": vol["id"], "size": vol["size"], "path": svc.array.volume_path(vol["id"])})

    async def not_found(request):
        return _err(404, "no admin endpoint %s %s; see the k2sim README" % (request.method, request.url.path))

    return Starlette(routes=[
        Route("/health", health),
        Route("/arrays", arrays),
        Route("/arrays/{name}", array),
        Route("/arrays/{name}/faults", faults, methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route("/arrays/{name}/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/arrays/{name}/backing", backing),
        Route("/arrays/{name}/tokens", tokens, methods=["POST"]),
        Route("/arrays/{name}/replication/cycle", replication_cycle, methods=["POST"]),
        Route("/arrays/{name}/volume_file", volume_file),
        Route("/replication", replication, methods=["GET", "PATCH"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ])
