#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k2_volume_copy
short_description: Copy the data of one K2 volume or view to another through a host, as Cinder does
version_added: 1.0.0
description:
  - Runs on the host that copies the data (use C(delegate_to) and C(become)), not on the array. It attaches the source and
    the destination with os-brick from the C(connection_info) that M(kaminario.k2.k2_host_mapping) returned for each of
    them (iSCSI or FC, with multipath when asked), copies the data, and detaches both again - always, whether the copy
    succeeded or failed.
  - This is how the Cinder K2 driver clones a volume and makes a volume from a snapshot (through a view); the module
    only moves data. Creating the destination volume, mapping both volumes to the copy host beforehand and unmapping
    them afterwards are the jobs of M(kaminario.k2.k2_volume), M(kaminario.k2.k2_snapshot) and
    M(kaminario.k2.k2_host_mapping).
  - "The copy is sparse: holes of the source are not read, and blocks that read as zeros are not written, because a new
    K2 volume reads zeros. See O(dest_is_zeroed) for a destination that may hold old data."
  - The module does not talk to the K2 REST API, so it takes none of the K2 connection options and is not part of the
    C(kaminario.k2.k2) action group.
  - A copy is not idempotent. Every run copies (unless in check mode) and reports C(changed=true).
author:
  - Kaminario K2 collection contributors (@kaminario-k2)
