# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
# SPDX-License-Identifier: BSD-2-Clause

"""Size parsing and conversion for the K2 REST API.

The K2 API expresses every capacity in KiB (1024 bytes). Users write sizes
the way they think about them, so this module accepts:

* an integer: a number of **bytes** (``10737418240``);
* a string holding a number and an optional unit: ``"10GiB"``, ``"10 GiB"``,
  ``"1.5TiB"``, ``"500GB"``; a string without a unit is bytes.

Units (case-insensitive):

* binary: ``KiB MiB GiB TiB PiB``, and the short forms ``K M G T P``, which are
  **binary** too (``10G`` is 10 GiB), as Linux tools (lvm, dd, parted) read them;
* decimal: ``KB MB GB TB PB`` (``1GB`` is 1,000,000,000 bytes);
* ``B`` for bytes.

The result must be a positive whole number of KiB: a size that is zero,
negative, not a whole KiB, malformed, or beyond ``MAX_SIZE_BYTES`` (a guard
against typos such as ``10000TiB``) raises ``K2SizeError`` with a message that
names the option and the way to fix it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

KIB = 1024
MIB = KIB ** 2
GIB = KIB ** 3
TIB = KIB ** 4
PIB = KIB ** 5

# Upper bound for one size value. K2 arrays hold at most a few hundred TiB, so
# anything above 16 PiB is treated as a typo rather than sent to the array.
MAX_SIZE_BYTES = 16 * PIB

# Keys are lower-case; lookup is case-insensitive.
UNIT_BYTES = {
    '': 1,
    'b': 1,
    'k': KIB, 'kib': KIB, 'kb': 10 ** 3,
    'm': MIB, 'mib': MIB, 'mb': 10 ** 6,
    'g': GIB, 'gib': GIB, 'gb': 10 ** 9,
    't': TIB, 'tib': TIB, 'tb': 10 ** 12,
    'p': PIB, 'pib': PIB, 'pb': 10 ** 15,
}

_SIZE_RE = re.compile(r'^\s*(?P<number>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<unit>[a-zA-Z]*)\s*$')

# Formatting ladder for human-readable messages (binary units, as the API uses).
_FORMAT_UNITS = (('PiB', PIB), ('TiB', TIB), ('GiB', GIB), ('MiB', MIB), ('KiB', KIB))


class K2SizeError(ValueError):
    """A size value that cannot be used; the message names the option."""


def _fail(option, value, problem, fix):
    return K2SizeError("Invalid value %r for option '%s': %s. %s" % (value, option, problem, fix))


def parse_size(value, option='size'):
    """Return ``value`` as a whole number of bytes.

    ``value`` is an int (bytes) or a string ``"<number>[ ]<unit>"`` (see the
    module docstring). ``option`` is the user-facing option name quoted in
    error messages. The result is always a positive multiple of 1024 that is
    at most ``MAX_SIZE_BYTES``.
    """
    if isinstance(value, bool) or value is None:
        raise _fail(option, value, 'expected a size such as 10GiB or a number of bytes',
                    'Give a whole number of bytes or a number with a unit (KiB, MiB, GiB, TiB, or KB, MB, GB, TB).')
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        # YAML turns "1.5" into a float: a fractional number of bytes is never meant.
        if value != int(value):
            raise _fail(option, value, 'a fractional number of bytes',
                        'Add a unit (for example 1.5GiB) or give whole bytes.')
        amount = Decimal(int(value))
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith('-'):
            raise _fail(option, value, 'sizes cannot be negative', 'Give a positive size such as 10GiB.')
        match = _SIZE_RE.match(stripped)
        if not match:
            raise _fail(option, value, 'not a number followed by an optional unit',
                        'Write it like 10GiB, 500 GB, 1.5TiB or 10737418240 (bytes).')
        unit = match.group('unit').lower()
        if unit not in UNIT_BYTES:
            raise _fail(option, value, "unknown unit '%s'" % match.group('unit'),
                        'Use B, KiB, MiB, GiB, TiB, PiB (K, M, G, T, P are binary too) or KB, MB, GB, TB, PB (decimal).')
        try:
            amount = Decimal(match.group('number')) * UNIT_BYTES[unit]
        except InvalidOperation:  # pragma: no cover - the regex only lets digits through
            raise _fail(option, value, 'not a number', 'Write it like 10GiB.')
    else:
        raise _fail(option, value, 'expected a string or an integer', 'Write it like 10GiB or give whole bytes.')

    if amount < 0:
        raise _fail(option, value, 'sizes cannot be negative', 'Give a positive size such as 10GiB.')
    if amount == 0:
        raise _fail(option, value, 'the size is zero', 'Give a positive size such as 10GiB.')
    if amount != amount.to_integral_value():
        raise _fail(option, value, 'it is not a whole number of bytes', 'Use a smaller unit or fewer decimals.')
    if amount > MAX_SIZE_BYTES:
        raise _fail(option, value, 'it is larger than %s, which is surely a typo' % format_bytes(MAX_SIZE_BYTES),
                    'Check the unit (GiB versus TiB) and the number of zeros.')
    size = int(amount)
    if size % KIB:
        raise _fail(option, value, 'K2 sizes are whole KiB and %d bytes is not a multiple of 1024' % size,
                    'Round it to a whole number of KiB, for example %d bytes.' % ((size // KIB + 1) * KIB))
    return size


def size_to_kib(value, option='size'):
    """Parse a user size (see ``parse_size``) and return it in KiB, the API unit."""
    return parse_size(value, option) // KIB


def bytes_to_kib(size_bytes, option='size'):
    """Convert a byte count to KiB, refusing anything that is not a whole KiB."""
    return size_to_kib(size_bytes, option)


def kib_to_bytes(kib):
    """Convert an API size in KiB to bytes."""
    return int(kib) * KIB


def kib_to_gib_ceil(kib):
    """Whole GiB, rounded up, as Cinder's manage_existing_get_size reports a volume size."""
    kib = int(kib)
    return -(-kib // MIB)


def format_bytes(size_bytes):
    """Human form for messages: the largest binary unit that keeps a short number.

    Exact values print without decimals (``10 GiB``); others keep up to two
    (``1.5 GiB``, ``1023.99 MiB``). Below 1 KiB the value is printed in bytes.
    """
    size_bytes = int(size_bytes)
    for name, factor in _FORMAT_UNITS:
        if abs(size_bytes) >= factor:
            quotient = Decimal(size_bytes) / Decimal(factor)
            if quotient == quotient.to_integral_value():
                return '%d %s' % (int(quotient), name)
            text = ('%.2f' % quotient).rstrip('0').rstrip('.')
            return '%s %s' % (text, name)
    return '%d B' % size_bytes


def format_kib(kib):
    """Human form for an API size in KiB."""
    return format_bytes(kib_to_bytes(kib))
