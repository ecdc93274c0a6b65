# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: quiet
type: stdout
short_description: A rolling maintenance run as an operator reads it, its progress, failures and report
version_added: 0.4.0
description:
  - The output of C(ansible.builtin.default) without what a rolling maintenance run does not need to show.
    There are no play and task banners, and nothing for tasks that went well, were skipped or included files,
    except the messages of C(ansible.builtin.debug) tasks (the run's plan, what earlier runs left behind). A text
    or a list of texts as plain lines, anything else as the default callback shows it. The report's lines are
    shown once, at the end.
    A run of six hosts on the collection's lab prints about 100 lines where the default callback prints
    almost 800, 285 of them task banners.
  - What it shows.
  - The progress lines of P(kvmops.rolling.rolling_progress#callback), one per step of the run. This callback
    prints them itself; with C(rolling_progress) enabled beside it, they are printed once.
  - Each failure and unreachable host in full, under the banner of its task, as the default callback shows it.
  - A failed argument validation of the role (a refused input) as one line, its errors and nothing of the
    argument spec that C(ansible.builtin.validate_argument_spec) returns with them.
  - Warnings, deprecations, diffs (with C(--diff)), the play recap, and the report block at the very end.
  - With C(-v) or more it is the default callback, with the progress lines.
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - "Set C(stdout_callback = kvmops.rolling.quiet) in the C([defaults]) section of ansible.cfg, or
    E(ANSIBLE_STDOUT_CALLBACK=kvmops.rolling.quiet)."
author:
  - kvmops.rolling engineers (@kvmops)
"""

from typing import Any, Callable

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as DefaultCallback
from ansible_collections.kvmops.rolling.plugins.callback.rolling_progress import CallbackModule as ProgressCallback
from ansible_collections.kvmops.rolling.plugins.plugin_utils._progress import (
    ProgressOutput,
    canonical_action,
    message_lines,
    refused_arguments,
    shows_debug_message,
)


def _result_of(result: Any) -> Any:
    """``result.result`` (ansible-core 2.19+) or ``result._result`` (before)."""
    data = getattr(result, "result", None)
    return data if data is not None else getattr(result, "_result", {})


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "kvmops.rolling.quiet"

    def __init__(self) -> None:
        super().__init__()
        ProgressOutput.in_stdout_callback = True
        self.progress = ProgressCallback(in_stdout_callback=True)

    def set_options(self, *args: Any, **kwargs: Any) -> None:
        super().set_options(*args, **kwargs)
        if not self._verbose():
            # The default callback then prints a task's banner only above a result it shows: a failure.
            self.set_option("display_ok_hosts", False)
            self.set_option("display_skipped_hosts", False)

    def _verbose(self) -> bool:
        return self._display.verbosity > 0

    def _warnings(self, result: Any) -> None:
        """The warnings and deprecations a result carries, which the default callback shows with the result."""
        if hasattr(self, "_handle_warnings_and_exception"):  # ansible-core 2.19+
            self._handle_warnings_and_exception(result)
        else:
            self._handle_warnings(_result_of(result))

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play  # the default callback reads the play's strategy when a task starts
        self.progress.v2_playbook_on_play_start(play)
        if self._verbose():
            super().v2_playbook_on_play_start(play)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self.progress.v2_runner_on_start(host, task)
        super().v2_runner_on_start(host, task)

    def _shown(self, result: Any) -> bool:
        """A debug message other than the report's lines: shown as the default callback shows it."""
        task = getattr(result, "task", None) or getattr(result, "_task", None)
        action = canonical_action(getattr(task, "action", None), getattr(task, "resolved_action", None))
        return shows_debug_message(action, _result_of(result).get("msg"), self.progress.report)

    def _ok(self, show: Callable[[Any], None], result: Any) -> None:
        """A result that went well: said only with -v, or when it is a debug message (text as plain lines)."""
        if self._verbose():
            show(result)
        elif self._shown(result):
            self._show_message(show, result)
        else:
            self._warnings(result)

    def _show_message(self, show: Callable[[Any], None], result: Any) -> None:
        """A debug message: a text as plain lines, anything else as the default callback shows a result."""
        lines = message_lines(_result_of(result).get("msg"))
        if lines is not None:
            for line in lines:
                self._display.display(line)
            return
        self.set_option("display_ok_hosts", True)
        try:
            show(result)
        finally:
            self.set_option("display_ok_hosts", False)

    def v2_runner_on_ok(self, result: Any) -> None:
        self.progress.v2_runner_on_ok(result)
        self._ok(super().v2_runner_on_ok, result)

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self.progress.v2_runner_item_on_ok(result)
        self._ok(super().v2_runner_item_on_ok, result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self.progress.v2_runner_on_skipped(result)
        super().v2_runner_on_skipped(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self.progress.v2_runner_on_failed(result, ignore_errors)
        refused = refused_arguments(_result_of(result))
        if refused is None or self._verbose():
            super().v2_runner_on_failed(result, ignore_errors)
            return
        self._display.display("fatal: [%s]: FAILED! => %s" % (self.host_label(result), self._dump_results(refused)),
                              color=C.COLOR_ERROR, stderr=self.get_option("display_failed_stderr"))

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self.progress.v2_runner_item_on_failed(result)
        super().v2_runner_item_on_failed(result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self.progress.v2_runner_on_unreachable(result)
        super().v2_runner_on_unreachable(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        super().v2_playbook_on_stats(stats)
        self.progress.v2_playbook_on_stats(stats)

    def v2_playbook_on_include(self, included_file: Any) -> None:
        if self._verbose():
            super().v2_playbook_on_include(included_file)

    def v2_playbook_on_no_hosts_matched(self) -> None:
        if self._verbose():
            super().v2_playbook_on_no_hosts_matched()

    def v2_playbook_on_no_hosts_remaining(self) -> None:
        if self._verbose():
            super().v2_playbook_on_no_hosts_remaining()

    def v2_runner_retry(self, result: Any) -> None:
        if self._verbose():
            super().v2_runner_retry(result)
