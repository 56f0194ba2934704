"""The CSV reader's decoding as a sender's file meets it.

Written for the mutants of the decoding functions of ``ingest/readers/csv.py`` that
the other tests let live (``scripts/mutants csv``).
"""

from __future__ import annotations

import pytest

from ingest.errors import ReadError
from ingest.readers.csv import read_delimited
from ingest.schema import load_dataset

DATASET = load_dataset("reference")
HEADER = b"CASE_ID,PERS_ID,DOB,SEX,CNTY_FIPS,RPT_DT,DX_CD,LAB_VAL,HOSP_YN,CMNT\r\n"
ROW = b"0000000001,P0000ABCD,01/02/1980,F,01001,03/04/2020,A01.1,1.5,N,\r\n"


@pytest.mark.parametrize(("data", "line"), [
    (b"\x00" + HEADER + ROW, 1),  # the very first byte
    (HEADER + ROW + ROW.replace(b"F", b"\x00") + ROW.replace(b"N,", b"N,\x00"), 3),
])
def test_a_nul_byte_is_refused_naming_the_line_of_the_first(data: bytes, line: int) -> None:
    with pytest.raises(ReadError) as caught:
        read_delimited(data, DATASET, "cases.csv")
    assert str(caught.value) == (f"cases.csv: holds a NUL byte (line {line}); the file is "
                                 "binary or damaged, ask the sender to export it again")
