# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

import pytest
from hypothesis import assume, given, strategies as st

from ansible_collections.kaminario.k2.plugins.module_utils.k2_naming import (
    K2NamingError, host_name_from_connector, initiator_host_name, sanitize_host_name,
    is_valid_wwn, wwn_to_hex, wwn_to_colon, is_valid_iscsi_name, validate_iqn, iscsi_name_key,
)

HOST_NAME = re.compile(r'^[0-9a-zA-Z_-]{1,32}$')


# Examples from Cinder's own unit tests for the K2 driver.
@pytest.mark.parametrize('connector, unique_fqdn, expected', [
    ({'host': 'test-k2', 'initiator': 'iqn.1993-08.org.debian:01:12aa12aa12aa'}, True, 'test-k2'),
    ({'host': 'test-k2', 'initiator': 'iqn.1993-08.org.debian:01:12aa12aa12aa'}, False, 'aa21aa21aa21_10_naibed_gro_80-39'),
    ({'host': 'test-k2', 'wwnns': ['12351a2a00001234']}, False, '43210000a2a15321'),
])
def test_cinder_examples(connector, unique_fqdn, expected):
    assert host_name_from_connector(connector, unique_fqdn_network=unique_fqdn) == expected


def test_truncation_happens_before_substitution():
    fqdn = 'a.' * 20
    assert host_name_from_connector({'host': fqdn}, True) == ('a_' * 16)


def test_fqdn_only_used_with_unique_fqdn_network():
    assert host_name_from_connector({'host': 'srv.example.com', 'initiator': 'iqn.2000-01.com.x:a'}, False) == 'a_x_moc_10-0002_nqi'
    assert host_name_from_connector({'host': 'srv.example.com', 'initiator': 'iqn.2000-01.com.x:a'}, True) == 'srv_example_com'


def test_unique_fqdn_without_host_falls_back_to_initiator():
    assert host_name_from_connector({'initiator': 'iqn.2000-01.com.x:a'}, True) == 'a_x_moc_10-0002_nqi'


def test_initiator_wins_over_wwnns_and_empty_initiator_is_kept_like_cinder():
    assert host_name_from_connector({'initiator': 'abc', 'wwnns': ['12351a2a00001234']}) == 'cba'
    with pytest.raises(K2NamingError, match='Cannot derive'):
        host_name_from_connector({'initiator': '', 'wwnns': ['12351a2a00001234']})


def test_nothing_to_name_from_is_a_clear_error():
    with pytest.raises(K2NamingError, match='initiator'):
        initiator_host_name()


def test_keyword_form_normalises_wwnn_like_os_brick():
    assert initiator_host_name(wwnns=['12:35:1A:2A:00:00:12:34']) == '43210000a2a15321'
    assert initiator_host_name(initiator='0x12351A2A00001234') == '43210000a2a15321'
    assert initiator_host_name(initiator='iqn.1993-08.org.debian:01:12aa12aa12aa', host_fqdn='test-k2',
                               unique_fqdn_network=True) == 'test-k2'


@given(st.text(min_size=1, max_size=300))
def test_sanitized_names_are_short_and_safe(text):
    assert HOST_NAME.match(sanitize_host_name(text))


@given(st.text(min_size=1, max_size=100), st.booleans(), st.one_of(st.none(), st.text(min_size=1, max_size=100)))
def test_host_names_always_fit_k2(initiator, unique, fqdn):
    connector = {'initiator': initiator}
    if fqdn is not None:
        connector['host'] = fqdn
    name = host_name_from_connector(connector, unique)
    assert HOST_NAME.match(name)
    source = fqdn if unique and fqdn is not None else initiator[::-1]
    assert len(name) == min(32, len(source))
    # characters already valid are kept in place
    for got, original in zip(name, source[:32]):
        assert got == original or (got == '_' and not re.match(r'[0-9a-zA-Z_-]', original))


@given(st.from_regex(r'\A[0-9a-zA-Z_-]{1,32}\Z'))
def test_valid_names_are_left_alone(name):
    assert sanitize_host_name(name) == name


@given(st.binary(min_size=8, max_size=8))
def test_wwn_spellings_agree(raw):
    digits = raw.hex()
    colon = ':'.join(digits[i:i + 2] for i in range(0, 16, 2))
    for spelling in (digits, digits.upper(), colon, colon.upper(), '0x' + digits, colon.replace(':', '-')):
        assert is_valid_wwn(spelling)
        assert wwn_to_hex(spelling) == digits
        assert wwn_to_colon(spelling) == colon


@pytest.mark.parametrize('bad', ['', '1234', '12:34:56:78:9a:bc:de', 'zz:34:56:78:9a:bc:de:f0', '12345678901234567', None, 42])
def test_bad_wwns_are_rejected(bad):
    assert not is_valid_wwn(bad)
    with pytest.raises(K2NamingError, match="option 'wwpns'"):
        wwn_to_hex(bad)


@pytest.mark.parametrize('name', [
    'iqn.1993-08.org.debian:01:12aa12aa12aa',
    'iqn.1994-05.com.redhat:5f3a2b1c9d8e',
    'IQN.2009-01.COM.KAMINARIO:storage.k2.54645',
    'iqn.2001-04.com.example',
    'eui.02004567A425678D',
    'naa.52004567BA64678D',
])
def test_valid_iscsi_names(name):
    assert is_valid_iscsi_name(name)
    assert validate_iqn(' %s ' % name) == name


@pytest.mark.parametrize('name', [
    'iqn.93-08.org.debian:01', 'iqn.1993-13.org.debian', 'iqn.1993-08.-org', 'iqn.1993-08.org.debian: x',
    'eui.123', 'naa.12345', 'host1', '', None, 'iqn.2001-04.com.example:' + 'x' * 230,
])
def test_invalid_iscsi_names(name):
    assert not is_valid_iscsi_name(name)
    with pytest.raises(K2NamingError, match="option 'iqns'"):
        validate_iqn(name)


@given(st.from_regex(r'\Aiqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}(:[a-z0-9:.]{1,40})?\Z'))
def test_generated_iqns_validate_and_compare_case_insensitively(iqn):
    assume(len(iqn) <= 223)
    assert is_valid_iscsi_name(iqn) and is_valid_iscsi_name(iqn.upper())
    assert iscsi_name_key(iqn.upper()) == iscsi_name_key(iqn)
