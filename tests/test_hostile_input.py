"""Hostile and broken deliveries, end to end through ``run_delivery``.

Each case packs a small delivery (a few hundred rows of the reference table,
with canary values) the way a broken or hostile sender would, runs it through
the library path into an output root that already holds a published delivery,
and checks that the run either
- fails with one of our own exceptions, whose message names members, columns
  and rows but quotes no value, with the foreign chain cut; the output root is
  byte for byte as it was, nothing was written anywhere else (the delivery
  folder, the working directory, the temp folder), and the audit log records
  the failure and still verifies; or
- succeeds with every row accounted for (accepted + quarantined = delivered),
  where the input is awkward but legitimate.

Container-level unit cases (each format's traversal, links, bombs) live in
test_media.py; here they go through the whole pipeline. The counts per category
are in docs/reliability.md.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import random
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from ingest import audit
from ingest.errors import (
    ChecksumError,
    IngestError,
    MediaError,
    ReadError,
    SchemaMismatchError,
    ValidationRejected,
)
from ingest.pipeline import RunSummary, run_delivery
from ingest.settings import Settings, load_settings
from ingest.synth import forms, generate, to_delimited
from ingest.synth.packaging import make_7z, make_tar, make_zip, write_sums

from conftest import DELIVERY_DATE, data_fixture

PERSON = "PCAFEBABE"
COMMENT = "CANARY-ZEBRA-7731 hostile"
ROWS = 300


# --- the world a run sees ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> tuple[pl.DataFrame, object]:
    return generate(ROWS, seed=41, delivery_date=DELIVERY_DATE,
                    canaries={"person_id": PERSON, "comment": COMMENT})


@pytest.fixture(scope="module")
def secrets_(table) -> list[str]:
    """Values that must never appear in a message: canaries and a few real cells."""
    frame, _ = table
    first = frame.row(0, named=True)
    return [PERSON, COMMENT, first["CASE_ID"], first["PERS_ID"], frame["CASE_ID"][ROWS // 2]]


@pytest.fixture(scope="module")
def baseline(keyring_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root holding one published delivery, copied into each test."""
    base = tmp_path_factory.mktemp("hostile-baseline")
    frame, _ = generate(200, seed=5, delivery_date=DELIVERY_DATE)
    (base / "earlier").mkdir()
    (base / "earlier" / "cases.csv").write_bytes(to_delimited(frame))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INGEST_HOME", str(keyring_home))
        run_delivery(base / "earlier", out=base / "out", delivery_date=DELIVERY_DATE)
    return base / "out"


@dataclasses.dataclass
class World:
    root: Path
    out: Path
    tmp: Path
    cwd: Path
    secrets: list[str]
    settings: Settings

    def deliver(self, files: dict[str, bytes], name: str = "delivery") -> Path:
        folder = self.root / name
        folder.mkdir()
        for member, data in files.items():
            (folder / member).write_bytes(data)
        return folder


