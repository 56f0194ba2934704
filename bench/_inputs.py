"""Benchmark inputs: the reference delivery in every form, encrypted as senders do, cached.

Everything here is synthetic (``ingest.synth`` with a fixed seed, and the
synthetic Access fixture), so it may be written to the cache under
``bench/results/cache/`` (git-ignored) to keep reruns fast. The cache is keyed
by rows and seed, and the OpenPGP files also by the benchmark keyring's key.

| form  | the delivery file | how it is protected |
|-------|-------------------|---------------------|
| csv   | cases.csv.gpg     | OpenPGP to the keyring's key (Windows-1252, CRLF, trailer) |
| tsv   | cases.tsv.gpg     | the same, tab-delimited |
| xlsx  | cases.xlsx        | Office password encryption (ECMA-376 agile, AES-256) |
| xls   | cases.7z          | 7-Zip AES-256, names encrypted; cases.xls (BIFF8, 65,535-row sheets) |
| accdb | reference_400k.zip | WinZip AES-256; the fixture reference_400k.accdb |
| sav, dta, xpt | cases.<form>.gpg | OpenPGP; pyreadstat's writers (xpt: SAS transport version 8) |
| sas7bdat | cases.sas7bdat.gpg | OpenPGP; R haven's ``write_sas`` (ReadStat's writer) |
| cpio  | cases.cpio.gz.gpg | OpenPGP; the CSV on a gzip-compressed GNU cpio tape |
| fwf   | cases.fwf.tar.gpg | OpenPGP; a tar of ``cases.dat`` and ``cases.layout.csv`` |
| ebcdic | cases.ebcdic.tar.gpg | OpenPGP; the same tar, EBCDIC (cp037) records, no line ends |

The fixed-width records are Windows-1252, LF-ended, CMNT's line breaks blanked. The
EBCDIC records are the reference table as on tape: text fields in IBM037 (cp037, the
code page of the ``reference-ibm037`` sample of ``scripts/make-fixed-width-samples``),
fixed-length records with no line ends, so CMNT keeps its line breaks (cp037 has LF);
the few comment characters cp037 lacks (beyond Latin-1) become ``?``, as a sender's
recoding would write them. The reference table has no zoned or packed numbers (only
the admissions sample has those), so every field is text. Its dataset is the reference
one with ``encodings=("cp037",)``, a schema file in the cache (``Form.schema``).
"""

from __future__ import annotations

import json
import lzma
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from _common import RESULTS, ROOT

CACHE = RESULTS / "cache"
HOME = CACHE / "home"
"""INGEST_HOME of the benchmark: keyring, GnuPG home, Prefect server, audit log."""
SENDER_GNUPG = CACHE / "sender-gnupg"
SEED = 2026
DELIVERY_DATE = date(2026, 6, 30)
PASSWORD = "bench-synthetic-Pa55word"
"""Archive and workbook password of the synthetic inputs (never a real secret)."""
FIXTURES = ROOT / "tests" / "data" / "access"
ACCESS = {400_000: "reference_400k.accdb.xz", 20_000: "reference_20k.accdb"}

FORMS = ("csv", "tsv", "xlsx", "xls", "accdb", *("sav", "dta", "xpt", "sas7bdat"), "cpio",
         "fwf", "ebcdic")
EBCDIC = "cp037"
"""The EBCDIC form's code page (IBM037, as the reference-ibm037 sample)."""
STATS_FORMS = ("sav", "dta", "xpt", "sas7bdat")
"""SPSS, Stata and SAS files (text columns), under OpenPGP: pyreadstat writes sav, dta
and xpt; R haven (ReadStat's writer too; pyreadstat writes no sas7bdat) the sas7bdat."""


@dataclass(frozen=True)
class Form:
    """One form of the reference delivery, ready to benchmark."""

    name: str
    path: str
    """The delivery as it arrives (encrypted)."""
    rows: int
    delivery_date: str
    container: str
    """openpgp, office, 7z or zip."""
    member: str
    """The plaintext file inside (its name)."""
    plain_path: str | None = None
    """A plaintext copy (Access only: for mdb-export alone)."""
    password: str | None = None
    schema: str | None = None
    """A schema file to read it by (EBCDIC: the reference dataset in cp037); None: the
    reference schema."""

    def to_json(self) -> dict:
        return asdict(self)


def settings_env() -> dict[str, str]:
    """The environment of every benchmark child: the bench keyring, no passphrase leak."""
    env = {k: v for k, v in os.environ.items() if k not in ("INGEST_PASSPHRASE",)}
    env["INGEST_HOME"] = str(HOME)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), str(ROOT)])
    return env


