"""The benchmark cases, each run in a fresh interpreter by ``run_all.py``.

Every function here returns a JSON-able dict with ``stages`` (seconds, in the
order they ran) and row counts where it has them. Imports happen inside the
functions and are timed as the ``import`` stage, so each case pays for the
engines it uses, as a user's fresh process would. This module imports only the
standard library at the top: the DuckDB side interpreter (see ``run_all.py``)
has no polars, pyarrow or ingest.

Peers do the same work as the library where an engine can: decrypt, parse,
apply the reference schema's rules (``_RULES`` below, the spec's rules as each
engine spells them), keep the first of repeated CASE_IDs, split accepted from
quarantined rows and write the accepted ones (and, for DuckDB, the quarantined
ones too) as encrypted Parquet. They do not pseudonymise, write JSON Lines or
features, or build a manifest: the library does, so the peers are lower bounds
of what a user would write by hand.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import time
from typing import Any

NULL_TOKENS = ["", "NA", ".", "NULL"]
DX = r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"
SOURCE = ["CASE_ID", "PERS_ID", "DOB", "SEX", "CNTY_FIPS", "RPT_DT", "DX_CD", "LAB_VAL",
          "HOSP_YN", "CMNT"]
RESTRICTED = ["DOB", "CMNT", "birth_date", "comments", "person_id", "PERS_ID"]
MDB_EXPORT = ["mdb-export", "-D", "%Y-%m-%d", "-T", "%Y-%m-%d %H:%M:%S", "-b", "hex"]
EBCDIC = "cp037"
"""The EBCDIC form's code page (``_inputs.EBCDIC``: this module imports no bench module)."""
KEY_GENERAL = b"bench-general-master-key-32bytes"
KEY_RESTRICTED = b"bench-restrict-master-key-32byte"


class Clock:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(self.stages.get(name, 0.0) + now - self.t, 3)
        self.t = now


# --- decryption with the underlying tools ---------------------------------------------

def gpg_decrypt(path: str, gnupg_home: str) -> bytes:
    """The gpg command, output to a pipe (as the library does, without status parsing)."""
    return subprocess.run(["gpg", "--homedir", gnupg_home, "--batch", "--quiet", "--decrypt",
                           path], capture_output=True, check=True).stdout


def office_decrypt(path: str, password: str) -> bytes:
    import msoffcrypto

    office = msoffcrypto.OfficeFile(open(path, "rb"))  # noqa: SIM115 - read then closed
    office.load_key(password=password)
    out = io.BytesIO()
    office.decrypt(out)
    office.file.close()
    return out.getvalue()


def sevenzip_decrypt(path: str, password: str) -> bytes:
    import py7zr
    from py7zr.io import BytesIOFactory

    factory = BytesIOFactory(limit=1 << 34)
    with py7zr.SevenZipFile(path, "r", password=password) as archive:
        archive.extractall(factory=factory)
    (data,) = [sink.read() for sink in factory.products.values()]
    return data


def zip_decrypt(path: str, password: str) -> bytes:
    import pyzipper

    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(password.encode())
        (name,) = zf.namelist()
        return zf.read(name)


def decrypt(form: dict[str, Any], gnupg_home: str) -> bytes:
    kind = form["container"]
    if kind in ("openpgp", "openpgp-tar"):  # the tar (fixed-width) is opened by its case
        return gpg_decrypt(form["path"], gnupg_home)
    if kind == "openpgp-cpio":
        return cpio_member(gpg_decrypt(form["path"], gnupg_home))
    if kind == "office":
        return office_decrypt(form["path"], form["password"])
    if kind == "7z":
        return sevenzip_decrypt(form["path"], form["password"])
    return zip_decrypt(form["path"], form["password"])


def cpio_member(tape: bytes) -> bytes:
    """The one file of a gzip-compressed cpio tape: gzip, then libarchive-c's own read."""
    import gzip

    import libarchive

    with libarchive.memory_reader(gzip.decompress(tape), format_name="cpio",
                                  filter_name="none") as archive:
        (data,) = [b"".join(entry.get_blocks()) for entry in archive if entry.isreg]
    return data


