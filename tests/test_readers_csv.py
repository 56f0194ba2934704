"""CSV and TSV: encodings decided not guessed, trailers, quoting, headers."""

from __future__ import annotations

import codecs
import subprocess

import polars as pl
import pytest

from ingest.errors import ReadError, SchemaMismatchError
from ingest.readers.csv import read_delimited
from ingest.schema import load_dataset
from ingest.synth import to_delimited

DATASET = load_dataset("reference")


@pytest.fixture(scope="module")
def frame(table_20k) -> pl.DataFrame:
    return table_20k[0].head(2000)


@pytest.mark.parametrize(("encoding", "bom", "expected"), [
    ("cp1252", False, "cp1252"),
    ("utf-8", False, "utf-8"),
    ("utf-8", True, "utf-8-sig"),
])
def test_encodings_round_trip(frame, encoding, bom, expected) -> None:
    table = read_delimited(to_delimited(frame, encoding=encoding, bom=bom), DATASET, "c.csv")
    assert table.encoding == expected
    assert table.frame.equals(frame)


def test_utf16_unicode_text_from_excel(frame) -> None:
    data = codecs.BOM_UTF16_LE + to_delimited(frame, separator="\t", trailer=False,
                                              encoding="utf-16-le")
    table = read_delimited(data, DATASET, "c.txt")
    assert (table.format, table.encoding) == ("tsv", "utf-16")
    assert table.frame.equals(frame)


def test_latin1_when_the_schema_allows_it(frame) -> None:
    import dataclasses

    latin = frame.with_columns(pl.col("CMNT").str.replace_all("[€’—]", "e"))
    dataset = dataclasses.replace(DATASET, encodings=("utf-8", "latin-1"))
    table = read_delimited(to_delimited(latin, encoding="latin-1"), dataset, "c.csv")
    assert table.encoding == "latin-1"
    assert table.frame.equals(latin)


def test_transcoding_in_small_chunks_gives_the_same_table(frame, monkeypatch) -> None:
    """Chunk edges fall inside characters and lines; nothing is lost or changed."""
    import dataclasses

    import ingest.readers.csv as csv_reader

    monkeypatch.setattr(csv_reader, "_TRANSCODE_CHUNK", 7)
    table = read_delimited(to_delimited(frame, encoding="cp1252"), DATASET, "c.csv")
    assert table.frame.equals(frame)
    wide = frame.with_columns(pl.col("CMNT") + " \U0001F600")  # four UTF-8 bytes
    dataset = dataclasses.replace(DATASET, encodings=("utf-16-le",))
    data = to_delimited(wide, encoding="utf-16-le", trailer=False)
    assert read_delimited(data, dataset, "c.csv").frame.equals(wide)


def test_an_encoding_outside_the_schema_fails_clearly(frame) -> None:
    data = to_delimited(frame.head(20), encoding="cp1252") + b"\x81\x8d"
    with pytest.raises(ReadError, match="none of the encodings the schema allows"):
        read_delimited(data, DATASET, "c.csv")


def test_trailer_is_checked_and_not_data(frame) -> None:
    data = to_delimited(frame)
    assert data.endswith(b"TOTAL RECORDS: 2000\r\n")
    assert read_delimited(data, DATASET, "c.csv").trailer_count == 2000
    lying = data.replace(b"TOTAL RECORDS: 2000", b"TOTAL RECORDS: 2001")
    with pytest.raises(ReadError, match="trailer says 2001 records but 2000"):
        read_delimited(lying, DATASET, "c.csv")


def test_tsv_and_embedded_line_breaks(frame) -> None:
    table = read_delimited(to_delimited(frame, separator="\t"), DATASET, "c.tsv")
    assert table.format == "tsv"
    assert table.frame["CMNT"].str.contains("\r\n").any()
    assert table.frame.equals(frame)


def test_reordered_columns_are_matched_by_name(frame) -> None:
    shuffled = frame.select(list(reversed(frame.columns)))
    assert read_delimited(to_delimited(shuffled), DATASET, "c.csv").frame.equals(frame)


def test_header_differences_are_listed(frame) -> None:
    bad = frame.rename({"DX_CD": "DIAG"}).drop("SEX")
    with pytest.raises(SchemaMismatchError) as err:
        read_delimited(to_delimited(bad), DATASET, "c.csv")
    assert "missing SEX, DX_CD" in str(err.value) and "unexpected DIAG" in str(err.value)


