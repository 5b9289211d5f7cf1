"""syncops: bring every new environment up with its datastore.

The sync engine (discover, hydrate, push, verify, seed) lives here and never imports pulumi; the
Pulumi program's pieces live in :mod:`syncops.provision`.

``import syncops`` is the Python API (:mod:`syncops.api`): ``syncops.discover(url)``,
``syncops.hydrate(url, dir)``, ``push``, ``status``, ``verify``, ``bootstrap`` and ``seed``, with the
reports they return and the typed exceptions they raise. They are loaded on first use, so importing
the package costs nothing and loads no SDK.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncops.api import bootstrap, discover, hydrate, push, seed, status, verify
    from syncops.errors import (
        AccessDenied,
        BadInput,
        Conflicts,
        CorruptIndex,
        IncompleteTransfer,
        ReportedFailure,
        StoreError,
        SyncopsError,
        VerifyProblems,
    )
    from syncops.report import Report
    from syncops.stores.settings import StoreSettings

__version__ = "0.1.0"

_API = ("bootstrap", "discover", "hydrate", "push", "seed", "status", "verify")
_LAZY = {
    **dict.fromkeys(_API, "syncops.api"),
    **dict.fromkeys(
        (
            "AccessDenied",
            "BadInput",
            "Conflicts",
            "CorruptIndex",
            "IncompleteTransfer",
            "ReportedFailure",
            "StoreError",
            "SyncopsError",
            "VerifyProblems",
        ),
        "syncops.errors",
    ),
    "Report": "syncops.report",
    "StoreSettings": "syncops.stores.settings",
}

__all__ = [
    "AccessDenied",
    "BadInput",
    "Conflicts",
    "CorruptIndex",
    "IncompleteTransfer",
    "Report",
    "ReportedFailure",
    "StoreError",
    "StoreSettings",
    "SyncopsError",
    "VerifyProblems",
    "__version__",
    "bootstrap",
    "discover",
    "hydrate",
    "push",
    "seed",
    "status",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Keeps the API functions on the package when the engine module of the same name is imported.

    ``syncops.discover`` is a function of the API and also the name of the engine's module; Python's
    import system sets a loaded submodule as an attribute of its package, which would turn the function
    into a module the first time the engine runs. The modules stay where every import finds them
    (``from syncops.discover import discover``, ``sys.modules``); the package attribute stays the function.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