def stats_read(name: str, plain: bytes) -> Any:
    """pyreadstat's own read (polars output) of an SPSS, Stata or SAS file in memory."""
    import pyreadstat

    read = {"sav": pyreadstat.read_sav, "dta": pyreadstat.read_dta,
            "xpt": pyreadstat.read_xport, "sas7bdat": pyreadstat.read_sas7bdat}[name]
    return read(io.BytesIO(plain), output_format="polars")[0]


def stats_pandas(name: str, plain: bytes) -> Any:
    """pandas' reader: read_stata and read_sas from memory; read_spss only from a path
    (in /dev/shm)."""
    import os

    import pandas as pd

    if name == "dta":
        return pd.read_stata(io.BytesIO(plain))
    if name == "xpt" and b"LIBV8" in plain[:80]:
        raise RuntimeError("pandas.read_sas reads SAS transport version 5 only; this file "
                           "is version 8 (the reference table's names, CNTY_FIPS, are longer "
                           "than version 5's 8 characters)")
    if name in ("xpt", "sas7bdat"):
        df = pd.read_sas(io.BytesIO(plain), format="xport" if name == "xpt" else name,
                         encoding="utf-8")
        if list(df.columns) != SOURCE:  # seen on haven's (ReadStat's) sas7bdat
            raise RuntimeError(f"pandas.read_sas read {df.shape[1]} columns named "
                               f"{list(df.columns)}, not the file's {SOURCE}: a column "
                               "is lost, so its rules cannot be applied")
        return df
    path = _shm_file(plain, ".sav")
    try:
        return pd.read_spss(path)
    finally:
        os.unlink(path)


def fixed_width_members(tape: bytes) -> tuple[bytes, list[tuple[str, int]]]:
    """The records and the (name, width) fields of a tar of ``cases.dat`` and its
    ``name,start,width`` layout."""
    import csv
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tape)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    layout = csv.DictReader(io.StringIO(files["cases.layout.csv"].decode()))
    return files["cases.dat"], [(r["name"], int(r["width"])) for r in layout]


def fixed_width_floor(data: bytes, fields: list[tuple[str, int]]) -> Any:
    """polars slicing lines: the records decoded to UTF-8 in one call (Windows-1252 is one
    byte a character, so positions stay), read as one column of lines (a separator and
    quote that never occur), each field ``str.slice`` d and its padding stripped."""
    import polars as pl

    lines = pl.read_csv(io.BytesIO(data.decode("cp1252").encode()), has_header=False,
                        separator="\x1f", quote_char=None, new_columns=["line"],
                        infer_schema=False)["line"]
    start, columns = 0, []
    for name, width in fields:
        columns.append(lines.str.slice(start, width).str.strip_chars(" ").alias(name))
        start += width
    return pl.DataFrame(columns).with_columns(pl.all().replace("", None))


def ebcdic_floor(data: bytes, fields: list[tuple[str, int]], encoding: str) -> Any:
    """numpy slicing and Python's codec: the records (no line ends) as a (rows, record
    length) byte array, each field's columns copied out and decoded in one codec call,
    the text cut into the column's values as a fixed-width numpy string array (UTF-32,
    the codec being one byte a character), padding stripped, blanks null."""
    import numpy as np
    import polars as pl

    length = sum(width for _, width in fields)
    if len(data) % length:
        raise ValueError(f"{len(data)} bytes are no whole number of {length}-byte records")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, length)
    start, columns = 0, []
    for name, width in fields:
        text = records[:, start:start + width].tobytes().decode(encoding)
        values = np.frombuffer(text.encode("utf-32-le"), dtype=f"<U{width}")
        columns.append(pl.Series(name, values).str.strip_chars(" "))
        start += width
    return pl.DataFrame(columns).with_columns(pl.all().replace("", None))


