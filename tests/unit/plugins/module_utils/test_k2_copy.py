# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy engine on real files (sparse, dense, odd sizes, failures) and the os-brick attacher with a fake connector.

Nothing here needs os-brick: the engine works on paths and the attacher is
handed a connector factory.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import hashlib
import json
import os
import threading

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.kaminario.k2.plugins.module_utils import k2_copy
from ansible_collections.kaminario.k2.plugins.module_utils.k2_copy import (
    ALIGN, KIB, MIB, Attacher, K2CopyError, Progress, copy_device, file_checksum, validate_connection_info,
)


# --------------------------------------------------------------------------- helpers

def make_file(path, size, chunks=(), fill=None):
    """A sparse file of ``size`` bytes with ``chunks`` = [(offset, bytes)] written; ``fill`` byte fills it densely first."""
    with open(str(path), 'wb') as handle:
        if fill is not None:
            handle.write(bytes([fill]) * size)
        else:
            handle.truncate(size)
        for offset, data in chunks:
            handle.seek(offset)
            handle.write(data)
    return str(path)


def read(path, start=0, length=None):
    with open(str(path), 'rb') as handle:
        handle.seek(start)
        return handle.read() if length is None else handle.read(length)


def pattern(length, seed):
    """Deterministic non-zero bytes (no zero byte, so no block of it reads as zeros)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(b'%d-%d' % (seed, counter)).digest()
        counter += 1
    return bytes(b or 1 for b in out[:length])


def allocated(path):
    return os.stat(str(path)).st_blocks * 512


@pytest.fixture
def files(tmp_path):
    return tmp_path / 'src.img', tmp_path / 'dst.img'


def check_accounting(result, size):
    assert result['bytes_copied'] + result['bytes_skipped_zero'] + result['bytes_zeroed'] == size
    assert result['size'] == size


# --------------------------------------------------------------------------- copies that must come out identical

def test_sparse_source_with_holes_and_zero_blocks(files):
    src, dst = files
    size = 8 * MIB
    chunks = [(0, pattern(5000, 1)),                 # data at the very start, not aligned at its end
              (MIB + 4096, pattern(3 * 4096, 2)),     # a small extent inside the second MiB
              (3 * MIB, bytes(MIB)),                  # a written (allocated) MiB of zeros: must be skipped, not copied
              (5 * MIB - 10, pattern(20, 3)),         # straddles a MiB boundary
              (size - 1, b'\x7f')]                    # the last byte
    make_file(src, size, chunks)
    make_file(dst, size)
    result = copy_device(str(src), str(dst))
    assert read(dst) == read(src)
    check_accounting(result, size)
    assert result['bytes_zeroed'] == 0
    # The zero MiB and the holes are skipped; the data blocks (whole 1 MiB blocks where they hold data) are written.
    assert result['bytes_skipped_zero'] >= 4 * MIB
    assert result['bytes_copied'] < 4 * MIB
    # The destination stays sparse: the written zero MiB of the source was not written.
    assert allocated(dst) <= result['bytes_copied'] + 64 * KIB


def test_dense_random_source(files):
    src, dst = files
    size = 3 * MIB + 12 * KIB
    data = pattern(size, 7)
    make_file(src, size, [(0, data)])
    make_file(dst, size)
    result = copy_device(str(src), str(dst), block_size=256 * KIB)
    assert read(dst) == data
    assert result['bytes_copied'] == size
    assert result['bytes_skipped_zero'] == 0
    assert result['throughput_mib_s'] > 0 and result['duration_s'] > 0


@pytest.mark.parametrize('size', [1, 511, 4095, 4097, MIB - 1, MIB + 1, 3 * MIB + 777])
@pytest.mark.parametrize('block_size', [4 * KIB, 64 * KIB, MIB, 4 * MIB])
def test_odd_sizes_and_block_sizes(tmp_path, size, block_size):
    src, dst = tmp_path / 's', tmp_path / 'd'
    data = pattern(size, size)
    # Data at the start, a hole in the middle, data again at the unaligned end.
    chunks = [(0, data[:min(size, 6000)])]
    if size > 2 * MIB:
        chunks.append((size - 3000, data[-3000:]))
    make_file(src, size, chunks)
    make_file(dst, size)
    result = copy_device(str(src), str(dst), block_size=block_size, verify=True)
    assert read(dst) == read(src)
    check_accounting(result, size)
    assert result['checksums']['source'] == result['checksums']['destination'] == hashlib.sha256(read(src)).hexdigest()


@pytest.mark.parametrize('direct_io', ['always', 'never', 'auto'])
def test_direct_io_modes_on_files(files, direct_io):
    src, dst = files
    size = 2 * MIB + 100  # the unaligned tail goes through the buffered descriptor even with direct I/O
    make_file(src, size, [(0, pattern(size, 11))])
    make_file(dst, size)
    result = copy_device(str(src), str(dst), direct_io=direct_io, verify=True)
    assert read(dst) == read(src)
    # Files use direct I/O only when told to (auto means block devices only).
    assert result['direct_io'] == {'source': direct_io == 'always', 'destination': direct_io == 'always'}


def test_destination_larger_than_source_keeps_its_tail(files):
    src, dst = files
    make_file(src, 2 * MIB, [(100, pattern(5000, 4))])
    make_file(dst, 3 * MIB, [(2 * MIB, b'\xaa' * MIB)])
    result = copy_device(str(src), str(dst))
    assert read(dst, 0, 2 * MIB) == read(src)
    assert read(dst, 2 * MIB) == b'\xaa' * MIB
    assert result['destination_size'] == 3 * MIB and result['source_size'] == 2 * MIB


def test_size_copies_only_the_start(files):
    src, dst = files
    make_file(src, 4 * MIB, [(0, pattern(4 * MIB, 5))])
    make_file(dst, 4 * MIB, fill=0x55)
    result = copy_device(str(src), str(dst), size=MIB + 8192)
    assert read(dst, 0, MIB + 8192) == read(src, 0, MIB + 8192)
    assert read(dst, MIB + 8192) == b'\x55' * (3 * MIB - 8192)
    assert result['size'] == MIB + 8192


def test_destination_with_old_data_is_zeroed_when_not_known_zero(files):
    src, dst = files
    size = 4 * MIB + 4096
    make_file(src, size, [(MIB, pattern(MIB, 6)), (2 * MIB, bytes(MIB))])  # hole, data, written zeros, hole
    make_file(dst, size, fill=0xee)
    result = copy_device(str(src), str(dst), dest_is_zeroed=False, block_size=512 * KIB)
    assert read(dst) == read(src)
    check_accounting(result, size)
    assert result['bytes_skipped_zero'] == 0
    assert result['bytes_zeroed'] == size - MIB


def test_dest_is_zeroed_trusts_the_destination(files):
    """With the default, zero ranges are not written: a destination holding old data keeps it there (hence the option)."""
    src, dst = files
    make_file(src, 2 * MIB, [(0, pattern(MIB, 8))])
    make_file(dst, 2 * MIB, fill=0xee)
    copy_device(str(src), str(dst))
    assert read(dst, 0, MIB) == read(src, 0, MIB)
    assert read(dst, MIB) == b'\xee' * MIB


def test_empty_copy(files):
    src, dst = files
    make_file(src, 0)
    make_file(dst, MIB)
    result = copy_device(str(src), str(dst), verify=True)
    assert result['size'] == 0 and result['bytes_copied'] == 0
    assert result['checksums']['source'] == hashlib.sha256(b'').hexdigest()


@settings(max_examples=40)
@given(layout=st.lists(st.tuples(st.integers(0, 3 * MIB), st.integers(1, 300 * KIB), st.sampled_from(['data', 'zeros'])), max_size=6),
       extra=st.integers(0, 3 * MIB), block_size=st.sampled_from([4 * KIB, 12 * KIB, 256 * KIB, MIB]),
       dest_is_zeroed=st.booleans())
def test_any_layout_copies_exactly(tmp_path_factory, layout, extra, block_size, dest_is_zeroed):
    """Property: whatever the holes, written zeros, sizes and block size, the copied range ends up identical."""
    tmp = tmp_path_factory.mktemp('layout')
    size = max([offset + length for offset, length, dummy in layout] + [extra])
    chunks = [(offset, pattern(length, offset) if kind == 'data' else bytes(length)) for offset, length, kind in layout]
    src = make_file(tmp / 's', size, chunks)
    # A destination that is not zero (when allowed) must be fully overwritten.
    dst = make_file(tmp / 'd', size + 4096, fill=None if dest_is_zeroed else 0xd7)
    result = copy_device(src, dst, block_size=block_size, dest_is_zeroed=dest_is_zeroed, verify=True)
    assert read(dst, 0, size) == read(src)
    check_accounting(result, size)
    assert result['checksums']['source'] == result['checksums']['destination']


# --------------------------------------------------------------------------- verification

def test_verify_detects_a_corrupted_destination(files, monkeypatch):
    src, dst = files
    size = 2 * MIB
    make_file(src, size, [(0, pattern(size, 9))])
    make_file(dst, size)
    real_fsync = os.fsync

    def corrupting_fsync(fd):
        # After the copy wrote everything and before the read-back: flip one byte on the destination.
        if os.path.samestat(os.fstat(fd), os.stat(str(dst))):
            with open(str(dst), 'r+b') as handle:
                handle.seek(MIB + 3)
                byte = handle.read(1)
                handle.seek(MIB + 3)
                handle.write(bytes([byte[0] ^ 0xff]))
        real_fsync(fd)

    monkeypatch.setattr(k2_copy.os, 'fsync', corrupting_fsync)
    with pytest.raises(K2CopyError, match='Verification failed') as caught:
        copy_device(str(src), str(dst), verify=True)
    sums = caught.value.details['checksums']
    assert sums['source'] == hashlib.sha256(read(src)).hexdigest()
    assert sums['destination'] == hashlib.sha256(read(dst)).hexdigest()
    assert sums['source'] != sums['destination']


def test_verify_hashes_holes_as_zeros(files):
    src, dst = files
    make_file(src, 5 * MIB, [(2 * MIB, pattern(100, 10))])
    make_file(dst, 5 * MIB)
    result = copy_device(str(src), str(dst), verify=True)
    assert result['checksums']['source'] == file_checksum(str(src)) == file_checksum(str(dst))
    assert result['verify_duration_s'] >= 0


# --------------------------------------------------------------------------- refusals

def test_destination_smaller_than_source(files):
    src, dst = files
    make_file(src, 2 * MIB)
    make_file(dst, MIB)
    with pytest.raises(K2CopyError, match='holds 1048576 bytes, less than the 2097152 bytes to copy. Grow the destination'):
        copy_device(str(src), str(dst))
    assert read(dst) == bytes(MIB)


def test_size_beyond_the_source(files):
    src, dst = files
    make_file(src, MIB)
    make_file(dst, 4 * MIB)
    with pytest.raises(K2CopyError, match='size is 2097152 bytes, but the source .* holds only 1048576'):
        copy_device(str(src), str(dst), size=2 * MIB)


def test_missing_device(tmp_path):
    make_file(tmp_path / 'd', MIB)
    with pytest.raises(K2CopyError, match='Cannot open the source device .*/nope for reading: No such file'):
        copy_device(str(tmp_path / 'nope'), str(tmp_path / 'd'))


def test_same_device_twice(files, tmp_path):
    src, dummy = files
    make_file(src, MIB)
    os.symlink(str(src), str(tmp_path / 'link'))
    with pytest.raises(K2CopyError, match='same device'):
        copy_device(str(src), str(tmp_path / 'link'))


def test_directory_and_character_device_are_refused(files, tmp_path):
    src, dst = files
    make_file(dst, MIB)
    with pytest.raises(K2CopyError, match=r'The source .* is neither a block device nor a regular file'):
        copy_device(str(tmp_path), str(dst))
    with pytest.raises(K2CopyError, match=r'The source /dev/null is neither a block device nor a regular file'):
        copy_device('/dev/null', str(dst))


@pytest.mark.parametrize('block_size', [0, 1000, 4097, 128 * MIB, '1MiB'])
def test_bad_block_size(files, block_size):
    with pytest.raises(K2CopyError, match='block_size must be a multiple of 4096'):
        copy_device(str(files[0]), str(files[1]), block_size=block_size)


def test_direct_io_always_fails_when_refused(files, monkeypatch):
    src, dst = files
    make_file(src, MIB)
    make_file(dst, MIB)
    monkeypatch.setattr(k2_copy, '_open_direct', lambda path, flags: None)
    with pytest.raises(K2CopyError, match='does not accept direct I/O .* Set direct_io to auto or never'):
        copy_device(str(src), str(dst), direct_io='always')
    # auto simply copies buffered.
    assert copy_device(str(src), str(dst), direct_io='auto')['direct_io'] == {'source': False, 'destination': False}


# --------------------------------------------------------------------------- failures mid-copy

def _is_direct(fd):
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def test_failing_reader_stops_the_copy_and_names_the_offset(files, monkeypatch):
    src, dst = files
    make_file(src, 8 * MIB, [(0, pattern(8 * MIB, 12))])
    make_file(dst, 8 * MIB)
    real = os.preadv
    src_stat = os.stat(str(src))

    def failing_preadv(fd, buffers, offset, *args):
        if offset >= 3 * MIB and os.path.samestat(os.fstat(fd), src_stat):
            raise OSError(errno.EIO, 'Input/output error')
        return real(fd, buffers, offset, *args)

    monkeypatch.setattr(k2_copy.os, 'preadv', failing_preadv)
    before = threading.active_count()
    with pytest.raises(K2CopyError, match=r'Read from the source device .*src.img failed at offset 3145728: Input/output error.'):
        copy_device(str(src), str(dst), block_size=MIB)
    # The reader thread is gone and the first three MiB were written.
    assert threading.active_count() == before
    assert read(dst, 0, 3 * MIB) == read(src, 0, 3 * MIB)


def test_failing_writer_names_destination_and_offset(files, monkeypatch):
    src, dst = files
    make_file(src, 4 * MIB, [(0, pattern(4 * MIB, 13))])
    make_file(dst, 4 * MIB)
    real = os.pwritev

    def failing_pwritev(fd, buffers, offset, *args):
        if offset >= 2 * MIB:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(fd, buffers, offset, *args)

    monkeypatch.setattr(k2_copy.os, 'pwritev', failing_pwritev)
    before = threading.active_count()
    with pytest.raises(K2CopyError, match=r'Write to the destination device .*dst.img failed at offset 2097152: No space left'):
        copy_device(str(src), str(dst))
    assert threading.active_count() == before


def test_direct_write_refused_falls_back_to_buffered(files, monkeypatch):
    src, dst = files
    make_file(src, 3 * MIB, [(0, pattern(3 * MIB, 14))])
    make_file(dst, 3 * MIB)
    real = os.pwritev

    def no_direct_writes(fd, buffers, offset, *args):
        if _is_direct(fd):
            raise OSError(errno.EINVAL, 'Invalid argument')
        return real(fd, buffers, offset, *args)

    monkeypatch.setattr(k2_copy.os, 'pwritev', no_direct_writes)
    result = copy_device(str(src), str(dst), direct_io='always', verify=True)
    assert read(dst) == read(src)
    assert result['direct_io'] == {'source': True, 'destination': True}
    assert result['notes'] == ['The destination refused a direct write; the rest of the copy used buffered I/O.']


@pytest.mark.parametrize('io_depth', [1, 2, 16])
def test_io_depths_copy_the_same(files, io_depth):
    src, dst = files
    size = 5 * MIB + 4096
    make_file(src, size, [(0, pattern(2 * MIB, 16)), (3 * MIB, bytes(MIB)), (size - 4096, pattern(4096, 17))])
    make_file(dst, size, fill=0x42)
    result = copy_device(str(src), str(dst), block_size=256 * KIB, io_depth=io_depth, dest_is_zeroed=False, verify=True)
    assert read(dst) == read(src)
    assert result['io_depth'] == io_depth
    check_accounting(result, size)


@pytest.mark.parametrize('io_depth', [0, 33, '4'])
def test_bad_io_depth(files, io_depth):
    with pytest.raises(K2CopyError, match='io_depth must be a whole number from 1 to 32'):
        copy_device(str(files[0]), str(files[1]), io_depth=io_depth)


def test_parallel_writers_fall_back_once_and_close_the_direct_descriptor_once(files, monkeypatch):
    src, dst = files
    make_file(src, 8 * MIB, [(0, pattern(8 * MIB, 18))])
    make_file(dst, 8 * MIB)
    real_pwritev = os.pwritev
    real_close = os.close
    closed = []

    def no_direct_writes(fd, buffers, offset, *args):
        if _is_direct(fd):
            raise OSError(errno.EINVAL, 'Invalid argument')
        return real_pwritev(fd, buffers, offset, *args)

    def recording_close(fd):
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(k2_copy.os, 'pwritev', no_direct_writes)
    monkeypatch.setattr(k2_copy.os, 'close', recording_close)
    result = copy_device(str(src), str(dst), direct_io='always', io_depth=8, block_size=256 * KIB)
    assert read(dst) == read(src)
    assert result['notes'] == ['The destination refused a direct write; the rest of the copy used buffered I/O.']
    assert len(closed) == len(set(closed))


def test_failing_parallel_writer_leaves_no_thread_behind(files, monkeypatch):
    src, dst = files
    make_file(src, 8 * MIB, [(0, pattern(8 * MIB, 19))])
    make_file(dst, 8 * MIB)
    real = os.pwritev

    def failing(fd, buffers, offset, *args):
        if offset == 5 * MIB:
            raise OSError(errno.EIO, 'Input/output error')
        return real(fd, buffers, offset, *args)

    monkeypatch.setattr(k2_copy.os, 'pwritev', failing)
    before = threading.active_count()
    with pytest.raises(K2CopyError, match='failed at offset 5242880: Input/output error'):
        copy_device(str(src), str(dst), io_depth=8, block_size=MIB)
    assert threading.active_count() == before


def test_buffered_copy_writes_back_and_drops_pages_as_it_goes(files, monkeypatch):
    src, dst = files
    size = 3 * MIB + 5000
    make_file(src, size, [(0, pattern(size, 20))])
    make_file(dst, size)
    monkeypatch.setattr(k2_copy, 'WRITEBACK_WINDOW', 512 * KIB)
    real = os.posix_fadvise
    advised = {'src': [], 'dst': []}
    src_stat, dst_stat = os.stat(str(src)), os.stat(str(dst))

    def spy(fd, offset, length, advice):
        if advice == os.POSIX_FADV_DONTNEED:
            for name, st in (('src', src_stat), ('dst', dst_stat)):
                if os.path.samestat(os.fstat(fd), st):
                    advised[name].append((offset, length))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(k2_copy.os, 'posix_fadvise', spy)
    copy_device(str(src), str(dst), block_size=128 * KIB, io_depth=3, verify=True)
    assert read(dst) == read(src)
    window = 512 * KIB
    # The destination: every complete window is advised twice (start the writeback, then drop), in order, the last
    # ones once or not at all; the verification then drops the whole copied range before reading it back.
    dst_windows = [a for a in advised['dst'] if a[1] == window]
    assert sorted(set(dst_windows)) == [(i * window, window) for i in range(len(set(dst_windows)))]
    assert len(set(dst_windows)) >= 5
    assert all(dst_windows.count(w) == 2 for w in sorted(set(dst_windows))[:-2])
    assert advised['dst'][-1] == (0, size)
    # The source: each complete window once, behind the reader.
    assert advised['src'] == [(i * window, window) for i in range(6)]


# --------------------------------------------------------------------------- extents and progress

def test_extents_cover_the_range_exactly(tmp_path):
    path = make_file(tmp_path / 'f', 10 * MIB + 5, [(MIB, b'x' * 10), (4 * MIB + 100, b'y' * (2 * MIB)), (10 * MIB, b'z' * 5)])
    fd = os.open(path, os.O_RDONLY)
    try:
        extents = list(k2_copy._extents(fd, 0, 10 * MIB + 5))
    finally:
        os.close(fd)
    position = 0
    for offset, length, dummy in extents:
        assert offset == position and length > 0
        position += length
    assert position == 10 * MIB + 5
    data = [(o, n) for o, n, is_data in extents if is_data]
    # Every written byte lies in a data extent.
    for written in (MIB, 4 * MIB + 100, 6 * MIB + 99, 10 * MIB + 4):
        assert any(o <= written < o + n for o, n in data)
    # The large hole between 1 MiB + 10 and 4 MiB + 100 is reported as a hole.
    assert not any(o <= 2 * MIB < o + n for o, n in data)


def test_readahead_advises_only_the_start_of_each_run_of_data(monkeypatch):
    """WILLNEED goes to the pieces that start in the first window of each run of data (where the reads jump); the kernel
    reads ahead the rest of a run by itself."""
    window = 4 * MIB
    advised = []
    monkeypatch.setattr(k2_copy.os, 'posix_fadvise', lambda fd, offset, length, advice: advised.append((offset, length, advice)))
    extents = [(0, 20 * MIB, True),             # a long run: only its first window
               (20 * MIB, MIB, False),
               (21 * MIB, MIB, True),           # short runs after holes: all of them
               (22 * MIB, MIB, False),
               (23 * MIB, 2 * MIB, True),
               (25 * MIB, 9 * MIB, True)]       # continues that run (no hole between): advised up to its first window
    out = list(k2_copy._with_readahead(iter(extents), 99, window))
    # Every byte passes through, in order, long runs cut into windows.
    assert out[0] == (0, window, True)
    assert sum(length for dummy, length, dummy in out) == 34 * MIB
    assert [o for o, dummy, dummy in out] == sorted(o for o, dummy, dummy in out)
    assert advised == [(0, window, os.POSIX_FADV_WILLNEED), (21 * MIB, MIB, os.POSIX_FADV_WILLNEED),
                       (23 * MIB, 2 * MIB, os.POSIX_FADV_WILLNEED), (25 * MIB, window, os.POSIX_FADV_WILLNEED)]


@pytest.mark.parametrize('block_size', [4096, 256 * KIB, MIB])
def test_a_block_that_is_zero_but_its_last_byte_is_copied(files, block_size):
    """Zero detection looks at every byte: a block with one non-zero byte at its very end is data."""
    src, dst = files
    size = 3 * block_size
    # Block 0: zeros but its last byte; block 1: zeros but its first byte; block 2: written zeros.
    make_file(src, size, [(0, bytes(block_size - 1) + b'\x01'), (block_size, b'\x02' + bytes(2 * block_size - 1))])
    make_file(dst, size)
    result = copy_device(str(src), str(dst), block_size=block_size, verify=True)
    assert read(dst) == read(src)
    assert result['bytes_copied'] == 2 * block_size
    assert result['bytes_skipped_zero'] == block_size


class FakeClock(object):
    def __init__(self, step):
        self.now = 1000.0
        self.step = step

    def __call__(self):
        self.now += self.step
        return self.now


def test_progress_history_and_file(files, tmp_path):
    src, dst = files
    size = 6 * MIB
    make_file(src, size, [(0, pattern(size, 15))])
    make_file(dst, size)
    progress_file = tmp_path / 'progress.jsonl'
    # Every clock reading advances 1 s and samples are taken every 2 s: several samples, then one at the end.
    result = copy_device(str(src), str(dst), block_size=MIB, progress_interval=2, progress_file=str(progress_file),
                         clock=FakeClock(1.0), verify=True)
    lines = [json.loads(line) for line in progress_file.read_text().splitlines()]
    assert lines == result['progress']
    copy_lines = [line for line in lines if line['phase'] == 'copy']
    assert len(copy_lines) >= 3
    assert copy_lines[-1]['bytes_done'] == size and copy_lines[-1]['percent'] == 100.0
    assert [line['bytes_done'] for line in copy_lines] == sorted(line['bytes_done'] for line in copy_lines)
    assert any(line['phase'] == 'verify' for line in lines)
    assert set(lines[0]) == {'phase', 'elapsed_s', 'bytes_done', 'percent', 'mib_s'}


def test_progress_history_is_thinned():
    progress = Progress(1000, interval=0, clock=FakeClock(1.0))
    for done in range(1, 1001):
        progress.sample(done)
    assert len(progress.history) <= k2_copy.MAX_PROGRESS_SAMPLES
    assert progress.history[0]['bytes_done'] == 1 and progress.history[-1]['bytes_done'] == 1000


def test_unwritable_progress_file_is_an_error(files, tmp_path):
    src, dst = files
    make_file(src, MIB, [(0, b'x')])
    make_file(dst, MIB)
    with pytest.raises(K2CopyError, match='Cannot write the progress file .* Fix progress_file'):
        copy_device(str(src), str(dst), progress_file=str(tmp_path / 'no' / 'such' / 'dir'))


# --------------------------------------------------------------------------- connection_info and the attacher

ISCSI = {'driver_volume_type': 'iscsi', 'data': {'target_iqn': 'iqn.2009-01.com.kaminario:storage.k2.1', 'target_portal': '192.0.2.11:3260',
                                                 'target_lun': 3, 'target_discovered': True}}
FC = {'driver_volume_type': 'fibre_channel', 'data': {'target_wwn': ['5000000000000001'], 'target_lun': 4, 'target_discovered': True,
                                                      'initiator_target_map': {'1000000000000001': ['5000000000000001']}}}


@pytest.mark.parametrize('info, message', [
    ('iscsi', "source must be a connection_info dictionary .* not str"),
    ({'driver_volume_type': 'rbd', 'data': {}}, "source.driver_volume_type must be one of fibre_channel, iscsi, local, not 'rbd'"),
    ({'driver_volume_type': 'iscsi'}, 'source.data must be a dictionary'),
    ({'driver_volume_type': 'iscsi', 'data': {'target_iqn': 'x', 'target_lun': 1}}, 'source.data lacks target_portal'),
    ({'driver_volume_type': 'fibre_channel', 'data': {'target_wwn': [], 'target_lun': 1}}, 'source.data lacks target_wwn'),
    ({'driver_volume_type': 'local', 'data': {}}, 'source.data lacks device_path, which the local transport needs'),
])
def test_connection_info_errors(info, message):
    with pytest.raises(K2CopyError, match=message):
        validate_connection_info(info, 'source')


class FakeConnector(object):
    def __init__(self, calls, path='/dev/sdx', valid=True, connect_error=None, disconnect_error=None):
        self.calls = calls
        self.path = path
        self.valid = valid
        self.connect_error = connect_error
        self.disconnect_error = disconnect_error

    def connect_volume(self, data):
        self.calls.append(('connect', data))
        if self.connect_error:
            raise self.connect_error
        return {'type': 'block', 'path': self.path}

    def check_valid_device(self, path, run_as_root):
        self.calls.append(('check', path, run_as_root))
        return self.valid

    def disconnect_volume(self, data, device, force=False, ignore_errors=False):
        self.calls.append(('disconnect', device['path'] if device else None, force, ignore_errors))
        if self.disconnect_error:
            raise self.disconnect_error


def fake_factory(calls, **kwargs):
    def factory(protocol, root_helper, use_multipath=False, device_scan_attempts=3):
        calls.append(('factory', protocol, root_helper, use_multipath, device_scan_attempts))
        return FakeConnector(calls, **kwargs)
    return factory


def test_attach_iscsi_as_cinder_does():
    calls = []
    attacher = Attacher(fake_factory(calls), root_helper='sudo -n', multipath=True, enforce_multipath=True, device_scan_attempts=5)
    attachment = attacher.attach(ISCSI, 'source')
    assert attachment.path == '/dev/sdx'
    expected_data = dict(ISCSI['data'], enforce_multipath=True)
    assert calls == [('factory', 'ISCSI', 'sudo -n', True, 5), ('connect', expected_data), ('check', '/dev/sdx', True)]
    assert attachment.describe() == {'transport': 'iscsi', 'target': '192.0.2.11:3260 iqn.2009-01.com.kaminario:storage.k2.1 LUN 3',
                                     'path': '/dev/sdx'}
    attacher.detach(attachment)
    assert calls[-1] == ('disconnect', '/dev/sdx', False, False)
    # The caller's connection_info is not modified.
    assert 'enforce_multipath' not in ISCSI['data']


def test_attach_fc():
    calls = []
    attachment = Attacher(fake_factory(calls)).attach(FC, 'destination')
    assert calls[0] == ('factory', 'FIBRE_CHANNEL', 'sudo', False, 3)
    assert attachment.describe()['target'] == 'FC 5000000000000001 LUN 4'


def test_attach_failure_names_role_and_target():
    calls = []
    attacher = Attacher(fake_factory(calls, connect_error=RuntimeError('iscsiadm: No session found')))
    with pytest.raises(K2CopyError, match=r'Could not attach the destination \(iscsi, 192.0.2.11:3260 .* LUN 3\): iscsiadm: No session found.'):
        attacher.attach(ISCSI, 'destination')


def test_unreadable_device_is_detached_again():
    calls = []
    attacher = Attacher(fake_factory(calls, valid=False))
    with pytest.raises(K2CopyError, match='The source device /dev/sdx .* cannot be read after attach'):
        attacher.attach(ISCSI, 'source')
    assert calls[-1] == ('disconnect', '/dev/sdx', True, True)


def test_connector_without_a_path_is_refused():
    calls = []
    attacher = Attacher(fake_factory(calls, path=None))
    with pytest.raises(K2CopyError, match='returned no device path'):
        attacher.attach(ISCSI, 'source')
    assert calls[-1][0] == 'disconnect'


def test_detach_failure_is_reported():
    calls = []
    attacher = Attacher(fake_factory(calls, disconnect_error=RuntimeError('device busy')))
    attachment = attacher.attach(FC, 'source')
    with pytest.raises(K2CopyError, match=r'Could not detach the source /dev/sdx \(FC 5000000000000001 LUN 4\): device busy.'):
        attacher.detach(attachment, force=True)
    assert calls[-1] == ('disconnect', '/dev/sdx', True, False)


def test_os_brick_warnings_are_collected_not_printed(capsys):
    import logging
    attacher = Attacher(fake_factory([]))
    logging.getLogger('os_brick.initiator.connectors.iscsi').warning('Could not find the iSCSI Initiator File %s', '/etc/iscsi/initiatorname.iscsi')
    assert attacher.log.messages == ['WARNING: Could not find the iSCSI Initiator File /etc/iscsi/initiatorname.iscsi']
    assert capsys.readouterr().err == ''


def test_block_size_is_aligned():
    assert k2_copy.DEFAULT_BLOCK_SIZE % ALIGN == 0 and k2_copy.MAX_BLOCK_SIZE % ALIGN == 0


# --------------------------------------------------------------------------- block devices (loop devices; root only)

@pytest.fixture
def loop_devices(tmp_path):
    """Two 16 MiB loop block devices backed by files in tmp (skipped unless root with losetup and free loop devices)."""
    import shutil
    import subprocess
    if os.geteuid() != 0 or not shutil.which('losetup') or not os.path.exists('/dev/loop-control'):
        pytest.skip('needs root, losetup and /dev/loop-control to make block devices')
    devices = []
    try:
        for name in ('a', 'b'):
            backing = make_file(tmp_path / ('loop-%s.img' % name), 16 * MIB)
            answer = subprocess.run(['losetup', '--find', '--show', backing], capture_output=True, text=True, check=False)
            if answer.returncode != 0:
                pytest.skip('losetup could not attach a loop device: %s' % answer.stderr.strip())
            devices.append(answer.stdout.strip())
        yield devices
    finally:
        for device in devices:
            subprocess.run(['losetup', '--detach', device], check=False)


def test_block_devices_direct_io_and_zeroing(loop_devices):
    src, dst = loop_devices
    data = pattern(3 * MIB, 21)
    with open(src, 'r+b') as handle:
        handle.seek(5 * MIB)
        handle.write(data)
    with open(dst, 'r+b') as handle:
        handle.write(b'\xee' * (16 * MIB))
    result = copy_device(src, dst, dest_is_zeroed=False, verify=True)
    assert read(dst) == read(src)
    # Block devices: direct I/O on both sides; no hole information, so the zeros are read and zeroed (BLKZEROOUT).
    assert result['direct_io'] == {'source': True, 'destination': True}
    assert result['source_size'] == 16 * MIB
    assert result['bytes_copied'] == 3 * MIB
    assert result['bytes_zeroed'] == 13 * MIB
    assert result['checksums']['source'] == hashlib.sha256(read(src)).hexdigest()
    # Copying a block device onto itself is refused, even under another name.
    with pytest.raises(K2CopyError, match='same device'):
        copy_device(src, src)
