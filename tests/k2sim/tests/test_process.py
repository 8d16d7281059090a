"""The command line contract, restart persistence and crash (SIGKILL) safety."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest
import requests
import trustme

from k2sim_testlib import make_endpoint


def run_cli(*args, timeout=20):
    return subprocess.run([sys.executable, "-m", "k2sim"] + list(args), capture_output=True, text=True, timeout=timeout, check=False)


def test_ready_line_is_the_only_stdout_and_sigterm_exits_zero(tmp_path):
    data = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "k2sim", "serve", "--data-dir", str(data),
                             "--array", "x@127.0.0.1:0", "--array", "y@localhost:0", "--admin", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = json.loads(proc.stdout.readline())
    assert set(line) == {"arrays", "admin"}
    assert set(line["arrays"]) == {"x", "y"}
    for name, info in line["arrays"].items():
        assert set(info) == {"url", "ca_file"}
        assert info["url"].startswith("https://") and not info["url"].endswith(":0")
        assert os.path.isfile(info["ca_file"])
    assert line["arrays"]["y"]["url"].startswith("https://localhost:")
    assert line["admin"].startswith("http://127.0.0.1:") and not line["admin"].endswith(":0")
    # both names in the certificate verify
    for name in ("x", "y"):
        r = requests.get(line["arrays"][name]["url"] + "/api/v2", auth=("admin", "admin"),
                         verify=line["arrays"][name]["ca_file"], timeout=5)
        assert r.status_code == 200
    assert os.path.isdir(data / "x") and os.path.isdir(data / "y")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert out == ""


def test_sigint_exits_zero(new_sim):
    s = new_sim()
    assert s.stop(signal.SIGINT) == 0


@pytest.mark.parametrize("args, needle", [
    (["serve", "--data-dir", "d"], "--array"),
    (["serve", "--data-dir", "d", "--array", "nohost"], "NAME@HOST:PORT"),
    (["serve", "--data-dir", "d", "--array", "a@127.0.0.1:99999"], "out of range"),
    (["serve", "--data-dir", "d", "--array", "a@127.0.0.1:0", "--user", "u:p:root"], "role"),
    (["serve", "--data-dir", "d", "--array", "a@127.0.0.1:0", "--cert", "c.pem"], "--cert and --key"),
    (["serve", "--data-dir", "d", "--array", "a@127.0.0.1:0", "--array", "a@127.0.0.1:0"], "unique"),
])
def test_bad_command_lines_exit_2_with_a_message(tmp_path, args, needle):
    res = run_cli(*args)
    assert res.returncode == 2 and needle in res.stderr and res.stdout == ""


def test_busy_port_exits_1(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        res = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--array", "a@127.0.0.1:%d" % port)
    finally:
        sock.close()
    assert res.returncode == 1 and "cannot start" in res.stderr and res.stdout == ""


def test_users_option_replaces_the_default_admin(new_sim):
    s = new_sim(users=("root:secret", "ro:ro:read_only"))
    r = requests.get(s.api(), auth=("admin", "admin"), verify=s.ca(), timeout=5)
    assert r.status_code == 401
    ep = s.endpoint(username="root", password="secret")
    assert ep.search("system/state").hits[0].current_user_role == "admin"
    assert s.endpoint(username="ro", password="ro").search("system/state").hits[0].current_user_role == "read_only"


def test_own_certificate(tmp_path, new_sim):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    s = new_sim(extra=("--cert", str(cert_file), "--key", str(key_file)))
    assert s.ca() == str(cert_file)
    assert not os.path.exists(os.path.join(s.data_dir, "tls"))
    r = requests.get(s.api(), auth=("admin", "admin"), verify=str(ca_file), timeout=5)
    assert r.status_code == 200


def test_state_and_data_survive_a_restart(tmp_path, new_sim):
    data = tmp_path / "persist"
    s = new_sim(data)
    ep = s.endpoint()
    vg = ep.new("volume_groups", name="pvg", quota=0).save()
    vol = ep.new("volumes", name="pvol", size=2048, volume_group=vg).save()
    host = ep.new("hosts", name="phost", type="Linux").save()
    ep.new("host_iqns", iqn="iqn.2000-01.com.example:p", host=host).save()
    m = ep.new("mappings", volume=vol, host=host).save()
    rp = ep.search("retention_policies", name="Best_Effort_Retention").hits[0]
    snap = ep.new("snapshots", short_name="ps", source=vg, retention_policy=rp).save()
    path = s.admin_get("/arrays/a/backing", params={"host": "phost", "volume": "pvol"})["path"]
    with open(path, "r+b") as fh:
        fh.write(b"persisted-bytes")
    with open(s.ca(), "rb") as fh:
        ca_before = fh.read()
    gone = ep.new("volumes", name="gone", size=1024, volume_group=vg).save()
    gone.delete()
    assert s.stop() == 0

    s2 = new_sim(data)
    with open(s2.ca(), "rb") as fh:
        assert fh.read() == ca_before                          # the CA is reused, clients keep trusting it
    ep2 = make_endpoint(s2.addr(), s.ca())
    got = ep2.search("volumes", name="pvol").hits[0]
    assert got.id == vol.id and got.size == 2048 and got.scsi_sn == vol.scsi_sn
    assert ep2.search("mappings", volume=got).hits[0].lun == m.lun
    assert ep2.search("host_iqns", host=host).total == 1
    assert ep2.search("snapshots", name="pvg:ps").hits[0].id == snap.id
    assert ep2.search("volume_groups", name="pvg").hits[0].volumes_count == 1
    path2 = s2.admin_get("/arrays/a/backing", params={"host": "phost", "volume": "pvol"})["path"]
    with open(path2, "rb") as fh:
        assert fh.read(15) == b"persisted-bytes"
    vs = ep2.search("volsnaps", snapshot=snap).hits[0]
    assert vs.short_name == "pvol"
    # ids are never reused
    new = ep2.new("volumes", name="after", size=1024, volume_group=got.volume_group).save()
    assert new.id > gone.id
    assert ep2.search("events", name="VOLUME_DELETED", message__contains="gone").total == 1


def test_sigkill_during_writes_leaves_a_consistent_store(tmp_path, new_sim):
    data = tmp_path / "crash"
    s = new_sim(data)
    ep = s.endpoint()
    vg = ep.new("volume_groups", name="cvg", quota=0).save()
    acknowledged = []
    stop = threading.Event()

    def writer(tag):
        sess = s.session()
        i = 0
        while not stop.is_set():
            name = "c%s-%d" % (tag, i)
            body = {"name": name, "size": 1024, "volume_group": {"ref": "/volume_groups/%d" % vg.id}}
            try:
                r = sess.post(s.api() + "/volumes", json=body, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 201:
                acknowledged.append(name)
            i += 1
    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    while len(acknowledged) < 200:
        threads[0].join(0.02)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)

    db = os.path.join(str(data), "a", "k2sim.sqlite3")
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    s2 = new_sim(data)
    ep2 = make_endpoint(s2.addr(), s2.ca())
    names = [v.name for v in ep2.search("volumes", volume_group=vg, __limit=10000).hits]
    assert len(names) == len(set(names))
    # every acknowledged create survived; at most the requests in flight (one per writer) are extra
    assert set(acknowledged) <= set(names)
    assert len(names) - len(acknowledged) <= len(threads)
    # every volume has its backing file of the right size, and no stray files are left
    blob = os.path.join(str(data), "a", "data")
    files = set(os.listdir(blob))
    vols = ep2.search("volumes", volume_group=vg, __limit=10000).hits
    assert files == set("vol-%d.img" % v.id for v in vols)
    assert all(os.path.getsize(os.path.join(blob, "vol-%d.img" % v.id)) == 1024 * 1024 for v in vols)
    assert ep2.get("volume_groups", vg.id).volumes_count == len(vols)
    # and the array keeps working
    ep2.new("volumes", name="after-crash", size=1024, volume_group=vg).save()


def test_a_data_directory_serves_one_process_only(tmp_path, new_sim):
    data = tmp_path / "shared-dir"
    first = new_sim(data)
    res = run_cli("serve", "--data-dir", str(data), "--array", "a@127.0.0.1:0")
    assert res.returncode == 1 and "in use by another k2sim process (pid %d)" % first.proc.pid in res.stderr
    assert first.endpoint().search("volumes", name="CTRL").total == 1
