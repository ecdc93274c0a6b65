# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stage's output on disk, capped: a script that prints forever must not fill the host's /var.

The script writes its stdout and stderr straight into files (opened O_APPEND, so nothing it starts in the
background is ever cut off by a closed pipe). While it runs, the runner trims each file that grew past its cap
back to its first HEAD bytes, a line saying how much was dropped, and its last TAIL bytes.
"""

from __future__ import annotations

import os
from typing import Dict

# Bytes of each stream kept from its start and from its end: the start says what the script set out to do,
# the end how it ended.
KEPT_HEAD_BYTES = 2 * 1024 * 1024
KEPT_TAIL_BYTES = 2 * 1024 * 1024
MARKER = b"\n[kvmops.rolling: %d bytes of output dropped here: the first %d and the last %d bytes are kept]\n"


class OutputCap:
    """Trims the files of a job's streams to HEAD + marker + TAIL whenever one is past twice that."""

    def __init__(self, paths: Dict[str, str], head: int = KEPT_HEAD_BYTES, tail: int = KEPT_TAIL_BYTES) -> None:
        self.paths = dict(paths)
        self.head = head
        self.tail = tail
        self.dropped: Dict[str, int] = {name: 0 for name in paths}

    def check(self, final: bool = False) -> None:
        """Trim each stream past its limit: at twice the kept size while the script runs (so trimming stays rare),
        at the kept size itself at the end."""
        for name, path in self.paths.items():
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            kept = self.head + len(self._marker(name)) + self.tail
            if size > (kept if final else 2 * kept):
                self._trim(name, path, size)

    def _marker(self, name: str) -> bytes:
        return MARKER % (max(self.dropped[name], 1), self.head, self.tail)

    def _trim(self, name: str, path: str, size: int) -> None:
        with open(path, "r+b") as handle:
            # What lies after the previous marker, if any, is still the stream's end: keep it.
            handle.seek(max(0, size - self.tail))
            tail = handle.read(self.tail)
            self.dropped[name] += size - self.head - len(tail) - (len(self._marker(name)) if self.dropped[name] else 0)
            handle.truncate(self.head)
            handle.seek(self.head)
            # The script appends meanwhile (O_APPEND): what it writes in between lands after this, and counts
            # as the end it is.
            handle.write(self._marker(name) + tail)
