"""Hosts, host groups, initiators and mappings (LUN rules), through krest."""

import pytest
from requests.exceptions import HTTPError


def code_of(excinfo):
    return excinfo.value.response.status_code, excinfo.value.response.json()["error_code"]


def test_host_types_are_validated(ep, mk, uniq):
    for htype in ("Linux", "Windows", "ESX", "AIX", "Solaris"):
        assert mk.host(type=htype).type == htype
    with pytest.raises(HTTPError) as exc:
        ep.new("hosts", name=uniq("h"), type="linux").save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    assert "Linux" in exc.value.response.json()["error_msg"]
    with pytest.raises(HTTPError) as exc:
        ep.new("hosts", name=uniq("h")).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")


def test_host_names_unique_and_valid(ep, mk):
    host = mk.host()
    with pytest.raises(HTTPError) as exc:
        ep.new("hosts", name=host.name, type="Linux").save()
    assert code_of(exc) == (400, "MC_ERR_ALREADY_EXISTS")
    for bad in ("", "a" * 43, "with space", "semi;colon"):
        with pytest.raises(HTTPError) as exc:
            ep.new("hosts", name=bad, type="Linux").save()
        assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")


def test_iqns_and_fc_ports_and_cascade_on_host_delete(ep, mk, uniq):
    host = mk.host()
    iqn = "iqn.1993-08.org.debian:01:%s" % uniq("i")
    ep.new("host_iqns", iqn=iqn, host=host).save()
    with pytest.raises(HTTPError) as exc:
        ep.new("host_iqns", iqn=iqn, host=host).save()
    assert code_of(exc) == (400, "MC_ERR_ALREADY_EXISTS")
    with pytest.raises(HTTPError) as exc:
        ep.new("host_iqns", iqn="not-an-iqn", host=host).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    port = ep.new("host_fc_ports", pwwn="1234567890ABCDEF", host=host).save()
    assert port.pwwn == "12:34:56:78:90:ab:cd:ef"
    # search by either spelling finds the normalised value
    assert ep.search("host_fc_ports", pwwn="12:34:56:78:90:ab:cd:ef", host=host).total == 1
    assert ep.search("host_fc_ports", pwwn="1234567890abcdef").total == 1
    with pytest.raises(HTTPError) as exc:
        ep.new("host_fc_ports", pwwn="12:34:56:78:90:ab:cd:ef").save()
    assert code_of(exc) == (400, "MC_ERR_ALREADY_EXISTS")
    with pytest.raises(HTTPError):
        ep.new("host_fc_ports", pwwn="xyz").save()
    assert ep.search("host_iqns", iqn=iqn).hits[0].host.id == host.id
    host.delete()
    assert ep.search("host_iqns", iqn=iqn).total == 0
    assert ep.search("host_fc_ports", pwwn="12:34:56:78:90:ab:cd:ef").total == 0
    # the same initiator can be registered again for a new host (cinder's next attach)
    again = mk.host()
    ep.new("host_iqns", iqn=iqn, host=again).save()


def test_lun_allocation_lowest_free_from_one(ep, mk):
    host = mk.host()
    vg = mk.vg()
    vols = [mk.volume(vg, size=1024) for dummy in range(4)]
    maps = [ep.new("mappings", volume=v, host=host).save() for v in vols[:3]]
    assert [m.lun for m in maps] == [1, 2, 3]
    maps[1].delete()
    m = ep.new("mappings", volume=vols[3], host=host).save()
    assert m.lun == 2
    # LUN spaces are per host: another host starts at 1 again
    other = mk.host()
    assert ep.new("mappings", volume=vols[0], host=other).save().lun == 1
    host_obj = ep.get("hosts", host.id)
    assert host_obj.volumes_count == 3 and host_obj.views_count == 0


