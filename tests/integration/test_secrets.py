"""A credential given to the stage scripts through rm_secret_env reaches them and is written nowhere else."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
import uuid
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from labtools import Lab
from runtools import Run

pytestmark = pytest.mark.lab

STATE_DIR = "/var/lib/kvm-rolling-maintenance"
NOBODY = "65534"
LAB_DEV_LOG = "/run/kvmlab/dev-log"  # where /dev/log leads on a lab host (extensions/lab/README.md)


@pytest.fixture
def hv1_syslog(lab: Lab) -> Iterator[Optional[List[bytes]]]:
    """Every message hv1's processes send to syslog during the test, through the lab's /dev/log; None on a machine
    with a syslog of its own (the lab hosts log there, where the test cannot listen)."""
    if not (os.path.islink("/dev/log") and os.readlink("/dev/log") == LAB_DEV_LOG):
        warnings.warn("this machine has a syslog of its own at /dev/log: the host's syslog is not checked")
        yield None
        return
    path = lab.host_dir("hv1") / "run-kvmlab" / "dev-log"
    if path.exists():
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.2)
    messages: List[bytes] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                messages.append(listener.recv(65536))
            except socket.timeout:
                continue
    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    yield messages
    stop.set()
    thread.join()
    listener.close()
    path.unlink()


def test_a_secret_in_rm_secret_env_reaches_every_stage_and_is_written_nowhere(
        scenario: Run, lab: Lab, tmp_path: Path, hv1_syslog: Optional[List[bytes]]) -> None:
    secret = "s3cr3t-%s" % uuid.uuid4().hex
    seen = tmp_path / "seen"
    # Every stage checks it has the token (by its hash: the hook itself must not hold it) and prints it.
    body = ('printf %%s "$MIRROR_TOKEN" | sha256sum | cut -d" " -f1 >> %s\n'
            'echo "token=$MIRROR_TOKEN"\necho "stderr has $MIRROR_TOKEN too" >&2' % seen)
    stages = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")
    scenario.hooks(["hv1"], {("hv1", stage): body for stage in stages})
    # As AWX gives a credential: a vars file.
    secrets_file = tmp_path / "credential.json"
    secrets_file.write_text(json.dumps({"rm_secret_env": {"MIRROR_TOKEN": secret}}))

    report = scenario.play("-vvv", "-e", "@%s" % secrets_file, "-e", "rm_hosts=hv1")

    assert scenario.completed.returncode == 0, scenario.output[-5000:]
    assert seen.read_text().split() == [hashlib.sha256(secret.encode()).hexdigest()] * 4
    assert secret not in scenario.completed.stdout + scenario.completed.stderr  # -vvv included
    if hv1_syslog is not None:
        # The host's syslog heard every module the run ran there (the stage's too), and never the secret.
        logged = b"\n".join(hv1_syslog)
        assert b"Invoked with" in logged and b"secret_env" in logged, logged[-2000:]
        assert secret.encode() not in logged
    report_text = scenario.report_path.read_text()
    assert secret not in report_text
    assert stat.S_IMODE(scenario.report_path.stat().st_mode) == 0o600
    [hv1] = report["hosts_updated"]
    for stage in ("PreMaintenance", "Maintenance", "PostMaintenance"):
        assert hv1["stages"][stage]["stdout_tail"] == "token=********\n", hv1["stages"][stage]
        assert hv1["stages"][stage]["stderr_tail"] == "stderr has ******** too\n"
    # On the host: nothing a user other than root can read holds it.
    as_nobody = lab.exec("hv1", "setpriv", "--reuid=%s" % NOBODY, "--regid=%s" % NOBODY, "--clear-groups", "--",
                         "grep", "-rlF", secret, STATE_DIR, "/var/log", check=False)
    assert as_nobody.stdout == "", as_nobody.stdout
    # Root's own copy: the scripts' full output (theirs, kept as they wrote it, root only); every result the
    # runner wrote has the tails masked.
    state = lab.state_dir("hv1")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    results = list((state / "jobs").glob("%s.*-stage.*/result.json" % report["run_id"]))
    assert len(results) == 4, results
    for path in results:
        text = path.read_text()
        assert secret not in text and "token=********" in text, text
    for log in (state / "jobs").glob("*/stdout.log"):
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