options:
  source:
    description:
      - "The C(connection_info) of the volume or view to read, exactly as M(kaminario.k2.k2_host_mapping) returns it for
        that volume (its C(connection_info) result is keyed by volume name), that is Cinder's shape
        C({driver_volume_type: ..., data: {...}})."
      - C(driver_volume_type=iscsi) needs C(data.target_iqn), C(data.target_portal) and C(data.target_lun); with
        O(multipath=true) the multipath variant (C(target_iqns), C(target_portals), C(target_luns)) logs in to every portal.
      - C(driver_volume_type=fibre_channel) needs C(data.target_wwn) and C(data.target_lun) (and usually
        C(data.initiator_target_map)).
      - C(driver_volume_type=local) with C(data.device_path) reads a block device or file that is already present on the
        host, through os-brick's local connector. This is the transport for labs and tests, where the path is the backing
        file of a k2sim volume (k2sim admin API C(backing)).
    type: dict
    required: true
  destination:
    description:
      - The C(connection_info) of the volume to write, in the same form as O(source).
      - It must hold at least O(size) bytes. Bytes past O(size) are left as they are.
    type: dict
    required: true
  size:
    description:
      - How many bytes to copy from the start of the source, as bytes or with a unit (C(10GiB)); a whole number of KiB.
      - Default is the whole source device.
    type: raw
  block_size:
    description:
      - Size of one read and write, as bytes or with a unit; a multiple of 4 KiB from 4 KiB to 64 MiB.
      - Zero detection works per block, so a smaller block finds more zeros and a larger one makes fewer system calls.
    type: raw
    default: 1MiB
  io_depth:
    description:
      - How many writes to the destination are in flight at once (writer threads); a reader thread reads ahead of them.
      - An array reached over iSCSI or FC completes a queue of requests much faster than one request at a time,
        which is how dd (and so Cinder) copies; V(1) copies one block at a time as dd does.
    type: int
    default: 4
  dest_is_zeroed:
    description:
      - V(true) (the default) means the destination already reads zeros, as a volume just created on K2 does, so zero
        blocks and holes of the source are skipped.
      - Set V(false) when the destination may hold old data (an existing volume being overwritten). Then the ranges the
        source has zeros in are zeroed on the destination too (C(BLKZEROOUT), which arrays can offload, on a block
        device; zero writes on a file), and reported in RV(bytes_zeroed).
    type: bool
    default: true
  direct_io:
    description:
      - V(auto) uses direct I/O (C(O_DIRECT), bypassing the page cache, as Cinder's dd does) on block devices that accept
        it, and buffered I/O on regular files (where it is faster) and on devices that refuse direct I/O.
      - V(always) uses direct I/O on both sides, files included, and fails when a side refuses it (for example tmpfs on
        older kernels).
      - V(never) uses buffered I/O.
      - Buffered copies start writing each 32 MiB back to the device as soon as it is copied and drop the copied data
        from the page cache, so a large copy neither waits for one huge flush at the end nor pushes other data out of
        the cache.
      - The destination is flushed (fsync) before the copy counts as done, in every mode.
    type: str
    choices: [auto, always, never]
    default: auto
  verify:
    description:
      - Compare SHA-256 checksums of what was read from the source and of the destination, read back after the copy
        (bypassing the page cache). A mismatch fails the task; both checksums are returned.
      - The source is hashed while it is copied, so verification costs one extra read of the destination.
    type: bool
    default: false
  multipath:
    description:
      - Attach through multipath (os-brick C(use_multipath)), as Cinder does with C(use_multipath_for_image_xfer).
      - Ask M(kaminario.k2.k2_host_mapping) for the multipath C(connection_info) too (its O(kaminario.k2.k2_host_mapping#module:multipath) option).
    type: bool
    default: false
  enforce_multipath:
    description:
      - Fail the attach when multipath cannot be used, as Cinder's C(enforce_multipath_for_image_xfer). Only for iSCSI
        and FC, with O(multipath=true).
    type: bool
    default: false
  device_scan_attempts:
    description:
      - How many times os-brick rescans for the device of an iSCSI or FC volume before giving up (Cinder's
        C(num_volume_device_scan_tries)).
    type: int
    default: 3
  root_helper:
    description:
      - Command os-brick prefixes to C(privsep-helper) to gain root when the module does not run as root, as Cinder's
        C(root_helper) (C(sudo cinder-rootwrap ...)).
      - Attaching iSCSI and FC devices needs root. Run the task with C(become=true); as root, os-brick's privileged
        calls run in the module process and this option is not used.
    type: str
    default: sudo
  lock_path:
    description:
      - Directory for os-brick's file locks, which serialise attaches and detaches on the copy host (os-brick's
        C([os_brick] lock_path)). Created if missing.
      - When Nova or Cinder run on the copy host too, give their os-brick lock directory, so that their attaches and
        this module's never interleave.
    type: path
    default: /var/lock/os-brick
  progress_file:
    description:
      - File on the copy host to which a JSON line is appended every O(progress_interval) seconds while the copy runs
        (C(phase), C(elapsed_s), C(bytes_done), C(percent), C(mib_s)). An Ansible module cannot print while it runs;
        follow this file (C(tail -f)) to watch a long copy, for example one started with C(async).
      - The same samples are returned in RV(progress).
    type: path
  progress_interval:
    description:
      - Seconds between two progress samples.
    type: float
    default: 10
attributes:
  check_mode:
    description:
      - Validates the options and the C(connection_info) of both sides and returns the plan, without attaching anything.
        For the C(local) transport it also checks that both paths exist and that the sizes fit, since that needs no
        attach.
    support: full
  diff_mode:
    description: Copies data; there is nothing to show as a diff.
    support: none
  platform:
    description: Runs on a Linux host with os-brick, the one C(delegate_to) names.
    support: full
    platforms: posix
notes:
  - The module runs on the copy host, which needs os-brick (C(pip install os-brick)) and, for iSCSI, C(open-iscsi)
    (C(iscsiadm)); for multipath, C(multipath-tools). That host must be the host the volumes are mapped to.
  - Progress is only visible in RV(progress) at the end and in O(progress_file) while the copy runs.
  - Throughput goals and measurements against C(dd) and C(cp) are in C(tests/bench/copy_bench.py).
requirements:
  - os-brick (Python library) on the copy host, which needs Python 3.9 or later there
seealso:
  - module: kaminario.k2.k2_host_mapping
    description: Map the volumes to the copy host and get their C(connection_info).
  - module: kaminario.k2.k2_volume
    description: Create the destination volume.
  - module: kaminario.k2.k2_snapshot
    description: Take a snapshot and a view of it to copy from a point in time.
'''

EXAMPLES = r'''
# Clone a volume through a copy host, the way Cinder's create_cloned_volume does. The K2 tasks run on the
# controller with the connection options set by module_defaults (group/kaminario.k2.k2); the copy runs on copy01.
- name: Create the destination with the size of the source
  kaminario.k2.k2_volume:
    name: db01-data-clone
    size: 100GiB

- name: Map both volumes to the copy host
  kaminario.k2.k2_host_mapping:
    host: copy01
    iqns: [iqn.1994-05.com.redhat:copy01]
    volumes:
      - name: db01-data
      - name: db01-data-clone
  register: mapped

- name: Copy and verify; os-brick attaches both over iSCSI and detaches them at the end
  kaminario.k2.k2_volume_copy:
    source: "{{ mapped.connection_info['db01-data'] }}"
    destination: "{{ mapped.connection_info['db01-data-clone'] }}"
    verify: true
    progress_file: /var/tmp/db01-data-clone.progress
  delegate_to: copy01.example.com
  become: true
  register: copied

- name: Show the figures
  ansible.builtin.debug:
    msg: >-
      {{ copied.bytes_copied | human_readable }} copied, {{ copied.bytes_skipped_zero | human_readable }} of zeros
      skipped, {{ copied.throughput_mib_s }} MiB/s, sha256 {{ copied.checksums.destination }}

- name: Unmap both from the copy host
  kaminario.k2.k2_host_mapping:
    host: copy01
    volumes:
      - name: db01-data
      - name: db01-data-clone
    state: absent

- name: Map a view and an existing volume to an FC copy host
  kaminario.k2.k2_host_mapping:
    host: copy02
    wwpns: ["21:00:00:24:ff:4c:aa:01", "21:00:00:24:ff:4c:aa:02"]
    volumes:
      - name: app01-vg:golden-view
      - name: app01-data
  register: fc_mapped

- name: Overwrite the existing volume (not known to read zeros) with the view, multipath over FC
  kaminario.k2.k2_volume_copy:
    source: "{{ fc_mapped.connection_info['app01-vg:golden-view'] }}"
    destination: "{{ fc_mapped.connection_info['app01-data'] }}"
    dest_is_zeroed: false
    multipath: true
    block_size: 4MiB
  delegate_to: copy02.example.com
  become: true

- name: Lab copy between two k2sim volumes through their backing files (local transport)
  kaminario.k2.k2_volume_copy:
    source:
      driver_volume_type: local
      data:
        device_path: /var/tmp/k2sim/primary/data/vol-2.img
    destination:
      driver_volume_type: local
      data:
        device_path: /var/tmp/k2sim/primary/data/vol-3.img
    size: 1GiB
    verify: true
'''

RETURN = r'''
source_device:
  description: What was attached for the source (in check mode, what would be).
  returned: always
  type: dict
  contains:
    transport:
      description: V(iscsi), V(fibre_channel) or V(local).
      type: str
    target:
      description: Portal, IQN and LUN; target WWNs and LUN; or the path.
      type: str
    path:
      description: The device os-brick attached (null in check mode).
      type: str
  sample: {transport: iscsi, target: "192.0.2.11:3260 iqn.2009-01.com.kaminario:storage.k2.54645 LUN 1", path: /dev/sdc}
destination_device:
  description: What was attached for the destination, as RV(source_device).
  returned: always
  type: dict
  sample: {transport: iscsi, target: "192.0.2.11:3260 iqn.2009-01.com.kaminario:storage.k2.54645 LUN 2", path: /dev/sdd}
size:
  description: Bytes copied from the start of the source (copied or skipped as zeros); null in check mode when unknown.
  returned: always
  type: int
  sample: 107374182400
source_size:
  description: Size of the source device in bytes.
  returned: when the devices were attached, or in check mode for the local transport
  type: int
  sample: 107374182400
destination_size:
  description: Size of the destination device in bytes.
  returned: when the devices were attached, or in check mode for the local transport
  type: int
  sample: 107374182400
block_size:
  description: Bytes per read and write.
  returned: always
  type: int
  sample: 1048576
bytes_copied:
  description: Bytes of data written to the destination.
  returned: success
  type: int
  sample: 53687091200
bytes_skipped_zero:
  description: Bytes not written because the source had zeros or holes there and the destination reads zeros.
  returned: success
  type: int
  sample: 53687091200
bytes_zeroed:
  description: Bytes zeroed on the destination because the source had zeros there and O(dest_is_zeroed=false).
  returned: success
  type: int
  sample: 0
duration_s:
  description: Seconds the copy took, flush included, verification and attach excluded.
  returned: success
  type: float
  sample: 151.2
throughput_mib_s:
  description: RV(size) in MiB divided by RV(duration_s); zeros count, since skipping them is the point.
  returned: success
  type: float
  sample: 677.3
io_depth:
  description: Writes that were in flight at once.
  returned: success
  type: int
  sample: 4
direct_io:
  description: Whether direct I/O was used on each side.
  returned: success
  type: dict
  sample: {source: true, destination: true}
checksums:
  description: SHA-256 of the copied range as read from the source and as read back from the destination.
  returned: when O(verify=true) and the copy finished (also when they differ)
  type: dict
  sample:
    algorithm: sha256
    source: 3411afec145e4ff41c7ad74d8bee5880a1a6c7de27baaa99d98545f99f7e3532
    destination: 3411afec145e4ff41c7ad74d8bee5880a1a6c7de27baaa99d98545f99f7e3532
verify_duration_s:
  description: Seconds spent reading the destination back for the verification.
  returned: when O(verify=true)
  type: float
  sample: 80.4
progress:
  description:
    - Progress samples taken every O(progress_interval) seconds and at the end of each phase (at most 120; older ones
      are thinned out), the same lines as in O(progress_file).
  returned: success
  type: list
  elements: dict
  sample:
    - {phase: copy, elapsed_s: 10.0, bytes_done: 7046430720, percent: 6.6, mib_s: 672.0}
    - {phase: copy, elapsed_s: 151.2, bytes_done: 107374182400, percent: 100.0, mib_s: 677.3}
notes:
  description: Remarks about how the copy ran, for example a fall-back from direct to buffered I/O.
  returned: success
  type: list
  elements: str
  sample: []
os_brick_log:
  description: Warnings and errors os-brick logged while attaching and detaching.
  returned: when the module attached something
  type: list
  elements: str
  sample: []
failed_offset:
  description: Byte offset at which a read or write failed.
  returned: when the copy failed on a read or a write
  type: int
  sample: 3145728
plan:
  description: In check mode, what the module would do.
  returned: check mode
  type: dict
  sample: {size: 107374182400, block_size: 1048576, dest_is_zeroed: true, verify: true, direct_io: auto, multipath: false,
           io_depth: 4}
'''

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kaminario.k2.plugins.module_utils.k2_copy import (
    ALIGN, MAX_BLOCK_SIZE, MAX_IO_DEPTH, MIN_BLOCK_SIZE, Attacher, K2CopyError, copy_device, describe_target, load_os_brick,
    validate_connection_info,
)
from ansible_collections.kaminario.k2.plugins.module_utils.k2_sizes import K2SizeError, format_bytes, parse_size


def argument_spec():
    return dict(
        source=dict(type='dict', required=True),
        destination=dict(type='dict', required=True),
        size=dict(type='raw'),
        block_size=dict(type='raw', default='1MiB'),
        io_depth=dict(type='int', default=4),
        dest_is_zeroed=dict(type='bool', default=True),
        direct_io=dict(type='str', default='auto', choices=['auto', 'always', 'never']),
        verify=dict(type='bool', default=False),
        multipath=dict(type='bool', default=False),
        enforce_multipath=dict(type='bool', default=False),
        device_scan_attempts=dict(type='int', default=3),
        root_helper=dict(type='str', default='sudo'),
        lock_path=dict(type='path', default='/var/lock/os-brick'),
        progress_file=dict(type='path'),
        progress_interval=dict(type='float', default=10.0),
    )


def read_options(params):
    """Validate what AnsibleModule cannot; return ``(size, block_size, {role: (transport, data)})``. Raises K2CopyError."""
    try:
        size = parse_size(params['size'], 'size') if params['size'] is not None else None
        block_size = parse_size(params['block_size'], 'block_size')
    except K2SizeError as exc:
        raise K2CopyError(str(exc))
    if block_size % ALIGN or not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
        raise K2CopyError("Invalid value %r for option 'block_size': it must be a multiple of 4 KiB from %s to %s."
                          % (params['block_size'], format_bytes(MIN_BLOCK_SIZE), format_bytes(MAX_BLOCK_SIZE)))
    if not 1 <= params['io_depth'] <= MAX_IO_DEPTH:
        raise K2CopyError("Invalid value %d for option 'io_depth': give a number from 1 to %d." % (params['io_depth'], MAX_IO_DEPTH))
    if params['device_scan_attempts'] < 1:
        raise K2CopyError("Invalid value %d for option 'device_scan_attempts': give at least 1." % params['device_scan_attempts'])
    if not 0 < params['progress_interval'] < float('inf'):
        raise K2CopyError("Invalid value %s for option 'progress_interval': give a number of seconds above 0." % params['progress_interval'])
    if params['enforce_multipath'] and not params['multipath']:
        raise K2CopyError('enforce_multipath=true needs multipath=true.')
    sides = dict((role, validate_connection_info(params[role], role)) for role in ('source', 'destination'))
    if sides['source'] == sides['destination']:
        raise K2CopyError('source and destination are the same volume (%s); the copy would destroy it.'
                          % describe_target(*sides['source']))
    return size, block_size, sides


def plan_only(params, size, block_size, sides):
    """Check mode: the plan; for the local transport the sizes too (reading a file's size attaches nothing)."""
    result = dict(changed=True, size=size, block_size=block_size)
    for role, (transport, data) in sides.items():
        result['%s_device' % role] = {'transport': transport, 'target': describe_target(transport, data), 'path': None}
    if all(transport == 'local' for transport, dummy in sides.values()):
        sizes = {}
        for role, (transport, data) in sides.items():
            path = data['device_path']
            try:
                with open(path, 'rb') as handle:
                    sizes[role] = handle.seek(0, os.SEEK_END)
            except (IOError, OSError) as exc:
                raise K2CopyError('Cannot open the %s device %s: %s. Check %s.data.device_path.' % (role, path, exc.strerror, role))
        copy_size = size if size is not None else sizes['source']
        if copy_size > sizes['source']:
            raise K2CopyError('size is %s, but the source holds only %s.' % (format_bytes(copy_size), format_bytes(sizes['source'])))
        if sizes['destination'] < copy_size:
            raise K2CopyError('The destination holds %s, less than the %s to copy. Grow the destination volume first.'
                              % (format_bytes(sizes['destination']), format_bytes(copy_size)))
        result.update(size=copy_size, source_size=sizes['source'], destination_size=sizes['destination'])
    result['plan'] = dict(size=result['size'], block_size=block_size, dest_is_zeroed=params['dest_is_zeroed'],
                          verify=params['verify'], direct_io=params['direct_io'], multipath=params['multipath'], io_depth=params['io_depth'])
    return result


def attach_copy_detach(attacher, params, size, block_size, sides):
    """Attach both sides, copy, and detach whatever was attached whatever happens. Returns ``(result, error message)``."""
    attached = []
    result = dict(changed=False, size=size, block_size=block_size)
    for role, (transport, data) in sides.items():
        result['%s_device' % role] = {'transport': transport, 'target': describe_target(transport, data), 'path': None}
    error = None
    try:
        for role in ('source', 'destination'):
            attachment = attacher.attach(params[role], role)
            attached.append(attachment)
            result['%s_device' % role] = attachment.describe()
        # From here on the destination may be written.
        result['changed'] = True
        result.update(copy_device(attached[0].path, attached[1].path, size=size, block_size=block_size,
                                  dest_is_zeroed=params['dest_is_zeroed'], direct_io=params['direct_io'], verify=params['verify'],
                                  progress_interval=params['progress_interval'], progress_file=params['progress_file'],
                                  io_depth=params['io_depth']))
    except K2CopyError as exc:
        error = exc.message
        if not exc.details.get('wrote', True):
            result['changed'] = False
        result.update((key, value) for key, value in exc.details.items() if key not in ('errno', 'wrote'))
    except Exception as exc:  # pylint: disable=broad-except
        # Not foreseen (os-brick raises many types): still detach below, and fail with the traceback.
        error = 'Unexpected error while copying: %s: %s' % (type(exc).__name__, exc)
        result['exception'] = traceback.format_exc()
    finally:
        # Destination first, so its data is flushed before the source goes; forced after a failure, as Cinder cleans up.
        detach_errors = []
        for attachment in reversed(attached):
            try:
                attacher.detach(attachment, force=error is not None)
            except K2CopyError as exc:
                detach_errors.append(exc.message)
        result['os_brick_log'] = attacher.log.messages
    if detach_errors:
        still = ' '.join(detach_errors) + ' The device may still be attached on this host; detach it by hand (iscsiadm --logout, multipath -f).'
        if error:
            error = '%s Detaching afterwards failed as well: %s' % (error, still)
        else:
            error = 'The copy finished (%s of data, checksums %s), but detaching failed: %s' % (
                format_bytes(result.get('bytes_copied', 0)), 'verified' if result.get('checksums') else 'not verified', still)
    return result, error


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        size, block_size, sides = read_options(module.params)
        if module.check_mode:
            module.exit_json(**plan_only(module.params, size, block_size, sides))
    except K2CopyError as exc:
        module.fail_json(msg=exc.message, changed=False)

    connector, import_error = load_os_brick()
    if connector is None:
        module.fail_json(msg=missing_required_lib('os-brick', reason='to attach volumes on the copy host'), exception=import_error)
    attacher = Attacher(connector.InitiatorConnector.factory, root_helper=module.params['root_helper'],
                        multipath=module.params['multipath'], enforce_multipath=module.params['enforce_multipath'],
                        device_scan_attempts=module.params['device_scan_attempts'], lock_path=module.params['lock_path'])
    try:
        attacher.setup()
    except K2CopyError as exc:
        module.fail_json(msg=exc.message)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='Could not set up os-brick with root_helper %r: %s. Run the task with become=true.'
                         % (module.params['root_helper'], exc))

    result, error = attach_copy_detach(attacher, module.params, size, block_size, sides)
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
