"""A streaming ``.xlsx`` writer for benchmark inputs larger than one Excel sheet.

``ingest.synth.forms.to_xlsx`` builds the workbook with xlsxwriter in memory:
fine at 400,000 rows (17 s, 1.4 GB), but at 4,000,000 rows it would need about
ten times that, and one sheet holds at most 1,048,576 rows anyway. This writer
builds the same cells (numbers, Excel serial dates with the ``mm/dd/yyyy``
format, shared strings, blanks left out: the rules of ``forms._typed_cells``,
vectorised with polars) sheet by sheet, each at most ``rows_per_sheet`` data
rows under its own header, as a sender splitting a big table over sheets would.
Synthetic data only: it is written to the benchmark cache.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

MAX_DATA_ROWS = 1_048_575
"""An OOXML sheet holds 1,048,576 rows: one header and 1,048,575 data rows."""
NUMBER_COLUMNS = ("CASE_ID", "CNTY_FIPS", "LAB_VAL")
DATE_COLUMNS = ("DOB", "RPT_DT")

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>{sheets}'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.styles+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
_SHEET_TYPE = ('<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/'
               'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets>{sheets}</sheets></workbook>')
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '{sheets}<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/'
    '2006/relationships/styles" Target="styles.xml"/><Relationship Id="rIdT" Type="http://'
    'schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>')
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="mm/dd/yyyy"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill '
    'patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/>'
    '<bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" '
    'fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" '
    'fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" '
    'borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>')
_SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
               'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
               '<dimension ref="A1:{last}"/><sheetData>')
_SHEET_TAIL = '</sheetData></worksheet>'


def _letter(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _escape(expr: pl.Expr) -> pl.Expr:
    """XML text as xlsxwriter writes a shared string (CR as ``_x000D_``)."""
    return (expr.str.replace_all("&", "&amp;", literal=True)
            .str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True)
            .str.replace_all("\r", "_x000D_", literal=True))


def _cells(frame: pl.DataFrame) -> pl.DataFrame:
    """Per column: kind (n, d, s, b) and the value to write, as ``forms._typed_cells``."""
    out = []
    for name in frame.columns:
        text = pl.col(name).cast(pl.Utf8)
        blank = text.is_null() | (text == "")
        if name in NUMBER_COLUMNS:
            number = text.str.strip_chars().cast(pl.Float64, strict=False)
            ok = number.is_not_null() & number.is_finite()
            as_text = pl.when(number == number.round(0)).then(
                number.cast(pl.Int64, strict=False).cast(pl.Utf8)).otherwise(
                number.cast(pl.Utf8))
            kind = pl.when(ok).then(pl.lit("n")).when(blank).then(pl.lit("b")).otherwise(
                pl.lit("s"))
            value = pl.when(ok).then(as_text).otherwise(text)
        elif name in DATE_COLUMNS:
            days = text.str.strptime(pl.Date, "%m/%d/%Y", strict=False, exact=True)
            serial = days.cast(pl.Int32) + 25_568
            serial = pl.when(serial > 59).then(serial + 1).otherwise(serial)
            kind = pl.when(days.is_not_null()).then(pl.lit("d")).when(blank).then(
                pl.lit("b")).otherwise(pl.lit("s"))
            value = pl.when(days.is_not_null()).then(serial.cast(pl.Utf8)).otherwise(text)
        else:
            kind = pl.when(blank).then(pl.lit("b")).otherwise(pl.lit("s"))
            value = text
        out += [kind.alias(f"{name}.k"), value.alias(f"{name}.v")]
    return frame.select(out)


def write_xlsx(frame: pl.DataFrame, path: Path, rows_per_sheet: int = MAX_DATA_ROWS,
               chunk: int = 250_000) -> None:
    """``frame`` (all text, source names) as a workbook of sheets ``Cases 1..k``."""
    rows_per_sheet = max(1, min(rows_per_sheet, MAX_DATA_ROWS))
    names = frame.columns
    cells = _cells(frame)
    strings = pl.concat(
        [cells.filter(pl.col(f"{n}.k") == "s").get_column(f"{n}.v") for n in names]
        + [pl.Series(names, dtype=pl.Utf8)]).unique(maintain_order=True)
    index = pl.DataFrame({"s": strings, "i": pl.int_range(0, len(strings), eager=True)})
    for n in names:
        cells = cells.join(index.rename({"s": f"{n}.v", "i": f"{n}.i"}), on=f"{n}.v",
                           how="left", maintain_order="left")
    sheets = list(range(0, max(frame.height, 1), rows_per_sheet))
    last = _letter(len(names) - 1)

    def sheet_rows(start: int, stop: int) -> Iterator[bytes]:
        header = "".join(
            f'<c r="{_letter(j)}1" t="s"><v>{index.filter(pl.col("s") == n)["i"][0]}</v></c>'
            for j, n in enumerate(names))
        yield f'<row r="1">{header}</row>'.encode()
        for lo in range(start, stop, chunk):
            hi = min(lo + chunk, stop)
            part = cells.slice(lo, hi - lo).with_columns(
                (pl.int_range(0, hi - lo) + (lo - start) + 2).cast(pl.Utf8).alias("_r"))
            pieces = []
            for j, n in enumerate(names):
                k, v = pl.col(f"{n}.k"), pl.col(f"{n}.v")
                ref = pl.lit(f'<c r="{_letter(j)}') + pl.col("_r")
                pieces.append(
                    pl.when(k == "n").then(ref + pl.lit('"><v>') + v + pl.lit("</v></c>"))
                    .when(k == "d").then(ref + pl.lit('" s="1"><v>') + v + pl.lit("</v></c>"))
                    .when(k == "s").then(ref + pl.lit('" t="s"><v>')
                                         + pl.col(f"{n}.i").cast(pl.Utf8) + pl.lit("</v></c>"))
                    .otherwise(pl.lit("")))
            xml = part.select(pl.concat_str(
                [pl.lit('<row r="'), pl.col("_r"), pl.lit('">'), *pieces, pl.lit("</row>")],
                ignore_nulls=False).alias("x")).get_column("x")
            yield "".join(xml.to_list()).encode()

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        overrides = "".join(_SHEET_TYPE.format(n=i + 1) for i in range(len(sheets)))
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES.format(sheets=overrides))
        zf.writestr("_rels/.rels", _RELS)
        multi = len(sheets) > 1
        zf.writestr("xl/workbook.xml", _WORKBOOK.format(sheets="".join(
            f'<sheet name="Cases{f" {i + 1}" if multi else ""}" sheetId="{i + 1}" '
            f'r:id="rId{i + 1}"/>' for i in range(len(sheets)))))
        zf.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.format(sheets="".join(
            f'<Relationship Id="rId{i + 1}" Type="http://schemas.openxmlformats.org/'
            f'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
            for i in range(len(sheets)))))
        zf.writestr("xl/styles.xml", _STYLES)
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns='
                      '"http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                      f'count="{len(strings)}" uniqueCount="{len(strings)}">').encode())
            escaped = pl.select(_escape(pl.lit(strings))).to_series()
            for lo in range(0, len(escaped), chunk):
                fh.write("".join(f'<si><t xml:space="preserve">{s}</t></si>'
                                 for s in escaped.slice(lo, chunk).to_list()).encode())
            fh.write(b"</sst>")
        for i, start in enumerate(sheets):
            stop = min(start + rows_per_sheet, frame.height)
            with zf.open(f"xl/worksheets/sheet{i + 1}.xml", "w", force_zip64=True) as fh:
                fh.write(_SHEET_HEAD.format(last=f"{last}{stop - start + 1}").encode())
                for block in sheet_rows(start, stop):
                    fh.write(block)
                fh.write(_SHEET_TAIL.encode())