def keyring_fingerprint(log: Callable[[str], None] = print) -> str:
    """The bench keyring (created on first use) and its OpenPGP key's fingerprint."""
    from ingest.crypto.openpgp import recipient_fingerprint
    from ingest.keys import Keyring
    from ingest.settings import load_settings

    settings = load_settings(home=HOME)
    fpr = recipient_fingerprint(settings.gnupg_home)
    if not fpr or not (settings.keys_dir / "general.json").is_file():
        log(f"creating the benchmark keyring in {HOME}")
        Keyring.init(settings)
        fpr = recipient_fingerprint(settings.gnupg_home)
    assert fpr
    return fpr


def password_file() -> Path:
    path = CACHE / "password.txt"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(PASSWORD + "\n")
        path.chmod(0o600)
    return path


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class _Frame:
    """The generated table, made once and only if some input is missing."""

    def __init__(self, rows: int, seed: int, log: Callable[[str], None]) -> None:
        self.rows, self.seed, self.log = rows, seed, log
        self._frame = None
        self._truth = None

    def get(self):  # noqa: ANN201 - (polars.DataFrame, Truth)
        if self._frame is None:
            from ingest.synth import generate

            t0 = time.perf_counter()
            self._frame, self._truth = generate(self.rows, seed=self.seed,
                                                delivery_date=DELIVERY_DATE)
            self._frame = _fit_case_ids(self._frame)
            self.log(f"  generated {self.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        return self._frame, self._truth


REMAP_ABOVE = 900_000
"""``generate`` draws CASE_IDs as a running sum of steps of up to 20,000, which passes
ten digits at about a million rows: beyond that most rows would break the CASE_ID
rule and the run would be rejected. Larger tables get their CASE_IDs remapped."""


def _fit_case_ids(frame):  # noqa: ANN001, ANN202 - polars.DataFrame
    """CASE_IDs renumbered by dense rank (x 2,003) when some have more than ten digits.

    The map is one-to-one, so the planted duplicates stay duplicates and every other
    CASE_ID stays unique: the generator's truth still holds, row by row.
    """
    import polars as pl

    if frame.height <= REMAP_ABOVE or frame["CASE_ID"].str.len_chars().max() <= 10:
        return frame
    rank = pl.col("CASE_ID").rank("dense").cast(pl.Int64)
    return frame.with_columns((rank * 2_003).cast(pl.Utf8).str.zfill(10).alias("CASE_ID"))


def prepare(rows: int, forms: tuple[str, ...] = FORMS, seed: int = SEED,
            log: Callable[[str], None] = print) -> dict[str, Form]:
    """Every requested form at ``rows`` rows, from the cache or made now."""
    fpr = keyring_fingerprint(log)
    folder = CACHE / f"rows{rows}-seed{seed}{'-ids' if rows > REMAP_ABOVE else ''}"
    folder.mkdir(parents=True, exist_ok=True)
    frame = _Frame(rows, seed, log)
    made: dict[str, Form] = {}
    when = DELIVERY_DATE.isoformat()

    def recipient() -> bytes:
        from ingest.crypto.openpgp import export_public_key
        from ingest.settings import load_settings

        return export_public_key(load_settings(home=HOME).gnupg_home)

    for name in forms:
        if name in ("csv", "tsv"):
            path = folder / f"cases.{name}.{fpr[-8:]}.gpg"
            if not path.exists():
                from ingest.crypto.openpgp import encrypt_openpgp
                from ingest.synth import to_delimited

                t0 = time.perf_counter()
                data = to_delimited(frame.get()[0], separator="\t" if name == "tsv" else ",")
                _write(path, encrypt_openpgp(data, SENDER_GNUPG, recipient_key=recipient()))
                log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
                    f"{time.perf_counter() - t0:.1f} s")
            made[name] = Form(name, str(path), rows, when, "openpgp", f"cases.{name}")
        elif name == "xlsx":
            path = folder / "cases.xlsx"
            if not path.exists():
                from ingest.crypto.office import encrypt_office

                t0 = time.perf_counter()
                table = frame.get()[0]
                if rows <= 1_048_575:
                    from ingest.synth.forms import to_xlsx

                    plain = to_xlsx(table)
                else:  # more rows than one sheet holds: split over sheets, streaming
                    from _xlsx import write_xlsx

                    tmp = folder / "plain-split.xlsx.tmp"
                    write_xlsx(table, tmp)
                    plain = tmp.read_bytes()
                    tmp.unlink()
                _write(path, encrypt_office(plain, PASSWORD))
                log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
                    f"{time.perf_counter() - t0:.1f} s")
            made[name] = Form(name, str(path), rows, when, "office", "cases.xlsx",
                              password=PASSWORD)
        elif name == "xls":
            path = folder / "cases.7z"
            if not path.exists():
                from ingest.synth.forms import to_xls
                from ingest.synth.packaging import make_7z

                t0 = time.perf_counter()
                plain = to_xls(frame.get()[0])
                _write(path, make_7z({"cases.xls": plain}, password=PASSWORD,
                                     encrypt_names=True))
                log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
                    f"{time.perf_counter() - t0:.1f} s")
            made[name] = Form(name, str(path), rows, when, "7z", "cases.xls",
                              password=PASSWORD)
        elif name == "accdb":
            made[name] = _access(rows, log)
        elif name == "cpio":
            made[name] = _cpio(folder, frame, recipient, rows, when, fpr, log)
        elif name == "fwf":
            made[name] = _fixed_width(folder, frame, recipient, rows, when, fpr, log)
        elif name == "ebcdic":
            made[name] = _ebcdic(folder, frame, recipient, rows, when, fpr, log)
        elif name in STATS_FORMS:
            made[name] = _stats(name, folder, frame, recipient, rows, when, fpr, log)
        if name != "accdb" and not (folder / "truth.json").exists() and frame._truth:
            (folder / "truth.json").write_text(json.dumps(frame._truth.to_json()))
    return made


