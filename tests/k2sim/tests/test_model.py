"""Property test: random sequences of operations agree with a small model of the array rules.

Hypothesis drives volume groups, volumes, hosts and mappings with few names (so conflicts happen often);
after each step, k2sim's counters and LUNs must match the model.
"""

import itertools

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import settings, strategies as st  # noqa: E402  pylint: disable=wrong-import-position
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule  # noqa: E402  pylint: disable=wrong-import-position

RUNS = itertools.count(1)
NAMES = st.sampled_from(["n1", "n2", "n3"])
SIZES = st.sampled_from([1024, 2048, 4096])


@pytest.fixture
def machine_cls(sim):
    class ArrayModel(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.http = sim.session()
            self.api = sim.api()
            self.prefix = "hyp%d-" % next(RUNS)
            self.vgs = {}          # name -> id
            self.vols = {}         # name -> {"id", "vg", "size"}
            self.hosts = {}        # name -> id
            self.maps = {}         # (vol, host) -> {"id", "lun"}

        def call(self, method, path, body=None):
            r = self.http.request(method, self.api + path, json=body)
            assert r.headers.get("content-type", "application/json") == "application/json"
            return r

        def expect(self, r, ok, code=None):
            if ok:
                assert r.status_code in (200, 201, 204), r.text
            else:
                assert r.status_code == 400, r.text
                if code:
                    assert r.json()["error_code"] == code, r.text

        @rule(name=NAMES)
        def create_vg(self, name):
            r = self.call("POST", "/volume_groups", {"name": self.prefix + name})
            self.expect(r, name not in self.vgs, "MC_ERR_ALREADY_EXISTS")
            if r.status_code == 201:
                self.vgs[name] = r.json()["id"]

        @rule(name=NAMES)
        def delete_vg(self, name):
            if name not in self.vgs:
                return
            r = self.call("DELETE", "/volume_groups/%d" % self.vgs[name])
            busy = any(v["vg"] == name for v in self.vols.values())
            self.expect(r, not busy, "MC_ERR_IN_USE")
            if r.status_code == 204:
                del self.vgs[name]

        @precondition(lambda self: self.vgs)
        @rule(name=NAMES, data=st.data(), size=SIZES)
        def create_volume(self, name, data, size):
            vg = data.draw(st.sampled_from(sorted(self.vgs)))
            r = self.call("POST", "/volumes", {"name": self.prefix + name, "size": size,
                                               "volume_group": {"ref": "/volume_groups/%d" % self.vgs[vg]}})
            self.expect(r, name not in self.vols, "MC_ERR_ALREADY_EXISTS")
            if r.status_code == 201:
                self.vols[name] = {"id": r.json()["id"], "vg": vg, "size": size}

        @rule(name=NAMES, size=SIZES)
        def resize_volume(self, name, size):
            if name not in self.vols:
                return
            vol = self.vols[name]
            r = self.call("PATCH", "/volumes/%d" % vol["id"], {"size": size})
            self.expect(r, size >= vol["size"], "MC_ERR_FORBIDDEN_CHANGE")
            if r.status_code == 200:
                vol["size"] = size

        @rule(name=NAMES)
        def delete_volume(self, name):
            if name not in self.vols:
                return
            r = self.call("DELETE", "/volumes/%d" % self.vols[name]["id"])
            mapped = any(v == name for v, h in self.maps)
            self.expect(r, not mapped, "MC_ERR_IN_USE")
            if r.status_code == 204:
                del self.vols[name]

        @rule(name=NAMES)
        def create_host(self, name):
            r = self.call("POST", "/hosts", {"name": self.prefix + name, "type": "Linux"})
            self.expect(r, name not in self.hosts, "MC_ERR_ALREADY_EXISTS")
            if r.status_code == 201:
                self.hosts[name] = r.json()["id"]

        @rule(name=NAMES)
        def delete_host(self, name):
            if name not in self.hosts:
                return
            r = self.call("DELETE", "/hosts/%d" % self.hosts[name])
            self.expect(r, not any(h == name for v, h in self.maps), "MC_ERR_IN_USE")
            if r.status_code == 204:
                del self.hosts[name]

        @precondition(lambda self: self.vols and self.hosts)
        @rule(data=st.data(), lun=st.one_of(st.none(), st.integers(1, 4)))
        def map(self, data, lun):
            vol = data.draw(st.sampled_from(sorted(self.vols)))
            host = data.draw(st.sampled_from(sorted(self.hosts)))
            body = {"volume": {"ref": "/volumes/%d" % self.vols[vol]["id"]}, "host": {"ref": "/hosts/%d" % self.hosts[host]}}
            if lun is not None:
                body["lun"] = lun
            r = self.call("POST", "/mappings", body)
            used = set(m["lun"] for (v, h), m in self.maps.items() if h == host)
            if (vol, host) in self.maps:
                self.expect(r, False, "MC_ERR_ALREADY_EXISTS")
                return
            if lun is not None and lun in used:
                self.expect(r, False, "MC_ERR_LUN_IN_USE")
                return
            self.expect(r, True)
            expected = lun if lun is not None else min(set(range(1, 255)) - used)
            assert r.json()["lun"] == expected
            self.maps[(vol, host)] = {"id": r.json()["id"], "lun": expected}

        @precondition(lambda self: self.maps)
        @rule(data=st.data())
        def unmap(self, data):
            key = data.draw(st.sampled_from(sorted(self.maps)))
            m = self.maps.pop(key)
            self.expect(self.call("DELETE", "/mappings/%d" % m["id"]), True)

        @invariant()
        def counters_match(self):
            for name, vid in self.vgs.items():
                got = self.call("GET", "/volume_groups/%d" % vid).json()
                assert got["volumes_count"] == sum(1 for v in self.vols.values() if v["vg"] == name)
            for name, hid in self.hosts.items():
                got = self.call("GET", "/mappings?host.ref=/hosts/%d&__sort=lun" % hid).json()
                want = sorted(m["lun"] for (v, h), m in self.maps.items() if h == name)
                assert [m["lun"] for m in got["hits"]] == want
            got = self.call("GET", "/volumes?name__prefix=%s&__limit=0" % self.prefix).json()
            assert got["total"] == len(self.vols)

    return ArrayModel


def test_random_operations_follow_the_rules(machine_cls):
    machine_cls.TestCase.settings = settings(max_examples=15, stateful_step_count=30, deadline=None, derandomize=True, database=None)
    hypothesis.stateful.run_state_machine_as_test(machine_cls, settings=machine_cls.TestCase.settings)
