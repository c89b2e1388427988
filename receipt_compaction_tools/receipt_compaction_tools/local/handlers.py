"""Loading the Lambda entry points (``chromadb_compaction.lambdas.<name>``) as modules."""

from __future__ import annotations

import importlib.util
import logging
import sys
from types import ModuleType

HANDLERS_PACKAGE = "chromadb_compaction.lambdas"


def load_handler(name: str) -> ModuleType:
    """A fresh copy of the handler module, as a new Lambda container would import it.

    The module is found by name (the ``infra`` package installs it); it is executed anew
    rather than taken from ``sys.modules``, so module-level state starts empty.
    """
    module_name = f"{HANDLERS_PACKAGE}.{name}"
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(
            f"Lambda handler {module_name} is not installed (pip install -e ./infra)"
        )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Powertools keeps one handler per service name for the life of the process, bound to
    # the stdout of its first creation; a fresh container logs to today's stdout (the CLI
    # points it at stderr, so results alone reach stdout). Assigned, not setStream(): that
    # flushes the old stream first, which may be closed by now.
    for handler in getattr(getattr(module, "logger", None), "handlers", []):
        if isinstance(handler, logging.StreamHandler):
            handler.stream = sys.stdout
    return module
