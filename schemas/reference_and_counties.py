"""A bundle: the reference delivery's two tables, the case reports and the county
lookup, run as one delivery (``ingest run DELIVERY --schema reference_and_counties``,
the same as ``--schema reference --schema counties``).

A bundle is a schema module that defines ``DATASETS`` instead of ``DATASET``: the
tables one delivery holds, in order, each a ``Dataset`` or a schema spec as
``--schema`` takes it (a path is relative to the bundle's own file).
"""

from __future__ import annotations

from schemas.counties import DATASET as COUNTIES
from schemas.reference import DATASET as CASES

DATASETS = (CASES, COUNTIES)
