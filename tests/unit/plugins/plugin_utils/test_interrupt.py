"""The clean Ctrl-C: the first SIGINT aborts the run through the variable manager and tells the live workers.

Signal handlers belong to a process, so each case runs in a Python process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import multiprocessing, os, signal, sys, time
    from ansible_collections.kvmops.rolling.plugins.plugin_utils._interrupt import INTERRUPTED, install_clean_stop

    class Manager:
        facts = {}
        def set_nonpersistent_facts(self, host, facts):
            self.facts[host] = facts

    def worker(told):
        signal.signal(signal.SIGUSR1, lambda *_: (told.set(), sys.exit(0)))
        time.sleep(30)

    if __name__ == "__main__":
        multiprocessing.set_start_method("fork")
        manager, warnings = Manager(), []
        install_clean_stop(manager, warnings.append)
        told = multiprocessing.Event()
        child = multiprocessing.Process(target=worker, args=(told,))
        child.start()
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: no KeyboardInterrupt
        print("aborted", manager.facts["localhost"] == {"rm_aborted": True, "rm_abort_reason": INTERRUPTED})
        print("warned", warnings[0].startswith("Ctrl-C: stopping the run cleanly"))
        print("worker told", told.wait(10))
        child.join(10)
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the second: ansible-playbook's own answer
            print("second ignored")
        except KeyboardInterrupt:
            print("second stops")
""")


def test_the_first_ctrl_c_aborts_the_run_and_tells_the_workers_the_second_stops() -> None:
    completed = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=False,
                               env={"PYTHONPATH": os.pathsep.join(sys.path)})
    assert completed.stdout.splitlines() == ["aborted True", "warned True", "worker told True", "second stops"], \
        completed.stdout + completed.stderr