def fixed_width_pandas(data: bytes, fields: list[tuple[str, int]]) -> Any:
    """pandas' read_fwf with the layout's widths and names, every field as text."""
    import pandas as pd

    return pd.read_fwf(io.BytesIO(data), widths=[w for _, w in fields],
                       names=[n for n, _ in fields], header=None, encoding="cp1252",
                       dtype=str, keep_default_na=False, na_filter=False)


def text_utf8(plain: bytes) -> bytes:
    """Windows-1252 to UTF-8, without the ``TOTAL RECORDS`` trailer line."""
    body, sep, last = plain.rstrip(b"\r\n").rpartition(b"\n")
    if sep and last.upper().startswith(b"TOTAL RECORDS"):
        plain = body + b"\n"
    return plain.decode("cp1252").encode("utf-8")


def mdb_export_csv(data: bytes, table: str = "CASES") -> bytes:
    """mdb-export over an anonymous memory file, as the library's Access reader does."""
    fd = os.memfd_create("bench-access", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return subprocess.run([*MDB_EXPORT, f"/proc/self/fd/{fd}", table], pass_fds=(fd,),
                              capture_output=True, check=True,
                              env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
    finally:
        os.close(fd)


def _shm_file(data: bytes, suffix: str) -> str:
    """Plaintext for an engine that only reads paths: a file in /dev/shm (memory)."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(suffix=suffix, dir=folder)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


# --- encrypted Parquet with pyarrow (floor, pandas, polars) ----------------------------

def pyarrow_encryption():  # noqa: ANN201 - pyarrow FileEncryptionProperties
    """Parquet Modular Encryption as the library configures it, with a trivial KMS."""
    import base64

    import pyarrow.parquet.encryption as pe
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    keys = {"general": KEY_GENERAL, "restricted": KEY_RESTRICTED}

    class Kms(pe.KmsClient):
        def __init__(self, _config: object) -> None:
            super().__init__()

        def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
            nonce = os.urandom(12)
            sealed = AESGCM(keys[master_key_identifier]).encrypt(nonce, key_bytes, None)
            return base64.b64encode(nonce + sealed).decode()

        def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
            blob = base64.b64decode(wrapped_key)
            return AESGCM(keys[master_key_identifier]).decrypt(blob[:12], blob[12:], None)

    return pe.CryptoFactory(Kms), pe


def write_encrypted_parquet(table: Any, sink: Any) -> None:
    """``table`` (pyarrow) as AES-GCM Parquet, encrypted footer, two master keys."""
    import pyarrow.parquet as pq

    factory, pe = pyarrow_encryption()
    restricted = [c for c in table.column_names if c in RESTRICTED]
    general = [c for c in table.column_names if c not in restricted]
    config = pe.EncryptionConfiguration(
        footer_key="general", column_keys={"general": general, "restricted": restricted},
        encryption_algorithm="AES_GCM_V1", plaintext_footer=False, double_wrapping=True,
        internal_key_material=True)
    props = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
    pq.write_table(table, sink, encryption_properties=props, compression="zstd",
                   row_group_size=128 * 1024)


# --- the library --------------------------------------------------------------------------

def _memory() -> dict[str, float]:
    """This process's current and peak RSS (MB), from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[:5]] = int(line.split()[1]) / 1024
    return values


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux: ``5`` to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def library(form: dict[str, Any], out: str) -> dict[str, Any]:
    """run_delivery, with each stage's peak RSS (the stage runner is the library's seam)."""
    clock = Clock()
    from datetime import date

    from ingest.pipeline import run_delivery
    clock.lap("import")
    peaks: dict[str, float] = {"import": round(_memory()["VmHWM"])}
    after: dict[str, float] = {}

    def stage(name: str, fn: Any, *args: Any) -> Any:
        reset = _reset_peak()
        value = fn(*args)
        memory = _memory()
        if reset:
            peaks[name] = round(memory["VmHWM"])
        after[name] = round(memory["VmRSS"])
        return value

    summary = run_delivery(form["path"], out=out, force=True, passphrase=form["password"],
                           delivery_date=date.fromisoformat(form["delivery_date"]),
                           stage=stage, schema=form.get("schema") or "reference")
    clock.lap("run")
    stages = {"import": clock.stages["import"], **summary.stage_seconds}
    stages["other"] = round(clock.stages["run"] - sum(summary.stage_seconds.values()), 3)
    return {"stages": stages, "stage_peak_mb": peaks, "rss_after_stage_mb": after,
            "self_peak_mb": max(peaks.values()),
            "rows_in": summary.rows_in, "rows_accepted": summary.rows_accepted,
            "rows_quarantined": summary.rows_quarantined}


def library_profile(form: dict[str, Any], out: str, report: str) -> dict[str, Any]:
    """The library case under pyinstrument; the text report goes to ``report``."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002)
    profiler.start()
    result = library(form, out)
    profiler.stop()
    with open(report, "w") as fh:
        fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    return result


# --- the floor: raw engines only --------------------------------------------------------------

def floor(form: dict[str, Any], gnupg_home: str) -> dict[str, Any]:
    """Decrypt with the underlying tool, read with the raw engine, write encrypted Parquet."""
    clock = Clock()
    import polars as pl
    import pyarrow as pa
    clock.lap("import")
    name = form["name"]
    plain = decrypt(form, gnupg_home)
    clock.lap("decrypt")
    if name in ("csv", "tsv", "cpio"):
        text = text_utf8(plain)
        clock.lap("decode")
        table = pl.read_csv(io.BytesIO(text), separator="\t" if name == "tsv" else ",",
                            infer_schema=False).to_arrow()
        clock.lap("read")
    elif name in ("sav", "dta", "xpt", "sas7bdat"):
        table = stats_read(name, plain).to_arrow()
        clock.lap("read")
    elif name == "fwf":
        data, fields = fixed_width_members(plain)
        del plain
        clock.lap("untar")
        table = fixed_width_floor(data, fields).to_arrow()
        clock.lap("read")
    elif name == "ebcdic":
        data, fields = fixed_width_members(plain)
        del plain
        clock.lap("untar")
        table = ebcdic_floor(data, fields, EBCDIC).to_arrow()
        clock.lap("read")
    elif name in ("xlsx", "xls"):
        import fastexcel

        book = fastexcel.read_excel(plain)
        parts = [book.load_sheet(i).to_arrow() for i in range(len(book.sheet_names))]
        table = pa.Table.from_batches(parts[:1]) if len(parts) == 1 else pl.concat(
            [pl.from_arrow(p) for p in parts], how="vertical_relaxed").to_arrow()
        clock.lap("read")
    else:
        csv = mdb_export_csv(plain)
        clock.lap("mdb-export")
        table = pl.read_csv(io.BytesIO(csv), infer_schema=False).to_arrow()
        clock.lap("read")
    sink = io.BytesIO()
    write_encrypted_parquet(table, sink)
    clock.lap("parquet")
    return {"stages": clock.stages, "rows_in": table.num_rows,
            "parquet_mb": round(sink.tell() / 1e6, 1)}


# --- the reference schema's rules, per engine --------------------------------------------

def polars_rules(frame: Any, delivery_date: str) -> tuple[Any, Any]:
    """(accepted, quarantined) from a frame of source columns as text."""
    from datetime import date

    import polars as pl

    c = pl.col

    def day(name: str) -> pl.Expr:
        text = c(name).str.strip_chars()
        return pl.coalesce(text.str.strptime(pl.Date, "%m/%d/%Y", strict=False, exact=True),
                           text.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d",
                                                              strict=False, exact=True))

    def digits(name: str, width: int) -> pl.Expr:
        text = c(name).str.strip_chars().str.replace(r"\.0+$", "")
        return pl.when(text != "").then(text.str.zfill(width))

    lab = c("LAB_VAL").str.strip_chars()
    is_null_token = lab.is_null() | lab.is_in(NULL_TOKENS)
    clean = frame.select(
        case_id=digits("CASE_ID", 10), person_id=c("PERS_ID"), birth_date=day("DOB"),
        sex=c("SEX"), county_fips=digits("CNTY_FIPS", 5), report_date=day("RPT_DT"),
        diagnosis_code=c("DX_CD"),
        lab_value=pl.when(is_null_token).then(None).otherwise(lab.cast(pl.Float64,
                                                                       strict=False)),
        _lab_bad=~is_null_token & lab.cast(pl.Float64, strict=False).is_null(),
        hospitalized=c("HOSP_YN").replace_strict(
            {"Y": True, "N": False, "1": True, "0": False, "true": True, "false": False},
            default=None, return_dtype=pl.Boolean),
        comments=c("CMNT"))
    ok = (c("case_id").str.contains(r"^[0-9]{10}$")
          & c("person_id").str.contains(r"^P[0-9A-F]{8}$")
          & (c("birth_date") >= date(1900, 1, 1))
          & c("sex").is_in(["F", "M", "X", "U"])
          & c("county_fips").str.contains(r"^[0-9]{5}$")
          & c("report_date").is_between(date(2015, 1, 1), date.fromisoformat(delivery_date))
          & c("diagnosis_code").str.contains(DX)
          & ~c("_lab_bad") & (c("lab_value").is_null() | (c("lab_value") >= 0))
          & c("hospitalized").is_not_null()
          & (c("comments").is_null() | (c("comments").str.len_chars() <= 500))
          & (c("birth_date") <= c("report_date"))).fill_null(False)
    marked = clean.with_columns(_ok=ok & c("case_id").is_first_distinct())
    accepted = marked.filter(c("_ok")).drop("_ok", "_lab_bad")
    quarantined = marked.filter(~c("_ok")).drop("_ok", "_lab_bad")
    return accepted, quarantined


def pandas_rules(df: Any, delivery_date: str) -> tuple[Any, Any]:
    """(accepted, quarantined) with pandera's pandas backend, lazy (every failure)."""
    import pandas as pd
    import pandera.pandas as pa

    def day(s: pd.Series) -> pd.Series:
        s = s.astype("string").str.strip()
        us = pd.to_datetime(s, format="%m/%d/%Y", errors="coerce")
        iso = pd.to_datetime(s.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
        return us.fillna(iso)

    def digits(s: pd.Series, width: int) -> pd.Series:
        text = s.astype("string").str.strip().str.replace(r"\.0+$", "", regex=True)
        return text.mask(text == "").str.zfill(width)

    lab_text = df["LAB_VAL"].astype("string").str.strip()
    null_token = lab_text.isna() | lab_text.isin(NULL_TOKENS)
    lab = pd.to_numeric(lab_text.where(~null_token), errors="coerce")
    clean = pd.DataFrame({
        "case_id": digits(df["CASE_ID"], 10), "person_id": df["PERS_ID"].astype("string"),
        "birth_date": day(df["DOB"]), "sex": df["SEX"].astype("string"),
        "county_fips": digits(df["CNTY_FIPS"], 5), "report_date": day(df["RPT_DT"]),
        "diagnosis_code": df["DX_CD"].astype("string"),
        "lab_value": lab.where(~(~null_token & lab.isna()), -1.0),  # unparsable: fails ge(0)
        "hospitalized": df["HOSP_YN"].astype("string").map(
            {"Y": True, "N": False, "1": True, "0": False, "True": True, "False": False})
        .astype("boolean"),
        "comments": df["CMNT"].astype("string"),
    })
    last = pd.Timestamp(delivery_date)
    schema = pa.DataFrameSchema({
        "case_id": pa.Column("string", pa.Check.str_matches(r"^[0-9]{10}$")),
        "person_id": pa.Column("string", pa.Check.str_matches(r"^P[0-9A-F]{8}$")),
        "birth_date": pa.Column(checks=pa.Check.ge(pd.Timestamp("1900-01-01"))),
        "sex": pa.Column("string", pa.Check.isin(["F", "M", "X", "U"])),
        "county_fips": pa.Column("string", pa.Check.str_matches(r"^[0-9]{5}$")),
        "report_date": pa.Column(checks=pa.Check.in_range(pd.Timestamp("2015-01-01"), last)),
        "diagnosis_code": pa.Column("string", pa.Check.str_matches(DX)),
        "lab_value": pa.Column(float, pa.Check.ge(0), nullable=True),
        "hospitalized": pa.Column("boolean"),
        "comments": pa.Column("string", pa.Check.str_length(max_value=500), nullable=True),
    }, checks=[pa.Check(lambda d: d["birth_date"] <= d["report_date"],
                        name="birth_date_not_after_report_date")])
    bad = pd.Series(False, index=clean.index)
    try:
        schema.validate(clean, lazy=True)
    except pa.errors.SchemaErrors as exc:
        index = exc.failure_cases["index"].dropna().astype("int64").unique()
        bad.loc[index] = True
    bad |= clean["case_id"].duplicated(keep="first")
    return clean[~bad], clean[bad]


DUCKDB_RULES = r"""
CREATE TEMP TABLE checked AS
WITH src AS (SELECT row_number() OVER () AS _row, * FROM {source}),
clean AS (
  SELECT _row,
    CASE WHEN length(x_case) < 10 THEN lpad(x_case, 10, '0') ELSE x_case END AS case_id,
    PERS_ID AS person_id,
    coalesce(try_strptime(trim(DOB), '%m/%d/%Y')::DATE,
             try_strptime(left(trim(DOB), 10), '%Y-%m-%d')::DATE,
             -- an Excel serial day (read_xlsx with all_varchar); 1900 leap-year quirk
             CASE WHEN TRY_CAST(DOB AS INTEGER) < 61
                  THEN DATE '1899-12-31' + TRY_CAST(DOB AS INTEGER)
                  ELSE DATE '1899-12-30' + TRY_CAST(DOB AS INTEGER) END) AS birth_date,
    SEX AS sex,
    CASE WHEN length(x_fips) < 5 THEN lpad(x_fips, 5, '0') ELSE x_fips END AS county_fips,
    coalesce(try_strptime(trim(RPT_DT), '%m/%d/%Y')::DATE,
             try_strptime(left(trim(RPT_DT), 10), '%Y-%m-%d')::DATE,
             -- an Excel serial day (read_xlsx with all_varchar); 1900 leap-year quirk
             CASE WHEN TRY_CAST(RPT_DT AS INTEGER) < 61
                  THEN DATE '1899-12-31' + TRY_CAST(RPT_DT AS INTEGER)
                  ELSE DATE '1899-12-30' + TRY_CAST(RPT_DT AS INTEGER) END) AS report_date,
    DX_CD AS diagnosis_code,
    CASE WHEN x_lab IS NULL OR x_lab IN ('', 'NA', '.', 'NULL') THEN NULL
         ELSE TRY_CAST(x_lab AS DOUBLE) END AS lab_value,
    (x_lab IS NOT NULL AND x_lab NOT IN ('', 'NA', '.', 'NULL')
     AND TRY_CAST(x_lab AS DOUBLE) IS NULL) AS lab_bad,
    CASE WHEN HOSP_YN IN ('Y', '1', 'true') THEN true
         WHEN HOSP_YN IN ('N', '0', 'false') THEN false END AS hospitalized,
    CMNT AS comments
  FROM (SELECT *, nullif(regexp_replace(trim(CASE_ID), '\.0+$', ''), '') AS x_case,
               nullif(regexp_replace(trim(CNTY_FIPS), '\.0+$', ''), '') AS x_fips,
               trim(LAB_VAL) AS x_lab FROM src))
SELECT *, coalesce(
    regexp_full_match(case_id, '[0-9]{{10}}')
    AND regexp_full_match(person_id, 'P[0-9A-F]{{8}}')
    AND birth_date >= DATE '1900-01-01'
    AND sex IN ('F', 'M', 'X', 'U')
    AND regexp_full_match(county_fips, '[0-9]{{5}}')
    AND report_date BETWEEN DATE '2015-01-01' AND DATE '{last}'
    AND regexp_full_match(diagnosis_code, '[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{{1,4}})?')
    AND NOT lab_bad AND (lab_value IS NULL OR lab_value >= 0)
    AND hospitalized IS NOT NULL
    AND (comments IS NULL OR length(comments) <= 500)
    AND birth_date <= report_date, false)
  AND row_number() OVER (PARTITION BY case_id ORDER BY _row) = 1 AS ok
FROM clean
"""


# --- peers ------------------------------------------------------------------------------------

def pandas_peer(form: dict[str, Any], gnupg_home: str) -> dict[str, Any]:
    """pandas read_csv / read_excel (openpyxl, xlrd) + pandera's pandas backend + to_parquet."""
    clock = Clock()
    import pandas as pd
    import pandera.pandas  # noqa: F401 - imported here so the import stage holds it
    clock.lap("import")
    name = form["name"]
    plain = decrypt(form, gnupg_home)
    clock.lap("decrypt")
    if name in ("csv", "tsv", "cpio"):
        df = pd.read_csv(io.BytesIO(text_utf8(plain)), sep="\t" if name == "tsv" else ",",
                         dtype=str, keep_default_na=False, na_filter=False)
    elif name in ("sav", "dta", "xpt", "sas7bdat"):
        df = stats_pandas(name, plain)
    elif name == "fwf":
        data, fields = fixed_width_members(plain)
        clock.lap("untar")
        df = fixed_width_pandas(data, fields)
    elif name == "ebcdic":
        raise RuntimeError("no reader: pandas' read_fwf (and read_csv, read_table) split "
                           "records at line ends, and these EBCDIC records have none (as "
                           "on tape); pandas has no reader of fixed-length records")
    elif name == "xlsx":
        df = pd.read_excel(io.BytesIO(plain), engine="openpyxl", dtype=str)
    elif name == "xls":
        sheets = pd.read_excel(io.BytesIO(plain), engine="xlrd", sheet_name=None, dtype=str)
        df = pd.concat(list(sheets.values()), ignore_index=True)
    else:
        csv = mdb_export_csv(plain)
        clock.lap("mdb-export")
        df = pd.read_csv(io.BytesIO(csv), dtype=str, keep_default_na=False, na_filter=False)
    clock.lap("read")
    accepted, quarantined = pandas_rules(df, form["delivery_date"])
    clock.lap("validate")
    factory, pe = pyarrow_encryption()
    config = pe.EncryptionConfiguration(
        footer_key="general", column_keys={
            "general": [c for c in accepted.columns if c not in RESTRICTED],
            "restricted": [c for c in accepted.columns if c in RESTRICTED]},
        encryption_algorithm="AES_GCM_V1", double_wrapping=True, internal_key_material=True)
    props = factory.file_encryption_properties(pe.KmsConnectionConfig(), config)
    accepted.to_parquet(io.BytesIO(), engine="pyarrow", compression="zstd",
                        encryption_properties=props)
    clock.lap("parquet")
    return {"stages": clock.stages, "rows_in": len(df), "rows_accepted": len(accepted),
            "rows_quarantined": len(quarantined)}


def polars_peer(form: dict[str, Any], gnupg_home: str) -> dict[str, Any]:
    """Plain polars: read_csv / read_excel (calamine), the rules as expressions, Parquet."""
    clock = Clock()
    import polars as pl
    clock.lap("import")
    name = form["name"]
    plain = decrypt(form, gnupg_home)
    clock.lap("decrypt")
    if name in ("csv", "tsv", "cpio"):
        frame = pl.read_csv(io.BytesIO(text_utf8(plain)), infer_schema=False,
                            separator="\t" if name == "tsv" else ",")
    elif name in ("xlsx", "xls"):
        sheets = pl.read_excel(plain, sheet_id=0, engine="calamine", infer_schema_length=0)
        frame = pl.concat(list(sheets.values()))
    else:
        csv = mdb_export_csv(plain)
        clock.lap("mdb-export")
        frame = pl.read_csv(io.BytesIO(csv), infer_schema=False)
    clock.lap("read")
    accepted, quarantined = polars_rules(frame, form["delivery_date"])
    clock.lap("validate")
    write_encrypted_parquet(accepted.to_arrow(), io.BytesIO())
    clock.lap("parquet")
    return {"stages": clock.stages, "rows_in": frame.height, "rows_accepted": accepted.height,
            "rows_quarantined": quarantined.height}


def duckdb_peer(form: dict[str, Any], gnupg_home: str, side: bool = False) -> dict[str, Any]:
    """DuckDB: read_csv / read_xlsx, the rules in SQL, COPY TO encrypted Parquet.

    ``side``: DuckDB 1.5.5 with the PyPI extensions (excel for read_xlsx, httpfs for
    OpenSSL); else the project's DuckDB, whose Parquet encryption then needs
    ``force_mbedtls_unsafe`` (its built-in mbedtls) since httpfs cannot be installed
    offline for it.
    """
    clock = Clock()
    import glob

    import duckdb
    con = duckdb.connect()
    crypto = "openssl (httpfs)"
    if side:
        import site

        for folder in site.getsitepackages():
            for ext in sorted(glob.glob(f"{folder}/duckdb_extension_*/extensions/*/"
                                        "*.duckdb_extension")):
                con.execute(f"LOAD '{ext}'")
    else:
        con.execute("SET force_mbedtls_unsafe = 'true'")
        crypto = "mbedtls (force_mbedtls_unsafe)"
    clock.lap("import")
    name = form["name"]
    plain = decrypt(form, gnupg_home)
    clock.lap("decrypt")
    paths = []
    if name in ("csv", "tsv", "cpio"):
        paths.append(_shm_file(text_utf8(plain), ".csv"))
        sep = "\t" if name == "tsv" else ","
        source = (f"read_csv('{paths[0]}', header=true, all_varchar=true, delim='{sep}', "
                  "quote='\"', escape='\"')")
    elif name == "xlsx":
        paths.append(_shm_file(plain, ".xlsx"))
        source = f"read_xlsx('{paths[0]}', header=true, all_varchar=true)"
    elif name == "accdb":
        csv = mdb_export_csv(plain)
        clock.lap("mdb-export")
        paths.append(_shm_file(csv, ".csv"))
        source = f"read_csv('{paths[0]}', header=true, all_varchar=true)"
    else:
        raise ValueError(f"DuckDB does not read {name}")
    del plain
    clock.lap("to /dev/shm")
    out = tempfile.mkdtemp(prefix="bench-duckdb-")
    try:
        con.execute(DUCKDB_RULES.format(source=source, last=form["delivery_date"]))
        clock.lap("read+validate")
        con.execute(f"PRAGMA add_parquet_key('general', '{KEY_GENERAL.decode()}')")
        columns = ("case_id, person_id, birth_date, sex, county_fips, report_date, "
                   "diagnosis_code, lab_value, hospitalized, comments")
        for part, where in (("accepted", "ok"), ("quarantined", "NOT ok")):
            con.execute(f"COPY (SELECT {columns} FROM checked WHERE {where}) TO "
                        f"'{out}/{part}.parquet' (FORMAT parquet, COMPRESSION zstd, "
                        "ENCRYPTION_CONFIG {footer_key: 'general'})")
        clock.lap("parquet")
        rows = con.execute("SELECT count(*), count(*) FILTER (WHERE ok) FROM checked").fetchone()
    finally:
        for path in paths:
            os.unlink(path)
        for file in glob.glob(f"{out}/*"):
            os.unlink(file)
        os.rmdir(out)
    return {"stages": clock.stages, "rows_in": rows[0], "rows_accepted": rows[1],
            "rows_quarantined": rows[0] - rows[1], "duckdb": duckdb.__version__,
            "parquet_crypto": crypto}
