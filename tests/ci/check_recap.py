"""Check the PLAY RECAP of an ansible-playbook run.

Usage: python check_recap.py --no-change LOG

Fails unless LOG holds at least one recap line and every host in it reports changed=0,
failed=0 and unreachable=0. `./dev test` uses it on the second run of the provisioning
playbook: a run that changes something there is not idempotent.
"""

from __future__ import annotations

import re
import sys

RECAP_LINE = re.compile(r'^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$')


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in text.splitlines():
        if line.startswith('PLAY RECAP'):
            in_recap = True
            continue
        match = RECAP_LINE.match(line.strip()) if in_recap else None
        if match:
            hosts[match.group('host')] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', match.group('counts'))}
    return hosts


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] != '--no-change':
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2], encoding='utf-8') as f:
        hosts = parse_recap(f.read())
    if not hosts:
        print('ERROR: no PLAY RECAP found in %s' % sys.argv[2])
        return 1
    bad = {host: counts for host, counts in hosts.items()
           if counts.get('changed', 0) or counts.get('failed', 0) or counts.get('unreachable', 0)}
    for host, counts in sorted(bad.items()):
        print('ERROR: %s reported %s; a re-run must change nothing' % (host, counts))
    if not bad:
        print('check_recap: re-run changed nothing (%s)' % ', '.join('%s ok=%d' % (h, c.get('ok', 0)) for h, c in sorted(hosts.items())))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
