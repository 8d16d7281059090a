# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures shared by the module_utils and module unit tests: the scripted K2 HTTPS server."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
import trustme
from hypothesis import settings

from ansible_collections.kaminario.k2.tests.unit.plugins.module_utils.k2_harness import K2Server

# No example database on disk (tests run in parallel and in copied trees), no per-example deadline
# (the machine is shared and slow examples are not bugs).
settings.register_profile('k2', database=None, deadline=None, max_examples=200)
settings.load_profile('k2')


@pytest.fixture(scope='session')
def k2_ca():
    """A throw-away certificate authority; the scripted server's certificate is issued by it."""
    return trustme.CA()


@pytest.fixture
def k2_ca_path(k2_ca, tmp_path):
    path = tmp_path / 'k2-ca.pem'
    k2_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def conn(k2_server):
    """Connection options of a module run against ``k2_server`` (no retries: every request is in the script once)."""
    return dict(k2_host=k2_server.host, k2_username='admin', k2_password='s3cr3t-pw', ca_path=k2_server.ca_path,
                retries=0, retry_max_wait=0)


@pytest.fixture
def k2_server(k2_ca, k2_ca_path):
    """A scripted K2 server on 127.0.0.1 (ephemeral port); the test fails if the conversation differs from the script."""
    server = K2Server(k2_ca, k2_ca_path)
    try:
        yield server
    finally:
        server.stop()
    server.verify()
