# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of a host job (a stage, an evacuation): start it, poll it until it ends, survive the
connection coming and going.

Pure logic with the host calls injected, so the loop is tested without a host and the action
plugin stays a thin adapter.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STATUS_FAILED,
    STATUS_REBOOTED,
    STATUS_RUNNING,
    STATUS_TIMEOUT,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import (
    CONTROLLER_SLACK_SECONDS,
    MAX_BACKOFF_SECONDS,
)


class ConnectionLost(Exception):
    """The host could not be reached for one call; the job on it may well be running on."""


HostCall = Callable[[str, float], Dict[str, Any]]


class JobDriver:
    """Runs one host job through ``call(mode, wait)``, where mode is start, poll or cancel.

    ``call`` returns the module's result and raises ConnectionLost when the host is unreachable;
    ``reconnect`` drops the connection so the next call opens a fresh one.
    """

    def __init__(self, call: HostCall, reconnect: Callable[[], None], timeout: int, ping_interval: int,
                 attached: bool = False, what: str = "stage",
                 progress: Optional[Callable[[Dict[str, Any]], None]] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.call = call
        self.reconnect = reconnect
        self.timeout = timeout
        self.what = what
        self.ping_interval = ping_interval
        self.attached = attached
        self.progress = progress or (lambda _result: None)
        self.clock = clock
        self.sleep = sleep
        self.reconnects = 0
        self.started = 0.0
        self.give_up_at = 0.0
        self.unreachable_since: Optional[float] = None
        self.last_error = ""
        self.cancel_result: Optional[Dict[str, Any]] = None

    def run(self) -> Dict[str, Any]:
        self.started = self.clock()
        self.give_up_at = self.started + self.timeout + CONTROLLER_SLACK_SECONDS
        try:
            result = self._attempt("start", float(self.ping_interval))
            if result is None and self.attached:
                result = self._settle_attached()
            while result is not None and result.get("status") == STATUS_RUNNING:
                self.progress(result)
                if self.clock() >= self.give_up_at:
                    result = self._attempt("cancel", 0.0)
                    if result is not None and result.get("status") == STATUS_RUNNING:
                        result = dict(result, status=STATUS_TIMEOUT, failed=True,
                                      msg="the %s was still running %.0f s past its timeout and did not stop "
                                          "when cancelled; look at job %s on the host"
                                          % (self.what, self.clock() - self.started - self.timeout,
                                             result.get("job_id")))
                    break
                wait = min(float(self.ping_interval), max(0.0, self.give_up_at - self.clock()))
                result = self._attempt("poll", wait)
        except KeyboardInterrupt:
            # The operator stopped the run: stop the job too, then let the interrupt go on.
            self._cancel_quietly()
            raise
        if result is None:
            result = self._lost_result()
        result["elapsed"] = round(self.clock() - self.started, 3)
        result["reconnects"] = self.reconnects
        return result

    def _attempt(self, mode: str, wait: float) -> Optional[Dict[str, Any]]:
        """One call, retried over reconnects until it gets through; None once the host stays out of reach."""
        backoff = 1.0
        while True:
            try:
                result = self.call(mode, wait)
                self.unreachable_since = None
                return result
            except ConnectionLost as exc:
                self.last_error = str(exc)
                if self.unreachable_since is None:
                    self.unreachable_since = self.clock()
                if self.attached or self.clock() >= self.give_up_at:
                    return None
            self.reconnects += 1
            self.reconnect()
            self.sleep(min(backoff, float(self.ping_interval), max(0.0, self.give_up_at - self.clock())))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _settle_attached(self) -> Optional[Dict[str, Any]]:
        """The connection of an attached job was lost: reach the host again (reconnecting until the deadline) and
        see how the job ended there. The host stopped it when the connection went; one still running is
        cancelled (an attached job never goes on unsupervised); a reboot stays a reboot."""
        lost = self.last_error
        self.attached = False  # from now on, through reconnects like any job
        self.reconnects += 1
        self.reconnect()
        result = self._attempt("poll", 0.0)
        if result is not None and result.get("status") == STATUS_RUNNING:
            result = self._attempt("cancel", 0.0)
        if result is None:
            self.attached = True
            return None
        if result.get("status") == STATUS_REBOOTED:
            return result
        return dict(result, status=STATUS_FAILED, failed=True,
                    msg="the connection was lost while the %s ran attached to it (agent executor): %s; on the "
                        "host: %s" % (self.what, lost, result.get("msg", "no word")))

    def _lost_result(self) -> Dict[str, Any]:
        down_for = self.clock() - (self.unreachable_since or self.clock())
        if self.attached:
            return {"status": STATUS_FAILED, "rc": None, "signal": None, "failed": True,
                    "msg": "the connection was lost while the %s ran attached to it (agent executor), so its "
                           "outcome is unknown; the service executor survives this (%s)" % (self.what, self.last_error)}
        return {"status": STATUS_TIMEOUT, "rc": None, "signal": None, "failed": True,
                "msg": "the host has been unreachable for %.0f s, past the %s timeout of %d s: the host ends "
                       "the job at its timeout, but its result could not be read (%s)"
                       % (down_for, self.what, self.timeout, self.last_error)}

    def _cancel_quietly(self) -> None:
        try:
            self.cancel_result = self.call("cancel", 0.0)
        except Exception:  # the interrupt matters more than a cancel that could not be delivered
            pass
