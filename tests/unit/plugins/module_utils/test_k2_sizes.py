# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from hypothesis import given, strategies as st

from ansible_collections.kaminario.k2.plugins.module_utils.k2_sizes import (
    K2SizeError, KIB, MIB, GIB, TIB, MAX_SIZE_BYTES, UNIT_BYTES,
    parse_size, size_to_kib, bytes_to_kib, kib_to_bytes, kib_to_gib_ceil, format_bytes, format_kib,
)

BINARY = {'KiB': KIB, 'MiB': MIB, 'GiB': GIB, 'TiB': TIB}
SHORT = {'K': 'KiB', 'M': 'MiB', 'G': 'GiB', 'T': 'TiB'}
DECIMAL = {'KB': 10 ** 3, 'MB': 10 ** 6, 'GB': 10 ** 9, 'TB': 10 ** 12}


@pytest.mark.parametrize('value, expected', [
    (10737418240, 10 * GIB),
    ('10737418240', 10 * GIB),
    ('10GiB', 10 * GIB),
    ('10 GiB', 10 * GIB),
    (' 10 gib ', 10 * GIB),
    ('10G', 10 * GIB),
    ('1.5TiB', 3 * TIB // 2),
    ('.5GiB', GIB // 2),
    ('500GB', 500 * 10 ** 9),
    ('1KB', None),
    ('4KiB', 4 * KIB),
    ('2048B', 2 * KIB),
    (2048.0, 2 * KIB),
])
def test_parse_size_examples(value, expected):
    if expected is None:
        with pytest.raises(K2SizeError, match='not a multiple of 1024'):
            parse_size(value)
    else:
        assert parse_size(value) == expected


@pytest.mark.parametrize('value, problem', [
    ('-1GiB', 'negative'),
    (-1024, 'negative'),
    (0, 'zero'),
    ('0GiB', 'zero'),
    ('1000', 'multiple of 1024'),
    ('1.3KiB', 'whole number of bytes'),
    ('10 GiBs', 'unknown unit'),
    ('10Gb/s', 'not a number'),
    ('GiB', 'not a number'),
    ('1,5GiB', 'not a number'),
    ('', 'not a number'),
    ('17PiB', 'typo'),
    (10.5, 'fractional'),
    (True, 'expected a size'),
    (None, 'expected a size'),
    ([1], 'expected a string'),
])
def test_parse_size_errors_name_the_option_and_the_problem(value, problem):
    with pytest.raises(K2SizeError) as caught:
        parse_size(value, option='volumes[3].size')
    assert "option 'volumes[3].size'" in str(caught.value)
    assert problem in str(caught.value)


def test_size_error_suggests_the_next_whole_kib():
    with pytest.raises(K2SizeError, match='for example 2048 bytes'):
        parse_size(1500)


def test_conversions():
    assert size_to_kib('1GiB') == 1048576
    assert bytes_to_kib(GIB) == 1048576
    assert kib_to_bytes(1048576) == GIB
    assert kib_to_gib_ceil(1048576) == 1 and kib_to_gib_ceil(1048577) == 2 and kib_to_gib_ceil(1) == 1
    assert format_bytes(10 * GIB) == '10 GiB'
    assert format_bytes(3 * TIB // 2) == '1.5 TiB'
    assert format_bytes(1000) == '1000 B'
    assert format_kib(1048576) == '1 GiB'


@given(st.integers(min_value=1, max_value=MAX_SIZE_BYTES // KIB))
def test_kib_round_trip(kib):
    assert size_to_kib(kib_to_bytes(kib)) == kib
    assert size_to_kib(str(kib) + 'KiB') == kib
    assert size_to_kib(kib * KIB) == kib


@given(st.integers(min_value=1, max_value=4096), st.sampled_from(sorted(SHORT)))
def test_short_units_are_binary(number, short):
    assert parse_size('%d%s' % (number, short)) == parse_size('%d%s' % (number, SHORT[short])) == number * BINARY[SHORT[short]]


@given(st.integers(min_value=1, max_value=4096), st.sampled_from(sorted(DECIMAL)))
def test_decimal_units_are_powers_of_ten(number, unit):
    size = number * DECIMAL[unit]
    if size % KIB:
        with pytest.raises(K2SizeError):
            parse_size('%d%s' % (number, unit))
    else:
        assert parse_size('%d%s' % (number, unit)) == size


@given(st.integers(min_value=1, max_value=1024), st.sampled_from(sorted(BINARY)))
def test_unit_case_and_spacing_do_not_matter(number, unit):
    expected = number * BINARY[unit]
    for text in ('%d%s' % (number, unit), '%d %s' % (number, unit.lower()), ' %d%s ' % (number, unit.upper())):
        assert parse_size(text) == expected


@given(st.integers(min_value=1, max_value=MAX_SIZE_BYTES // KIB))
def test_format_then_parse_is_close(kib):
    # The human form keeps two decimals: parsing it back lands within 1 % of the value.
    text = format_kib(kib).replace(' ', '')
    try:
        again = parse_size(text)
    except K2SizeError:
        return  # a rounded form may not be a whole KiB; formatting is for messages only
    assert abs(again - kib * KIB) <= kib * KIB / 100


@given(st.text(max_size=12))
def test_arbitrary_text_never_crashes(text):
    try:
        size = parse_size(text)
    except K2SizeError:
        return
    assert size > 0 and size % KIB == 0 and size <= MAX_SIZE_BYTES


def test_units_table_is_consistent():
    for unit, factor in UNIT_BYTES.items():
        assert unit == unit.lower()
        assert factor >= 1
