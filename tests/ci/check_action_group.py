"""Check that meta/runtime.yml's action group `k2` lists exactly the modules that take the
shared connection options.

Usage: python check_action_group.py COLLECTION_ROOT

`module_defaults: group/kaminario.k2.k2` sets its options on every module of the group, so:
- a module that takes the connection options (its documentation extends the fragment
  kaminario.k2.k2) but is missing from the group silently ignores what a play set there;
- a module in the group that does not take them (k2_volume_copy works on the host, from
  connection_info) fails with "Unsupported parameters ... k2_host" as soon as a play sets
  group defaults.
Neither ansible-test nor ansible-lint checks this. The list must also be sorted.
"""

from __future__ import annotations

import ast
import os
import sys

import yaml

CONNECTION_FRAGMENT = 'kaminario.k2.k2'


def module_fragments(path: str) -> list[str]:
    """The doc fragments a module's DOCUMENTATION extends (read without importing the module)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == 'DOCUMENTATION' for t in node.targets):
            doc = yaml.safe_load(ast.literal_eval(node.value)) or {}
            fragments = doc.get('extends_documentation_fragment') or []
            return [fragments] if isinstance(fragments, str) else list(fragments)
    raise ValueError('no DOCUMENTATION string')


def main() -> int:
    root = sys.argv[1]
    with open(os.path.join(root, 'meta', 'runtime.yml'), encoding='utf-8') as f:
        runtime = yaml.safe_load(f)
    group = (runtime.get('action_groups') or {}).get('k2')
    if not isinstance(group, list) or not all(isinstance(entry, str) for entry in group):
        print('ERROR: meta/runtime.yml: action_groups.k2 must be a list of module names')
        return 1
    modules_dir = os.path.join(root, 'plugins', 'modules')
    modules = sorted(name[:-3] for name in os.listdir(modules_dir)
                     if name.endswith('.py') and name != '__init__.py') if os.path.isdir(modules_dir) else []
    errors = []
    connected = []
    for module in modules:
        try:
            fragments = module_fragments(os.path.join(modules_dir, module + '.py'))
        except (SyntaxError, ValueError, yaml.YAMLError) as exc:
            errors.append('cannot read the DOCUMENTATION of %s: %s' % (module, exc))
            continue
        if CONNECTION_FRAGMENT in fragments:
            connected.append(module)
    for module in connected:
        if module not in group:
            errors.append('module %s takes the connection options (fragment %s) but is missing from action_groups.k2'
                          % (module, CONNECTION_FRAGMENT))
    for entry in group:
        if entry not in modules:
            errors.append('action_groups.k2 lists %s, which is not a module in plugins/modules' % entry)
        elif entry not in connected:
            errors.append('action_groups.k2 lists %s, which does not take the connection options: '
                          'module_defaults for group/kaminario.k2.k2 would fail it with "Unsupported parameters"' % entry)
    if group != sorted(group):
        errors.append('action_groups.k2 is not in alphabetical order: %s' % ', '.join(group))
    for error in errors:
        print('ERROR: meta/runtime.yml: %s' % error)
    if not errors:
        others = [m for m in modules if m not in connected]
        print('action_groups.k2 lists the %d module(s) that take the connection options: %s%s'
              % (len(connected), ', '.join(connected) or '-',
                 '; not in the group, as they do not take them: %s' % ', '.join(others) if others else ''))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
