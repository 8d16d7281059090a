# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The laboratory's own checks: a fresh array has no orphans, and the provisioning playbook converges on it."""

from k2lab import duplicates, lun_clashes, orphans


def test_fresh_array_is_clean(lab):
    inv = lab.inventory()
    assert orphans(inv) == []
    assert duplicates(inv) == {}


def test_provisioning_playbook_runs_and_converges(lab):
    first = lab.playbook('provision.yml')
    assert first.rc == 0, first.output[-3000:]
    again = lab.playbook('provision.yml')
    assert again.rc == 0, again.output[-3000:]
    assert again.recap().get('changed') == 0, again.stdout[-2000:]
    inv = lab.inventory()
    assert orphans(inv) == [], orphans(inv)
    assert duplicates(inv) == {} and lun_clashes(inv) == []
