# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k2_volume_copy through a real AnsibleModule: the local transport with the real os-brick (skipped without it), and
attach/detach ordering and failure handling with a recording connector."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

import pytest

from ansible_collections.kaminario.k2.plugins.module_utils import k2_copy
from ansible_collections.kaminario.k2.plugins.modules import k2_volume_copy
from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import run_module

MIB = 1024 * 1024


def local(path):
    return {'driver_volume_type': 'local', 'data': {'device_path': str(path)}}


def make_file(path, size, chunks=()):
    with open(str(path), 'wb') as handle:
        handle.truncate(size)
        for offset, data in chunks:
            handle.seek(offset)
            handle.write(data)
    return str(path)


def content(path):
    with open(str(path), 'rb') as handle:
        return handle.read()


@pytest.fixture
def volumes(tmp_path):
    """A 4 MiB source with data, a hole and written zeros, and an empty 4 MiB destination."""
    src = make_file(tmp_path / 'vol-2.img', 4 * MIB, [(0, os.urandom(100000)), (2 * MIB, bytes(MIB)), (4 * MIB - 7, b'1234567')])
    dst = make_file(tmp_path / 'vol-3.img', 4 * MIB)
    return src, dst


# --------------------------------------------------------------------------- real os-brick, local transport

@pytest.fixture
def os_brick():
    return pytest.importorskip('os_brick.initiator.connector', reason='os-brick is not installed: the local-transport module tests need it')


def test_local_copy_with_verify(os_brick, volumes, capsys, tmp_path):
    src, dst = volumes
    progress = tmp_path / 'progress.jsonl'
    args = dict(source=local(src), destination=local(dst), verify=True, progress_file=str(progress), lock_path=str(tmp_path / 'locks'))
    result, failed = run_module(k2_volume_copy.main, args, capsys)
    assert not failed, result
    assert result['changed'] is True
    assert content(dst) == content(src)
    assert result['size'] == 4 * MIB and result['source_size'] == 4 * MIB and result['destination_size'] == 4 * MIB
    assert result['bytes_copied'] + result['bytes_skipped_zero'] == 4 * MIB
    assert result['bytes_skipped_zero'] >= 2 * MIB
    digest = hashlib.sha256(content(src)).hexdigest()
    assert result['checksums'] == {'algorithm': 'sha256', 'source': digest, 'destination': digest}
    assert result['source_device'] == {'transport': 'local', 'target': src, 'path': src}
    assert result['destination_device']['path'] == dst
    assert result['progress'][-1]['phase'] == 'verify' and result['progress'][-1]['percent'] == 100.0
    assert progress.read_text().count('\n') == len(result['progress'])


def test_local_copy_runs_again_and_reports_changed(os_brick, volumes, capsys):
    src, dst = volumes
    args = dict(source=local(src), destination=local(dst), block_size='64KiB', lock_path=str(volumes[0]) + '.locks')
    first, failed = run_module(k2_volume_copy.main, args, capsys)
    assert not failed, first
    second, failed = run_module(k2_volume_copy.main, args, capsys)
    assert not failed, second
    # A copy is not idempotent: the module copies every time it runs.
    assert first['changed'] is True and second['changed'] is True
    assert second['bytes_copied'] == first['bytes_copied'] > 0
    assert second['block_size'] == 64 * 1024


def test_local_missing_device_fails_cleanly(os_brick, volumes, capsys, tmp_path):
    src, dummy = volumes
    args = dict(source=local(src), destination=local(tmp_path / 'vol-9.img'), lock_path=str(tmp_path / 'locks'))
    result, failed = run_module(k2_volume_copy.main, args, capsys)
    assert failed
    assert result['msg'] == ('The destination device %s cannot be read after attach. Check that the volume is mapped to this host and '
                             'the path exists.' % (tmp_path / 'vol-9.img'))
    assert any('No such file or directory' in line for line in result['os_brick_log'])
    assert result['changed'] is False


def test_local_destination_smaller(os_brick, volumes, capsys, tmp_path):
    src, dummy = volumes
    small = make_file(tmp_path / 'small.img', MIB)
    result, failed = run_module(k2_volume_copy.main, dict(source=local(src), destination=local(small), lock_path=str(tmp_path / 'locks')), capsys)
    assert failed
    assert 'holds 1048576 bytes, less than the 4194304 bytes to copy. Grow the destination volume' in result['msg']
    assert content(small) == bytes(MIB)
    # Refused before anything was written.
    assert result['changed'] is False


