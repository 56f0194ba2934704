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

3. Sizes: tables of tens of MiB whose awkward rows sit across every chunk and
   batch boundary of the readers (the CSV reader's 64 KiB encoding sample and its
   16 MiB transcoding chunks, the xlsx scan's 64 KiB blocks, 1 MiB parse chunks and
   8 MiB head, the Access export's batches), read back exactly.

About a minute by default; ``INGEST_FUZZ_EXAMPLES=N`` runs every fuzz property
and every text round trip with N examples instead (workbook round trips with N/4,
large tables with N/50), for a long run. Every property is derandomised: a run is
the same run on any machine, and a failure replays (hypothesis keeps no example
database: the inputs are synthetic, and nothing is written to disk).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Callable, Iterator

import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from ingest.errors import IngestError
from ingest.media import Limits, Member, OpenContext, expand
from ingest.readers import SourceTable, read_member
from ingest.readers.csv import _TRANSCODE_CHUNK, read_delimited, split_trailer
from ingest.readers.excel import HEADER_SCAN_ROWS, read_workbook
from ingest.readers.excel._package import _HEAD_BYTES as _XLSX_HEAD_BYTES
from ingest.schema import load_dataset
from ingest.synth.packaging import make_7z, make_iso, make_tar, make_zip

DATASET = load_dataset("reference")
COLUMNS = DATASET.source_names
TEXT_COLUMNS = [c.source for c in DATASET.columns
                if c.kind in ("string", "category") and not c.width]
FUZZ_EXAMPLES = int(os.environ.get("INGEST_FUZZ_EXAMPLES", "0"))
PER_EXAMPLE_SECONDS = 10

ROUND_TRIP = settings(max_examples=FUZZ_EXAMPLES or 200, deadline=2000, database=None,
                      derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORKBOOK_ROUND_TRIP = settings(ROUND_TRIP, max_examples=FUZZ_EXAMPLES // 4 or 60)
"""Each workbook example costs two calamine loads (~0.3 s)."""
FUZZ = settings(max_examples=FUZZ_EXAMPLES or 400, deadline=3000, database=None,
                derandomize=True,
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

    Positions come from a hypothesis-drawn ``Random`` (replayed with the example), so
    that they spread over the whole input (hypothesis' own integers favour small
    values, which would mostly break the magic bytes and leave nothing for the
    container code to chew on).
    """
    rnd = draw(st.randoms(use_true_random=False))
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


def test_every_property_is_derandomised_with_its_budget() -> None:
    """Each property runs with the settings it is documented to have: replayable
    (derandomised, no example database) and with its number of examples."""
    import sys

    module = sys.modules[__name__]
    budget = {"large": LARGE, "batches": LARGE, "survive": FUZZ, "round_trip": ROUND_TRIP}
    checked = 0
    for name, test in vars(module).items():
        inner = getattr(test, "hypothesis", None)
        if not name.startswith("test_") or inner is None:
            continue
        used = test._hypothesis_internal_use_settings
        assert used.derandomize and used.database is None, name
        expected = next((b for key, b in budget.items() if key in name), None)
        if name in ("test_xlsx_round_trip", "test_xls_round_trip"):
            expected = WORKBOOK_ROUND_TRIP
        elif name == "test_a_trailer_is_read_as_a_trailer_and_checked":
            expected = ROUND_TRIP
        assert expected is not None and used.max_examples == expected.max_examples, name
        checked += 1
    assert checked >= 12


@pytest.mark.parametrize("seed", range(len(CONTAINER_SEEDS)))
def test_every_container_seed_opens_intact(seed: int) -> None:
    leaves = _expand(CONTAINER_SEEDS[seed])
    assert {m.basename for m in leaves} == {"cases.csv", "readme.txt"}


# --- sizes: across every chunk and batch boundary of the readers -------------------------------

LARGE = settings(max_examples=FUZZ_EXAMPLES // 50 or 3, deadline=None, database=None,
                 derandomize=True, suppress_health_check=list(HealthCheck),
                 phases=[Phase.explicit, Phase.generate])
"""Each example is tens of MiB: a few examples, each placing awkward rows where a
chunk or batch ends. Not shrunk (minutes per step at this size); a failure is
reported as generated, and replays, being derandomised."""

_CSV_SAMPLE = 1 << 16
"""The sample ``readers.csv`` checks for UTF-8 before decoding the whole file."""


def _filler(start: int, rows: int, ascii_only: bool, pad: int = 0) -> pl.DataFrame:
    """Plain rows, each the same number of bytes (the last ``pad`` bytes longer)."""
    note = "plain note" if ascii_only else "café, señal €"
    frame = pl.DataFrame({"CASE_ID": pl.int_range(start, start + rows, eager=True)
                          .cast(pl.Utf8).str.zfill(10)})
    frame = frame.with_columns(*(pl.lit(v).alias(c) for c, v in zip(
        COLUMNS[1:], ["PA1B2C3D4", "01/31/1970", "F", "06037", "02/01/2024", "A01.1", "1.5",
                      "N", note], strict=True)))
    if pad:
        frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == rows - 1)
                                   .then(pl.lit(note + "x" * pad)).otherwise(pl.col("CMNT"))
                                   .alias("CMNT"))
    return frame


def _placed(awkward: list[pl.DataFrame], at: list[int], write: Callable[[pl.DataFrame, bool],
            bytes], ascii_only: bool) -> tuple[pl.DataFrame, bytes]:
    """A table whose ``awkward[i]`` rows start ``at[i]`` bytes into the written file."""
    pieces: list[pl.DataFrame] = []
    data = bytearray(write(_filler(0, 0, ascii_only), True))  # the header
    row_bytes = len(write(_filler(0, 1, ascii_only), False))
    start = 0
    for rows, offset in zip(awkward, at, strict=True):
        gap = offset - len(data)
        assert gap >= 2 * row_bytes, (offset, len(data))
        count, pad = divmod(gap, row_bytes)
        filler = _filler(start, count, ascii_only, pad)
        start += count
        for piece in (filler, rows):
            data += write(piece, False)
            pieces.append(piece)
    tail = _filler(start, 1000, ascii_only)
    data += write(tail, False)
    return pl.concat([*pieces, tail]), bytes(data)


@st.composite
def boundaries(draw: st.DrawFn, limits: list[int]) -> list[int]:
    """Where each cluster of awkward rows starts: up to 300 bytes before a boundary."""
    return [limit - draw(st.integers(0, 300)) for limit in limits]


@LARGE
@given(awkward=st.lists(tables(encodable("utf-8"), max_rows=4), min_size=3, max_size=3),
       at=boundaries([_CSV_SAMPLE, _TRANSCODE_CHUNK, 2 * _TRANSCODE_CHUNK]),
       sep=st.sampled_from([",", "\t"]), bom=st.booleans())
def test_large_utf8_csv_round_trip(awkward: list[pl.DataFrame], at: list[int], sep: str,
                                   bom: bool) -> None:
    """Multi-byte characters, quotes and line breaks across the 64 KiB sample and the
    16 MiB chunks: read exactly, as UTF-8."""
    def write(frame: pl.DataFrame, header: bool) -> bytes:
        return frame.write_csv(None, separator=sep, line_terminator="\r\n",
                               include_header=header).encode("utf-8")

    frame, data = _placed(awkward, at, write, ascii_only=False)
    assume(not is_trailer_like(data[-200:].decode("utf-8", "replace")))
    assert len(data) > 2 * _TRANSCODE_CHUNK
    table = read_delimited((b"\xef\xbb\xbf" if bom else b"") + data, DATASET, "p.csv")
    assert table.encoding == ("utf-8-sig" if bom else "utf-8")
    assert table.frame.equals(frame)


@LARGE
@given(awkward=st.lists(tables(encodable("cp1252"), max_rows=4), min_size=3, max_size=3),
       at=boundaries([_CSV_SAMPLE, _TRANSCODE_CHUNK, 2 * _TRANSCODE_CHUNK]),
       ascii_only=st.booleans())
def test_large_cp1252_csv_round_trip(awkward: list[pl.DataFrame], at: list[int],
                                     ascii_only: bool) -> None:
    """Windows-1252 transcoded a chunk at a time; with ``ascii_only`` filler the first
    byte that is not UTF-8 may come only after the sample, or after a whole chunk."""
    def write(frame: pl.DataFrame, header: bool) -> bytes:
        return frame.write_csv(None, line_terminator="\r\n", quote_style="always",
                               include_header=header).encode("cp1252")

    frame, data = _placed(awkward, at, write, ascii_only)
    assert len(data) > 2 * _TRANSCODE_CHUNK
    utf8 = True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = False
    table = read_delimited(data, DATASET, "p.csv")
    assert table.encoding == ("utf-8" if utf8 else "cp1252")
    assert table.frame.equals(frame)


@LARGE
@given(awkward=st.lists(workbook_tables("utf-8"), min_size=2, max_size=2),
       rows=st.sampled_from([HEADER_SCAN_ROWS - 1, HEADER_SCAN_ROWS]),
       shift=st.integers(0, 40))
def test_large_xlsx_round_trip(awkward: list[pl.DataFrame], rows: int, shift: int) -> None:
    """A sheet whose XML runs past the package scan's 8 MiB head (and so across its
    64 KiB blocks and 1 MiB parse chunks), with awkward rows at the end of the
    header scan and past the head."""
    body = 25_000 + shift  # rows of about 380 bytes of sheet XML: ~9.5 MiB
    frame = pl.concat([_filler(0, rows, False), awkward[0], _filler(rows, body, False),
                       awkward[1], _filler(rows + body, 3, False)])
    data = write_xlsx(frame)
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as package:
        sheet = next(i for i in package.infolist() if i.filename.startswith("xl/worksheets/"))
        assert sheet.file_size > _XLSX_HEAD_BYTES
    _check_workbook(frame, read_workbook(data, DATASET, "p.xlsx", "xlsx"))


@LARGE
@given(batch=st.one_of(st.integers(1, 4096), st.integers(4096, 3 << 20)))
def test_access_batches_do_not_change_the_table(batch: int) -> None:
    """The 20k-row Access fixture read in export batches split at any size equals the
    table read in the default batches (whose 4 MiB this fixture does not reach)."""
    from ingest.readers import access

    from conftest import data_fixture

    member = Member("cases.accdb", data_fixture("access", "reference_20k.accdb").read_bytes())
    expected = _access_reference(member)
    original = access.EXPORT_BATCH_BYTES
    access.EXPORT_BATCH_BYTES = batch
    try:
        got = read_member(member, DATASET)
    finally:
        access.EXPORT_BATCH_BYTES = original
    assert got.rows == expected.rows == 20_000  # the fixture's truth
    assert got.frame.equals(expected.frame)


_ACCESS_REFERENCE: dict[str, SourceTable] = {}


def _access_reference(member: Member) -> SourceTable:
    if "table" not in _ACCESS_REFERENCE:
        _ACCESS_REFERENCE["table"] = read_member(member, DATASET)
    return _ACCESS_REFERENCE["table"]


def test_large_tables_cross_the_readers_boundaries() -> None:
    """The sizes above are taken from the readers: were a chunk or batch to grow past
    them, this fails rather than the large properties silently staying inside one."""
    from ingest.readers import access
    from ingest.readers.csv import _not_utf8_from_the_start

    assert _TRANSCODE_CHUNK == 1 << 24 and _XLSX_HEAD_BYTES == 8 << 20
    assert _not_utf8_from_the_start.__defaults__ == (_CSV_SAMPLE,)
    assert access.EXPORT_BATCH_BYTES == 4 << 20
    assert LARGE.max_examples >= 3 or FUZZ_EXAMPLES
