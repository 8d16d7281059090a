# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy throughput of the k2_volume_copy engine against dd and cp, side by side on the same files.

Usage::

    python tests/bench/copy_bench.py            # 2 GiB images
    python tests/bench/copy_bench.py --small    # 64 MiB images (CI smoke run)
    python tests/bench/copy_bench.py --size 512MiB --rounds 3 --dir /var/tmp

Source images (made once per run, in a fresh directory under --dir):

* ``dense``: random data in every block;
* ``half-holes``: every other MiB is random data, the rest is a hole, which is what a
  half-written K2 volume looks like through the local transport (k2sim's sparse files);
* ``half-zeros``: the same data, with the other MiBs written as zeros (allocated), which is what a
  thin volume reads like through iSCSI or FC, where the host cannot see holes.

Contenders, each copying the whole source to a fresh sparse destination of the same size:

* ``engine``: ``k2_copy.copy_device`` (what the module runs), default options;
* ``dd``: ``dd if=SRC of=DST bs=1M conv=sparse,notrunc,fsync`` (Cinder's copy with the sparse flag; fsync
  added so that every contender's time includes getting the data to the disk);
* ``cp``: ``cp --sparse=always SRC DST`` followed by an fsync of the destination.

Before every run the source's and destination's cached pages are dropped
(``posix_fadvise(DONTNEED)``, per file, so other processes' caches are left alone)
and the order of the contenders rotates each round. The table shows the median time
of the rounds, the throughput, and each contender's time as a ratio of dd's. Goals
(issue 7, item 4): dense engine/dd <= 1.0; half-zero engine/dd <= 1 - share of zeros
(0.5), i.e. the zeros cost nothing.
"""

from __future__ import absolute_import, division, print_function

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MIB = 1024 * 1024
GIB = 1024 * MIB


def import_engine():
    """``k2_copy`` from this checkout, whether or not it sits in an ansible_collections tree."""
    try:
        from ansible_collections.kaminario.k2.plugins.module_utils import k2_copy  # pylint: disable=import-outside-toplevel
        return k2_copy
    except ImportError:
        import importlib.util  # pylint: disable=import-outside-toplevel
        spec = importlib.util.spec_from_file_location('k2_copy', os.path.join(ROOT, 'plugins', 'module_utils', 'k2_copy.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def parse_size(text):
    units = {'': 1, 'k': 1024, 'kib': 1024, 'm': MIB, 'mib': MIB, 'g': GIB, 'gib': GIB}
    number = text.rstrip('KMGkmgiBb')
    unit = text[len(number):].lower().rstrip('b') if text[len(number):].lower() not in ('kib', 'mib', 'gib') else text[len(number):].lower()
    return int(float(number) * units[unit])


def make_source(path, size, pattern):
    """Write a source image: dense, half holes or half written zeros (the data MiBs are the same random bytes)."""
    chunk = os.urandom(MIB)
    zeros = bytes(MIB)
    with open(path, 'wb') as handle:
        handle.truncate(size)
        for index, offset in enumerate(range(0, size, MIB)):
            count = min(MIB, size - offset)
            # Vary the data per MiB cheaply, so that no two MiBs are identical.
            data = (index.to_bytes(8, 'little') + chunk[8:])[:count]
            if pattern == 'dense' or index % 2 == 0:
                handle.seek(offset)
                handle.write(data)
            elif pattern == 'half-zeros':
                handle.seek(offset)
                handle.write(zeros[:count])
        handle.flush()
        os.fsync(handle.fileno())


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd) if os.access(path, os.W_OK) else None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fresh_destination(path, size):
    if os.path.exists(path):
        os.unlink(path)
    with open(path, 'wb') as handle:
        handle.truncate(size)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_engine(engine, src, dst, size):
    engine.copy_device(src, dst, size=size)


def run_dd(engine, src, dst, size):
    subprocess.run(['dd', 'if=' + src, 'of=' + dst, 'bs=1M', 'conv=sparse,notrunc,fsync', 'status=none'], check=True)


def run_cp(engine, src, dst, size):
    subprocess.run(['cp', '--sparse=always', src, dst], check=True)
    fsync_path(dst)


CONTENDERS = (('engine', run_engine), ('dd', run_dd), ('cp', run_cp))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--small', action='store_true', help='64 MiB images and one round (CI smoke run)')
    parser.add_argument('--size', default=None, help='image size, e.g. 2GiB (default 2GiB, or 64MiB with --small)')
    parser.add_argument('--rounds', type=int, default=None, help='runs per contender and pattern (median shown; default 3, 1 with --small)')
    parser.add_argument('--dir', default=tempfile.gettempdir(), help='where the images go (needs about 4 x size free)')
    parser.add_argument('--patterns', default='dense,half-holes,half-zeros')
    args = parser.parse_args(argv)
    size = parse_size(args.size) if args.size else (64 * MIB if args.small else 2 * GIB)
    rounds = args.rounds or (1 if args.small else 3)
    patterns = args.patterns.split(',')
    engine = import_engine()
    free = shutil.disk_usage(args.dir).free
    if free < 4 * size:
        print('copy_bench: %s has %d MiB free, needs about %d MiB' % (args.dir, free // MIB, 4 * size // MIB), file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix='k2-copy-bench-', dir=args.dir)
    rows = []
    try:
        for pattern in patterns:
            src = os.path.join(work, 'src-%s.img' % pattern)
            dst = os.path.join(work, 'dst.img')
            make_source(src, size, pattern)
            times = dict((name, []) for name, dummy in CONTENDERS)
            expected = engine.file_checksum(src)
            for round_no in range(rounds):
                order = CONTENDERS[round_no % len(CONTENDERS):] + CONTENDERS[:round_no % len(CONTENDERS)]
                for name, func in order:
                    fresh_destination(dst, size)
                    drop_cache(src)
                    drop_cache(dst)
                    started = time.perf_counter()
                    func(engine, src, dst, size)
                    times[name].append(time.perf_counter() - started)
                    if round_no == 0 and engine.file_checksum(dst) != expected:
                        raise SystemExit('copy_bench: %s produced a wrong copy of %s' % (name, pattern))
            allocated = os.stat(dst).st_blocks * 512
            base = statistics.median(times['dd'])
            for name, dummy in CONTENDERS:
                median = statistics.median(times[name])
                rows.append((pattern, name, median, size / MIB / median, median / base, allocated))
            os.unlink(src)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, size, rounds)
    return 0


def print_table(rows, size, rounds):
    print('copy_bench: %d MiB images, median of %d round(s), %s, Python %s, %s, %d CPUs'
          % (size // MIB, rounds, platform.platform(), platform.python_version(), os.uname().machine, os.cpu_count()))
    print('%-11s %-7s %9s %10s %9s' % ('pattern', 'tool', 'time s', 'MiB/s', 'vs dd'))
    for pattern, name, median, rate, ratio, dummy in rows:
        print('%-11s %-7s %9.3f %10.1f %9.2f' % (pattern, name, median, rate, ratio))
    print('goals: dense engine/dd <= 1.00; half-holes and half-zeros engine/dd <= 0.50 (zeros cost nothing)')


if __name__ == '__main__':
    sys.exit(main())
