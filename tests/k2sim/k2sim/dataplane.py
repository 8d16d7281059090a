"""Block data of volumes, snapshots and views: one sparse file per device.

A volume of size S KiB is a sparse file of S*1024 bytes; only written blocks
take space, which is what system/capacity reports as allocated.

Snapshots copy each volume file of the group.  The copy first tries a reflink
(ioctl FICLONE: constant time, shared blocks, on btrfs/XFS/bcachefs); where
that is not supported (ext4, tmpfs) it falls back to a sparse-aware copy that
walks the data extents with SEEK_DATA/SEEK_HOLE and copies only those, so the
cost is proportional to the data written, not to the volume size.  Holes stay
holes.  Restore copies the other way.
"""

import errno
import fcntl
import os

FICLONE = 0x40049409
CHUNK = 8 * 1024 * 1024


def create(path, size_bytes):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size_bytes)
    finally:
        os.close(fd)


def grow(path, size_bytes):
    if os.path.exists(path) and os.path.getsize(path) < size_bytes:
        os.truncate(path, size_bytes)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def allocated_kib(path):
    try:
        return os.stat(path).st_blocks * 512 // 1024
    except FileNotFoundError:
        return 0


def _sparse_copy(src_fd, dst_fd, size):
    pos = 0
    while pos < size:
        try:
            start = os.lseek(src_fd, pos, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:   # no data after pos
                break
            raise
        end = os.lseek(src_fd, start, os.SEEK_HOLE)
        off = start
        while off < end:
            n = min(CHUNK, end - off)
            try:
                copied = os.copy_file_range(src_fd, dst_fd, n, off, off)
            except OSError:
                copied = 0
            if copied <= 0:
                data = os.pread(src_fd, n, off)
                if not data:
                    break
                copied = os.pwrite(dst_fd, data, off)
            off += copied
        pos = end


def copy(src, dst, size_bytes=None, in_place=False):
    """Copy src to dst; returns "reflink" or "sparse-copy".

    dst gets the length size_bytes (default: the length of src).  With
    in_place the existing dst inode is rewritten (a restore must keep the
    inode, since a lab host may hold the file open); otherwise a new file is
    written next to dst and renamed over it.
    """
    src_size = os.path.getsize(src)
    if size_bytes is None:
        size_bytes = src_size
    tmp = dst if in_place else dst + ".tmp"
    sfd = os.open(src, os.O_RDONLY)
    try:
        dfd = os.open(tmp, os.O_CREAT | os.O_WRONLY | (0 if in_place else os.O_TRUNC), 0o644)
        try:
            method = "reflink"
            if in_place:
                os.ftruncate(dfd, 0)
            try:
                fcntl.ioctl(dfd, FICLONE, sfd)
            except OSError:
                method = "sparse-copy"
                os.ftruncate(dfd, 0)
                os.ftruncate(dfd, src_size)
                _sparse_copy(sfd, dfd, src_size)
            os.ftruncate(dfd, max(size_bytes, 0))
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    if not in_place:
        os.replace(tmp, dst)
    return method
