# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy throughput of the k2_volume_copy engine against dd and cp, side by side on the same data.

Usage::

    python tests/bench/copy_bench.py            # 2 GiB images, files and (as root) loop block devices
    python tests/bench/copy_bench.py --small    # 64 MiB images, one round (CI smoke run)
    python tests/bench/copy_bench.py --size 512MiB --rounds 5 --modes files --dir /var/tmp

Source images (made once per pattern, in a fresh directory under --dir):

* ``dense``: random data in every block;
* ``half-holes``: every other MiB is random data, the rest is a hole, which is what a
  half-written K2 volume looks like through the local transport (k2sim's sparse files);
* ``half-zeros``: the same data, with the other MiBs written as zeros (allocated), which is what a
  thin volume reads like through iSCSI or FC, where the host cannot see holes.

Modes:

* ``files``: source and destination are regular files (the local transport). Contenders:
  ``engine`` (``k2_copy.copy_device``, the module's defaults), ``dd`` (``dd bs=1M
  conv=sparse``, plus ``fsync`` so that every contender's time includes reaching the disk) and
  ``cp`` (``cp --sparse=always``, then an fsync of the destination);
* ``loop``: source and destination are loop block devices over those files (root only), which is
  what iSCSI and FC volumes are to the copy host: no hole information, direct I/O. Contenders:
  ``engine``; ``dd`` as above; ``dd-cinder``, the command Cinder's copy_volume runs on block
  devices (``dd bs=1M iflag=count_bytes,direct oflag=direct conv=sparse``, then an fsync: a loop device
  completes direct writes in its backing file's page cache, where an array would have them on stable storage); ``cp``.

Before every run the cached pages of the source and destination are dropped
(``posix_fadvise(DONTNEED)`` per file or device, so other processes' caches are left alone),
the destination is a fresh sparse file, and the order of the contenders rotates every round.
The table shows the median of the rounds, the throughput, the time as a ratio of dd's
(``vs dd``) and, for the half-zero patterns, as a ratio of the same tool's dense copy
(``vs own dense``: 0.5 means the zeros cost nothing). Goals (issue 7, item 4): dense engine/dd <= 1.0; half-zero engine/dd <= 1 - share
of zeros (0.5).
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
        os.fsync(fd)
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


def run_dd_cinder(engine, src, dst, size):
    # What cinder.volume.volume_utils.copy_volume runs when both devices accept O_DIRECT, with sparse=True.
    subprocess.run(['dd', 'if=' + src, 'of=' + dst, 'count=%d' % size, 'bs=1M', 'iflag=count_bytes,direct', 'oflag=direct',
                    'conv=sparse', 'status=none'], check=True)
    # A loop device completes direct writes in the backing file's page cache; flush like the others do.
    fsync_path(dst)


def run_cp(engine, src, dst, size):
    subprocess.run(['cp', '--sparse=always', src, dst], check=True)
    fsync_path(dst)


CONTENDERS = {
    'files': (('engine', run_engine), ('dd', run_dd), ('cp', run_cp)),
    'loop': (('engine', run_engine), ('dd', run_dd), ('dd-cinder', run_dd_cinder), ('cp', run_cp)),
}


class LoopDevice(object):
    """``losetup`` a file for the duration of a ``with`` block."""

    def __init__(self, path):
        self.path = path
        self.device = None

    def __enter__(self):
        self.device = subprocess.run(['losetup', '--find', '--show', self.path], check=True, capture_output=True, text=True).stdout.strip()
        return self.device

    def __exit__(self, *exc):
        subprocess.run(['losetup', '--detach', self.device], check=False)
        return False


def loop_available():
    return os.geteuid() == 0 and shutil.which('losetup') is not None and os.path.exists('/dev/loop-control')


def one_run(engine, mode, func, src, dst, size):
    """Time one copy from a cold cache onto a fresh sparse destination; return (seconds, sha256 of the copy)."""
    fresh_destination(dst, size)
    drop_cache(src)
    if mode == 'files':
        drop_cache(dst)
        started = time.perf_counter()
        func(engine, src, dst, size)
        elapsed = time.perf_counter() - started
    else:
        with LoopDevice(src) as src_dev, LoopDevice(dst) as dst_dev:
            drop_cache(src_dev)
            drop_cache(dst_dev)
            started = time.perf_counter()
            func(engine, src_dev, dst_dev, size)
            elapsed = time.perf_counter() - started
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--small', action='store_true', help='64 MiB images and one round (CI smoke run)')
    parser.add_argument('--size', default=None, help='image size, e.g. 2GiB (default 2GiB, or 64MiB with --small)')
    parser.add_argument('--rounds', type=int, default=None, help='runs per contender, pattern and mode (median shown; default 3, 1 with --small)')
    parser.add_argument('--dir', default=tempfile.gettempdir(), help='where the images go (needs about 3 x size free)')
    parser.add_argument('--patterns', default='dense,half-holes,half-zeros')
    parser.add_argument('--modes', default='files,loop', help='files, loop (loop block devices, root only; skipped otherwise)')
    args = parser.parse_args(argv)
    size = parse_size(args.size) if args.size else (64 * MIB if args.small else 2 * GIB)
    rounds = args.rounds or (1 if args.small else 3)
    patterns = args.patterns.split(',')
    modes = [m for m in args.modes.split(',') if m]
    if 'loop' in modes and not loop_available():
        print('copy_bench: loop mode skipped (needs root, losetup and /dev/loop-control)', file=sys.stderr)
        modes.remove('loop')
    engine = import_engine()
    free = shutil.disk_usage(args.dir).free
    if free < 3 * size:
        print('copy_bench: %s has %d MiB free, needs about %d MiB' % (args.dir, free // MIB, 3 * size // MIB), file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix='k2-copy-bench-', dir=args.dir)
    rows = []
    dense = {}
    try:
        for pattern in patterns:
            src = os.path.join(work, 'src-%s.img' % pattern)
            dst = os.path.join(work, 'dst.img')
            make_source(src, size, pattern)
            expected = engine.file_checksum(src)
            for mode in modes:
                contenders = CONTENDERS[mode]
                times = dict((name, []) for name, dummy in contenders)
                for round_no in range(rounds):
                    shift = round_no % len(contenders)
                    for name, func in contenders[shift:] + contenders[:shift]:
                        times[name].append(one_run(engine, mode, func, src, dst, size))
                        if round_no == 0 and engine.file_checksum(dst) != expected:
                            raise SystemExit('copy_bench: %s (%s) made a wrong copy of %s' % (name, mode, pattern))
                base = statistics.median(times['dd'])
                for name, dummy in contenders:
                    median = statistics.median(times[name])
                    dense[(mode, name)] = dense.get((mode, name), median if pattern == 'dense' else None)
                    own = median / dense[(mode, name)] if dense[(mode, name)] else None
                    rows.append((mode, pattern, name, median, size / MIB / median, median / base, own, min(times[name]), max(times[name])))
            os.unlink(src)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, size, rounds)
    return 0


def print_table(rows, size, rounds):
    print('copy_bench: %d MiB images, median of %d round(s), %s, Python %s, %d CPUs'
          % (size // MIB, rounds, platform.platform(), platform.python_version(), os.cpu_count()))
    print('| mode  | pattern    | tool      | time s (median) | min-max s     | MiB/s  | vs dd | vs own dense |')
    print('|-------|------------|-----------|-----------------|---------------|--------|-------|--------------|')
    for mode, pattern, name, median, rate, ratio, own, low, high in rows:
        print('| %-5s | %-10s | %-9s | %15.3f | %5.2f - %5.2f | %6.0f | %5.2f | %12s |'
              % (mode, pattern, name, median, low, high, rate, ratio, '%.2f' % own if own is not None else '-'))
    print('goals: dense engine/dd <= 1.00; half-holes and half-zeros engine/dd <= 0.50')
    print('"vs own dense": the time of a half-zero copy over the same tool\'s dense copy (0.50 = the zeros cost nothing)')


if __name__ == '__main__':
    sys.exit(main())
