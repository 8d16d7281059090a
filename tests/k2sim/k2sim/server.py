"""Run every listener (one HTTPS server per array, one plain-HTTP admin server) in one asyncio loop."""

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys

import uvicorn

from k2sim.admin import build_admin_app
from k2sim.api import ArrayService
from k2sim.certs import ensure_certs
from k2sim.replication import ReplicationEngine, ReplicationSettings

LOG = logging.getLogger("k2sim")


class _Server(uvicorn.Server):
    """uvicorn.Server without its own signal handling: k2sim runs several servers and handles signals once."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _bind(host, port):
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)
    family, socktype, proto, dummy, addr = infos[0]
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every keep-alive response waits 40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socktype, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(256)
    sock.setblocking(False)
    return sock


def url_host(host):
    return "[%s]" % host if ":" in host else host


class Listener(object):
    """One uvicorn server on a fixed address; can be stopped ("array down") and started again on the same port."""

    def __init__(self, app, host, port, certfile=None, keyfile=None):
        self.app, self.host, self.port = app, host, port
        self.certfile, self.keyfile = certfile, keyfile
        self.server = None
        self.task = None

    @property
    def running(self):
        return self.task is not None and not self.task.done()

    async def start(self):
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False,
                                ssl_certfile=self.certfile, ssl_keyfile=self.keyfile,
                                timeout_graceful_shutdown=1, timeout_keep_alive=30, server_header=False)
        self.server = _Server(config)
        self.task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("listener %s:%s stopped during start-up" % (self.host, self.port))
            await asyncio.sleep(0.01)

    async def stop(self, grace=0.3):
        """Stop serving. Requests in flight get `grace` seconds to finish; then connections still open (idle
        keep-alive TLS connections, which would otherwise hold uvicorn's graceful shutdown for its whole timeout)
        are aborted, as a dying array would drop them."""
        if self.server is None:
            return
        self.server.should_exit = True
        try:
            done, dummy = await asyncio.wait([self.task], timeout=grace)
            if not done:
                for conn in list(self.server.server_state.connections):
                    transport = getattr(conn, "transport", None)
                    if transport is not None:
                        transport.abort()
            await self.task
        finally:
            self.server = None
            self.task = None


async def serve(data_dir, arrays, users, admin=None, cert=None, key=None, replication=None):
    """arrays: list of (name, host, port); admin: (host, port) or None; replication: ReplicationSettings or None."""
    os.makedirs(data_dir, exist_ok=True)
    if cert and key:
        ca_file, certfile, keyfile = cert, cert, key
    else:
        ca_file, certfile, keyfile = ensure_certs(data_dir, [a[1] for a in arrays])
    services = {}
    for name, host, port in arrays:
        svc = ArrayService(name, os.path.join(data_dir, name), users)
        svc.listener = Listener(svc, host, port, certfile, keyfile)
        services[name] = svc
    for svc in services.values():
        svc.array.peers = dict((name, other.array) for name, other in services.items() if other is not svc)
        svc.array.faults = svc.faults
        svc.array.users = svc.users
    listeners = []
    for svc in services.values():
        await svc.listener.start()
        svc.url = "https://%s:%d" % (url_host(svc.listener.host), svc.listener.port)
        svc.array.netloc = svc.url[len("https://"):]
        svc.array.listen_host = svc.listener.host
        svc.ca_file = os.path.abspath(ca_file)
        listeners.append(svc.listener)
    engine = ReplicationEngine(dict((name, svc.array) for name, svc in services.items()), replication or ReplicationSettings())
    engine_task = asyncio.ensure_future(engine.run())
    admin_url = None
    admin_listener = None
    if admin is not None:
        admin_listener = Listener(build_admin_app(services, engine), admin[0], admin[1])
        await admin_listener.start()
        admin_url = "http://%s:%d" % (url_host(admin[0]), admin_listener.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    line = {"arrays": dict((name, {"url": svc.url, "ca_file": svc.ca_file}) for name, svc in services.items()),
            "admin": admin_url}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    LOG.info("k2sim is serving: %s", json.dumps(line))
    await stop.wait()
    LOG.info("shutting down")
    engine_task.cancel()
    try:
        await engine_task
    except asyncio.CancelledError:
        pass
    await asyncio.gather(*[listener.stop() for listener in ([admin_listener] if admin_listener else []) + [s.listener for s in services.values()]])
    for svc in services.values():
        svc.array.store.close()
    return 0
