"""Modules imported only when something reads them: stand-ins in ``sys.modules``.

Four libraries import, at their own import, modules this project never uses:

- Great Expectations imports every core expectation, and one of them
  (``expect_column_kl_divergence_to_be_less_than``) imports ``scipy.stats`` and ``altair`` at
  module level: ~1 s of GE's ~2.7 s import, paid by every process that validates (the quality
  worker of each ``rda run`` and of the demo, and each child it forks from a cold start). The
  suites this project generates (types, nulls, ranges, sets, uniqueness:
  ``validators/expectations.py``) use neither.
- web3 imports eth-account, which imports eth-keyfile for encrypted key files, which imports
  py_ecc's BLS12-381 (for EIP-2335 validator keystores): ~0.85 s of web3's ~1.8 s import,
  building pairing tables, paid by every ``rda run``, ``rda demo``, ``rda verify`` on a chain.
  Nothing here reads or writes a key file (``infra/chain.py``).
- py-evm, the embedded chain's EVM, imports its BLS12-381 precompiles (EIP-2537, Prague), which
  build the same py_ecc tables (~0.55 s), in every process with an embedded chain; no contract
  here calls them (``infra/chain.py``).

- Beam's ``apache_beam.io`` imports every connector Beam ships, two of them optional (imported
  under ``except ImportError``): MongoDB's, which imports pymongo's ``bson``, and Google
  Cloud's (BigQuery, Pub/Sub, GCS, the cross-language IOs): ~0.12 CPU-s of Beam's ~0.9 s
  import, paid by every ``rda run`` before its landing children are forked
  (``pipelines/__init__.py``).

``leave_out(names)`` makes an optional module absent (``import`` raises ``ImportError``, as if
it were not installed), for a library that imports it only if it is there.

``defer(name)`` puts a stand-in for the module in ``sys.modules``: ``import name`` and
``from package import name`` bind it without running the module; the first attribute read
imports the real module, which replaces the stand-in in ``sys.modules``, and the stand-in
delegates to it from then on. ``importlib.util.LazyLoader`` cannot do this on Python 3.11: the
import system reads a module's ``__spec__``, and any attribute read loads a lazy module.
``from module import name`` reads the name itself: for a module imported that way, ``defer``
takes the names it is known to define (``known``) and binds them in the stand-in, a function as
a ``forward`` that imports the module when it is first called.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_loading = threading.RLock()  # a package's stand-in is loaded while its module's is


class DeferredModule(types.ModuleType):
    """A module not imported yet: the real one is imported by the first attribute read."""

    def __getattr__(self, name: str) -> Any:
        if name == "__path__" and self.__spec__.submodule_search_locations is None:
            # asked by ``from module import name`` of every module: a plain one has none
            raise AttributeError(name)
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


def leave_out(names: Iterable[str]) -> None:
    """Make each of ``names`` absent in this process: ``import name`` raises ``ImportError``,
    and a library that imports it under ``except ImportError`` goes on without it. A module
    imported already stays as it is (its importers hold it)."""
    for name in names:
        sys.modules.setdefault(name, None)  # the import system's "not importable" mark


def defer(name: str, known: Mapping[str, Any] | None = None) -> None:
    """Import ``name`` only when one of its attributes is first read (nothing if it is already
    imported, or not installed: its import then fails where it always did). ``known``: names
    the module defines, bound in the stand-in without importing it."""
    defer_together({name: known})


def defer_together(modules: Mapping[str, Mapping[str, Any] | None]) -> None:
    """``defer`` each of ``modules`` (name: its ``known``), every stand-in in ``sys.modules``
    before any is bound in its package: binding imports the package, and a package whose
    ``__init__`` imports them all would import the ones not deferred yet for real."""
    placed = [m for name, known in modules.items() if (m := _stand_in(name, known)) is not None]
    for module in placed:
        package, _, child = module.__name__.rpartition(".")
        if package:  # bound in its package, as the import system binds a module it imports
            bound = sys.modules.get(module.__name__, module)  # the real one, if loaded since
            setattr(importlib.import_module(package), child, bound)


def _stand_in(name: str, known: Mapping[str, Any] | None) -> DeferredModule | None:
    """A stand-in for ``name`` put in ``sys.modules``; None if there is nothing to defer."""
    if name in sys.modules:
        return None
    try:
        spec = _spec_without_importing(name)
    except ModuleNotFoundError:  # its package is not installed
        return None
    if spec is None:
        return None
    module = DeferredModule(name)
    # What the import system and tools walking ``sys.modules`` read (Hypothesis reads every
    # module's ``__file__``), answered without a load. No ``__path__``: a submodule's import
    # reads it, and must load the package first.
    module.__spec__, module.__loader__, module.__package__ = spec, spec.loader, spec.parent
    if spec.has_location:
        module.__file__ = spec.origin
    module.__dict__.update(known or {})
    sys.modules[name] = module
    return module


def forward(module: str, name: str) -> Callable[..., Any]:
    """A function that calls ``module``'s function ``name``, importing the module first."""

    def forwarded(*args: Any, **kwargs: Any) -> Any:
        target = importlib.import_module(module)
        if isinstance(target, DeferredModule):  # its own ``name`` is this function
            target = target.loaded()
        return getattr(target, name)(*args, **kwargs)

    forwarded.__name__ = forwarded.__qualname__ = name
    forwarded.__module__ = module
    return forwarded


def _spec_without_importing(name: str) -> importlib.machinery.ModuleSpec | None:
    """``name``'s spec, its package not imported: ``importlib.util.find_spec`` imports the
    package, and eth-keyfile's imports the very module to defer (or a deferred package's
    stand-in would be loaded)."""
    package, _, _ = name.rpartition(".")
    imported = sys.modules.get(package)
    if not package or (imported is not None and not isinstance(imported, DeferredModule)):
        return importlib.util.find_spec(name)
    parent = _spec_without_importing(package)
    if parent is None or parent.submodule_search_locations is None:
        return None
    return importlib.machinery.PathFinder.find_spec(name, parent.submodule_search_locations)
