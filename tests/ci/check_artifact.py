"""Prove that the built collection artifact is complete, clean and usable once installed.

Usage: python check_artifact.py TARBALL INSTALL_PATH SOURCE_COPY

- TARBALL (from `ansible-galaxy collection build`) must contain the collection's metadata,
  licences, dependency lists, changelog configuration and every plugin file of SOURCE_COPY,
  and nothing generated or dev-only (build_ignore in galaxy.yml is what keeps those out).
- INSTALL_PATH (where `ansible-galaxy collection install TARBALL -p INSTALL_PATH` put it) must
  be listed by `ansible-galaxy collection list` with the version of galaxy.yml; every
  module_utils file must import from it, and `ansible-doc` must render every module in it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tarfile

import yaml

REQUIRED = [
    'MANIFEST.json', 'FILES.json', 'README.md', 'LICENSE', 'LICENSES/GPL-3.0-or-later.txt',
    'LICENSES/BSD-2-Clause.txt', 'meta/runtime.yml', 'meta/execution-environment.yml',
    'requirements.txt', 'bindep.txt', 'changelogs/config.yaml',
]
# Generated or development-only paths that must never reach users.
FORBIDDEN = [
    '.venv', '.venv/*', '.build', '.build/*', '.ci', '.ci/*', 'dev', '.git', '.git/*', '.gitignore',
    'tests/output', 'tests/output/*', 'tests/ci', 'tests/ci/*', 'tests/requirements-dev.txt',
    'tests/integration/inventory', '.ansible', '.ansible/*', 'collections', 'collections/*',
    'changelogs/.plugin-cache.yaml', '*.tar.gz', '*__pycache__*', '*.pyc', '*.egg-info*',
    '*.pytest_cache*', '*.hypothesis*', 'tests/k2sim/build*', 'tests/k2sim/dist*',
]


def check_tarball(tarball: str, source: str, version: str) -> list[str]:
    errors = []
    with tarfile.open(tarball) as tar:
        members = {m.name[2:] if m.name.startswith('./') else m.name for m in tar.getmembers()}
        manifest = json.load(tar.extractfile('MANIFEST.json'))
    for path in REQUIRED:
        if path not in members:
            errors.append('missing from the tarball: %s' % path)
    for dirpath, _dirnames, filenames in os.walk(os.path.join(source, 'plugins')):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), source)
            if '__pycache__' not in rel and not rel.endswith('.pyc') and rel not in members:
                errors.append('plugin file missing from the tarball: %s' % rel)
    for member in sorted(members):
        if any(fnmatch.fnmatch(member, pattern) for pattern in FORBIDDEN):
            errors.append('generated or dev-only path in the tarball: %s' % member)
    info = manifest['collection_info']
    if (info['namespace'], info['name'], info['version']) != ('kaminario', 'k2', version):
        errors.append('MANIFEST.json names %(namespace)s.%(name)s %(version)s' % info)
    print('tarball: %d entries, %s' % (len(members), 'ok' if not errors else '%d problem(s)' % len(errors)))
    return errors


def check_installed(install_path: str, version: str) -> list[str]:
    errors = []
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=install_path)
    listing = subprocess.run(['ansible-galaxy', 'collection', 'list', 'kaminario.k2', '--format', 'json'],
                             env=env, capture_output=True, text=True, check=False)
    found = {}
    if listing.returncode == 0:
        for collections in json.loads(listing.stdout).values():
            found.update(collections)
    if found.get('kaminario.k2', {}).get('version') != version:
        errors.append('ansible-galaxy collection list does not show kaminario.k2 %s under %s: %s %s'
                      % (version, install_path, listing.stdout.strip(), listing.stderr.strip()))
    else:
        print('installed: kaminario.k2 %s in %s' % (version, install_path))

    coll = os.path.join(install_path, 'ansible_collections', 'kaminario', 'k2')
    utils_dir = os.path.join(coll, 'plugins', 'module_utils')
    utils = sorted(n[:-3] for n in os.listdir(utils_dir) if n.endswith('.py') and n != '__init__.py') if os.path.isdir(utils_dir) else []
    if utils:
        code = ';'.join('import ansible_collections.kaminario.k2.plugins.module_utils.%s' % u for u in utils)
        result = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=install_path),
                                capture_output=True, text=True, check=False)
        if result.returncode:
            errors.append('module_utils do not import from the installed copy:\n%s' % result.stderr)
        else:
            print('module_utils import from the installed copy: %s' % ', '.join(utils))

    modules_dir = os.path.join(coll, 'plugins', 'modules')
    modules = sorted(n[:-3] for n in os.listdir(modules_dir) if n.endswith('.py') and n != '__init__.py') if os.path.isdir(modules_dir) else []
    for module in modules:
        result = subprocess.run(['ansible-doc', '-t', 'module', 'kaminario.k2.%s' % module], env=env,
                                capture_output=True, text=True, check=False)
        if result.returncode or 'OPTIONS' not in result.stdout:
            errors.append('ansible-doc kaminario.k2.%s failed from the installed copy:\n%s' % (module, result.stderr))
    print('ansible-doc renders %d module(s) from the installed copy%s'
          % (len(modules), ': ' + ', '.join(modules) if modules else ' (the collection has no modules yet)'))
    return errors


def main() -> int:
    tarball, install_path, source = sys.argv[1:4]
    with open(os.path.join(source, 'galaxy.yml'), encoding='utf-8') as f:
        version = yaml.safe_load(f)['version']
    errors = check_tarball(tarball, source, version) + check_installed(install_path, version)
    for error in errors:
        print('ERROR: %s' % error)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
