"""The landing pipeline (Apache Beam) and the transforms it runs.

Beam's ``apache_beam.io`` imports, with Beam, every connector Beam ships. Two are optional,
imported only if their libraries can be: MongoDB's (pymongo's ``bson``) and Google Cloud's
(BigQuery, then Pub/Sub, GCS and the cross-language IOs). Nothing here reads or writes either,
so they are left out before any module of this package imports Beam: ~0.12 of the ~0.95 CPU-s
of Beam's import, which every ``rda run`` pays before it forks its landing children (measured
on 2 cores: 0.94-1.01 against 0.79-0.88 CPU-s, 4 processes each). Beam's warning that MongoDB's
IO is missing would name a package that is installed; it is not shown.
"""

from __future__ import annotations

import logging

from infra.deferred_imports import leave_out

BEAM_CONNECTORS_LEFT_OUT = ("bson", "apache_beam.io.gcp.bigquery")

leave_out(BEAM_CONNECTORS_LEFT_OUT)
logging.getLogger("apache_beam.io.mongodbio").setLevel(logging.ERROR)