def _access(rows: int, log: Callable[[str], None]) -> Form:
    """The synthetic Access fixture (400k rows; 20k for small smoke runs), in a ZIP AES."""
    size = 400_000 if rows > 20_000 else 20_000
    source = FIXTURES / ACCESS[size]
    truth = json.loads((FIXTURES / f"reference_{size // 1000}k.truth.json").read_text())
    folder = CACHE / f"access-{size // 1000}k"
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / f"reference_{size // 1000}k.accdb"
    if not plain.exists():
        data = source.read_bytes()
        _write(plain, lzma.decompress(data) if source.suffix == ".xz" else data)
    archive = folder / f"reference_{size // 1000}k.zip"
    if not archive.exists():
        from ingest.synth.packaging import make_zip

        t0 = time.perf_counter()
        _write(archive, make_zip({plain.name: plain.read_bytes()}, password=PASSWORD))
        log(f"  wrote {archive.name} ({archive.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - t0:.1f} s")
    return Form("accdb", str(archive), int(truth["rows"]), truth["delivery_date"], "zip",
                plain.name, plain_path=str(plain), password=PASSWORD)


def _stats(name: str, folder: Path, frame: _Frame, recipient: Callable[[], bytes], rows: int,
           when: str, fpr: str, log: Callable[[str], None]) -> Form:
    """An SPSS or Stata file (pyreadstat's writer), encrypted to the bench key."""
    path = folder / f"cases.{name}.{fpr[-8:]}.gpg"
    if not path.exists():
        import tempfile

        import pyreadstat

        from ingest.crypto.openpgp import encrypt_openpgp

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:  # synthetic data, in memory
            plain = Path(shm) / f"cases.{name}"
            table = frame.get()[0].to_pandas()
            if name == "sav":
                pyreadstat.write_sav(table, str(plain))
            elif name == "dta":
                pyreadstat.write_dta(table, str(plain))
            elif name == "xpt":
                pyreadstat.write_xport(table, str(plain), file_format_version=8,
                                       table_name="CASES")
            else:  # through an SPSS file, which R's haven reads as written
                sav = Path(shm) / "cases.sav"
                pyreadstat.write_sav(table, str(sav))
                import subprocess

                done = subprocess.run(["Rscript", "-e", "suppressWarnings(haven::write_sas("
                                       "haven::zap_formats(haven::read_sav(commandArgs(TRUE)"
                                       "[1])), commandArgs(TRUE)[2]))", str(sav), str(plain)],
                                      capture_output=True)
                if done.returncode != 0:
                    raise RuntimeError("the sas7bdat input is written by R's haven, which "
                                       "failed (install r-cran-haven, as scripts/bootstrap "
                                       "does): " + done.stderr.decode(errors="replace")[-300:])
            data = plain.read_bytes()
        _write(path, encrypt_openpgp(data, SENDER_GNUPG, recipient_key=recipient()))
        log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - t0:.1f} s")
    return Form(name, str(path), rows, when, "openpgp", f"cases.{name}")