def test_explicit_lun_honoured_and_collision_refused(ep, mk):
    host = mk.host()
    vg = mk.vg()
    a, b, c = (mk.volume(vg, size=1024) for dummy in range(3))
    assert ep.new("mappings", volume=a, host=host, lun=7).save().lun == 7
    with pytest.raises(HTTPError) as exc:
        ep.new("mappings", volume=b, host=host, lun="7").save()
    assert code_of(exc) == (400, "MC_ERR_LUN_IN_USE")
    for bad in (0, 255, -1):
        with pytest.raises(HTTPError) as exc:
            ep.new("mappings", volume=b, host=host, lun=bad).save()
        assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    mb = ep.new("mappings", volume=b, host=host).save()
    assert mb.lun == 1
    mb.lun = 7
    with pytest.raises(HTTPError) as exc:
        mb.save()
    assert code_of(exc) == (400, "MC_ERR_LUN_IN_USE")
    mb = ep.get("mappings", mb.id)
    mb.lun += 10
    mb.save()
    assert ep.get("mappings", mb.id).lun == 11
    # duplicate mapping of the same volume to the same host
    with pytest.raises(HTTPError) as exc:
        ep.new("mappings", volume=a, host=host).save()
    assert code_of(exc) == (400, "MC_ERR_ALREADY_EXISTS")
    assert ep.new("mappings", volume=c, host=host).save().lun == 1     # freed when mb moved to 11


def test_mapped_volume_and_host_with_mappings_cannot_be_deleted(ep, mk):
    host = mk.host()
    vol = mk.volume()
    m = ep.new("mappings", volume=vol, host=host).save()
    with pytest.raises(HTTPError) as exc:
        vol.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    assert host.name in exc.value.response.json()["error_msg"]
    with pytest.raises(HTTPError) as exc:
        host.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    # cinder's terminate_connection sequence
    found = ep.search("mappings", volume=vol, host=host)
    assert found.total == 1 and found.hits[0].lun == m.lun
    found.hits[0].delete()
    assert ep.search("mappings", host=host).total == 0
    host.delete()
    vol.delete()


def test_host_groups_share_one_lun_space(ep, mk, uniq):
    group = ep.new("host_groups", name=uniq("hg"), allow_different_host_types=False).save()
    h1 = mk.host(host_group=group)
    h2 = mk.host()
    h2.host_group = group
    h2.save()
    assert ep.get("host_groups", group.id).hosts_count == 2
    assert ep.get("hosts", h1.id).is_part_of_group is True
    vg = mk.vg()
    v1, v2 = mk.volume(vg, size=1024), mk.volume(vg, size=1024)
    assert ep.new("mappings", volume=v1, host=group).save().lun == 1
    assert ep.new("mappings", volume=v2, host=group).save().lun == 2
    assert ep.get("hosts", h1.id).volumes_count == 2
    # a member cannot be mapped on its own
    with pytest.raises(HTTPError) as exc:
        ep.new("mappings", volume=mk.volume(vg, size=1024), host=h1).save()
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    assert "host group" in exc.value.response.json()["error_msg"]
    # different host types are refused unless the group allows them
    with pytest.raises(HTTPError) as exc:
        mk.host(type="Windows", host_group=group)
    assert code_of(exc) == (400, "MC_ERR_INVALID_ARG")
    group.allow_different_host_types = True
    group.save()
    win = mk.host(type="Windows", host_group=group)
    # a group with members or mappings cannot be deleted
    with pytest.raises(HTTPError) as exc:
        group.delete()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")
    # a host leaves its group with "" or null
    for h in (h1, h2, win):
        fresh = ep.get("hosts", h.id)
        fresh.host_group = ""
        fresh.save()
        assert ep.get("hosts", h.id).host_group is None
    for m in ep.search("mappings", host=group).hits:
        m.delete()
    group.delete()


def test_host_with_own_mappings_cannot_join_a_group(ep, mk, uniq):
    group = ep.new("host_groups", name=uniq("hg")).save()
    host = mk.host()
    ep.new("mappings", volume=mk.volume(size=1024), host=host).save()
    host.host_group = group
    with pytest.raises(HTTPError) as exc:
        host.save()
    assert code_of(exc) == (400, "MC_ERR_IN_USE")


def test_mapping_moves_to_another_host(ep, mk):
    a, b = mk.host(), mk.host()
    vg = mk.vg()
    ep.new("mappings", volume=mk.volume(vg, size=1024), host=b).save()           # takes LUN 1 on b
    m = ep.new("mappings", volume=mk.volume(vg, size=1024), host=a).save()
    assert m.lun == 1
    m.host = b
    m.save()
    moved = ep.get("mappings", m.id)
    assert moved.host.id == b.id and moved.lun == 2


def test_unfiltered_mappings_search_returns_all(ep, mk):
    # cinder passes {"volume": v} as krest's options argument: an unfiltered GET /mappings
    ep.new("mappings", volume=mk.volume(size=1024), host=mk.host()).save()
    rs = ep.search("mappings", {"volume": "ignored"})
    assert rs.total >= 1
