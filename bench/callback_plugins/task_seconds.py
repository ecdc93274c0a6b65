# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench helper, not part of the collection: wall seconds per task name, summed over a playbook run.

A task's time runs from its start to the next task's start (what a serial play waits for), summed
over every time the task ran (once per host in a serial play). Written as JSON to $TASK_SECONDS_OUT
at the end: [[play, task, seconds, times run], ...], most expensive first. Enable with
ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=task_seconds.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional, Tuple

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_seconds"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._play = ""
        self._current: Optional[Tuple[str, str]] = None
        self._since = 0.0
        self._totals: Dict[Tuple[str, str], Tuple[float, int]] = {}

    def _close(self) -> None:
        if self._current is not None:
            seconds, runs = self._totals.get(self._current, (0.0, 0))
            self._totals[self._current] = (seconds + time.monotonic() - self._since, runs + 1)
            self._current = None

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._close()
        self._play = play.get_name()

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._close()
        self._current = (self._play, task.get_name())
        self._since = time.monotonic()

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close()
        out = os.environ.get("TASK_SECONDS_OUT")
        if not out:
            return
        ranked = sorted(self._totals.items(), key=lambda item: -item[1][0])
        rows = [[play, task, round(seconds, 3), runs] for (play, task), (seconds, runs) in ranked]
        with open(out, "w") as handle:
            json.dump(rows, handle, indent=1)