def test_real_iscsi_connector_gets_past_its_lock(os_brick, volumes, capsys, tmp_path):
    """The real iSCSI connector locks connect_volume in lock_path: without the set-up it would refuse to run at all.

    Nothing listens on 127.0.0.1:9, so the attach fails (at iscsiadm, or at the login when iscsiadm exists) and the
    destination is never attached.
    """
    dummy, dst = volumes
    source = {'driver_volume_type': 'iscsi', 'data': {'target_iqn': 'iqn.2009-01.com.kaminario:storage.k2.1', 'target_portal': '127.0.0.1:9',
                                                      'target_lun': 1, 'target_discovered': True}}
    locks = tmp_path / 'locks'
    result, failed = run_module(k2_volume_copy.main, dict(source=source, destination=local(dst), lock_path=str(locks), device_scan_attempts=1),
                                capsys)
    assert failed
    assert result['msg'].startswith('Could not attach the source (iscsi, 127.0.0.1:9 iqn.2009-01.com.kaminario:storage.k2.1 LUN 1): ')
    assert 'lock_path' not in result['msg']
    assert '\n' not in result['msg']
    assert 'os-brick-connect_volume' in os.listdir(str(locks))
    assert result['changed'] is False and result['destination_device']['path'] is None


def test_unwritable_lock_path(os_brick, volumes, capsys, tmp_path):
    src, dst = volumes
    blocker = make_file(tmp_path / 'not-a-dir', 1)
    result, failed = run_module(k2_volume_copy.main, dict(source=local(src), destination=local(dst), lock_path=blocker + '/locks'), capsys)
    assert failed
    assert result['msg'].startswith('Cannot create the os-brick lock directory %s/locks: ' % blocker)
    assert result['msg'].endswith('Set lock_path to a writable directory.')


# --------------------------------------------------------------------------- check mode and option errors (no os-brick needed)

def test_check_mode_attaches_and_copies_nothing(volumes, capsys, monkeypatch):
    src, dst = volumes
    monkeypatch.setattr(k2_copy, 'load_os_brick', lambda: pytest.fail('check mode must not load os-brick'))
    result, failed = run_module(k2_volume_copy.main, dict(source=local(src), destination=local(dst), verify=True, _ansible_check_mode=True), capsys)
    assert not failed, result
    assert result['changed'] is True
    assert content(dst) == bytes(4 * MIB)
    assert result['size'] == 4 * MIB and result['destination_size'] == 4 * MIB
    assert result['plan'] == {'size': 4 * MIB, 'block_size': MIB, 'dest_is_zeroed': True, 'verify': True, 'direct_io': 'auto', 'multipath': False,
                              'io_depth': 4}
    assert result['source_device'] == {'transport': 'local', 'target': src, 'path': None}
    assert 'bytes_copied' not in result


def test_check_mode_reports_a_small_destination(volumes, capsys, tmp_path):
    src, dummy = volumes
    small = make_file(tmp_path / 'small.img', MIB)
    result, failed = run_module(k2_volume_copy.main, dict(source=local(src), destination=local(small), _ansible_check_mode=True), capsys)
    assert failed
    assert result['msg'] == 'The destination holds 1 MiB, less than the 4 MiB to copy. Grow the destination volume first.'


def test_check_mode_iscsi_plans_without_sizes(capsys):
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST, size='1GiB', _ansible_check_mode=True), capsys)
    assert not failed, result
    assert result['size'] == 1024 * MIB
    assert result['destination_device'] == {'transport': 'iscsi', 'target': '192.0.2.11:3260 iqn.2009-01.com.kaminario:storage.k2.1 LUN 2',
                                            'path': None}
    assert 'destination_size' not in result


@pytest.mark.parametrize('extra, message', [
    (dict(block_size='1000'), "Invalid value '1000' for option 'block_size': not a whole number of KiB"),
    (dict(block_size='6KiB'), "Invalid value '6KiB' for option 'block_size': it must be a multiple of 4 KiB from 4 KiB to 64 MiB."),
    (dict(block_size='128MiB'), "it must be a multiple of 4 KiB from 4 KiB to 64 MiB."),
    (dict(size='-1GiB'), "Invalid value '-1GiB' for option 'size': sizes cannot be negative"),
    (dict(device_scan_attempts=0), "Invalid value 0 for option 'device_scan_attempts': give at least 1."),
    (dict(io_depth=0), "Invalid value 0 for option 'io_depth': give a number from 1 to 32."),
    (dict(io_depth=33), "Invalid value 33 for option 'io_depth': give a number from 1 to 32."),
    (dict(progress_interval=0), "Invalid value 0.0 for option 'progress_interval'"),
    (dict(enforce_multipath=True), 'enforce_multipath=true needs multipath=true.'),
    (dict(source={'driver_volume_type': 'nvme', 'data': {}}), "source.driver_volume_type must be one of fibre_channel, iscsi, local, not 'nvme'."),
    (dict(destination={'driver_volume_type': 'iscsi', 'data': {'target_portal': 'p'}}), 'destination.data lacks target_iqn, target_lun'),
])
def test_option_errors_name_the_option(capsys, extra, message):
    args = dict(source=ISCSI_SRC, destination=ISCSI_DST)
    args.update(extra)
    result, failed = run_module(k2_volume_copy.main, args, capsys)
    assert failed
    assert message.replace('not a whole number of KiB', 'K2 sizes are whole KiB') in result['msg'] or message in result['msg'], result['msg']
    assert result['changed'] is False


