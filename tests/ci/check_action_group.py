"""Check that meta/runtime.yml's action group `k2` lists exactly the collection's modules.

Usage: python check_action_group.py COLLECTION_ROOT

`module_defaults: group/kaminario.k2.k2` only reaches the modules in that group, so a module
missing from it silently ignores the connection options a play set there. Neither
ansible-test nor ansible-lint checks this. The list must also be sorted, so additions are
easy to review.
"""

from __future__ import annotations

import os
import sys

import yaml


def main() -> int:
    root = sys.argv[1]
    with open(os.path.join(root, 'meta', 'runtime.yml'), encoding='utf-8') as f:
        runtime = yaml.safe_load(f)
    group = (runtime.get('action_groups') or {}).get('k2')
    if not isinstance(group, list):
        print('ERROR: meta/runtime.yml: action_groups.k2 must be a list of module names')
        return 1
    listed = [entry for entry in group if isinstance(entry, str)]
    modules_dir = os.path.join(root, 'plugins', 'modules')
    modules = sorted(name[:-3] for name in os.listdir(modules_dir)
                     if name.endswith('.py') and name != '__init__.py') if os.path.isdir(modules_dir) else []
    errors = []
    errors += ['module %s is missing from action_groups.k2' % m for m in modules if m not in listed]
    errors += ['action_groups.k2 lists %s, which is not a module in plugins/modules' % m for m in listed if m not in modules]
    if listed != sorted(listed):
        errors.append('action_groups.k2 is not in alphabetical order: %s' % ', '.join(listed))
    for error in errors:
        print('ERROR: meta/runtime.yml: %s' % error)
    if not errors:
        print('action_groups.k2 lists all %d module(s)%s' % (len(modules), ': ' + ', '.join(modules) if modules else ' (there are none yet)'))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
