# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the reliability and security suite: a private k2sim per test (``lab``) or per module."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from k2lab import Lab  # noqa: E402


@pytest.fixture
def lab(tmp_path):
    """A k2sim process with one array, ``primary``, private to the test."""
    started = Lab(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def dr_lab(tmp_path):
    """A k2sim process with two arrays, ``primary`` and ``secondary``, private to the test."""
    started = Lab(tmp_path, arrays=('primary', 'secondary'))
    yield started
    started.stop()
