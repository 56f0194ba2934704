"""The flow records its parameters as Prefect's own encoder would, without FastAPI.

Prefect's encoder (``fastapi.encoders.jsonable_encoder``) imports the server's web
framework into every client process; the flow's own serializer gives the same JSON
for the parameters it takes and leaves anything else to Prefect's.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date

from conftest import ROOT

PARAMETERS = [
    {"delivery": "/media/cdrom", "out": "/secure/out", "dataset": "reference",
     "delivery_date": date(2026, 6, 30), "force": False, "passphrase_file": None,
     "passphrase_secret": "agency-passphrase"},
    {"delivery": "d", "out": "o", "dataset": ["cases", "counties"], "delivery_date": None,
     "force": True},
]


def test_parameters_are_recorded_as_prefects_encoder_records_them() -> None:
    from prefect import Flow

    from flows.ingest_delivery import ingest_delivery

    for parameters in PARAMETERS:
        assert ingest_delivery.serialize_parameters(parameters) == \
            Flow.serialize_parameters(ingest_delivery, parameters)
    # anything else still goes to Prefect's encoder
    odd = {"delivery": ROOT}
    assert ingest_delivery.serialize_parameters(odd) == \
        Flow.serialize_parameters(ingest_delivery, odd)


def test_recording_the_parameters_imports_no_fastapi() -> None:
    code = ("import datetime, sys; "
            "from flows.ingest_delivery import ingest_delivery; "
            f"ingest_delivery.serialize_parameters({PARAMETERS[0]!r}); "
            "print('fastapi' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
