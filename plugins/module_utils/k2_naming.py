# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
# SPDX-License-Identifier: BSD-2-Clause

"""Initiator host naming and initiator (IQN, WWN) helpers.

Host names follow the rule of the OpenStack Cinder K2 driver, so that hosts
created by this collection and by Cinder for the same server are the same K2
object:

1. start from the iSCSI initiator IQN, or when there is none the first FC node
   WWN (WWNN), and reverse it character by character;
2. when ``unique_fqdn_network`` is set and a host FQDN is known, use the FQDN
   instead;
3. keep the first 32 characters, then replace every character outside
   ``[0-9a-zA-Z_-]`` with ``_``.

WWNs are handled in two spellings: bare lower-case hex (``5001438001234567``,
what os-brick reports and Cinder's naming uses) and the colon form K2 stores
in ``host_fc_ports.pwwn`` (``50:01:43:80:01:23:45:67``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

HOST_NAME_MAX_LENGTH = 32
_NOT_HOST_NAME_CHAR = re.compile(r'[^0-9a-zA-Z_-]')
_WWN_SEPARATORS = re.compile(r'[:\-\s]')
_HEX16 = re.compile(r'^[0-9a-f]{16}$')
# RFC 3720 section 3.2.6.3: iqn.<yyyy-mm>.<reversed domain>[:<unique name>]
_IQN = re.compile(r'^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[^\s]+)?$')
_EUI = re.compile(r'^eui\.[0-9a-f]{16}$')
_NAA = re.compile(r'^naa\.([0-9a-f]{16}|[0-9a-f]{32})$')
ISCSI_NAME_MAX_LENGTH = 223


class K2NamingError(ValueError):
    """An initiator or host name that cannot be used; the message says which and why."""


def sanitize_host_name(name):
    """Apply the Cinder rule's last step: first 32 characters, then ``_`` for anything outside [0-9a-zA-Z_-]."""
    return _NOT_HOST_NAME_CHAR.sub('_', name[:HOST_NAME_MAX_LENGTH])


def host_name_from_connector(connector, unique_fqdn_network=False):
    """Return the K2 host name Cinder derives from an os-brick ``connector`` dict.

    This mirrors Cinder's semantics on the dict exactly: a present
    ``initiator`` key wins even when empty; otherwise ``wwnns[0]``; the
    ``host`` key is used only when ``unique_fqdn_network`` is true and the key
    is present. Unlike Cinder, a ``None`` value is treated as a missing key
    (Cinder would crash on it). An empty result raises ``K2NamingError``.
    """
    if connector.get('initiator') is not None:
        base = connector['initiator']
    else:
        wwnns = connector.get('wwnns') or ['']
        base = wwnns[0] or ''
    name = base[::-1]
    if unique_fqdn_network and connector.get('host') is not None:
        name = connector['host']
    name = sanitize_host_name(name)
    if not name:
        raise K2NamingError('Cannot derive a K2 host name: no initiator IQN, FC node WWN or host FQDN was given. '
                            'Set initiator (an IQN or WWNN), or host_fqdn with unique_fqdn_network, or name the host explicitly.')
    return name


def initiator_host_name(initiator=None, wwnns=None, host_fqdn=None, unique_fqdn_network=False):
    """Return the K2 host name for a server, by the Cinder rule.

    ``initiator``: the iSCSI IQN, or a WWNN (any spelling: it is normalised to
    bare lower-case hex as os-brick reports it, so the name matches Cinder's).
    ``wwnns``: a list of FC node WWNs (the first is used when there is no
    ``initiator``). ``host_fqdn``: used instead when ``unique_fqdn_network``.
    Options left as ``None`` count as absent.
    """
    connector = {}
    if initiator is not None:
        connector['initiator'] = wwn_to_hex(initiator) if is_valid_wwn(initiator) else initiator
    if wwnns:
        connector['wwnns'] = [wwn_to_hex(w) for w in wwnns]
    if host_fqdn is not None:
        connector['host'] = host_fqdn
    return host_name_from_connector(connector, unique_fqdn_network=unique_fqdn_network)


def _wwn_digits(value):
    if not isinstance(value, str):
        return None
    digits = _WWN_SEPARATORS.sub('', value.strip().lower())
    if digits.startswith('0x'):
        digits = digits[2:]
    return digits if _HEX16.match(digits) else None


def is_valid_wwn(value):
    """True for a 64-bit WWN in bare hex, colon or dash form, any case, optional ``0x``."""
    return _wwn_digits(value) is not None


def wwn_to_hex(value, option='wwpns'):
    """Return a WWN as 16 lower-case hex digits (``5001438001234567``)."""
    digits = _wwn_digits(value)
    if digits is None:
        raise K2NamingError("Invalid WWN %r in option '%s': a WWN is 16 hex digits, written bare "
                            "(5001438001234567) or with colons (50:01:43:80:01:23:45:67)." % (value, option))
    return digits


def wwn_to_colon(value, option='wwpns'):
    """Return a WWN in the colon form K2 stores (``50:01:43:80:01:23:45:67``)."""
    digits = wwn_to_hex(value, option)
    return ':'.join(digits[i:i + 2] for i in range(0, 16, 2))


def iscsi_name_key(value):
    """Comparison key for iSCSI names: they are case-insensitive (RFC 3722), so lower-case and strip."""
    return value.strip().lower()


def is_valid_iscsi_name(value):
    """True for an iSCSI name in ``iqn.``, ``eui.`` or ``naa.`` format (RFC 3720/3980), at most 223 bytes."""
    if not isinstance(value, str):
        return False
    key = iscsi_name_key(value)
    if not key or len(key.encode('utf-8')) > ISCSI_NAME_MAX_LENGTH:
        return False
    return bool(_IQN.match(key) or _EUI.match(key) or _NAA.match(key))


def validate_iqn(value, option='iqns'):
    """Return the IQN stripped of surrounding spaces, or raise ``K2NamingError`` naming the option."""
    if not is_valid_iscsi_name(value):
        raise K2NamingError("Invalid iSCSI name %r in option '%s': expected iqn.YYYY-MM.reversed.domain[:name] "
                            "(for example iqn.1993-08.org.debian:01:12aa12aa12aa), or an eui./naa. name." % (value, option))
    return value.strip()
