"""Helpers of the k2sim test-suite: a k2sim subprocess, a fail-fast krest endpoint, object makers.

(A uniquely named module rather than conftest.py, so that `from ... import` never picks another
test-suite's conftest.)
"""

import json
import os
import signal
import subprocess
import sys

import krest
import requests


class Sim(object):
    """A running `python -m k2sim serve` process."""

    def __init__(self, data_dir, arrays=("a",), users=None, admin=True, extra=()):
        self.data_dir = str(data_dir)
        cmd = [sys.executable, "-m", "k2sim", "serve", "--data-dir", self.data_dir]
        for name in arrays:
            cmd += ["--array", "%s@127.0.0.1:0" % name]
        for user in users or ():
            cmd += ["--user", user]
        if admin:
            cmd += ["--admin", "127.0.0.1:0"]
        cmd += list(extra)
        self.stderr_path = os.path.join(self.data_dir + ".stderr")
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            with open(self.stderr_path) as fh:
                raise RuntimeError("k2sim did not start (rc %s): %s" % (self.proc.returncode, fh.read()[-2000:]))
        self.line = json.loads(line)
        self.admin = self.line["admin"]

    def url(self, array="a"):
        return self.line["arrays"][array]["url"]

    def addr(self, array="a"):
        return self.url(array)[len("https://"):]

    def ca(self, array="a"):
        return self.line["arrays"][array]["ca_file"]

    def endpoint(self, array="a", username="admin", password="admin", **kw):
        return make_endpoint(self.addr(array), self.ca(array), username=username, password=password, **kw)

    def session(self, array="a", auth=("admin", "admin")):
        s = requests.Session()
        s.auth = auth
        s.trust_env = False   # else REQUESTS_CA_BUNDLE from the environment overrides verify
        s.verify = self.ca(array)
        s.headers["content-type"] = "application/json"
        return s

    def api(self, array="a"):
        return self.url(array) + "/api/v2"

    def admin_get(self, path, **kw):
        r = requests.get(self.admin + path, timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def admin_call(self, method, path, **kw):
        r = requests.request(method, self.admin + path, timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def requests_log(self, array="a"):
        return self.admin_get("/arrays/%s/requests" % array)["requests"]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode


def make_endpoint(addr, ca, username="admin", password="admin", auth=None, sdp_id=None):
    """A krest EndPoint that fails fast (tooling-notes P8): no 10-minute retry loop."""
    kw = {"auth": auth, "sdp_id": sdp_id} if auth is not None else {"username": username, "password": password}
    ep = krest.EndPoint(addr, ssl_validate=ca, autodiscover=False, validate_endpoints=False, **kw)
    ep.retry_cfg.on_connect_errors = False
    ep.retry_cfg.on_5xx_errors = False
    ep.retry_cfg.on_other_errors = False
    ep.req_cfg.timeout = 20
    ep.discover()
    ep.validate_endpoints = True
    return ep


class Maker(object):
    """Shortcuts to create objects with fresh names through krest."""

    def __init__(self, ep, uniq):
        self.ep = ep
        self.uniq = uniq

    def vg(self, **kw):
        kw.setdefault("name", self.uniq("vg"))
        kw.setdefault("quota", 0)
        return self.ep.new("volume_groups", **kw).save()

    def volume(self, vg=None, size=1024 * 1024, **kw):
        kw.setdefault("name", self.uniq("vol"))
        return self.ep.new("volumes", size=size, volume_group=vg or self.vg(), **kw).save()

    def host(self, **kw):
        kw.setdefault("name", self.uniq("host"))
        kw.setdefault("type", "Linux")
        return self.ep.new("hosts", **kw).save()

    def retention(self):
        return self.ep.search("retention_policies", name="Best_Effort_Retention").hits[0]

    def snapshot(self, source, exposable=False, **kw):
        kw.setdefault("short_name", self.uniq("snap"))
        return self.ep.new("snapshots", source=source, retention_policy=self.retention(),
                           is_exposable=exposable, **kw).save()
