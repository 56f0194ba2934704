"""Properties of the readers and the container detection, by hypothesis.

1. Round trips: a generated table of awkward text (quotes, separators, CR/LF,
   tabs, non-ASCII, leading and trailing spaces, empty cells, null tokens),
   written as a sender's tools write it (CSV in UTF-8 and in Windows-1252, TSV,
   xlsx through xlsxwriter, legacy xls through xlwt) and read back by our
   readers, equals itself, cell by cell as text.
2. Fuzzing: random bytes and mutations of real inputs (CSV/TSV, tar, tar.gz,
   ZIP, 7-Zip, ISO) fed to the delimited reader and to the container detection
   (``ingest.media.expand``) end in a table or one of our IngestError
   subclasses: never a foreign exception, never a hang (hypothesis' deadline,
   and a hard per-example alarm).

Fast by default (well under a minute); ``INGEST_FUZZ_EXAMPLES=N`` runs every
fuzz property and every text round trip with N examples instead (workbook round
trips with N/4), for a long run. Hypothesis keeps no
example database: the inputs are synthetic, but nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Iterator

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ingest.errors import IngestError
from ingest.media import Limits, Member, OpenContext, expand
from ingest.readers import SourceTable, read_member
from ingest.readers.csv import read_delimited, split_trailer
from ingest.readers.excel import read_workbook
from ingest.schema import load_dataset
from ingest.synth.packaging import make_7z, make_iso, make_tar, make_zip

DATASET = load_dataset("reference")
COLUMNS = DATASET.source_names
TEXT_COLUMNS = [c.source for c in DATASET.columns
                if c.kind in ("string", "category") and not c.width]
FUZZ_EXAMPLES = int(os.environ.get("INGEST_FUZZ_EXAMPLES", "0"))
PER_EXAMPLE_SECONDS = 10

ROUND_TRIP = settings(max_examples=FUZZ_EXAMPLES or 200, deadline=2000, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORKBOOK_ROUND_TRIP = settings(ROUND_TRIP, max_examples=FUZZ_EXAMPLES // 4 or 60)
"""Each workbook example costs two calamine loads (~0.3 s)."""
FUZZ = settings(max_examples=FUZZ_EXAMPLES or 400, deadline=3000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


# --- strategies -----------------------------------------------------------------------------

AWKWARD = ['"', '""', ",", ";", "|", "\t", "\r\n", "\n", "\r", " ", "  ", "é", "ñ", "ü", "’",
           "€", "NA", "NULL", ".", "", "TOTAL", "0", "007", "-", "#N/A", "=1+1", "'", "\\",
           "\u00a0", "\u2028", "\ufeff", "\x1a", "\x85", "_x0041_"]


def _fits(piece: str, codec: str, workbook: bool) -> bool:
    try:
        piece.encode(codec)
    except UnicodeEncodeError:
        return False
    # XML 1.0 cannot hold most control characters; Excel writers escape them as _xHHHH_,
    # which is why a literal "_x0041_" reads back as "A" in any reader (Excel included)
    return not workbook or ("_x" not in piece and all(c in "\t\n\r" or ord(c) >= 0x20
                                                      for c in piece))


def encodable(codec: str, workbook: bool = False) -> st.SearchStrategy[str]:
    """Awkward text in ``codec``; for workbooks, without what XML cannot carry."""
    pieces = [p for p in AWKWARD if _fits(p, codec, workbook)]
    excluded = ("Cs", "Cn", "Cc") if workbook else ("Cs",)
    alphabet = st.characters(codec=None if codec == "utf-8" else codec,
                             blacklist_categories=excluded, blacklist_characters="\x00")
    piece = st.one_of(st.sampled_from(pieces), st.text(alphabet, max_size=6))
    text = st.lists(piece, max_size=5).map("".join)
    return text.filter(lambda v: "_x" not in v) if workbook else text


def tables(cell: st.SearchStrategy[str], max_rows: int = 8) -> st.SearchStrategy[pl.DataFrame]:
    row = st.lists(cell, min_size=len(COLUMNS), max_size=len(COLUMNS))
    return st.lists(row, min_size=1, max_size=max_rows).map(
        lambda rows: pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.Utf8), orient="row"))


def is_trailer_like(text: str) -> bool:
    """A last line that reads as a ``TOTAL RECORDS: N`` trailer is one, by design."""
    return split_trailer(text)[1] is not None


# --- round trips: delimited text ------------------------------------------------------------


def write_delimited(frame: pl.DataFrame, sep: str, newline: str, quote: str) -> str:
    return frame.write_csv(None, separator=sep, line_terminator=newline, quote_style=quote)


@ROUND_TRIP
@given(frame=tables(encodable("utf-8")), sep=st.sampled_from([",", "\t", ";", "|"]),
       newline=st.sampled_from(["\r\n", "\n"]), quote=st.sampled_from(["necessary", "always"]),
       bom=st.booleans())
@example(frame=pl.DataFrame([['"', ",", "\r\n", "a\tb", " x ", "", "NA", ".", "NULL", "é€"]],
                            schema=dict.fromkeys(COLUMNS, pl.Utf8), orient="row"),
         sep=",", newline="\r\n", quote="necessary", bom=False)
def test_utf8_csv_and_tsv_round_trip(frame: pl.DataFrame, sep: str, newline: str, quote: str,
                                     bom: bool) -> None:
    text = write_delimited(frame, sep, newline, quote)
    assume(not is_trailer_like(text))
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    table = read_delimited(data, DATASET, "p.csv")
    assert table.frame.equals(frame)
    assert table.format == ("tsv" if sep == "\t" else "csv")


@ROUND_TRIP
@given(frame=tables(encodable("cp1252")), sep=st.sampled_from([",", "\t"]),
       quote=st.sampled_from(["necessary", "always"]))
def test_cp1252_csv_and_tsv_round_trip(frame: pl.DataFrame, sep: str, quote: str) -> None:
    text = write_delimited(frame, sep, "\r\n", quote)
    assume(not is_trailer_like(text))
    data = text.encode("cp1252")
    if not data.isascii():
        # bytes that also decode as UTF-8 are UTF-8: the encoding is decided, not guessed
        with contextlib.suppress(UnicodeDecodeError):
            data.decode("utf-8")
            assume(False)
    table = read_delimited(data, DATASET, "p.csv")
    assert table.frame.equals(frame)
    assert table.encoding == ("utf-8" if data.isascii() else "cp1252")


@ROUND_TRIP
@given(frame=tables(encodable("utf-8"), max_rows=5))
def test_a_trailer_is_read_as_a_trailer_and_checked(frame: pl.DataFrame) -> None:
    text = write_delimited(frame, ",", "\r\n", "always") + f"TOTAL RECORDS: {frame.height}\r\n"
    table = read_delimited(text.encode("utf-8"), DATASET, "p.csv")
    assert table.frame.equals(frame) and table.trailer_count == frame.height


# --- round trips: workbooks -----------------------------------------------------------------


def _as_text(frame: pl.DataFrame) -> list[list[str | None]]:
    return [[None if v is None else str(v) for v in row]
            for row in frame.with_columns(pl.all().cast(pl.Utf8)).rows()]


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def workbook_cells_equal(column: str, wrote: list[str], got: list[str | None]) -> bool:
    """A cell as the workbook reader gives it back; typed columns take the cell's value.

    An empty text cell is a blank cell. Text that spells a number in a number or
    identifier column is that number (the reader cannot tell text cells from
    number cells, so the value is kept, not the spelling: ``1.50`` reads as
    ``1.5``), and an identifier that is a whole number is zero-padded to the
    column's width. Text columns are exact.
    """
    spec = next(c for c in DATASET.columns if c.source == column)
    for w, g in zip(wrote, got, strict=True):
        if w == "":
            if g not in (None, ""):
                return False
            continue
        if column not in TEXT_COLUMNS and not w.strip():
            # spaces in a typed column: blank when the others are all typed, else kept
            if g not in (None, "", w):
                return False
            continue
        if g == w:
            continue
        number = _number(w)
        if column in TEXT_COLUMNS or number is None or g is None:
            return False
        if spec.width and number >= 0 and number == int(number) and abs(number) < 2**53:
            if g != str(int(number)).zfill(spec.width):
                return False
        elif _number(g) != number and not (number != number and g.lower() == "nan"):
            return False
    return True


def workbook_tables(codec: str) -> st.SearchStrategy[pl.DataFrame]:
    def plausible(frame: pl.DataFrame) -> bool:
        last = [v for v in frame.row(-1) if v.strip()]
        # trailing rows of blanks are not data, nor is a lone "TOTAL: N" cell at the end
        return bool(last) and not (len(last) == 1 and split_trailer(last[0])[1] is not None) \
            and all(v.strip() for v in frame["CASE_ID"])
    return tables(encodable(codec, workbook=True), max_rows=6).filter(plausible)


def write_xlsx(frame: pl.DataFrame) -> bytes:
    import xlsxwriter  # type: ignore[import-untyped]

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_numbers": False,
                                     "strings_to_formulas": False, "strings_to_urls": False})
    sheet = book.add_worksheet("Cases")
    sheet.write_row(0, 0, COLUMNS)
    for r, row in enumerate(frame.rows(), start=1):
        for c, value in enumerate(row):
            if value != "":
                sheet.write_string(r, c, value)
    book.close()
    return out.getvalue()


def write_xls(frame: pl.DataFrame) -> bytes:
    import xlwt  # type: ignore[import-untyped]

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Cases")
    for c, name in enumerate(COLUMNS):
        sheet.write(0, c, name)
    for r, row in enumerate(frame.rows(), start=1):
        for c, value in enumerate(row):
            if value != "":
                sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _check_workbook(frame: pl.DataFrame, table: SourceTable) -> None:
    assert table.rows == frame.height
    got = _as_text(table.frame)
    for j, column in enumerate(COLUMNS):
        wrote = frame[column].to_list()
        column_got = [row[j] for row in got]
        assert workbook_cells_equal(column, wrote, column_got), (column, wrote, column_got)


@WORKBOOK_ROUND_TRIP
@given(frame=workbook_tables("utf-8"))
@example(frame=pl.DataFrame([["0000000001", '"q" , x', "01/02/1980", " F ", "01001",
                              "NA", "A01.1", "1.50", "N", "line\r\nbreak ’€"]],
                            schema=dict.fromkeys(COLUMNS, pl.Utf8), orient="row"))
def test_xlsx_round_trip(frame: pl.DataFrame) -> None:
    _check_workbook(frame, read_workbook(write_xlsx(frame), DATASET, "p.xlsx", "xlsx"))


@WORKBOOK_ROUND_TRIP
@given(frame=workbook_tables("cp1252").filter(
    lambda f: all(len(v) <= 255 for row in f.rows() for v in row)))
def test_xls_round_trip(frame: pl.DataFrame) -> None:
    _check_workbook(frame, read_workbook(write_xls(frame), DATASET, "p.xls", "xls"))


# --- fuzzing ----------------------------------------------------------------------------------


class Hang(BaseException):
    """An input took longer than PER_EXAMPLE_SECONDS: a hang, whatever the cause."""


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def fire(_signum: int, _frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def survives(call, *args: object) -> object:  # noqa: ANN001
    """Call; a table or our own error is fine, anything else fails the property."""
    with alarm(PER_EXAMPLE_SECONDS):
        try:
            return call(*args)
        except IngestError as exc:
            assert exc.__cause__ is None
            return exc


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real input with a few bytes flipped, set, inserted, deleted, spliced, or cut off.

    Positions come from a hypothesis-seeded ``Random`` so that they spread over the
    whole input (hypothesis' own integers favour small values, which would mostly
    break the magic bytes and leave nothing for the container code to chew on).
    """
    rnd = draw(st.randoms(use_true_random=True))
    data = bytearray(rnd.choice(seeds))
    for _ in range(rnd.randint(1, 6)):
        op = rnd.choice(["flip", "flip", "set", "insert", "delete", "truncate", "splice"])
        if len(data) > 16 and rnd.random() < 0.9:  # mostly past the magic bytes
            at = rnd.randrange(16, len(data))
        else:
            at = rnd.randrange(0, max(min(16, len(data)), 1))
        if op == "flip" and data:
            data[at] ^= 1 << rnd.randrange(8)
        elif op == "set" and data:
            data[at] = rnd.choice([0, 0xFF, 0x22, 0x2C, 0x0A, 0x0D, 0x09, 0x7F])
        elif op == "insert":
            data[at:at] = rnd.randbytes(rnd.randint(1, 16))
        elif op == "delete":
            del data[at:at + rnd.randint(1, 64)]
        elif op == "truncate":
            del data[at:]
        elif op == "splice" and len(data) > 8:
            start = rnd.randrange(len(data))
            data[at:at] = data[start:start + rnd.randint(1, 512)]
    return bytes(data)


