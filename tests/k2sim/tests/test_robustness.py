"""Junk values in every writable field never crash k2sim: the answer is a success or a JSON 400, never a 5xx."""

import itertools

import pytest

from k2sim.schema import RESOURCES

JUNK = [None, "", "x", 0, -1, 1.5, True, [], {}, {"ref": None}, {"ref": "/volumes/1"}, {"ref": "/nosuch/1"},
        10 ** 30, "null", "true", "300", 255]


@pytest.fixture
def bodies(sim, http, uniq):
    api = sim.api()
    prefix = uniq("fz")
    vg = http.post(api + "/volume_groups", json={"name": prefix}).json()
    rp = http.get(api + "/retention_policies", params={"name": "Best_Effort_Retention"}).json()["hits"][0]
    vol = http.post(api + "/volumes", json={"name": prefix + "-v", "size": 1024,
                                            "volume_group": {"ref": "/volume_groups/%d" % vg["id"]}}).json()
    host = http.post(api + "/hosts", json={"name": prefix + "-h", "type": "Linux"}).json()
    counter = itertools.count()

    def make(res):
        """A valid creation body for res, with fresh names (the mapping is valid only once)."""
        i = next(counter)
        return {
            "volume_groups": {"name": "%s-g%d" % (prefix, i)},
            "volumes": {"name": "%s-w%d" % (prefix, i), "size": 1024, "volume_group": {"ref": "/volume_groups/%d" % vg["id"]}},
            "snapshots": {"short_name": "s%d" % i, "source": {"ref": "/volume_groups/%d" % vg["id"]},
                          "retention_policy": {"ref": "/retention_policies/%d" % rp["id"]}},
            "hosts": {"name": "%s-x%d" % (prefix, i), "type": "Linux"},
            "host_groups": {"name": "%s-hg%d" % (prefix, i)},
            "host_iqns": {"iqn": "iqn.2000-01.com.example:%s-%d" % (prefix, i), "host": {"ref": "/hosts/%d" % host["id"]}},
            "host_fc_ports": {"pwwn": "%016x" % (hash(prefix) % 2 ** 40 * 1000 + i), "host": {"ref": "/hosts/%d" % host["id"]}},
            "mappings": {"volume": {"ref": "/volumes/%d" % vol["id"]}, "host": {"ref": "/hosts/%d" % host["id"]}},
            "retention_policies": {"name": "%s-r%d" % (prefix, i), "num_snapshots": 1, "weeks": 0, "days": 0, "hours": 1},
            "vg_capacity_policies": {"name": "%s-c%d" % (prefix, i), "warning_threshold": 1, "error_threshold": 2,
                                     "critical_threshold": 3, "full_threshold": 4, "snapshot_overhead_threshold": 5},
        }[res]
    return make


@pytest.mark.parametrize("res", ["volume_groups", "volumes", "snapshots", "hosts", "host_groups", "host_iqns",
                                 "host_fc_ports", "mappings", "retention_policies", "vg_capacity_policies"])
def test_junk_values_get_clean_answers(sim, http, bodies, res):
    api = sim.api()
    created = None
    writable = sorted(name for name, spec in RESOURCES[res].fields.items() if spec.post or spec.patch)
    for field in writable:
        for junk in JUNK:
            body = bodies(res)
            body[field] = junk
            r = http.post(api + "/" + res, json=body)
            assert r.status_code in (201, 400), (field, junk, r.status_code, r.text)
            assert r.headers["content-type"] == "application/json"
            if r.status_code == 201 and created is None:
                created = r.json()["id"]
    assert created is not None
    for field in writable:
        for junk in JUNK:
            r = http.patch(api + "/%s/%d" % (res, created), json={field: junk})
            assert r.status_code in (200, 400), (field, junk, r.status_code, r.text)
            assert r.headers["content-type"] == "application/json"