def test_same_volume_twice_is_refused(capsys):
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=dict(ISCSI_SRC)), capsys)
    assert failed
    assert result['msg'] == ('source and destination are the same volume (192.0.2.11:3260 iqn.2009-01.com.kaminario:storage.k2.1 LUN 1); '
                             'the copy would destroy it.')


def test_missing_os_brick(capsys, monkeypatch):
    monkeypatch.setattr(k2_copy, 'load_os_brick', lambda: (None, 'Traceback: No module named os_brick'))
    monkeypatch.setattr(k2_volume_copy, 'load_os_brick', k2_copy.load_os_brick)
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST), capsys)
    assert failed
    assert 'os-brick' in result['msg'] and 'to attach volumes on the copy host' in result['msg']


# --------------------------------------------------------------------------- attach and detach with a recording connector

ISCSI_SRC = {'driver_volume_type': 'iscsi', 'data': {'target_iqn': 'iqn.2009-01.com.kaminario:storage.k2.1', 'target_portal': '192.0.2.11:3260',
                                                     'target_lun': 1, 'target_discovered': True}}
ISCSI_DST = {'driver_volume_type': 'iscsi', 'data': {'target_iqn': 'iqn.2009-01.com.kaminario:storage.k2.1', 'target_portal': '192.0.2.11:3260',
                                                     'target_lun': 2, 'target_discovered': True}}


class Recorder(object):
    """A fake os-brick: LUN n of the iSCSI connection_info attaches as ``devices[n]``; every call is recorded."""

    def __init__(self, devices, fail_connect=None, fail_disconnect=()):
        self.devices = devices
        self.fail_connect = fail_connect
        self.fail_disconnect = fail_disconnect
        self.calls = []
        recorder = self

        class InitiatorConnector(object):
            @staticmethod
            def factory(protocol, root_helper, use_multipath=False, device_scan_attempts=3):
                recorder.calls.append(('factory', protocol, root_helper, use_multipath, device_scan_attempts))
                return Connector()

        class Connector(object):
            def connect_volume(self, data):
                lun = data['target_lun']
                recorder.calls.append(('connect', lun))
                if lun == recorder.fail_connect:
                    raise RuntimeError('iscsiadm: cannot log in to LUN %d' % lun)
                return {'type': 'block', 'path': recorder.devices[lun]}

            def check_valid_device(self, path, run_as_root):
                return os.path.exists(path)

            def disconnect_volume(self, data, device, force=False, ignore_errors=False):
                lun = data['target_lun']
                recorder.calls.append(('disconnect', lun, force))
                if lun in recorder.fail_disconnect:
                    raise RuntimeError('device %s is busy' % device['path'])

        self.InitiatorConnector = InitiatorConnector


@pytest.fixture
def brick(monkeypatch):
    def install(recorder):
        monkeypatch.setattr(k2_volume_copy, 'load_os_brick', lambda: (recorder, None))
        monkeypatch.setattr(k2_copy.Attacher, 'setup', lambda self: None)
        return recorder
    return install


def test_iscsi_copy_attaches_both_and_detaches_destination_first(volumes, capsys, brick):
    src, dst = volumes
    recorder = brick(Recorder({1: src, 2: dst}))
    args = dict(source=ISCSI_SRC, destination=ISCSI_DST, multipath=True, root_helper='sudo -n', device_scan_attempts=5)
    result, failed = run_module(k2_volume_copy.main, args, capsys)
    assert not failed, result
    assert content(dst) == content(src)
    assert recorder.calls == [('factory', 'ISCSI', 'sudo -n', True, 5), ('connect', 1),
                              ('factory', 'ISCSI', 'sudo -n', True, 5), ('connect', 2),
                              ('disconnect', 2, False), ('disconnect', 1, False)]
    assert result['source_device']['path'] == src and result['destination_device']['path'] == dst


