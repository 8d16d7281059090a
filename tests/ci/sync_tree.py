"""Mirror the working tree into the build copy that ansible-test needs.

ansible-test only works from a directory named ``ansible_collections/<namespace>/<name>``
(a symlink does not do: it resolves the real path), so ``./dev`` keeps a copy of the tree at
``.build/ansible_collections/kaminario/k2``. This script brings that copy up to date.

Usage: git ls-files -z --cached --others --exclude-standard | python sync_tree.py SRC DEST

- Files listed on stdin (NUL separated, relative to SRC) are copied when size or mtime
  differ; listed paths that no longer exist in SRC (deleted but still in the index) are
  skipped.
- Every other file in DEST is removed, except under the KEEP prefixes: ansible-test's output
  (its delegation virtualenv lives there, and rebuilding it costs a minute) and the copy's
  own ``.git`` (see ``dev``).
"""

from __future__ import annotations

import os
import shutil
import sys

KEEP_PREFIXES = ('tests/output/', '.git/')


def wanted_files(src: str, listing: bytes) -> set[str]:
    names = {name.decode('utf-8', 'surrogateescape') for name in listing.split(b'\0') if name}
    return {name for name in names if os.path.lexists(os.path.join(src, name))}


def needs_copy(src_path: str, dest_path: str) -> bool:
    if not os.path.lexists(dest_path):
        return True
    src_stat = os.lstat(src_path)
    dest_stat = os.lstat(dest_path)
    if os.path.islink(src_path) or os.path.islink(dest_path):
        return not (os.path.islink(src_path) and os.path.islink(dest_path) and os.readlink(src_path) == os.readlink(dest_path))
    return (src_stat.st_size, int(src_stat.st_mtime), src_stat.st_mode) != (dest_stat.st_size, int(dest_stat.st_mtime), dest_stat.st_mode)


def copy_file(src_path: str, dest_path: str) -> None:
    os.makedirs(os.path.dirname(dest_path), exist_ok=True)
    if os.path.lexists(dest_path) or os.path.islink(dest_path):
        if os.path.isdir(dest_path) and not os.path.islink(dest_path):
            shutil.rmtree(dest_path)
        else:
            os.unlink(dest_path)
    if os.path.islink(src_path):
        os.symlink(os.readlink(src_path), dest_path)
    else:
        shutil.copy2(src_path, dest_path)


def remove_stale(dest: str, wanted: set[str]) -> int:
    removed = 0
    for dirpath, dirnames, filenames in os.walk(dest, topdown=True):
        rel_dir = os.path.relpath(dirpath, dest)
        rel_dir = '' if rel_dir == '.' else rel_dir + '/'
        # git lists a symlink to a directory as a file, and os.walk lists it as a directory
        linked_dirs = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in linked_dirs and not (rel_dir + d + '/').startswith(KEEP_PREFIXES)]
        for name in filenames + linked_dirs:
            rel = rel_dir + name
            if rel not in wanted:
                os.unlink(os.path.join(dirpath, name))
                removed += 1
    # drop directories left empty, deepest first (never the KEEP ones)
    for dirpath, _dirnames, _filenames in os.walk(dest, topdown=False):
        rel_dir = os.path.relpath(dirpath, dest) + '/'
        if dirpath != dest and not rel_dir.startswith(KEEP_PREFIXES) and not os.listdir(dirpath):
            os.rmdir(dirpath)
    return removed


def main() -> int:
    src, dest = sys.argv[1], sys.argv[2]
    wanted = wanted_files(src, sys.stdin.buffer.read())
    if not wanted:
        print('sync_tree: no files listed; refusing to empty %s' % dest, file=sys.stderr)
        return 1
    os.makedirs(dest, exist_ok=True)
    removed = remove_stale(dest, wanted)
    copied = 0
    for rel in sorted(wanted):
        src_path, dest_path = os.path.join(src, rel), os.path.join(dest, rel)
        if needs_copy(src_path, dest_path):
            copy_file(src_path, dest_path)
            copied += 1
    print('sync_tree: %d files, %d copied, %d removed' % (len(wanted), copied, removed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
