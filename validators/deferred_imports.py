"""Modules imported only when something reads them: stand-ins in ``sys.modules``.

Great Expectations imports every core expectation when it is imported, and one of them
(``expect_column_kl_divergence_to_be_less_than``) imports ``scipy.stats`` and ``altair`` at module
level: ~1 s of GE's ~2.7 s import, paid by every process that validates (the quality worker of
each ``rda run`` and of the demo, and each child it forks from a cold start). The suites this
project generates (types, nulls, ranges, sets, uniqueness: ``validators/expectations.py``) use
neither.

``defer(name)`` puts a stand-in for the module in ``sys.modules``: ``import name`` and
``from package import name`` bind it without running the module; the first attribute read
imports the real module, which replaces the stand-in in ``sys.modules``, and the stand-in
delegates to it from then on. ``importlib.util.LazyLoader`` cannot do this on Python 3.11: the
import system reads a module's ``__spec__``, and any attribute read loads a lazy module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_loading = threading.Lock()


class DeferredModule(types.ModuleType):
    """A module not imported yet: the real one is imported by the first attribute read."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loaded(), name)

    def __dir__(self) -> list[str]:
        return dir(self.loaded())

    def loaded(self) -> types.ModuleType:
        """The real module, imported now if it was not yet."""
        real = self.__dict__.get("_real")
        if real is None:
            with _loading:
                real = self.__dict__.get("_real")
                if real is None:
                    if sys.modules.get(self.__name__) is self:
                        del sys.modules[self.__name__]
                    real = importlib.import_module(self.__name__)
                    self.__dict__["_real"] = real
        return real


def defer(name: str) -> None:
    """Import ``name`` only when one of its attributes is first read (nothing if it is already
    imported, or not installed: its import then fails where it always did)."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # its package is not installed
        return
    if spec is None:
        return
    module = DeferredModule(name)
    module.__spec__ = spec  # read by the import system without a load (no ``__getattr__``)
    sys.modules[name] = module
