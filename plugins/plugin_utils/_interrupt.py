# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ctrl-C during a rolling maintenance run: the first one stops the run cleanly, a second one at once.

ansible-playbook's own answer to Ctrl-C is to stop where it is, which would leave a host in
maintenance and its cluster disabled. In the run's main process the first SIGINT only records the
request: it aborts the run (``rm_aborted`` on localhost, so the host play starts no further host and the
finish play enables the clusters and takes hosts out of maintenance) and tells each worker with SIGUSR1. A worker that follows a host job (a stage,
an evacuation) takes that as a KeyboardInterrupt: its driver cancels the job on the host. Any other
worker ignores it and ends its task normally. A second Ctrl-C is left to ansible-playbook.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, List, Optional

# Main process to workers: "the operator interrupted the run". Ignored outside a host job.
WORKER_SIGNAL = signal.SIGUSR1

INTERRUPTED = ("interrupted by the operator (Ctrl-C): the stage or evacuation under way was cancelled and no "
               "further host was started")
WARNING = ("Ctrl-C: stopping the run cleanly (cancelling what runs, leaving maintenance, enabling the cluster, "
           "writing the report); press Ctrl-C again to stop at once")


class Interrupt:
    main_pid: Optional[int] = None
    requested = False
    previous_handler: Any = signal.default_int_handler
    on_request: Callable[[], None] = staticmethod(lambda: None)
    workers: Callable[[], Iterable[int]] = staticmethod(lambda: ())


def install(on_request: Callable[[], None], workers: Callable[[], Iterable[int]]) -> None:
    """Make the first SIGINT of this (main) process a clean stop; ``on_request`` aborts the run."""
    Interrupt.on_request = staticmethod(on_request)
    Interrupt.workers = staticmethod(workers)
    if Interrupt.main_pid == os.getpid():
        return
    Interrupt.main_pid = os.getpid()
    Interrupt.previous_handler = signal.signal(signal.SIGINT, _on_sigint)
    # Inherited by the workers forked from now on, so the signal never kills one.
    signal.signal(WORKER_SIGNAL, signal.SIG_IGN)


def install_clean_stop(variable_manager: Any, warn: Callable[[str], None]) -> None:
    """The run's clean stop: the first Ctrl-C aborts the run through ``variable_manager`` (the main process's)."""

    def abort_run() -> None:
        warn(WARNING)
        variable_manager.set_nonpersistent_facts("localhost", {"rm_aborted": True, "rm_abort_reason": INTERRUPTED})

    install(abort_run, live_workers)


def live_workers() -> List[int]:
    """The worker processes ansible-playbook has forked and that still run (its workers are multiprocessing's)."""
    return [child.pid for child in multiprocessing.active_children() if child.pid]


def _on_sigint(signum: int, frame: Any) -> None:
    if os.getpid() != Interrupt.main_pid:
        return  # a worker: the main process decides, and tells it
    if Interrupt.requested:
        signal.signal(signal.SIGINT, Interrupt.previous_handler)
        if callable(Interrupt.previous_handler):
            Interrupt.previous_handler(signum, frame)
        raise KeyboardInterrupt()
    Interrupt.requested = True
    Interrupt.on_request()
    for pid in Interrupt.workers():
        try:
            os.kill(pid, WORKER_SIGNAL)
        except OSError:
            pass


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    # Once: a second signal must not break into the cancel that follows.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(WORKER_SIGNAL, signal.SIG_IGN)
    raise KeyboardInterrupt()


@contextmanager
def interruptible() -> Iterator[None]:
    """In a worker, while it follows a host job: the operator's interrupt raises KeyboardInterrupt here."""
    saved = [(number, signal.signal(number, _raise_interrupt)) for number in (signal.SIGINT, WORKER_SIGNAL)]
    try:
        yield
    finally:
        for number, handler in saved:
            signal.signal(number, handler)
