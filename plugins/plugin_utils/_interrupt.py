# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ctrl-C during a rolling maintenance run: the first one stops the run cleanly, a second one at once.

ansible-playbook's own answer to Ctrl-C is to stop where it is, which would leave a host in
maintenance and its cluster disabled. In the run's main process the first SIGINT only records the
request (the strategy then aborts the run, so the finish play enables the clusters and takes hosts
out of maintenance) and tells each worker with SIGUSR1. A worker that follows a host job (a stage,
an evacuation) takes that as a KeyboardInterrupt: its driver cancels the job on the host. Any other
worker ignores it and ends its task normally. A second Ctrl-C is left to ansible-playbook.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional

# Main process to workers: "the operator interrupted the run". Ignored outside a host job.
WORKER_SIGNAL = signal.SIGUSR1


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
