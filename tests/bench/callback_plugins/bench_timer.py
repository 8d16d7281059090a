# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Callback of the benchmark suite (tests/bench/run): one JSON line per task in $BENCH_TIMER_OUT.

Each line holds the task name, its wall time (first start to last result), whether it failed or changed, the
number of items, and the sum of the ``k2_requests`` counters the K2 modules return (per item for loops).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: bench_timer
type: aggregate
short_description: per-task wall time and K2 request counts for tests/bench/run
description: Writes one JSON line per task to the file named by BENCH_TIMER_OUT.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._out = os.environ.get('BENCH_TIMER_OUT')
        self._task = None
        self._start = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task = task.get_name()
        self._start = time.time()

    def _record(self, result, failed=False, skipped=False):
        if not self._out:
            return
        res = result._result  # pylint: disable=protected-access
        items = res.get('results') if isinstance(res.get('results'), list) else [res]
        requests = 0
        for item in items:
            counters = item.get('k2_requests') if isinstance(item, dict) else None
            if isinstance(counters, dict):
                requests += int(counters.get('total', 0))
        line = {'task': self._task, 'seconds': time.time() - self._start, 'failed': failed, 'skipped': skipped,
                'changed': bool(res.get('changed')), 'items': len(items), 'k2_requests': requests,
                'msg': str(res.get('msg', ''))[:500] if failed else ''}
        with open(self._out, 'a') as handle:
            handle.write(json.dumps(line) + '\n')

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)
