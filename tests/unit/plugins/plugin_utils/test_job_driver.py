"""The controller's job loop, with the host calls faked: reconnects, deadlines, cancels."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.kvmops.rolling.plugins.plugin_utils._job_driver import (
    CONTROLLER_SLACK_SECONDS,
    ConnectionLost,
    JobDriver,
)


class FakeHost:
    """Answers each call from a script of replies; an exception instance in the script is raised."""

    def __init__(self, replies: List[Any], clock: "FakeClock") -> None:
        self.replies = list(replies)
        self.calls: List[Tuple[str, float]] = []
        self.resets = 0
        self.clock = clock

    def call(self, mode: str, wait: float) -> Dict[str, Any]:
        self.calls.append((mode, wait))
        reply = self.replies.pop(0) if self.replies else {"status": "running"}
        if isinstance(reply, BaseException):
            self.clock.now += 5
            raise reply  # pylint: disable=raising-bad-type
        self.clock.now += reply.pop("_takes", wait if reply.get("status") == "running" else 0.1)
        return reply

    def reset(self) -> None:
        self.resets += 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def drive(replies: List[Any], attached: bool = False, timeout: int = 60, interval: int = 10) -> Tuple[Dict[str, Any], FakeHost]:
    clock = FakeClock()
    host = FakeHost(replies, clock)
    driver = JobDriver(host.call, host.reset, timeout, interval, attached=attached, clock=clock, sleep=clock.sleep)
    return driver.run(), host


def test_a_stage_done_within_the_first_wait_takes_one_call() -> None:
    result, host = drive([{"status": "ok", "rc": 0, "_takes": 1.0}])
    assert host.calls == [("start", 10.0)]
    assert result["status"] == "ok" and result["elapsed"] == pytest.approx(1.0) and result["reconnects"] == 0


def test_polls_until_the_end() -> None:
    result, host = drive([{"status": "running"}, {"status": "running"}, {"status": "failed", "rc": 3}])
    assert [mode for mode, _wait in host.calls] == ["start", "poll", "poll"]
    assert result["status"] == "failed"


def test_a_lost_connection_is_retried_with_reconnects_and_the_same_call() -> None:
    lost = ConnectionLost("ssh: connect to host hv1 port 22: Connection timed out")
    result, host = drive([{"status": "running"}, lost, lost, {"status": "ok", "rc": 0}])
    assert [mode for mode, _wait in host.calls] == ["start", "poll", "poll", "poll"]
    assert host.resets == 2 and result["reconnects"] == 2 and result["status"] == "ok"


def test_a_lost_start_is_retried_as_a_start() -> None:
    result, host = drive([ConnectionLost("down"), {"status": "ok"}])
    assert [mode for mode, _wait in host.calls] == ["start", "start"]
    assert result["status"] == "ok"


def test_an_attached_stage_whose_host_stays_out_of_reach_has_an_unknown_outcome() -> None:
    result, host = drive([ConnectionLost("broken pipe")] + [ConnectionLost("no route to host")] * 1000, attached=True)
    assert [mode for mode, _wait in host.calls][:2] == ["start", "poll"]
    assert result["status"] == "failed" and "outcome is unknown" in result["msg"]


def test_an_attached_stage_that_loses_its_connection_is_settled_on_the_host() -> None:
    """The host stopped the script when the connection went: the stage fails, naming the lost connection."""
    on_host = {"status": "failed", "rc": None, "msg": "the connection was lost while the stage ran attached to it"}
    result, host = drive([ConnectionLost("broken pipe"), ConnectionLost("timed out"), on_host], attached=True)
    assert [mode for mode, _wait in host.calls] == ["start", "poll", "poll"] and host.resets == 2
    assert result["status"] == "failed" and result["msg"].startswith(
        "the connection was lost while the stage ran attached to it (agent executor): broken pipe; on the host: ")


def test_an_attached_stage_still_running_after_its_connection_went_is_cancelled() -> None:
    cancelled = {"status": "failed", "msg": "cancelled after 3.0 s, its process group was stopped with SIGTERM"}
    result, host = drive([ConnectionLost("broken pipe"), {"status": "running"}, cancelled], attached=True)
    assert [mode for mode, _wait in host.calls] == ["start", "poll", "cancel"]
    assert result["status"] == "failed" and "on the host: cancelled after 3.0 s" in result["msg"]


def test_an_attached_stage_whose_host_rebooted_ends_as_rebooted() -> None:
    rebooted = {"status": "rebooted", "msg": "the host rebooted while the Maintenance stage ran"}
    result, _host = drive([ConnectionLost("broken pipe"), rebooted], attached=True)
    assert result["status"] == "rebooted" and result["msg"] == rebooted["msg"]


def test_a_host_out_of_reach_past_the_deadline_ends_as_timeout() -> None:
    result, host = drive([{"status": "running"}] + [ConnectionLost("no route to host")] * 1000, timeout=60)
    assert result["status"] == "timeout" and "unreachable" in result["msg"]
    assert result["elapsed"] >= 60 + CONTROLLER_SLACK_SECONDS
    assert result["elapsed"] < 60 + CONTROLLER_SLACK_SECONDS + 20


def test_a_stage_the_host_failed_to_end_is_cancelled_after_the_slack() -> None:
    result, host = drive([{"status": "running"} for _reply in range(6)] + [{"status": "timeout", "rc": None}], timeout=30)
    modes = [mode for mode, _wait in host.calls]
    assert modes[-1] == "cancel" and modes.count("cancel") == 1
    assert result["status"] == "timeout"


def test_polls_never_wait_past_the_deadline() -> None:
    result, host = drive([{"status": "running"}] * 50, timeout=25, interval=10)
    assert all(wait <= 10.0 for mode, wait in host.calls)


def test_ctrl_c_cancels_the_stage_and_goes_on() -> None:
    clock = FakeClock()
    host = FakeHost([{"status": "running"}, KeyboardInterrupt(), {"status": "failed"}], clock)
    driver = JobDriver(host.call, host.reset, 60, 10, clock=clock, sleep=clock.sleep)
    with pytest.raises(KeyboardInterrupt):
        driver.run()
    assert [mode for mode, _wait in host.calls] == ["start", "poll", "cancel"]


def test_a_stage_that_survives_its_cancel_is_reported_as_timeout_not_running() -> None:
    result, host = drive([{"status": "running"} for _reply in range(50)], timeout=30)
    assert [mode for mode, _wait in host.calls][-1] == "cancel"
    assert result["status"] == "timeout" and result["failed"] and "did not stop" in result["msg"]