def _cpio(folder: Path, frame: _Frame, recipient: Callable[[], bytes], rows: int, when: str,
          fpr: str, log: Callable[[str], None]) -> Form:
    """The CSV (Windows-1252) on a GNU cpio tape (newc, 5120-byte blocks), gzip-compressed,
    encrypted to the bench key."""
    path = folder / f"cases.cpio.gz.{fpr[-8:]}.gpg"
    if not path.exists():
        import gzip
        import subprocess
        import tempfile

        from ingest.crypto.openpgp import encrypt_openpgp
        from ingest.synth import to_delimited

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:  # synthetic data, in memory
            (Path(shm) / "cases.csv").write_bytes(to_delimited(frame.get()[0]))
            tape = subprocess.run(["cpio", "-o", "--quiet", "-H", "newc", "-B"],
                                  input=b"cases.csv\n", cwd=shm, capture_output=True,
                                  check=True).stdout
        _write(path, encrypt_openpgp(gzip.compress(tape, mtime=0), SENDER_GNUPG,
                                     recipient_key=recipient()))
        log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - t0:.1f} s")
    return Form("cpio", str(path), rows, when, "openpgp-cpio", "cases.cpio.gz")


def _fixed_tar(files: dict[str, bytes]) -> bytes:
    """A USTAR tar of ``files`` (name to bytes), in memory."""
    import io
    import tarfile

    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return sink.getvalue()


EBCDIC_SCHEMA = '''"""The reference dataset in EBCDIC ({encoding}) records (bench/_inputs.py)."""

import dataclasses

from schemas.reference import DATASET as _BASE

DATASET = dataclasses.replace(_BASE, encodings=("{encoding}",))
'''


def _ebcdic(folder: Path, frame: _Frame, recipient: Callable[[], bytes], rows: int,
            when: str, fpr: str, log: Callable[[str], None]) -> Form:
    """The reference table as EBCDIC (cp037) fixed-length records with no line ends, as
    on tape, and its layout CSV, in a tar encrypted to the bench key; the schema file
    that declares the code page beside it."""
    path = folder / f"cases.ebcdic.tar.{fpr[-8:]}.gpg"
    schema = folder / f"reference_{EBCDIC}.py"
    if not schema.exists():
        _write(schema, EBCDIC_SCHEMA.format(encoding=EBCDIC).encode())
    if not path.exists():
        import polars as pl

        from ingest.crypto.openpgp import encrypt_openpgp
        from ingest.synth.fixed_forms import fit_layout, layout_csv, to_fixed_width

        t0 = time.perf_counter()
        table = frame.get()[0]
        table = table.with_columns(pl.col("CMNT").map_elements(
            lambda v: v.encode(EBCDIC, "replace").decode(EBCDIC), return_dtype=pl.Utf8))
        slots = fit_layout(table, EBCDIC)
        tape = _fixed_tar({"cases.dat": to_fixed_width(table, slots, EBCDIC),
                           "cases.layout.csv": layout_csv(slots)})
        _write(path, encrypt_openpgp(tape, SENDER_GNUPG, recipient_key=recipient()))
        log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB; records of "
            f"{sum(s.width for s in slots)} bytes) in {time.perf_counter() - t0:.1f} s")
    return Form("ebcdic", str(path), rows, when, "openpgp-tar", "cases.dat",
                schema=str(schema))


def _fixed_width(folder: Path, frame: _Frame, recipient: Callable[[], bytes], rows: int,
                 when: str, fpr: str, log: Callable[[str], None]) -> Form:
    """Windows-1252 LF-ended records and their layout CSV, in a tar, encrypted to the bench
    key. CMNT's line breaks are blanked so that every reader (polars slicing lines, pandas'
    read_fwf, which split records at line breaks) reads the same records."""
    path = folder / f"cases.fwf.tar.{fpr[-8:]}.gpg"
    if not path.exists():
        import io
        import tarfile

        from ingest.crypto.openpgp import encrypt_openpgp
        from ingest.synth.fixed_forms import fit_layout, layout_csv, to_fixed_width

        t0 = time.perf_counter()
        table = frame.get()[0]
        table = table.with_columns(table["CMNT"].str.replace_all("[\r\n]", " "))
        slots = fit_layout(table, "cp1252")
        sink = io.BytesIO()
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for member, data in (("cases.dat", to_fixed_width(table, slots, "cp1252", "\n")),
                                 ("cases.layout.csv", layout_csv(slots))):
                info = tarfile.TarInfo(member)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        _write(path, encrypt_openpgp(sink.getvalue(), SENDER_GNUPG, recipient_key=recipient()))
        log(f"  wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - t0:.1f} s")
    return Form("fwf", str(path), rows, when, "openpgp-tar", "cases.dat")