@pytest.fixture
def world(home: Path, tmp_path: Path, baseline: Path, secrets_: list[str],
          monkeypatch: pytest.MonkeyPatch) -> World:
    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    tmp.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    shutil.copytree(baseline, out)
    return World(tmp_path, out, tmp, cwd, secrets_, load_settings())


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` with its content hash; lock files are bookkeeping."""
    if not root.exists():
        return {}
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".locks" or rel.startswith(".locks/"):
            continue
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and \
            not path.is_symlink() else ("dir" if path.is_dir() else "other")
    return found


def audit_tail(settings: Settings) -> dict:
    import json

    audit.verify(settings.audit_log)
    return json.loads(settings.audit_log.read_bytes().splitlines()[-1])


def refused(world: World, files: dict[str, bytes], error: type[IngestError] = IngestError,
            settings: Settings | None = None, **kwargs: object) -> str:
    """Run and expect ``error``; nothing anywhere may change, nothing may leak."""
    folder = world.deliver(files)
    before_out, before_in = snapshot(world.out), snapshot(folder)
    with pytest.raises(error) as caught:
        run_delivery(folder, out=world.out, delivery_date=DELIVERY_DATE,
                     settings=settings, **kwargs)  # type: ignore[arg-type]
    exc = caught.value
    message = str(exc)
    leaked = [s for s in world.secrets if s in message]
    assert not leaked, f"a value in the message: {message}"
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    assert snapshot(world.out) == before_out, "the output root changed"
    assert snapshot(folder) == before_in, "the delivery changed"
    assert list(world.tmp.iterdir()) == [], "something was written to the temp folder"
    assert list(world.cwd.iterdir()) == [], "something was written to the working folder"
    tail = audit_tail(settings or world.settings)
    assert (tail["outcome"], tail["error"]) == ("failed", type(exc).__name__)
    return message


def accepted(world: World, files: dict[str, bytes], **kwargs: object) -> RunSummary:
    """Run and expect success with every row accounted for; nothing written but the outputs."""
    from ingest.custody import verify_outputs
    from ingest.keys import Keyring

    folder = world.deliver(files)
    summary = run_delivery(folder, out=world.out, delivery_date=DELIVERY_DATE,
                           **kwargs)  # type: ignore[arg-type]
    assert summary.rows_accepted + summary.rows_quarantined == summary.rows_in
    assert list(world.tmp.iterdir()) == [] and list(world.cwd.iterdir()) == []
    assert len(verify_outputs(world.out, Keyring.open())) == 2
    return summary


# --- CSV and TSV --------------------------------------------------------------------------------


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def delimited(frame: pl.DataFrame, sep: str = ",", newline: str = "\r\n",
              edit: Callable[[list[list[str]]], list[str]] | None = None,
              encoding: str = "cp1252") -> bytes:
    """Header and rows, every value quoted; ``edit`` turns the cell lists into lines."""
    rows = [[str(v) for v in row] for row in frame.rows()]
    lines = edit(rows) if edit else [sep.join(quote(v) for v in r) for r in rows]
    header = sep.join(quote(c) for c in frame.columns)
    return newline.join([header, *lines, ""]).encode(encoding)


def _row_edit(index: int, change: Callable[[list[str]], str], sep: str = ","
              ) -> Callable[[list[list[str]]], list[str]]:
    def edit(rows: list[list[str]]) -> list[str]:
        return [change(r) if i == index else sep.join(quote(v) for v in r)
                for i, r in enumerate(rows)]
    return edit


RAGGED = {
    "csv-one-field-short": (",", lambda r: ",".join(quote(v) for v in r[:-1]), "has 9"),
    "csv-one-field-long": (",", lambda r: ",".join(quote(v) for v in [*r, "x"]), "has 11"),
    "csv-unquoted-comma": (",", lambda r: ",".join([*map(quote, r[:-1]), "a, b"]), "has 11"),
    "csv-only-the-id": (",", lambda r: quote(r[0]), "has 1"),
    "csv-blank-line": (",", lambda r: "", "is blank"),
    "tsv-one-field-short": ("\t", lambda r: "\t".join(quote(v) for v in r[:-1]), "has 9"),
    "tsv-one-field-long": ("\t", lambda r: "\t".join(quote(v) for v in [*r, "x"]), "has 11"),
}


@pytest.mark.parametrize("case", sorted(RAGGED))
def test_a_row_with_the_wrong_field_count_fails_the_delivery_naming_the_row(
        world: World, table, case: str) -> None:
    frame, _ = table
    sep, change, says = RAGGED[case]
    data = delimited(frame, sep, edit=_row_edit(99, change, sep))
    message = refused(world, {"cases.csv": data}, ReadError)
    # the line counts the line breaks inside quoted comments above the row
    lines = _row_edit(99, change, sep)([[str(v) for v in r] for r in frame.rows()])
    line = "\r\n".join(["header", *lines[:99], ""]).count("\n") + 1
    assert f"data row 100 (line {line}) {says}" in message, message
    assert "not padded or cut" in message


def test_many_ragged_rows_are_counted_not_all_listed(world: World, table) -> None:
    frame, _ = table
    data = delimited(frame, edit=lambda rows: [",".join(quote(v) for v in (r if i % 3 else r[:-1]))
                                               for i, r in enumerate(rows)])
    message = refused(world, {"cases.csv": data}, ReadError)
    assert "100 row(s) do not have the header's 10 fields" in message
    assert "and 95 more" in message


UNBALANCED = {
    "unclosed-in-the-last-row": lambda rows: [*(",".join(map(quote, r)) for r in rows[:-1]),
                                              ",".join(map(quote, rows[-1]))[:-1]],
    "unclosed-in-a-middle-row": lambda rows: [
        ",".join(map(quote, r)) if i != 150 else ",".join(map(quote, r)).replace('","', '",', 1)
        for i, r in enumerate(rows)],
    "text-after-the-closing-quote": lambda rows: [
        ",".join(map(quote, r)) + ("x" if i == 10 else "") for i, r in enumerate(rows)],
    "stray-quote-inside-an-unquoted-value": lambda rows: [
        ",".join([*map(quote, r[:-1]), 'ab"c' if i == 20 else quote(r[-1])])
        for i, r in enumerate(rows)],
}


@pytest.mark.parametrize("case", sorted(UNBALANCED))
def test_unbalanced_quotes_fail_clearly(world: World, table, case: str) -> None:
    frame, _ = table
    refused(world, {"cases.csv": delimited(frame, edit=UNBALANCED[case])}, ReadError)


@pytest.mark.parametrize("where", ["first-8k", "last-row"])
def test_nul_bytes_fail_clearly(world: World, table, where: str) -> None:
    frame, _ = table
    data = bytearray(delimited(frame))
    at = 300 if where == "first-8k" else len(data) - 20
    data[at:at] = b"\x00"
    message = refused(world, {"cases.csv": bytes(data)}, ReadError)
    # early NULs make the member look binary; later ones are named as such
    assert ("NUL byte" in message) if where == "last-row" else ("no table found" in message)


def test_mixed_crlf_and_lf_line_endings_are_read(world: World, table) -> None:
    frame, truth = table
    lines = delimited(frame, newline="\n").decode("cp1252").split("\n")
    text = "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines[:-1]))
    summary = accepted(world, {"cases.csv": text.encode("cp1252")})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, truth.quarantined)


@pytest.mark.parametrize("newline", ["\r", "mixed"])
def test_bare_cr_line_endings_fail_clearly(world: World, table, newline: str) -> None:
    frame, _ = table
    if newline == "\r":
        data = delimited(frame, newline="\r")
    else:
        data = delimited(frame).replace(b"\r\n", b"\r", 1).replace(b"\r\n", b"\r", 50)
    refused(world, {"cases.csv": data}, ReadError)


def test_trailing_blank_lines_and_a_dos_eof_mark_are_not_rows(world: World, table) -> None:
    frame, truth = table
    summary = accepted(world, {"cases.csv": to_delimited(frame, trailer=False) + b"\r\n\r\n\x1a"})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, truth.quarantined)


def test_a_single_50mb_field_is_read_and_quarantined_whole(world: World, table) -> None:
    frame, truth = table
    huge = frame.with_columns(frame["CMNT"].scatter(7, "x" * (50 * 2**20)))
    summary = accepted(world, {"cases.csv": to_delimited(huge, encoding="utf-8")})
    assert summary.rows_in == ROWS
    assert summary.rows_quarantined == truth.quarantined + (0 if 8 in truth.bad_rows else 1)
    assert summary.quarantine_reasons.get("comments:str_length", 0) >= 1


HEADERS: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], list[str]]] = {
    "missing": (lambda f: f.drop("SEX"), ["missing SEX"]),
    "renamed": (lambda f: f.rename({"DX_CD": "DIAG_CODE"}),
                ["missing DX_CD", "unexpected DIAG_CODE"]),
    "two-missing-one-extra": (lambda f: f.drop("DOB", "LAB_VAL").with_columns(pl.lit("1")
                                                                             .alias("NOTE")),
                              ["missing DOB, LAB_VAL", "unexpected NOTE"]),
    "repeated": (lambda f: f.with_columns(pl.col("SEX").alias("sex")), ["repeated column"]),
    "no-header": (lambda f: f, ["no header row"]),
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_a_header_that_differs_lists_the_differences(world: World, table, case: str) -> None:
    frame, _ = table
    change, expected = HEADERS[case]
    data = to_delimited(change(frame))
    if case == "no-header":
        data = data.split(b"\r\n", 1)[1]
    message = refused(world, {"cases.csv": data}, SchemaMismatchError)
    assert all(e in message for e in expected), message


@pytest.mark.parametrize("case", ["reordered", "extra-column", "different-case-and-spaces"])
def test_header_differences_that_lose_nothing_are_read(world: World, table, case: str) -> None:
    frame, truth = table
    if case == "reordered":
        changed = frame.select(sorted(frame.columns))
    elif case == "extra-column":
        changed = frame.with_columns(pl.lit("ignored").alias("EXTRA_NOTE"))
    else:
        changed = frame.rename({c: c.lower().replace("_", " ") for c in frame.columns})
    summary = accepted(world, {"cases.csv": to_delimited(changed)})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, truth.quarantined)
    if case == "extra-column":  # named in the table's notes (not yet in the run summary)
        from ingest.readers.csv import read_delimited
        from ingest.schema import load_dataset

        table = read_delimited(to_delimited(changed), load_dataset("reference"), "c.csv")
        assert table.notes == ["ignored 1 column(s) not in schema 'reference': EXTRA_NOTE"]


@pytest.mark.parametrize("count", [ROWS - 1, ROWS + 1, 0])
def test_a_trailer_that_disagrees_fails_the_delivery(world: World, table, count: int) -> None:
    frame, _ = table
    data = to_delimited(frame).replace(f"TOTAL RECORDS: {ROWS}".encode(),
                                       f"TOTAL RECORDS: {count}".encode())
    message = refused(world, {"cases.csv": data}, ReadError)
    assert f"trailer says {count} records but {ROWS}" in message


# --- workbooks ----------------------------------------------------------------------------------


def xlsx_parts(frame: pl.DataFrame) -> dict[str, bytes]:
    book = zipfile.ZipFile(io.BytesIO(forms.to_xlsx(frame, native_types=False)))
    return {name: book.read(name) for name in book.namelist()}


def repack(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for name, data in parts.items():
            book.writestr(name, data)
    return out.getvalue()


_DOCTYPE_AFTER = re.compile(rb"(<\?xml[^>]*\?>\s*)")


def with_entities(xml: bytes, root: str, doctype: str, use: tuple[bytes, bytes]) -> bytes:
    """``xml`` with a DOCTYPE declaring entities, and one text replaced by a reference."""
    xml = xml.replace(b'standalone="yes"', b'standalone="no"')
    xml = _DOCTYPE_AFTER.sub(lambda m: m.group(1) + f"<!DOCTYPE {root} [{doctype}]>".encode(),
                             xml, count=1)
    assert use[0] in xml
    return xml.replace(use[0], use[1], 1)


LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10))
XXE = '<!ENTITY xxe SYSTEM "file:///etc/passwd">'
XXE_PARAM = '<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;'


@pytest.mark.parametrize("part,root,doctype,use", [
    ("xl/sharedStrings.xml", "sst", LAUGHS, (b"<t>CMNT</t>", b"<t>&lol9;</t>")),
    ("xl/sharedStrings.xml", "sst", XXE, (b"<t>CMNT</t>", b"<t>&xxe;</t>")),
    ("xl/sharedStrings.xml", "sst", XXE_PARAM, (b"<t>CMNT</t>", b"<t>CMNT</t>")),
    ("xl/worksheets/sheet1.xml", "worksheet", XXE, (b"<v>0</v>", b"<v>&xxe;</v>")),
    ("xl/worksheets/sheet1.xml", "worksheet", LAUGHS, (b"<v>0</v>", b"<v>&lol9;</v>")),
    ("xl/workbook.xml", "workbook", XXE, (b'name="Cases"', b'name="&xxe;"')),
], ids=["laughs-sst", "xxe-sst", "xxe-parameter-entity", "xxe-sheet", "laughs-sheet",
        "xxe-workbook"])
def test_xml_entities_in_a_workbook_are_never_expanded(world: World, table, part: str,
                                                       root: str, doctype: str,
                                                       use: tuple[bytes, bytes]) -> None:
    frame, _ = table
    parts = xlsx_parts(frame)
    parts[part] = with_entities(parts[part], root, doctype, use)
    if use[0] != use[1]:
        message = refused(world, {"cases.xlsx": repack(parts)}, ReadError)
        assert "root:" not in message and "lollol" not in message
        return
    # a DOCTYPE whose entity is never referenced: read, and nothing from the file came in
    import ingest

    accepted(world, {"cases.xlsx": repack(parts)})
    cells = ingest.load(world.out).with_columns(pl.all().cast(pl.Utf8)).write_csv()
    assert "root:" not in cells


@pytest.mark.parametrize("entry", [b"<si><t>x</t></si>", b"<pppppppppppppppppppp:si/>",
                                   b"<p-q:si/>"], ids=["plain", "long-prefix", "dashed-prefix"])
def test_an_enormous_shared_string_table_is_refused_before_it_is_loaded(world: World,
                                                                        table, entry) -> None:
    # calamine matches entries by their local name, whatever their prefix
    frame, _ = table
    parts = xlsx_parts(frame.head(20))
    entries = entry * 3_000_000  # tens of MB of XML in ~100 KB; hundreds of MB in calamine
    parts["xl/sharedStrings.xml"] = parts["xl/sharedStrings.xml"].replace(
        b"</sst>", entries + b"</sst>")
    message = refused(world, {"cases.xlsx": repack(parts)}, ReadError)
    assert "shared-string table" in message


def test_a_large_honest_shared_string_table_is_read(world: World, table) -> None:
    frame, truth = table
    unique = frame.with_columns(pl.format("{} #{}", pl.col("CMNT"), pl.int_range(ROWS))
                                .alias("CMNT"))
    summary = accepted(world, {"cases.xlsx": forms.to_xlsx(unique, native_types=False)})
    assert summary.rows_in == ROWS


def _book(build: Callable[[object, object], None]) -> bytes:
    import xlsxwriter  # type: ignore[import-untyped]

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    build(book, book.add_format({"num_format": "mm/dd/yyyy"}))
    book.close()
    return out.getvalue()


def _write_table(sheet, frame: pl.DataFrame, top: int = 0) -> None:  # noqa: ANN001
    sheet.write_row(top, 0, frame.columns)
    for r, row in enumerate(frame.rows(), start=top + 1):
        for c, value in enumerate(row):
            sheet.write_string(r, c, value)


def test_merged_cells_are_not_filled_in_the_hidden_cells_are_quarantined(world: World,
                                                                         table) -> None:
    frame, truth = table

    def build(book, _fmt) -> None:  # noqa: ANN001
        sheet = book.add_worksheet("Cases")
        _write_table(sheet, frame)
        # SEX of data rows 11-13 merged: as in Excel, only the first cell keeps a value
        sheet.merge_range(11, 3, 13, 3, frame["SEX"][10], book.add_format({"bold": True}))

    summary = accepted(world, {"cases.xlsx": _book(build)})
    assert summary.rows_in == ROWS
    extra = len({12, 13} - set(truth.bad_rows))
    assert summary.rows_quarantined == truth.quarantined + extra
    assert summary.quarantine_reasons["sex:not_nullable"] >= extra


def test_formula_errors_are_quarantined_never_read_as_values(world: World, table) -> None:
    frame, truth = table
    errors = {5: ("LAB_VAL", "#N/A"), 6: ("DOB", "#VALUE!"), 7: ("CASE_ID", "#REF!")}

    def build(book, _fmt) -> None:  # noqa: ANN001
        sheet = book.add_worksheet("Cases")
        _write_table(sheet, frame)
        for row, (column, error) in errors.items():
            sheet.write_formula(row, frame.columns.index(column), "=NA()", None, error)

    summary = accepted(world, {"cases.xlsx": _book(build)})
    bad = set(truth.bad_rows) | set(errors)
    assert summary.rows_quarantined == len(bad)


def test_empty_and_hidden_sheets_beside_the_table(world: World, table) -> None:
    frame, truth = table

    def build(book, _fmt) -> None:  # noqa: ANN001
        book.add_worksheet("Empty")
        notes = book.add_worksheet("Hidden notes")
        notes.write_string(0, 0, "internal notes")
        notes.hide()
        _write_table(book.add_worksheet("Cases"), frame, top=3)
        book.add_worksheet("Empty too")

    summary = accepted(world, {"cases.xlsx": _book(build)})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, truth.quarantined)


@pytest.mark.parametrize("case", ["only-empty-sheets", "no-header", "header-too-low"])
def test_a_workbook_without_the_header_is_a_schema_mismatch(world: World, table,
                                                            case: str) -> None:
    frame, _ = table

    def build(book, _fmt) -> None:  # noqa: ANN001
        sheet = book.add_worksheet("Cases")
        if case == "no-header":
            _write_table(sheet, frame)
            sheet.write_row(0, 0, [f"column {i}" for i in range(frame.width)])
        elif case == "header-too-low":
            _write_table(sheet, frame, top=40)
        book.add_worksheet("Other")

    refused(world, {"cases.xlsx": _book(build)}, SchemaMismatchError)


# --- Access -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mdb() -> bytes:
    return data_fixture("access", "reference_20k.mdb").read_bytes()


ACCESS_TRIALS = 24


def test_corrupt_pages_in_an_access_database_are_detected_or_every_row_is_accounted_for(
        mdb: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """mdbtools has no checksums: damage is caught by the row count, or the rows read are
    what the damaged file holds (validation judges them); never a crash or a hang.

    Both must happen over the trials, or the test says nothing about one of them: some
    damage is refused, and some is read with rows that differ from the intact file's.
    """
    import json
    from datetime import date

    from ingest.readers import access
    from ingest.schema import load_dataset
    from ingest.validate import validate

    monkeypatch.setenv("INGEST_TOOL_STALL_SECONDS", "60")
    dataset = load_dataset("reference")
    truth = json.loads(data_fixture("access", "reference_20k.truth.json").read_text())
    secrets = [v for c in truth["canaries"] for v in (c["pers_id"], c["token"])]
    delivered = date.fromisoformat(truth["delivery_date"])
    intact = access.read(mdb, dataset, "cases.mdb").frame
    assert intact.height == truth["rows"]
    as_text = intact.select(pl.all().cast(pl.Utf8)).with_row_index()
    rng = random.Random(2026)
    refused, altered, unaltered = 0, 0, 0
    for _ in range(ACCESS_TRIALS):
        data = bytearray(mdb)
        page = rng.randrange(1, len(data) // 4096)
        for _ in range(rng.choice([1, 8, 64])):
            data[page * 4096 + rng.randrange(4096)] ^= 1 << rng.randrange(8)
        try:
            result = access.read(bytes(data), dataset, "cases.mdb")
        except ReadError as exc:
            assert not any(s in str(exc) for s in secrets) and exc.__cause__ is None
            refused += 1
            continue
        assert result.rows == truth["rows"]  # every row the file counts is read
        checked = validate(result, dataset, delivered)
        assert checked.rows_accepted + checked.rows_quarantined == truth["rows"]
        assert checked.quarantined["_reasons"].null_count() == 0
        # as text: damage to the catalog can change a column's Access type too
        differ = as_text.join(result.frame.select(pl.all().cast(pl.Utf8)).with_row_index(),
                              on=as_text.columns, how="anti", nulls_equal=True)
        altered += differ.height > 0
        unaltered += differ.height == 0
    assert refused and altered, (refused, altered, unaltered)


@pytest.mark.parametrize("damage", ["zeroed-page", "header-page", "truncated"])
def test_a_damaged_access_database_end_to_end(world: World, mdb: bytes, damage: str) -> None:
    data = bytearray(mdb)
    if damage == "zeroed-page":
        data[20 * 4096:21 * 4096] = bytes(4096)  # inside the data pages of CASES
        data[2 * 4096:3 * 4096] = bytes(4096)    # and the catalog
    elif damage == "header-page":
        data[0x14:0x200] = bytes(0x200 - 0x14)
    else:
        data = data[: len(data) // 3]
    refused(world, {"cases.mdb": bytes(data)}, ReadError)


def test_an_access_database_without_the_table(world: World) -> None:
    data = data_fixture("access", "thirdparty", "testV2010.accdb").read_bytes()
    message = refused(world, {"other.accdb": data}, SchemaMismatchError)
    assert "no table CASES" in message and "tables:" in message


# --- archives, end to end -----------------------------------------------------------------------


def _tar(*entries: tuple[str, bytes, bytes, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _zip(*entries: tuple[str, bytes, int | None]) -> bytes:
    import warnings

    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(out, "w") as book:
            for name, data, mode in entries:
                info = zipfile.ZipInfo("placeholder")
                info.filename = name
                if mode is not None:
                    info.create_system = 3
                    info.external_attr = mode << 16
                book.writestr(info, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def csv_bytes(table) -> bytes:
    return to_delimited(table[0])


ESCAPE = "/tmp/ingest-hostile-escape.csv"
REG, SYM, LNK, CHR, BLK, FIFO = (tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                 tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)

HOSTILE_ARCHIVES: dict[str, Callable[[bytes], dict[str, bytes]]] = {
    "tar-dotdot": lambda c: {"t.tar": _tar(("cases.csv", REG, c, ""),
                                           ("../../escape.csv", REG, c, ""))},
    "tar-absolute": lambda c: {"t.tar": _tar(("cases.csv", REG, c, ""), (ESCAPE, REG, c, ""))},
    "tar-backslash-dotdot": lambda c: {"t.tar": _tar(("..\\escape.csv", REG, c, ""))},
    "tar-symlink": lambda c: {"t.tar": _tar(("cases.csv", SYM, b"", "/etc/passwd"))},
    "tar-symlink-then-file-through-it": lambda c: {"t.tar": _tar(
        ("d", SYM, b"", "/tmp"), ("d/ingest-hostile-escape.csv", REG, c, ""))},
    "tar-hardlink": lambda c: {"t.tar": _tar(("a.csv", REG, c, ""),
                                             ("cases.csv", LNK, b"", "/etc/passwd"))},
    "tar-char-device": lambda c: {"t.tar": _tar(("cases.csv", CHR, b"", ""))},
    "tar-block-device": lambda c: {"t.tar": _tar(("cases.csv", BLK, b"", ""))},
    "tar-fifo": lambda c: {"t.tar": _tar(("cases.csv", FIFO, b"", ""))},
    "tar-duplicate": lambda c: {"t.tar": _tar(("cases.csv", REG, c, ""),
                                              ("./cases.csv", REG, b"x", ""))},
    "tgz-duplicate-via-slashes": lambda c: {"t.tar.gz": gzip.compress(
        _tar(("a/cases.csv", REG, c, ""), ("a//cases.csv", REG, c, "")))},
    "zip-dotdot": lambda c: {"t.zip": _zip(("cases.csv", c, None), ("a/../../escape.csv", c,
                                                                     None))},
    "zip-absolute": lambda c: {"t.zip": _zip((ESCAPE, c, None))},
    "zip-drive-letter": lambda c: {"t.zip": _zip(("C:\\escape.csv", c, None))},
    "zip-symlink": lambda c: {"t.zip": _zip(("cases.csv", b"/etc/passwd", 0o120777))},
    "zip-device": lambda c: {"t.zip": _zip(("cases.csv", b"", 0o020644))},
    "zip-duplicate": lambda c: {"t.zip": _zip(("cases.csv", c, None), ("cases.csv", c, None))},
    "7z-duplicate": lambda c: {"t.7z": _7z_duplicate(c)},
    "sums-name-outside": lambda c: {"cases.csv": c,
                                    "SHA256SUMS": f"{'0' * 64}  ../../etc/passwd\n".encode()},
    "sums-mismatch": lambda c: {"cases.csv": c, "SHA256SUMS": write_sums({"cases.csv": b"x"})},
}


def _7z_duplicate(data: bytes) -> bytes:
    out = io.BytesIO()
    import py7zr

    with py7zr.SevenZipFile(out, "w") as archive:
        archive.writestr(data, "cases.csv")
        archive.writestr(data, "cases.csv")
    return out.getvalue()


@pytest.mark.parametrize("case", sorted(HOSTILE_ARCHIVES))
def test_hostile_archive_members_are_refused_end_to_end(world: World, csv_bytes: bytes,
                                                        case: str) -> None:
    escape = Path(ESCAPE)
    escape.unlink(missing_ok=True)
    files = HOSTILE_ARCHIVES[case](csv_bytes)
    error = ChecksumError if case.startswith("sums") else MediaError
    message = refused(world, files, error)
    assert "refused" in message or "checksum" in message or "names" in message, message
    assert not escape.exists()
    assert not (world.root.parent / "escape.csv").exists()


@pytest.mark.parametrize("kind", ["file-symlink", "folder-symlink", "fifo"])
def test_links_and_special_files_in_a_folder_delivery(world: World, csv_bytes: bytes,
                                                      kind: str) -> None:
    folder = world.root / "delivery"
    folder.mkdir()
    (folder / "cases.csv").write_bytes(csv_bytes)
    if kind == "file-symlink":
        (folder / "more.csv").symlink_to("/etc/passwd")
    elif kind == "folder-symlink":
        (folder / "more").symlink_to("/etc")
    else:
        os.mkfifo(folder / "more.csv")
    before = snapshot(world.out)
    with pytest.raises(MediaError, match="link|special"):
        run_delivery(folder, out=world.out, delivery_date=DELIVERY_DATE)
    assert snapshot(world.out) == before


def _zeros_csv(size: int) -> bytes:
    return b"CASE_ID\r\n" + bytes(size)


def _text(size: int, seed: int = 1) -> bytes:
    """Data that compresses about 3:1, so only the absolute size limit can stop it."""
    rng = random.Random(seed)
    return "".join(f"{rng.getrandbits(40):012d},{rng.random():.6f}\r\n"
                   for _ in range(size // 22)).encode()


def _nested_zips(inner: bytes, copies: int, levels: int) -> bytes:
    data = inner
    for level in range(levels):
        data = make_zip({f"l{level}-{i}.zip" if level else f"part{i}.csv": data
                         for i in range(copies)})
    return data


BOMBS: dict[str, tuple[Callable[[], dict[str, bytes]], dict[str, object]]] = {
    "zip-ratio": (lambda: {"b.zip": make_zip({"cases.csv": _zeros_csv(40 * 2**20)})}, {}),
    "tar-xz-ratio": (lambda: {"b.tar.xz": make_tar({"cases.csv": _zeros_csv(48 * 2**20)},
                                                   "xz")}, {}),
    "gz-ratio-lone-file": (lambda: {"cases.csv.gz": gzip.compress(_zeros_csv(48 * 2**20))}, {}),
    "7z-ratio": (lambda: {"b.7z": make_7z({"cases.csv": _zeros_csv(32 * 2**20)})}, {}),
    "nested-zip-ratio-inner": (lambda: {"b.zip": make_zip({"in.zip": make_zip(
        {"cases.csv": _zeros_csv(16 * 2**20)})})}, {"max_expansion_ratio": 100.0}),
    "nested-gz-in-gz": (lambda: {"b.csv.gz.gz": gzip.compress(gzip.compress(
        _zeros_csv(64 * 2**20)))}, {}),
    "absolute-size-plain": (lambda: {"b.tar": make_tar({"cases.csv": _text(3 * 2**20)})},
                            {"max_expanded_bytes": 2**20}),
    "absolute-size-nested-42zip-style": (lambda: {"b.zip": _nested_zips(_text(200_000), 4, 3)},
                                         {"max_expanded_bytes": 4 * 2**20}),
    "absolute-size-across-members": (lambda: {f"part{i}.tar.gz": make_tar(
        {f"p{i}.csv": _text(600_000, i)}, "gz") for i in range(4)},
        {"max_expanded_bytes": 2 * 2**20}),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_decompression_bombs_are_refused_end_to_end(world: World, case: str) -> None:
    build, limits = BOMBS[case]
    settings = dataclasses.replace(world.settings, limits=dataclasses.replace(
        world.settings.limits, **limits))  # type: ignore[arg-type]
    message = refused(world, build(), MediaError, settings=settings)
    assert "bomb" in message or "limit" in message, message


@pytest.mark.parametrize("kind", ["gzip", "zip", "tar", "mixed"])
def test_very_deep_nesting_is_refused(world: World, csv_bytes: bytes, kind: str) -> None:
    data, name = csv_bytes, "cases.csv"
    for level in range(40):
        layer = kind if kind != "mixed" else ("gzip", "zip", "tar")[level % 3]
        if layer == "gzip":
            data, name = gzip.compress(data), name + ".gz"
        elif layer == "zip":
            data, name = make_zip({name: data}), f"l{level}.zip"
        else:
            data, name = make_tar({name: data}), f"l{level}.tar"
    message = refused(world, {name: data}, MediaError)
    assert "nested deeper than 6" in message


def test_nesting_within_the_limit_is_read(world: World, csv_bytes: bytes, table) -> None:
    _, truth = table
    data = make_zip({"in.tar.gz": make_tar({"cases.csv.gz": gzip.compress(csv_bytes)}, "gz")})
    summary = accepted(world, {"d.zip": data})
    assert (summary.rows_in, summary.rows_quarantined) == (ROWS, truth.quarantined)


# --- the quarantine threshold, end to end -------------------------------------------------------


@pytest.fixture(scope="module")
def dirty() -> tuple[pl.DataFrame, object]:
    return generate(400, seed=9, bad_share=0.05, delivery_date=DELIVERY_DATE)


def test_a_quarantine_share_at_the_threshold_is_published(world: World, dirty) -> None:
    frame, truth = dirty
    share = truth.quarantined / truth.rows
    settings = dataclasses.replace(world.settings, max_quarantine_share=share)
    summary = accepted(world, {"cases.csv": to_delimited(frame)}, settings=settings)
    assert summary.rows_quarantined == truth.quarantined


def test_a_quarantine_share_over_the_threshold_rejects_the_delivery(world: World,
                                                                    dirty) -> None:
    frame, truth = dirty
    settings = dataclasses.replace(world.settings,
                                   max_quarantine_share=(truth.quarantined - 1) / truth.rows)
    message = refused(world, {"cases.csv": to_delimited(frame)}, ValidationRejected,
                      settings=settings)
    assert f"{truth.quarantined} of {truth.rows} rows" in message
    assert "nothing was published" in message
