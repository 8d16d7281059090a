# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
# SPDX-License-Identifier: BSD-2-Clause

"""Host-side block copy for kaminario.k2: attach with os-brick, copy sparse, verify, detach.

Two parts, usable apart:

* ``copy_device(src_path, dst_path, ...)``: the copy engine. It knows nothing
  about os-brick or K2: it copies ``size`` bytes between two paths (block
  devices or files) and returns what it did. What it does:

  - holes of a sparse source (``SEEK_DATA``/``SEEK_HOLE``; a block device
    reports itself as all data) are never read, and blocks that read as all
    zeros are never written: a new K2 volume reads zeros. When the
    destination is not known to read zeros (``dest_is_zeroed=False``), those
    ranges are zeroed instead (``BLKZEROOUT`` on a block device, zero writes
    on a file);
  - a reader thread reads ahead while up to ``io_depth`` writer threads
    write, so reads and writes overlap and the destination sees several
    writes at once (arrays reached over iSCSI or FC serve a queue of
    requests much faster than one request at a time, which is what dd does);
    the caller's thread keeps the source order for hashing and progress;
  - ``O_DIRECT`` with page-aligned buffers on block devices that accept it
    (the probe is one aligned read), buffered I/O otherwise and on regular
    files unless ``direct_io='always'``; a tail shorter than the alignment
    always goes through the buffered descriptor. Buffered copies start the
    writeback of each written window early and drop copied pages from the
    page cache, so the disk writes while the copy reads and the copy does not
    push other data out of the cache. The destination is fsynced before the copy counts
    as done, whatever the I/O mode;
  - optional SHA-256 verification: the source is hashed as it is read (no
    second pass), the destination is read back afterwards (direct I/O, or
    after dropping its cached pages) and the digests compared;
  - progress: a sample every ``progress_interval`` seconds (and at the end)
    kept as a history, and appended as a JSON line to ``progress_file``.

* ``Attacher``: os-brick attach and detach from a Cinder ``connection_info``
  (``iscsi``, ``fibre_channel``, ``local``), the way Cinder's volume driver
  does it: ``connect_volume``, ``check_valid_device``, and
  ``disconnect_volume`` at the end (forced after a failure).

Errors are ``K2CopyError`` with a message that says what to fix.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import concurrent.futures
import errno
import fcntl
import hashlib
import json
import logging
import mmap
import os
import shlex
import stat
import struct
import threading
import time
import traceback
import warnings

try:
    import queue
except ImportError:  # pragma: no cover - Python 2
    import Queue as queue  # pylint: disable=import-error

KIB = 1024
MIB = KIB * KIB
# Offsets, lengths and buffers of direct I/O are aligned to this (the largest common logical block size).
ALIGN = 4096
DEFAULT_BLOCK_SIZE = MIB
MIN_BLOCK_SIZE = ALIGN
MAX_BLOCK_SIZE = 64 * MIB
# Bytes of data extents the kernel is asked to read ahead of the reader (buffered reads only).
READAHEAD = 8 * MIB
# Buffered writes: bytes per window whose writeback is started early (see _Writeback).
WRITEBACK_WINDOW = 32 * MIB
# Writes in flight at once (the reader keeps up to two more blocks ready).
DEFAULT_IO_DEPTH = 4
MAX_IO_DEPTH = 32
# At most this many progress samples are kept (older ones are thinned out).
MAX_PROGRESS_SAMPLES = 120
DIRECT_IO_MODES = ('auto', 'always', 'never')
# Where os-brick's connectors take their file locks unless told otherwise.
DEFAULT_LOCK_PATH = '/var/lock/os-brick'
# ioctl numbers from linux/fs.h.
BLKZEROOUT = 0x127F
BLKGETSIZE64 = 0x80081272

TRANSPORTS = {'iscsi': 'ISCSI', 'fibre_channel': 'FIBRE_CHANNEL', 'local': 'LOCAL'}
# Keys Cinder's initialize_connection always puts in ``data``, per transport (see k2_host_mapping).
REQUIRED_DATA = {
    'iscsi': ('target_iqn', 'target_portal', 'target_lun'),
    'fibre_channel': ('target_wwn', 'target_lun'),
    'local': ('device_path',),
}


class K2CopyError(Exception):
    """A copy that cannot start or did not finish; ``details`` goes into the module result.

    ``details['wrote']`` is False when the error came before anything could be written to the destination.
    """

    def __init__(self, message, **details):
        super(K2CopyError, self).__init__(message)
        self.message = message
        self.details = details


# --------------------------------------------------------------------------- devices

def _align_down(value):
    return value - value % ALIGN


def _align_up(value):
    return _align_down(value + ALIGN - 1)


class _Device(object):
    """One side of the copy: a buffered descriptor, maybe a direct one, its size and kind."""

    def __init__(self, path, role, write, direct_io):
        self.path = path
        self.role = role
        self.fd = None
        self.dfd = None
        flags = (os.O_RDWR if write else os.O_RDONLY) | getattr(os, 'O_CLOEXEC', 0)
        try:
            self.fd = os.open(path, flags)
        except OSError as exc:
            raise K2CopyError('Cannot open the %s device %s for %s: %s.' % (role, path, 'writing' if write else 'reading', exc.strerror),
                              errno=exc.errno, wrote=False)
        mode = os.fstat(self.fd).st_mode
        self.is_block = stat.S_ISBLK(mode)
        if not self.is_block and not stat.S_ISREG(mode):
            self.close()
            raise K2CopyError('The %s %s is neither a block device nor a regular file.' % (role, path), wrote=False)
        self.size = _size_of(self.fd, self.is_block)
        if not write and hasattr(os, 'posix_fadvise'):
            try:
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # larger read-ahead for buffered reads
            except OSError:
                pass
        # auto: direct I/O on block devices only. On a regular file (the local transport) the file system sits between
        # us and the disk anyway, and buffered writes let it allocate large extents where direct writes into a sparse
        # file allocate block by block (measured about 1.5 times slower on ext4, see tests/bench/copy_bench.py).
        if direct_io == 'always' or (direct_io == 'auto' and self.is_block):
            self.dfd = _open_direct(path, flags)
            if self.dfd is None and direct_io == 'always':
                self.close()
                raise K2CopyError('The %s device %s does not accept direct I/O (O_DIRECT). Set direct_io to auto or never.' % (role, path),
                                  wrote=False)

    @property
    def direct(self):
        return self.dfd is not None

    def close(self):
        for fd in (self.dfd, self.fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.fd = self.dfd = None


def _size_of(fd, is_block):
    if is_block:
        try:
            return struct.unpack('Q', fcntl.ioctl(fd, BLKGETSIZE64, b'\0' * 8))[0]
        except (OSError, IOError):
            pass
    return os.lseek(fd, 0, os.SEEK_END)


def _open_direct(path, flags):
    """A descriptor with O_DIRECT, or None when the device or file system refuses direct I/O."""
    o_direct = getattr(os, 'O_DIRECT', 0)
    if not o_direct:
        return None
    try:
        fd = os.open(path, flags | o_direct)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise
    probe = mmap.mmap(-1, ALIGN)
    try:
        # Some file systems accept the flag at open and refuse the first aligned read.
        os.preadv(fd, [probe], 0)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise
    finally:
        probe.close()


def _extents(fd, start, end):
    """Yield ``(offset, length, is_data)`` covering ``[start, end)``; holes are aligned inwards, data outwards."""
    pos = start
    seek_data = getattr(os, 'SEEK_DATA', None)
    while pos < end:
        if seek_data is None:
            yield pos, end - pos, True
            return
        try:
            data = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos: a hole up to the end
                yield pos, end - pos, False
                return
            # EINVAL: the file system or device cannot tell; read everything.
            yield pos, end - pos, True
            return
        hole_end = min(_align_down(data), end)
        if hole_end > pos:
            yield pos, hole_end - pos, False
            pos = hole_end
            continue
        try:
            data_end = os.lseek(fd, pos, os.SEEK_HOLE)
        except OSError:
            data_end = end
        data_end = min(max(_align_up(data_end), pos + ALIGN), end)
        yield pos, data_end - pos, True
        pos = data_end


def _pieces(extents, window):
    """Split data extents longer than ``window`` (a multiple of ALIGN) into pieces of ``window`` bytes."""
    for offset, length, is_data in extents:
        while is_data and length > window:
            yield offset, window, True
            offset += window
            length -= window
        yield offset, length, is_data


def _with_readahead(extents, fd, window):
    """Pass ``extents`` through, asking the kernel to read ahead the start of each run of data ``window`` bytes early.

    Buffered reads that jump over holes look random to the kernel, which then
    reads only what is asked; ``POSIX_FADV_WILLNEED`` on the coming data
    keeps the disk busy while the current block is copied. Only the first
    ``window`` bytes of each contiguous run of data are advised: past that the
    reads are sequential, and the kernel's own read-ahead (larger with
    ``POSIX_FADV_SEQUENTIAL``, started asynchronously as the reads reach it)
    does better than WILLNEED, which reads each window in the reader's thread
    and keeps the kernel from reading further ahead. Advising every window of
    a long run made the copy of a fully allocated volume about 1.4 times
    slower (tests/bench/copy_bench.py, half-zeros).
    """
    pending = collections.deque()
    advised_to = 0
    run_start = run_end = None
    source = _pieces(extents, window)
    exhausted = False
    while True:
        while not exhausted and (not pending or advised_to < pending[0][0] + pending[0][1] + window):
            try:
                offset, length, is_data = next(source)
            except StopIteration:
                exhausted = True
                break
            pending.append((offset, length, is_data))
            advised_to = offset + length
            if not is_data:
                continue
            if offset != run_end:
                run_start = offset  # data after a hole (or the first data): the reads jump here
            run_end = offset + length
            if offset - run_start < window:
                try:
                    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
                except OSError:
                    pass
        if not pending:
            return
        yield pending.popleft()


class _Writeback(object):
    """Start writing buffered data back while the copy goes on, and drop it from the page cache once written.

    Without this, a buffered copy of a few GiB fills the page cache and the
    kernel writes it back only at the final fsync, so reading and writing
    the disk do not overlap (that is what dd does). ``POSIX_FADV_DONTNEED``
    starts the writeback of dirty pages and drops clean ones: each window is
    advised once when it is complete (writeback starts) and once more a
    window later (its pages, written by then, leave the cache).
    """

    def __init__(self, fd, window=None, passes=2):
        self.fd = fd
        self.window = window or WRITEBACK_WINDOW
        # 2 for written data (start writeback, then drop); 1 for data only read (clean pages drop at once).
        self.passes = passes
        self.started_to = 0
        self.dropped_to = 0

    def advance(self, done_to):
        """Everything below ``done_to`` has been written (or read): advise the windows that are complete."""
        while done_to - self.started_to >= self.window:
            self._advise(self.started_to, self.window)
            self.started_to += self.window
            if self.passes > 1 and self.started_to - self.dropped_to > self.window:
                self._advise(self.dropped_to, self.window)
                self.dropped_to += self.window

    def _advise(self, offset, length):
        try:
            os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_DONTNEED)
        except (OSError, AttributeError):
            self.window = float('inf')  # not supported: stop trying


# --------------------------------------------------------------------------- progress

class Progress(object):
    """Progress samples every ``interval`` seconds: kept (thinned to ``MAX_PROGRESS_SAMPLES``) and appended to ``path``."""

    def __init__(self, total, interval=10.0, path=None, clock=time.time):
        self.total = total
        self.interval = interval
        self.path = path
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.history = []
        self.done = 0
        self.phase = 'copy'

    def begin(self, phase):
        """Start a new phase (``verify``): elapsed time and rate count from now."""
        self.phase = phase
        self.started = self.last = self.clock()

    def sample(self, done, force=False):
        self.done = done
        now = self.clock()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        entry = {
            'phase': self.phase,
            'elapsed_s': round(elapsed, 3),
            'bytes_done': done,
            'percent': round(100.0 * done / self.total, 1) if self.total else 100.0,
            'mib_s': round(done / MIB / elapsed, 1) if elapsed > 0 else None,
        }
        self.history.append(entry)
        if len(self.history) > MAX_PROGRESS_SAMPLES:
            # Keep the first and last samples, drop every other one in between.
            self.history = self.history[:1] + self.history[1:-1][1::2] + self.history[-1:]
        if self.path:
            try:
                with open(self.path, 'a') as handle:
                    handle.write(json.dumps(entry, sort_keys=True) + '\n')
            except (OSError, IOError) as exc:
                raise K2CopyError('Cannot write the progress file %s: %s. Fix progress_file or leave it unset.' % (self.path, exc))


# --------------------------------------------------------------------------- copy engine

def _read_full(fd, view, offset, length, role, path):
    """Read exactly ``length`` bytes at ``offset`` into ``view`` (direct reads ask for an aligned length)."""
    got = 0
    while got < length:
        try:
            count = os.preadv(fd, [view[got:]], offset + got)
        except OSError as exc:
            raise K2CopyError('Read from the %s device %s failed at offset %d: %s.' % (role, path, offset + got, exc.strerror),
                              errno=exc.errno, failed_offset=offset + got)
        if count == 0:
            raise K2CopyError('The %s device %s ended at offset %d before the %d bytes to copy.' % (role, path, offset + got, length))
        got += count


def _write_full(fd, view, offset, role, path):
    done = 0
    length = len(view)
    while done < length:
        try:
            done += os.pwritev(fd, [view[done:]], offset + done)
        except OSError as exc:
            raise K2CopyError('Write to the %s device %s failed at offset %d: %s.' % (role, path, offset + done, exc.strerror),
                              errno=exc.errno, failed_offset=offset + done)


class _Reader(threading.Thread):
    """Reads the source ahead of the writer: ``('data'|'zero', offset, length, index)`` or ``('hole', offset, length, None)``."""

    def __init__(self, src, size, block_size, buffers, zero_block):
        super(_Reader, self).__init__(name='k2-copy-reader')
        self.daemon = True
        self.src = src
        self.size = size
        self.block_size = block_size
        self.buffers = buffers
        self.zero_block = zero_block
        self.free = queue.Queue()
        for index in range(len(buffers)):
            self.free.put(index)
        self.out = queue.Queue()
        self.stop = threading.Event()

    def _take_buffer(self):
        while not self.stop.is_set():
            try:
                return self.free.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def run(self):
        try:
            self._run()
            self.out.put(('end', None, None, None))
        except BaseException as exc:  # pylint: disable=broad-except
            # Handed to the writer, which raises it in the caller's thread.
            self.out.put(('error', exc, traceback.format_exc(), None))

    def _run(self):
        src = self.src
        extents = _extents(src.fd, 0, self.size)
        if src.dfd is None and hasattr(os, 'posix_fadvise'):
            extents = _with_readahead(extents, src.fd, max(READAHEAD, 2 * self.block_size))
        for offset, length, is_data in extents:
            if not is_data:
                self.out.put(('hole', offset, length, None))
                continue
            end = offset + length
            while offset < end:
                count = min(self.block_size, end - offset)
                index = self._take_buffer()
                if index is None:
                    return
                view = self.buffers[index]
                if src.dfd is not None:
                    # Direct reads want an aligned length; the block size is a multiple of ALIGN, so it fits.
                    wanted = _align_up(count)
                    try:
                        _read_direct(src.dfd, view[:wanted], offset, count, src)
                    except _ShortDirectRead:
                        _read_full(src.fd, view[:count], offset, count, src.role, src.path)
                else:
                    _read_full(src.fd, view[:count], offset, count, src.role, src.path)
                kind = 'zero' if self.zero_block.startswith(view[:count]) else 'data'
                self.out.put((kind, offset, count, index))
                offset += count


class _ShortDirectRead(Exception):
    pass


def _read_direct(fd, view, offset, count, src):
    got = 0
    wanted = len(view)
    while got < count:
        try:
            n = os.preadv(fd, [view[got:wanted]], offset + got)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise _ShortDirectRead()
            raise K2CopyError('Read from the %s device %s failed at offset %d: %s.' % (src.role, src.path, offset + got, exc.strerror),
                              errno=exc.errno, failed_offset=offset + got)
        if n == 0:
            raise K2CopyError('The %s device %s ended at offset %d before the %d bytes to copy.' % (src.role, src.path, offset + got, count))
        got += n
        if got < count and got % ALIGN:
            raise _ShortDirectRead()


class _Writer(object):
    """Writes blocks to the destination, zeroes ranges, hashes what the source holds."""

    def __init__(self, dst, dest_is_zeroed, hasher, zero_block):
        self.dst = dst
        self.dest_is_zeroed = dest_is_zeroed
        self.hasher = hasher
        self.zero_block = zero_block
        self.zero_view = memoryview(zero_block)
        self.bytes_copied = 0
        self.bytes_skipped_zero = 0
        self.bytes_zeroed = 0
        self.lock = threading.Lock()
        # Direct descriptors given up after EINVAL, closed once the writers are done.
        self.fallbacks = []

    def write(self, view, offset):
        """Write ``view`` at ``offset`` (called from several writer threads at once)."""
        dst = self.dst
        dfd = dst.dfd
        if dfd is not None and len(view) % ALIGN == 0:
            try:
                _write_full(dfd, view, offset, dst.role, dst.path)
                return
            except K2CopyError as exc:
                if exc.details.get('errno') != errno.EINVAL:
                    raise
                # The device refused this direct write: carry on buffered. Other writers may get here too; the
                # descriptor is closed once (it stays open until then, so no writer uses a recycled number).
                with self.lock:
                    self.fallbacks.append(dfd)
                    dst.dfd = None
        _write_full(dst.fd, view, offset, dst.role, dst.path)

    def hash_zeros(self, length):
        while length > 0:
            count = min(length, len(self.zero_view))
            self.hasher.update(self.zero_view[:count])
            length -= count

    def zero_range(self, offset, length):
        """Make ``[offset, offset + length)`` read zeros on a destination that may hold old data."""
        if self.dst.is_block and offset % 512 == 0 and length % 512 == 0:
            try:
                fcntl.ioctl(self.dst.fd, BLKZEROOUT, struct.pack('QQ', offset, length))
                return
            except (OSError, IOError):
                pass  # no offload: write the zeros
        while length > 0:
            count = min(length, len(self.zero_view))
            self.write(self.zero_view[:count], offset)
            offset += count
            length -= count


def copy_device(src_path, dst_path, size=None, block_size=DEFAULT_BLOCK_SIZE, dest_is_zeroed=True, direct_io='auto',
                verify=False, progress_interval=10.0, progress_file=None, clock=time.time, io_depth=DEFAULT_IO_DEPTH):
    """Copy ``size`` bytes (default: the whole source) from ``src_path`` to ``dst_path``; return the figures.

    The result holds ``size``, ``block_size``, ``bytes_copied`` (data
    written), ``bytes_skipped_zero`` (zeros and holes not written),
    ``bytes_zeroed`` (zeros written or offloaded because
    ``dest_is_zeroed`` is false), ``duration_s`` and ``throughput_mib_s``
    (of the copy, fsync included, verification excluded), ``direct_io``
    per side, ``progress`` (samples), and with ``verify`` the
    ``checksums`` and ``verify_duration_s``. Raises ``K2CopyError``.
    """
    if not isinstance(io_depth, int) or not 1 <= io_depth <= MAX_IO_DEPTH:
        raise K2CopyError('io_depth must be a whole number from 1 to %d, not %r.' % (MAX_IO_DEPTH, io_depth))
    if direct_io not in DIRECT_IO_MODES:
        raise K2CopyError('direct_io must be one of %s, not %r.' % (', '.join(DIRECT_IO_MODES), direct_io))
    if not isinstance(block_size, int) or block_size % ALIGN or not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
        raise K2CopyError('block_size must be a multiple of %d bytes between %d KiB and %d MiB, not %r.'
                          % (ALIGN, MIN_BLOCK_SIZE // KIB, MAX_BLOCK_SIZE // MIB, block_size))
    src = dst = None
    try:
        src = _Device(src_path, 'source', False, direct_io)
        dst = _Device(dst_path, 'destination', True, direct_io)
        same_block = src.is_block and dst.is_block and os.fstat(src.fd).st_rdev == os.fstat(dst.fd).st_rdev
        if same_block or os.path.realpath(src_path) == os.path.realpath(dst_path):
            raise K2CopyError('The source and the destination are the same device (%s); the copy would destroy it.' % src_path, wrote=False)
        if size is None:
            size = src.size
        if size < 0:
            raise K2CopyError('size must not be negative, got %d.' % size, wrote=False)
        if size > src.size:
            raise K2CopyError('size is %d bytes, but the source %s holds only %d bytes. Give a smaller size, or leave it unset to copy the '
                              'whole source.' % (size, src_path, src.size), source_size=src.size, wrote=False)
        if dst.size < size:
            raise K2CopyError('The destination %s holds %d bytes, less than the %d bytes to copy. Grow the destination volume '
                              '(k2_volume size) to at least the source size, or copy fewer bytes with size.' % (dst_path, dst.size, size),
                              source_size=src.size, destination_size=dst.size, wrote=False)
        result = _copy(src, dst, size, block_size, dest_is_zeroed, verify, Progress(size, progress_interval, progress_file, clock), clock,
                       io_depth)
        result['source_size'] = src.size
        result['destination_size'] = dst.size
        return result
    finally:
        for device in (src, dst):
            if device is not None:
                device.close()


def _copy(src, dst, size, block_size, dest_is_zeroed, verify, progress, clock, io_depth):
    zero_block = bytes(block_size)
    # Blocks in flight: up to io_depth being written, one being read, one waiting in between.
    buffers = [mmap.mmap(-1, block_size) for dummy in range(io_depth + 2)]
    views = [memoryview(b) for b in buffers]
    hasher = hashlib.sha256() if verify else None
    writer = _Writer(dst, dest_is_zeroed, hasher, zero_block)
    reader = _Reader(src, size, block_size, views, zero_block)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=io_depth, thread_name_prefix='k2-copy-writer')
    pending = collections.deque()
    writeback = _Writeback(dst.fd) if dst.dfd is None else None
    # Buffered source: drop what was read from the page cache, as direct I/O would not have filled it.
    drop_behind = _Writeback(src.fd, passes=1) if src.dfd is None else None
    started = clock()
    done = 0
    direct = {'source': src.direct, 'destination': dst.direct}

    def settle(count):
        """Wait for the oldest writes until at most ``count`` are in flight; give their buffers back to the reader."""
        while len(pending) > count:
            future, index = pending.popleft()[:2]
            try:
                future.result()
            finally:
                if index is not None:
                    reader.free.put(index)

    try:
        reader.start()
        while True:
            kind, offset, length, index = reader.out.get()
            if kind == 'end':
                break
            if kind == 'error':
                raise offset
            # The hash follows the source order here; only the writes run in parallel.
            if kind == 'hole':
                if hasher is not None:
                    writer.hash_zeros(length)
                if dest_is_zeroed:
                    writer.bytes_skipped_zero += length
                else:
                    pending.append((pool.submit(writer.zero_range, offset, length), None, offset))
                    writer.bytes_zeroed += length
            else:
                view = views[index][:length]
                if hasher is not None:
                    hasher.update(view)
                if kind == 'data':
                    pending.append((pool.submit(writer.write, view, offset), index, offset))
                    writer.bytes_copied += length
                elif not dest_is_zeroed:
                    pending.append((pool.submit(writer.zero_range, offset, length), index, offset))
                    writer.bytes_zeroed += length
                else:
                    writer.bytes_skipped_zero += length
                    reader.free.put(index)
            settle(io_depth - 1)
            done += length
            if writeback is not None:
                # Everything before the oldest write still in flight has been written.
                writeback.advance(pending[0][2] if pending else done)
            if drop_behind is not None:
                drop_behind.advance(done)
            progress.sample(done)
        settle(0)
        try:
            os.fsync(dst.fd)
        except OSError as exc:
            raise K2CopyError('Flushing the destination device %s failed: %s.' % (dst.path, exc.strerror), errno=exc.errno)
    finally:
        reader.stop.set()
        # Let the writes in flight finish (their errors, if any, come after the one being raised) before the buffers go.
        pool.shutdown(wait=True)
        pending.clear()
        for fd in set(writer.fallbacks):
            os.close(fd)
        reader.join()
        for view in views:
            view.release()
        for buf in buffers:
            try:
                buf.close()
            except BufferError:
                pass  # a slice is still referenced (from a traceback); the garbage collector frees it
    duration = max(clock() - started, 1e-6)
    result = {
        'size': size,
        'block_size': block_size,
        'bytes_copied': writer.bytes_copied,
        'bytes_skipped_zero': writer.bytes_skipped_zero,
        'bytes_zeroed': writer.bytes_zeroed,
        'duration_s': round(duration, 3),
        'throughput_mib_s': round(size / MIB / duration, 1),
        'direct_io': direct,
        'io_depth': io_depth,
        'notes': [],
    }
    if dst.direct != direct['destination']:
        result['notes'].append('The destination refused a direct write; the rest of the copy used buffered I/O.')
    progress.sample(done, force=True)
    if hasher is not None:
        verify_started = clock()
        source_sum = hasher.hexdigest()
        progress.begin('verify')
        dest_sum = _checksum(dst, size, block_size, progress)
        progress.sample(size, force=True)
        result['verify_duration_s'] = round(clock() - verify_started, 3)
        result['checksums'] = {'algorithm': 'sha256', 'source': source_sum, 'destination': dest_sum}
        if source_sum != dest_sum:
            result['progress'] = progress.history
            raise K2CopyError('Verification failed: the destination %s does not hold what was read from the source %s '
                              '(sha256 %s, expected %s). Do not use the destination; check the device and copy again.'
                              % (dst.path, src.path, dest_sum, source_sum), **result)
    result['progress'] = progress.history
    return result


def _checksum(device, size, block_size, progress):
    """SHA-256 of the first ``size`` bytes of ``device`` as the device returns them now (not from the page cache)."""
    fd = device.dfd
    if fd is None:
        fd = device.fd
        if hasattr(os, 'posix_fadvise'):
            try:
                os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
    hasher = hashlib.sha256()
    buf = mmap.mmap(-1, block_size)
    view = memoryview(buf)
    try:
        offset = 0
        while offset < size:
            count = min(block_size, size - offset)
            if fd == device.dfd and count % ALIGN == 0:
                _read_full(fd, view[:count], offset, count, device.role, device.path)
            else:
                _read_full(device.fd, view[:count], offset, count, device.role, device.path)
            hasher.update(view[:count])
            offset += count
            progress.sample(offset)
    finally:
        view.release()
        try:
            buf.close()
        except BufferError:
            pass
    return hasher.hexdigest()


def file_checksum(path, size=None, block_size=DEFAULT_BLOCK_SIZE):
    """SHA-256 of the first ``size`` bytes (default all) of a file or device, read buffered (for tests and benchmarks)."""
    hasher = hashlib.sha256()
    with open(path, 'rb') as handle:
        remaining = size if size is not None else os.fstat(handle.fileno()).st_size
        while remaining > 0:
            chunk = handle.read(min(block_size, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher.hexdigest()


# --------------------------------------------------------------------------- attach and detach

def validate_connection_info(info, option):
    """``(transport, data)`` from a Cinder-shaped ``connection_info``; raise ``K2CopyError`` naming ``option`` otherwise."""
    if not isinstance(info, dict):
        raise K2CopyError("%s must be a connection_info dictionary such as k2_host_mapping returns "
                          "({'driver_volume_type': ..., 'data': {...}}), not %s." % (option, type(info).__name__))
    transport = info.get('driver_volume_type')
    if not isinstance(transport, str) or transport not in TRANSPORTS:
        raise K2CopyError('%s.driver_volume_type must be one of %s, not %r.' % (option, ', '.join(sorted(TRANSPORTS)), transport))
    data = info.get('data')
    if not isinstance(data, dict):
        raise K2CopyError('%s.data must be a dictionary with the %s connection properties.' % (option, transport))
    missing = [key for key in REQUIRED_DATA[transport] if data.get(key) in (None, '', [])]
    if missing:
        raise K2CopyError('%s.data lacks %s, which the %s transport needs. Pass the connection_info that k2_host_mapping returned '
                          'for this volume unchanged.' % (option, ', '.join(missing), transport))
    return transport, data


def describe_target(transport, data):
    """A short human label of what is attached: portal and LUN, target WWNs and LUN, or the path."""
    if transport == 'iscsi':
        return '%s %s LUN %s' % (data.get('target_portal'), data.get('target_iqn'), data.get('target_lun'))
    if transport == 'fibre_channel':
        wwns = data.get('target_wwn')
        return 'FC %s LUN %s' % (','.join(wwns) if isinstance(wwns, list) else wwns, data.get('target_lun'))
    return data.get('device_path')


class _LogCollector(logging.Handler):
    """Keeps os-brick's warnings and errors for the module result instead of printing them."""

    def __init__(self):
        logging.Handler.__init__(self, level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:  # pylint: disable=broad-except
            text = str(record.msg)
        # One line per record (os-brick messages often end with a command's stderr and its newline).
        self.messages.append('%s: %s' % (record.levelname, ' '.join(text.split())))


class Attachment(object):
    def __init__(self, role, transport, data, connector, device):
        self.role = role
        self.transport = transport
        self.data = data
        self.connector = connector
        self.device = device
        self.path = device.get('path')

    def describe(self):
        return {'transport': self.transport, 'target': describe_target(self.transport, self.data), 'path': self.path}


def load_os_brick():
    """The os-brick connector module, or ``(None, traceback)`` when os-brick cannot be imported."""
    try:
        with warnings.catch_warnings():
            # oslo.privsep imports eventlet, which warns about its own deprecation on import.
            warnings.simplefilter('ignore')
            from os_brick.initiator import connector  # pylint: disable=import-outside-toplevel
        return connector, None
    except ImportError:
        return None, traceback.format_exc()


class Attacher(object):
    """Attach and detach volumes with os-brick as Cinder's volume driver does.

    ``factory`` is ``InitiatorConnector.factory`` (injected in tests).
    Running as root, os-brick's privileged calls run in this process; as
    another user they go through ``<root_helper> privsep-helper``.
    """

    def __init__(self, factory, root_helper='sudo', multipath=False, enforce_multipath=False, device_scan_attempts=3,
                 lock_path=DEFAULT_LOCK_PATH):
        self.factory = factory
        self.root_helper = root_helper
        self.lock_path = lock_path
        self.multipath = multipath
        self.enforce_multipath = enforce_multipath
        self.device_scan_attempts = device_scan_attempts
        self.log = _LogCollector()
        brick_log = logging.getLogger('os_brick')
        brick_log.addHandler(self.log)
        brick_log.propagate = False

    def setup(self):
        """Configure os-brick as a service does before its first attach.

        * ``lock_path``: the iSCSI, FC and NVMe connectors take a file lock
          around connect and disconnect (``external=True``) and refuse to run
          without a lock directory; other os-brick users on the host (Nova,
          Cinder) should share it.
        * privileges: as root, os-brick's privileged functions run in this
          process; otherwise privsep starts through ``root_helper``.
        """
        # pylint: disable=import-outside-toplevel
        from oslo_config import cfg
        from oslo_privsep import priv_context
        # Importing os_brick.opts registers the [os_brick] options.
        import os_brick.opts  # noqa: F401 pylint: disable=unused-import
        import os_brick.privileged as brick_privileged
        try:
            os.makedirs(self.lock_path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise K2CopyError('Cannot create the os-brick lock directory %s: %s. Set lock_path to a writable directory.'
                              % (self.lock_path, exc.strerror))
        cfg.CONF.set_override('lock_path', self.lock_path, group='os_brick')
        if os.geteuid() == 0:
            for context in (brick_privileged.default, brick_privileged.brick_privsep_hide_output):
                context.set_client_mode(False)
        else:
            priv_context.init(root_helper=shlex.split(self.root_helper))

    def attach(self, info, role):
        transport, data = validate_connection_info(info, role)
        data = dict(data)
        if transport != 'local':
            data['enforce_multipath'] = self.enforce_multipath
        try:
            connector = self.factory(TRANSPORTS[transport], self.root_helper, use_multipath=self.multipath,
                                     device_scan_attempts=self.device_scan_attempts)
            device = connector.connect_volume(data)
        except Exception as exc:  # pylint: disable=broad-except
            # os-brick raises many types (BrickException, ProcessExecutionError, OSError, ValueError...).
            raise K2CopyError('Could not attach the %s (%s, %s): %s' % (role, transport, describe_target(transport, data), _text(exc)))
        attachment = Attachment(role, transport, data, connector, device or {})
        if not isinstance(attachment.path, str) or not attachment.path:
            self._forced_detach(attachment)
            raise K2CopyError('Attaching the %s (%s) returned no device path (%r); only block devices and files can be copied.'
                              % (role, describe_target(transport, data), device))
        try:
            valid = connector.check_valid_device(attachment.path, True)
        except Exception as exc:  # pylint: disable=broad-except
            valid = False
            self.log.messages.append('ERROR: check_valid_device: %s' % _text(exc))
        if not valid:
            self._forced_detach(attachment)
            label = attachment.path if transport == 'local' else '%s (%s)' % (attachment.path, describe_target(transport, data))
            raise K2CopyError('The %s device %s cannot be read after attach. Check that the volume is mapped to this host and the '
                              'path exists.' % (role, label))
        return attachment

    def detach(self, attachment, force=False):
        """Disconnect; raise ``K2CopyError`` when os-brick fails (the device may still be attached)."""
        try:
            attachment.connector.disconnect_volume(attachment.data, attachment.device, force=force, ignore_errors=False)
        except Exception as exc:  # pylint: disable=broad-except
            target = describe_target(attachment.transport, attachment.data)
            raise K2CopyError('Could not detach the %s %s (%s): %s' % (attachment.role, attachment.path, target, _text(exc)))

    def _forced_detach(self, attachment):
        try:
            attachment.connector.disconnect_volume(attachment.data, attachment.device, force=True, ignore_errors=True)
        except Exception as exc:  # pylint: disable=broad-except
            self.log.messages.append('ERROR: cleanup detach of %s: %s' % (attachment.role, _text(exc)))


def _text(exc):
    # One line: os-brick's process errors span several (command, exit code, stdout, stderr).
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return text if text.endswith('.') else text + '.'
