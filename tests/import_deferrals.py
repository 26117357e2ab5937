"""Imported first by ``conftest.py``: the modules ``rda``'s processes defer (py_ecc's BLS
keystores under web3, scipy.stats and altair under Great Expectations) deferred in the test
workers too, so tests run what the product runs, and each worker's collection does not build
them (~3.4 s of CPU a worker)."""

from infra.chain import defer_key_files
from infra.deferred_imports import defer
from validators.expectations import DEFERRED_BY_GE

defer_key_files()
for _name in DEFERRED_BY_GE:
    defer(_name)