def test_parse_errors_do_not_quote_the_data(frame) -> None:
    data = to_delimited(frame.head(50), trailer=False) + b'"SECRET-VALUE","unclosed\r\n'
    with pytest.raises(ReadError) as err:
        read_delimited(data, DATASET, "c.csv")
    assert "SECRET" not in str(err.value)


def test_text_marked_utf16_that_is_not_fails_clearly() -> None:
    data = codecs.BOM_UTF16_LE + "CASE_ID\n".encode("utf-16-le") + b"\x00\xd8"  # lone surrogate
    with pytest.raises(ReadError, match="marked as utf-16 but not valid utf-16"):
        read_delimited(data, DATASET, "c.txt")


def test_the_reader_takes_a_text_members_bytes(frame) -> None:
    """Decoded to UTF-8, the delivery's plaintext is let go: the member no longer
    holds it while the table is parsed (at millions of rows, hundreds of MB)."""
    from ingest.media import Member
    from ingest.readers import read_member

    member = Member("cases.csv", to_delimited(frame, encoding="cp1252"))
    table = read_member(member, DATASET)
    assert table.frame.equals(frame) and table.trailer_count == frame.height
    assert member.data == b"" and len(member) == 0


def _iconv(text: str, to: str) -> bytes:
    proc = subprocess.run(["iconv", "-f", "UTF-8", "-t", to], input=text.encode("utf-8"),
                          capture_output=True, check=True)
    return proc.stdout


# UTF-16 with a byte-order mark in both byte orders, each made by an encoder that is
# not ours: Python's codecs, and glibc's iconv (U+FEFF in, the mark of that order out)
UTF16 = {
    "be-codecs": (codecs.BOM_UTF16_BE, lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be")),
    "le-codecs": (codecs.BOM_UTF16_LE, lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le")),
    "be-iconv": (codecs.BOM_UTF16_BE, lambda t: _iconv("\ufeff" + t, "UTF-16BE")),
    "le-iconv": (codecs.BOM_UTF16_LE, lambda t: _iconv("\ufeff" + t, "UTF-16LE")),
}


@pytest.mark.parametrize("how", UTF16)
@pytest.mark.parametrize("separator", [",", "\t"], ids=["comma", "tab"])
def test_utf16_with_a_byte_order_mark_in_either_order_is_read_exactly(
        frame, how: str, separator: str) -> None:
    bom, encode = UTF16[how]
    text = to_delimited(frame, separator=separator, encoding="utf-8").decode("utf-8")
    data = encode(text)
    assert data[:2] == bom and b"\x00" in data[:8]  # really UTF-16, in that byte order
    table = read_delimited(data, DATASET, "cases.txt")
    assert table.encoding == "utf-16"
    assert table.format == ("tsv" if separator == "\t" else "csv")
    assert table.trailer_count == frame.height
    assert table.frame.equals(frame)


def test_a_utf16_big_endian_delivery_runs_through(frame, table_20k, home, tmp_path) -> None:
    """End to end: an encrypted delivery of big-endian UTF-16 (as iconv writes it), every
    row accounted for, the accepted ones loaded back exactly as delivered."""
    import ingest
    from ingest.crypto.openpgp import encrypt_openpgp, export_public_key
    from ingest.pipeline import run_delivery

    from conftest import DELIVERY_DATE

    data = _iconv("\ufeff" + to_delimited(frame, encoding="utf-8").decode("utf-8"),
                  "UTF-16BE")
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "cases.csv.gpg").write_bytes(encrypt_openpgp(
        data, tmp_path / "sender", recipient_key=export_public_key(home / "gnupg")))
    summary = run_delivery(folder, out=tmp_path / "out", delivery_date=DELIVERY_DATE)
    assert ingest.manifest(summary.output_dir)["read"]["encoding"] == "utf-16"
    assert summary.rows_in == frame.height
    assert summary.rows_accepted + summary.rows_quarantined == frame.height
    bad = [row - 1 for row in table_20k[1].bad_rows if row <= frame.height]
    assert summary.rows_quarantined == len(bad)
    loaded = ingest.load(tmp_path / "out", columns=["case_id", "comments"])
    delivered = frame.with_row_index("i").filter(~pl.col("i").is_in(bad))
    assert loaded["case_id"].to_list() == delivered["CASE_ID"].to_list()
    assert loaded["comments"].fill_null("").to_list() == delivered["CMNT"].to_list()