def test_copy_failure_still_detaches_both_forced(volumes, capsys, brick, tmp_path):
    src, dummy = volumes
    small = make_file(tmp_path / 'small.img', MIB)
    recorder = brick(Recorder({1: src, 2: small}))
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST), capsys)
    assert failed
    assert 'less than the 4194304 bytes to copy' in result['msg']
    assert recorder.calls[-2:] == [('disconnect', 2, True), ('disconnect', 1, True)]
    assert result['destination_size'] == MIB
    assert result['changed'] is False
    assert 'wrote' not in result and 'errno' not in result


def test_failing_reader_mid_copy_detaches_both(volumes, capsys, brick, monkeypatch):
    src, dst = volumes
    recorder = brick(Recorder({1: src, 2: dst}))
    real = os.preadv
    src_stat = os.stat(src)

    def failing(fd, buffers, offset, *args):
        if offset >= MIB and os.path.samestat(os.fstat(fd), src_stat):
            raise OSError(5, 'Input/output error')
        return real(fd, buffers, offset, *args)

    monkeypatch.setattr(k2_copy.os, 'preadv', failing)
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST, block_size='256KiB'), capsys)
    assert failed
    # The second MiB of the source is a hole, never read: the first read past 1 MiB is at 2 MiB.
    assert result['msg'].startswith('Read from the source device %s failed at offset 2097152: Input/output error.' % src)
    assert result['failed_offset'] == 2 * MIB
    assert result['changed'] is True
    assert recorder.calls[-2:] == [('disconnect', 2, True), ('disconnect', 1, True)]


def test_second_attach_failure_detaches_the_first(volumes, capsys, brick):
    src, dst = volumes
    recorder = brick(Recorder({1: src, 2: dst}, fail_connect=2))
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST), capsys)
    assert failed
    assert result['msg'] == ('Could not attach the destination (iscsi, 192.0.2.11:3260 iqn.2009-01.com.kaminario:storage.k2.1 LUN 2): '
                             'iscsiadm: cannot log in to LUN 2.')
    assert recorder.calls[-1] == ('disconnect', 1, True)
    assert result['changed'] is False


def test_detach_failure_after_a_good_copy_fails_the_task(volumes, capsys, brick):
    src, dst = volumes
    brick(Recorder({1: src, 2: dst}, fail_disconnect=(2,)))
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST, verify=True), capsys)
    assert failed
    assert result['msg'].startswith('The copy finished (')
    assert 'checksums verified), but detaching failed: Could not detach the destination %s' % dst in result['msg']
    assert 'device %s is busy' % dst in result['msg'] and 'detach it by hand' in result['msg']
    assert result['changed'] is True
    assert content(dst) == content(src)
    assert result['checksums']['source'] == result['checksums']['destination']


def test_detach_failure_after_a_copy_failure_keeps_the_copy_error_first(volumes, capsys, brick, tmp_path):
    src, dummy = volumes
    small = make_file(tmp_path / 'small.img', MIB)
    recorder = brick(Recorder({1: src, 2: small}, fail_disconnect=(1, 2)))
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST), capsys)
    assert failed
    assert result['msg'].startswith('The destination %s holds 1048576 bytes, less than' % small)
    assert 'Detaching afterwards failed as well: Could not detach the destination' in result['msg']
    assert 'Could not detach the source' in result['msg']
    # Both were tried even though the first detach failed.
    assert recorder.calls[-2:] == [('disconnect', 2, True), ('disconnect', 1, True)]


def test_verify_mismatch_fails_with_both_checksums(volumes, capsys, brick, monkeypatch):
    src, dst = volumes
    brick(Recorder({1: src, 2: dst}))
    real_fsync = os.fsync

    def corrupting_fsync(fd):
        if os.path.samestat(os.fstat(fd), os.stat(dst)):
            os.pwrite(fd, b'\xff', 5)
        real_fsync(fd)

    monkeypatch.setattr(k2_copy.os, 'fsync', corrupting_fsync)
    result, failed = run_module(k2_volume_copy.main, dict(source=ISCSI_SRC, destination=ISCSI_DST, verify=True), capsys)
    assert failed
    assert result['msg'].startswith('Verification failed: the destination %s does not hold what was read from the source' % dst)
    assert result['checksums']['source'] == hashlib.sha256(content(src)).hexdigest()
    assert result['checksums']['destination'] == hashlib.sha256(content(dst)).hexdigest() != result['checksums']['source']