def _seed_table() -> pl.DataFrame:
    from ingest.synth import generate

    frame, _ = generate(40, seed=3)
    return frame


SEED_FRAME = _seed_table()
CSV_SEEDS = [
    SEED_FRAME.write_csv(None, quote_style="always", line_terminator="\r\n").encode("cp1252")
    + b"TOTAL RECORDS: 40\r\n",
    SEED_FRAME.write_csv(None, separator="\t").encode("utf-8"),
    b"\xef\xbb\xbf" + SEED_FRAME.head(5).write_csv(None, separator=";").encode("utf-8"),
]


@FUZZ
@given(data=st.one_of(mutated(CSV_SEEDS), st.binary(max_size=2048)))
def test_the_delimited_reader_survives_any_input(data: bytes) -> None:
    result = survives(read_delimited, data, DATASET, "f.csv")
    if isinstance(result, SourceTable):
        assert result.frame.columns == COLUMNS


@FUZZ
@given(data=st.one_of(mutated(CSV_SEEDS), st.binary(max_size=2048)))
def test_reading_any_member_survives(data: bytes) -> None:
    survives(read_member, Member("f.dat", data), DATASET)


_INNER = {"cases.csv": CSV_SEEDS[0][:3000], "notes/readme.txt": b"hello\r\n" * 20}
CONTAINER_SEEDS = [
    make_tar(_INNER), make_tar(_INNER, "gz"), make_tar(_INNER, "xz", "pax"),
    make_tar(_INNER, "zst"), make_tar(_INNER, "bz2"),
    make_zip(_INNER), make_zip(_INNER, "pw"),
    make_7z(_INNER), make_7z(_INNER, "pw", encrypt_names=True),
    make_iso(_INNER),
    make_tar({"inner.zip": make_zip(_INNER)}, "gz"),  # nested
]
FUZZ_LIMITS = Limits(max_expanded_bytes=8 * 2**20, max_expansion_ratio=200.0, max_nesting=3,
                     max_members=200)


