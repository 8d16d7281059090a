"""Benchmark of k2sim: name-search and create throughput with many volumes present, and latency under 16 clients.

Usage:
    python tests/bench/k2sim_bench.py            # 10,000 volumes (about a minute)
    python tests/bench/k2sim_bench.py --small    # 500 volumes, a few seconds (CI smoke run)

It starts its own k2sim (python -m k2sim) in a temporary directory, bulk-loads
the volumes through /__bulk, then measures with raw HTTP keep-alive sessions
(requests), and prints one line per figure plus a JSON summary on the last line.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import requests

BATCH = 500


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, int(round(p / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def session(ca):
    s = requests.Session()
    s.trust_env = False          # REQUESTS_CA_BUNDLE would override verify
    s.verify = ca
    s.auth = ("admin", "admin")
    s.headers["content-type"] = "application/json"
    return s


def check(resp, what):
    if resp.status_code >= 300:
        raise SystemExit("%s failed: HTTP %d %s" % (what, resp.status_code, resp.text[:300]))
    return resp


def load(api, ca, n_volumes, per_vg):
    s = session(ca)
    n_vgs = (n_volumes + per_vg - 1) // per_vg
    vg_ids = []
    for start in range(0, n_vgs, BATCH):
        body = [{"name": "bvg-%05d" % i, "quota": 0} for i in range(start, min(n_vgs, start + BATCH))]
        vg_ids += [h["id"] for h in check(s.post(api + "/volume_groups/__bulk", json=body), "bulk VG create").json()["hits"]]
    for start in range(0, n_volumes, BATCH):
        body = [{"name": "bvol-%06d" % i, "size": 1048576, "volume_group": {"ref": "/volume_groups/%d" % vg_ids[i // per_vg]}}
                for i in range(start, min(n_volumes, start + BATCH))]
        check(s.post(api + "/volumes/__bulk", json=body), "bulk volume create")
    return vg_ids


def sequential(fn, seconds):
    count, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        fn(count)
        count += 1
    return count / (time.time() - t0)


def concurrent(api, ca, clients, seconds, n_volumes, vg_ids):
    latencies, errors = [], []
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker(idx):
        s = session(ca)
        rnd = random.Random(idx)
        mine, n = [], 0
        while time.time() < stop:
            t0 = time.time()
            if n % 5 == 4:        # one write in five: a create
                r = s.post(api + "/volumes", json={"name": "cc-%d-%d" % (idx, n), "size": 1024,
                                                   "volume_group": {"ref": "/volume_groups/%d" % rnd.choice(vg_ids)}})
            else:
                r = s.get(api + "/volumes", params={"name": "bvol-%06d" % rnd.randrange(n_volumes)})
            dt = time.time() - t0
            mine.append(dt)
            if r.status_code >= 300:
                errors.append(r.status_code)
            n += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.time() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="500 volumes and short runs (CI smoke run)")
    parser.add_argument("--volumes", type=int, help="volumes to load (default 10000, or 500 with --small)")
    parser.add_argument("--seconds", type=float, help="length of each measurement (default 5, or 1 with --small)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for the latency run (default 16)")
    args = parser.parse_args(argv)
    n_volumes = args.volumes or (500 if args.small else 10000)
    seconds = args.seconds or (1.0 if args.small else 5.0)

    tmp = tempfile.mkdtemp(prefix="k2sim-bench-")
    proc = subprocess.Popen([sys.executable, "-m", "k2sim", "serve", "--data-dir", os.path.join(tmp, "data"),
                             "--array", "bench@127.0.0.1:0"], stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("k2sim did not start")
        info = json.loads(line)["arrays"]["bench"]
        api, ca = info["url"] + "/api/v2", info["ca_file"]

        t0 = time.time()
        vg_ids = load(api, ca, n_volumes, per_vg=10)
        load_s = time.time() - t0
        print("bulk load: %d volumes in %d volume groups in %.1f s (%.0f volumes/s)"
              % (n_volumes, len(vg_ids), load_s, n_volumes / load_s))

        s = session(ca)
        rnd = random.Random(1)

        def search(dummy):
            r = s.get(api + "/volumes", params={"name": "bvol-%06d" % rnd.randrange(n_volumes)})
            if r.status_code != 200 or r.json()["total"] != 1:
                raise SystemExit("name search failed: %s" % r.text[:200])
        search_rps = sequential(search, seconds)
        print("name search (GET /volumes?name=..., %d volumes present, 1 client): %.0f requests/s" % (n_volumes, search_rps))

        def create(i):
            check(s.post(api + "/volumes", json={"name": "new-%d" % i, "size": 1024,
                                                 "volume_group": {"ref": "/volume_groups/%d" % vg_ids[i % len(vg_ids)]}}),
                  "create")
        create_rps = sequential(create, seconds)
        print("create (POST /volumes, %d+ volumes present, 1 client): %.0f requests/s" % (n_volumes, create_rps))

        latencies, errors, wall = concurrent(api, ca, args.clients, seconds, n_volumes, vg_ids)
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        print("%d concurrent clients (4 name searches : 1 create): %d requests in %.1f s = %.0f requests/s, "
              "p50 %.1f ms, p99 %.1f ms, %d errors" % (args.clients, len(latencies), wall, len(latencies) / wall, p50, p99, len(errors)))
        summary = {"volumes": n_volumes, "load_seconds": round(load_s, 2), "search_rps": round(search_rps, 1),
                   "create_rps": round(create_rps, 1), "clients": args.clients,
                   "concurrent_rps": round(len(latencies) / wall, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                   "errors": len(errors)}
        print(json.dumps(summary))
        return 1 if errors else 0
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
