# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Marks a run leaves in a host's state dir: the truth about the run lives with the hosts.

``maintenance.json``: the host is in maintenance (never a migration target); ``cluster.json``: this
run disabled the host's cluster. Each is a small JSON object written atomically.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional

from ansible_collections.kvmops.rolling.plugins.module_utils._stage import write_atomic

MAINTENANCE_MARK = "maintenance.json"
CLUSTER_MARK = "cluster.json"


class MarkError(Exception):
    """A mark exists but cannot be read or parsed: the state it records is unknown."""


def read_mark(state_dir: str, name: str) -> Optional[Dict[str, Any]]:
    """The mark's content; None when it (or the state dir) does not exist."""
    path = os.path.join(state_dir, name)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise MarkError("cannot read %s: %s%s; the state it records is unknown" % (
            path, exc.strerror, " (run the module as root, with become)" if exc.errno in (1, 13) else ""))
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MarkError("%s is corrupt (%s: %s); the state it records is unknown: inspect the file, then restore "
                        "or remove it" % (path, "not UTF-8" if isinstance(exc, UnicodeDecodeError)
                                          else "not valid JSON", exc))
    if not isinstance(content, dict):
        raise MarkError("%s is corrupt (not a JSON object); inspect the file, then restore or remove it" % path)
    return content


def write_mark(state_dir: str, name: str, content: Mapping[str, Any]) -> None:
    write_atomic(os.path.join(state_dir, name), json.dumps(content, sort_keys=True))


def remove_mark(state_dir: str, name: str) -> bool:
    """Remove the mark; False when there was none."""
    try:
        os.unlink(os.path.join(state_dir, name))
    except FileNotFoundError:
        return False
    return True
