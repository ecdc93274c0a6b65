"""One base for the errors an operator reads, and one way to fail from it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Dict, List

import pytest

from ansible_collections.kvmops.rolling.plugins import module_utils, plugin_utils
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError, fail_from
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import MarkError

# Exceptions that carry control flow inside a step (a connection gone, a cancel), never a message to an operator.
CONTROL_FLOW = {"ConnectionLost", "Cancelled"}


def public_exceptions() -> List[type]:
    found = []
    for package in (module_utils, plugin_utils):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module("%s.%s" % (package.__name__, info.name))
            found += [value for name, value in vars(module).items()
                      if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__
                      and not name.startswith("_") and name not in CONTROL_FLOW]
    return found


def test_every_error_of_the_collection_derives_from_the_one_base() -> None:
    exceptions = public_exceptions()
    assert len(exceptions) >= 10
    assert [error.__name__ for error in exceptions if not issubclass(error, RollingError)] == []


class FakeModule:
    def __init__(self) -> None:
        self.failed: Dict[str, Any] = {}

    def fail_json(self, **result: Any) -> None:
        self.failed = result
        raise SystemExit(1)


def test_a_module_fails_from_an_error_with_its_message_and_the_fields_given() -> None:
    module = FakeModule()
    with pytest.raises(SystemExit):
        fail_from(module, MarkError("/var/lib/x/lock.json is not JSON"), held=False)
    assert module.failed == {"msg": "/var/lib/x/lock.json is not JSON", "held": False}