def _expand(data: bytes) -> object:
    ctx = OpenContext(passphrase="pw", limits=FUZZ_LIMITS)
    leaves, _ = expand([Member("d.bin", data)], ctx, None)
    assert sum(len(m) for m in leaves) <= FUZZ_LIMITS.max_expanded_bytes + len(data)
    return leaves


@FUZZ
@given(data=mutated(CONTAINER_SEEDS))
def test_container_detection_survives_damaged_archives(data: bytes) -> None:
    survives(_expand, data)


@FUZZ
@given(head=st.sampled_from([b"", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd",
                             b"PK\x03\x04", b"PK\x05\x06", b"7z\xbc\xaf\x27\x1c", b"\x85\x01"]),
       body=st.binary(max_size=4096), iso=st.booleans())
def test_container_detection_survives_random_bytes(head: bytes, body: bytes, iso: bool) -> None:
    data = head + body
    if iso:  # the ISO 9660 signature sits at 32 KiB
        data = data.ljust(0x8001, b"\0") + b"CD001" + body
    survives(_expand, data)


def test_the_fuzz_budget_is_reported() -> None:
    """Not a property: records how many examples each fuzz property ran (for the docs)."""
    assert FUZZ.max_examples == (FUZZ_EXAMPLES or 400)
    assert ROUND_TRIP.max_examples == (FUZZ_EXAMPLES or 200)
    assert len(CONTAINER_SEEDS) == 11 and len(CSV_SEEDS) == 3


@pytest.mark.parametrize("seed", range(len(CONTAINER_SEEDS)))
def test_every_container_seed_opens_intact(seed: int) -> None:
    leaves = _expand(CONTAINER_SEEDS[seed])
    assert {m.basename for m in leaves} == {"cases.csv", "readme.txt"}
