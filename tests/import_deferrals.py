"""Imported first by ``conftest.py``: the modules ``rda``'s processes defer (py_ecc's BLS
keystores under web3 and BLS precompiles under the embedded EVM, scipy.stats and altair under
Great Expectations) deferred in the test workers too, GE's pydantic fields copied as the
product copies them, and Beam's unused connectors left out (``pipelines/__init__.py``) before a
test module imports Beam itself, so tests run what the product runs, and each worker's
collection does not build them (~3.4 s of CPU a worker)."""

import pipelines  # noqa: F401 - its import leaves Beam's unused connectors out
from infra.chain import defer_bls_precompiles, defer_key_files
from validators.expectations import prepare_ge_import

defer_key_files()
defer_bls_precompiles()
prepare_ge_import()
