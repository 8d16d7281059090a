"""The query language: every filter operator, paging, sorting and field selection."""

import pytest
from requests.exceptions import HTTPError


@pytest.fixture
def family(mk, uniq):
    """Five volumes in one VG with known names and sizes; returns (vg, prefix, volumes)."""
    vg = mk.vg()
    prefix = uniq("q")
    vols = [mk.volume(vg, size=(i + 1) * 1024, name="%s_%d" % (prefix, i)) for i in range(5)]
    return vg, prefix, vols


def names(rs):
    return [h.name for h in rs.hits]


def test_equality_and_ref(ep, family):
    vg, prefix, vols = family
    assert names(ep.search("volumes", name=prefix + "_2")) == [prefix + "_2"]
    assert ep.search("volumes", name=prefix.upper() + "_2").total == 0      # case-sensitive
    rs = ep.search("volumes", volume_group=vg)          # krest sends volume_group.ref=/volume_groups/N
    assert rs.total == 5
    assert ep.search("volumes", **{"volume_group.ref": "/volume_groups/%d" % vg.id}).total == 5
    assert ep.search("volumes", size=3072, volume_group=vg).total == 1
    assert ep.search("volume_groups", is_dedup="True", name=vg.name).total == 1
    assert ep.search("volume_groups", is_dedup="false", name=vg.name).total == 0


def test_in_and_m_eq(ep, family, sim, http):
    vg, prefix, vols = family
    want = [prefix + "_1", prefix + "_3"]
    assert sorted(names(ep.search("volumes", name=want))) == want           # krest: name__m_eq=a,b
    r = http.get(sim.api() + "/volumes", params={"name__in": ",".join(want)})
    assert sorted(h["name"] for h in r.json()["hits"]) == want
    ids = "%d,%d" % (vols[0].id, vols[4].id)
    assert ep.search("volumes", id__in=ids).total == 2
    rs = ep.search("volumes", volume_group=[vg])                             # volume_group.ref__m_eq
    assert rs.total == 5
    r = http.get(sim.api() + "/volumes", params={"volume_group.ref__in": "/volume_groups/%d,/volume_groups/0" % vg.id})
    assert r.json()["total"] == 5


def test_text_operators(ep, family):
    vg, prefix, vols = family
    assert ep.search("volumes", name__contains=prefix).total == 5
    assert ep.search("volumes", name__prefix=prefix + "_").total == 5
    assert ep.search("volumes", name__prefix="zz" + prefix).total == 0
    assert names(ep.search("volumes", name__regexp="^%s_[13]$" % prefix, __sort="name")) == [prefix + "_1", prefix + "_3"]
    assert ep.search("volumes", name__contains_some=prefix + "_nomatch").total >= 5


def test_numeric_comparisons_and_neq(ep, family):
    vg, prefix, vols = family
    q = {"volume_group": vg}
    assert ep.search("volumes", size__gt=2048, **q).total == 3
    assert ep.search("volumes", size__gte=2048, **q).total == 4
    assert ep.search("volumes", size__lt=2048, **q).total == 1
    assert ep.search("volumes", size__lte=2048, **q).total == 2
    assert ep.search("volumes", size__neq=1024, **q).total == 4
    assert ep.search("volumes", id__gt=vols[3].id, **q).total == 1


def test_paging_sorting_and_limit_zero(ep, family, sim, http):
    vg, prefix, vols = family
    rs = ep.search("volumes", volume_group=vg, __limit=2)
    assert rs.total == 5 and len(rs.hits) == 2 and rs.limit == 2 and rs.offset == 0
    assert [h.id for h in rs.hits] == [vols[0].id, vols[1].id]        # default order: id ascending
    page = ep.search("volumes", volume_group=vg, __limit=2, __offset=4)
    assert [h.id for h in page.hits] == [vols[4].id]
    count = ep.search("volumes", volume_group=vg, __limit=0)
    assert count.total == 5 and count.hits == []
    desc = ep.search("volumes", volume_group=vg, __sort="size", __sort_order="desc")
    assert [h.size for h in desc.hits] == [5120, 4096, 3072, 2048, 1024]
    # krest autofetch walks the pages with __offset
    rs = ep.search("volumes", volume_group=vg, __limit=2)
    rs.autofetch = True
    assert [v.id for v in rs] == [v.id for v in vols]
    raw = http.get(sim.api() + "/volumes").json()
    assert raw["limit"] == 100 and raw["offset"] == 0


def test_fields_selection(ep, family, sim, http):
    vg, prefix, vols = family
    rs = ep.search("volumes", volume_group=vg, __fields=["id", "name"])
    assert all(set(h._current) == {"id", "name"} for h in rs.hits)
    r = http.get(sim.api() + "/volumes", params={"volume_group.ref": "/volume_groups/%d" % vg.id, "__fields": "size"})
    assert all(h == {"size": h["size"]} for h in r.json()["hits"])


def test_computed_fields_filter_and_sort(ep, mk):
    vg = mk.vg()
    mk.volume(vg)
    mk.volume(vg)
    assert ep.search("volume_groups", name=vg.name, volumes_count=2).total == 1
    assert ep.search("volume_groups", name=vg.name, volumes_count__gt=2).total == 0


def test_empty_value_does_not_narrow(ep):
    assert ep.search("system/state", name="").total == 1
    assert ep.search("volumes", name="").total == ep.search("volumes").total


@pytest.mark.parametrize("params, needle", [
    ({"nosuchfield": "1"}, "nosuchfield"),
    ({"name__bogus": "1"}, "bogus"),
    ({"size__gt": "abc"}, "number"),
    ({"name__regexp": "("}, "regular expression"),
    ({"__limit": "-1"}, "__limit"),
    ({"__sort": "nosuch"}, "nosuch"),
    ({"__sort_order": "up"}, "__sort_order"),
    ({"name.ref": "/x/1"}, "reference field"),
])
def test_bad_queries_are_refused_with_a_clear_message(sim, http, params, needle):
    r = http.get(sim.api() + "/volumes", params=params)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error_code"] == "MC_ERR_INVALID_QUERY" and needle in body["error_msg"]


def test_krest_reports_error_msg(ep):
    with pytest.raises(HTTPError) as exc:
        ep.search("volumes", nosuchfield="x")
    assert "has no field 'nosuchfield'" in str(exc.value)


def test_pretty_output(sim, http):
    r = http.get(sim.api() + "/system/state", params={"__pretty": ""})
    assert r.status_code == 200 and "\n  " in r.text


def test_null_filters(ep, mk, uniq):
    vg = mk.vg()
    assert ep.search("volume_groups", name=vg.name, quota="null").total == 1
    assert ep.search("volume_groups", name="None").total == 0
    assert ep.search("volumes", volume_group="null", name="CTRL").total == 1    # CTRL has no volume group
    assert ep.search("volumes", name="null").total == 0
