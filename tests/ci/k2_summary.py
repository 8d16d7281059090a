"""Print what a K2 array (or k2sim) holds: volume groups, volumes, hosts, mappings, snapshots, capacity.

Usage: python k2_summary.py CONNECTION_JSON

CONNECTION_JSON holds k2_host, k2_username, k2_password and ca_path, as `./dev demo` writes
it for the provisioning playbook. The summary is read from the array itself over the REST
API (TLS verified against ca_path), not from the playbook's output, so it shows what the
playbook really did.
"""

from __future__ import annotations

import json
import sys

import requests

GIB_IN_KIB = 1024 * 1024
PAGE = 100


def fetch_all(session: requests.Session, base: str, resource: str, ca_path: str) -> list[dict]:
    """Every object of a resource, with sorted paging (a K2 page holds 100 by default)."""
    hits: list[dict] = []
    while True:
        # verify per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the
        # environment override Session.verify, but not a per-request value
        response = session.get('%s/%s' % (base, resource), params={'__sort': 'id', '__limit': PAGE, '__offset': len(hits)},
                               verify=ca_path, timeout=30)
        response.raise_for_status()
        body = response.json()
        hits.extend(body['hits'])
        if not body['hits'] or len(hits) >= body['total']:
            return hits


def ref_id(value: dict | None) -> int | None:
    return int(value['ref'].rsplit('/', 1)[1]) if value else None


def size_text(kib: int) -> str:
    return '%g GiB' % (kib / GIB_IN_KIB) if kib % (GIB_IN_KIB // 1024) == 0 else '%d KiB' % kib


def main() -> int:
    with open(sys.argv[1], encoding='utf-8') as f:
        connection = json.load(f)
    base = 'https://%s/api/v2' % connection['k2_host']
    session = requests.Session()
    session.auth = (connection['k2_username'], connection['k2_password'])
    ca_path = connection['ca_path']
    session.headers['Content-Type'] = 'application/json'

    vgs = {vg['id']: vg for vg in fetch_all(session, base, 'volume_groups', ca_path)}
    volumes = {v['id']: v for v in fetch_all(session, base, 'volumes', ca_path) if v['name'] != 'CTRL'}
    hosts = {h['id']: h for h in fetch_all(session, base, 'hosts', ca_path)}
    iqns = fetch_all(session, base, 'host_iqns', ca_path)
    fc_ports = fetch_all(session, base, 'host_fc_ports', ca_path)
    snapshots = {s['id']: s for s in fetch_all(session, base, 'snapshots', ca_path)}
    mappings = fetch_all(session, base, 'mappings', ca_path)
    capacity = fetch_all(session, base, 'system/capacity', ca_path)

    print('The array at %s now holds:' % base)
    print('  volume groups (%d):' % len(vgs))
    for vg in vgs.values():
        members = [v['name'] for v in volumes.values() if ref_id(v.get('volume_group')) == vg['id']]
        print('    %-20s dedup=%-5s volumes: %s' % (vg['name'], vg.get('is_dedup'), ', '.join(members) or '-'))
    print('  volumes (%d, without the system volume CTRL):' % len(volumes))
    for volume in volumes.values():
        vg = vgs.get(ref_id(volume.get('volume_group')), {})
        print('    %-20s %-10s in %s' % (volume['name'], size_text(int(volume['size'])), vg.get('name', '?')))
    print('  hosts (%d):' % len(hosts))
    for host in hosts.values():
        initiators = [i['iqn'] for i in iqns if ref_id(i.get('host')) == host['id']]
        initiators += [p['pwwn'] for p in fc_ports if ref_id(p.get('host')) == host['id']]
        print('    %-24s %-8s %s' % (host['name'], host.get('type', ''), ', '.join(initiators) or '-'))
    print('  mappings (%d):' % len(mappings))
    for mapping in mappings:
        target_ref = mapping['volume']['ref']
        kind, target_id = target_ref.rsplit('/', 2)[-2:]
        target = (volumes if kind == 'volumes' else snapshots).get(int(target_id), {})
        host = hosts.get(ref_id(mapping.get('host')), {})
        print('    %-20s -> %-16s LUN %s' % (target.get('name', target_ref), host.get('name', '?'), mapping.get('lun')))
    print('  snapshots (%d):' % len(snapshots))
    for snap in snapshots.values():
        kind = 'view' if snap.get('is_exposable') else 'snapshot'
        print('    %-28s %s' % (snap.get('name') or snap.get('short_name'), kind))
    if capacity:
        cap = capacity[0]
        print('  capacity: %s provisioned for volumes, %s free of %s'
              % (size_text(int(cap.get('provisioned_volumes', 0))), size_text(int(cap['free'])), size_text(int(cap['total']))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
