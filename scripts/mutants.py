"""Run mutmut over one group of modules at a time, each in a throwaway copy of a commit.

Called by ``scripts/mutants`` (which installs the pinned mutmut first). A group is the
modules that carry one promise plus the few test files that state it; mutmut runs, for
each mutant, only the tests that reached the mutated function, so a group costs about
one run of its tests plus a fraction of a second to a few seconds per mutant.

Each group gets a fresh copy (``git archive <ref>``) with ``.venv`` linked in, so the
working tree, which others may be editing, is never mutated, and what is measured is a
commit anyone can check out.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Group:
    mutate: tuple[str, ...]
    """Source files to mutate (globs relative to the repository)."""
    tests: tuple[str, ...]
    """Test files or node ids that state the group's promises."""
    functions: tuple[str, ...] = ()
    """Only these functions' mutants (mutmut names, globs); empty means all."""
    why: str = ""
    default: bool = True
    """Part of a plain ``scripts/mutants`` run (the rest run when named)."""
    prefect_server: bool = False
    """Start the project's managed Prefect server once for the whole group and hand its
    INGEST_HOME to the tests (``INGEST_TEST_PREFECT_HOME``), rather than have every
    mutant's process start and stop one (seconds of wall time each)."""
    deselect: tuple[str, ...] = ()
    """Tests of those files left out (pytest's ``--deselect``)."""
    imports: tuple[str, ...] = ()
    """Modules the fork server imports before it forks each mutant's process, so that
    those processes do not each import them: after collecting the tests
    (``MUTANT_WARMUP`` of scripts/mutant_plugin.py), or instead of it (``collect``)."""
    collect: bool = True
    """Whether the fork server collects the tests. Not for tests whose collection runs
    polars: its thread pool does not survive a fork, so every mutant's process would hang
    on its first parallel query; their fork server only imports, and each mutant's
    process collects its tests itself."""


# Tests of the form tests/test_mutants_<group>.py are added to their group on their own.
# A group's tests are the few that state its promises in-process (mutmut links a test
# to the code it reaches in its own process only): every mutant runs the selected tests
# that reach its function, fastest first, until one fails, so a slow test costs only
# the mutants that survive the fast ones.
FAULTS_IN_PROCESS = tuple(f"tests/test_faults.py::{name}" for name in (
    "test_a_full_disk_simulated_at_fsync_is_a_clear_error",
    "test_a_full_disk_while_an_output_is_encrypted_is_a_clear_error",
    "test_a_read_only_output_folder_is_a_clear_error"))
CSV_PROPERTIES = tuple(f"tests/test_properties.py::{name}" for name in (
    "test_utf8_csv_and_tsv_round_trip", "test_cp1252_csv_and_tsv_round_trip",
    "test_a_trailer_is_read_as_a_trailer_and_checked",
    "test_the_delimited_reader_survives_any_input"))
PIPELINE = ("ingest.pipeline", "ingest.media._formats", "ingest.crypto._formats",
            "ingest.readers._formats", "ingest.readers.excel._formats",
            "ingest.formats.known", "schemas.reference", "pandera.polars", "pandas",
            "pyarrow.parquet", "pyarrow.dataset", "fsspec", "ingest.keys.kms")
"""What a test that runs a delivery imports lazily: about 0.4 s of every mutant's
process that runs one, unless the fork server has imported it (``Group.imports``)."""
GROUPS: dict[str, Group] = {
    "validate": Group(
        ("ingest/validate/__init__.py", "ingest/validate/whole.py"),
        ("tests/test_validate.py", "tests/test_repairs.py",
         "tests/test_whole_table_rules.py"),
        why="quarantine split, row accounting, reasons, duplicates, whole-table rules"),
    "repairs": Group(
        ("ingest/validate/coerce.py", "ingest/validate/identifiers.py",
         "ingest/validate/years.py"),
        ("tests/test_validate.py", "tests/test_repairs.py"),
        why="coercion and declared repairs (about 900 mutants: run when named)",
        default=False),
    "publish": Group(
        ("ingest/writers/publish.py",),
        ("tests/test_pipeline.py", "tests/test_custody.py", *FAULTS_IN_PROCESS),
        why="staging, publishing, hashes of what was written, failures while writing",
        imports=PIPELINE),
    "writers": Group(
        ("ingest/writers/jsonl.py", "ingest/writers/parquet.py", "ingest/writers/policy.py"),
        # its own file alone (added by its name): with test_pipeline.py and
        # test_custody.py too, every survivor ran them, for the same kills (710 s
        # against 311 s of wall time)
        (),
        why="the Parquet and JSON Lines writers, the column policy"),
    "custody": Group(
        ("ingest/custody.py",),
        ("tests/test_custody.py",),
        why="verification of outputs, key rotation",
        imports=PIPELINE),
    "audit": Group(
        ("ingest/audit.py",),
        ("tests/test_custody.py",),
        # the keyring's passphrase (5 s of scrypt) is the keys group's promise; it
        # reaches the log through its delivery, and killed none of its mutants
        deselect=("tests/test_custody.py::test_a_protected_keyring_needs_its_passphrase",),
        why="the hash-chained audit log",
        imports=PIPELINE),
    "csv": Group(
        ("ingest/readers/csv.py",),
        ("tests/test_readers_csv.py", *CSV_PROPERTIES),
        functions=tuple(f"ingest.readers.csv.x_{name}__mutmut_*" for name in (
            "sniff_text", "split_trailer", "to_utf8", "_utf8", "_as_utf8",
            "_not_utf8_from_the_start", "_stripped_end", "_trailer_end", "_refuse_nul",
            "_without_trailing_blank_lines")),
        why="decoding: encodings, BOM, NUL, end-of-file marks, trailing blank lines",
        # test_properties.py builds its seed inputs with polars when it is imported
        # (and what collecting the tests imports: 0.95 s of each mutant's process
        # with the first six, 0.52 s with them all)
        collect=False,
        imports=("polars", "hypothesis", "ingest.readers.csv", "ingest.media",
                 "ingest.schema", "ingest.synth", "pytest", "_hypothesis_pytestplugin",
                 "ingest.readers.excel", "ingest.synth.packaging", "ingest.catalog",
                 "ingest.declare", "schemas.reference", "pandera.polars", "pandas",
                 "pyarrow", "numpy", "py7zr", "pycdlib", "pyzipper", "zstandard", "anyio",
                 "pdb", "typeguard")),
    "keys": Group(
        ("ingest/keys/*.py",),
        ("tests/test_custody.py",),
        why="keyring, sealed keys, KMS wrapping, passphrase session",
        prefect_server=True, imports=PIPELINE),
}

STATUS = {  # mutmut's exit codes of a mutant's test run (mutmut/stats.py)
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
    35: "suspicious", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
    255: "timeout", 37: "type check", -11: "segfault", -9: "segfault", None: "not checked",
}


@dataclass
class Row:
    module: str
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)

    def n(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def mutants(self) -> int:
        return sum(self.counts.values())

    @property
    def score(self) -> float | None:
        """Killed (timeouts included, as mutmut does, and crashes: a test process that
        died of a signal, pyarrow handed ``None``) over every mutant that was tried or
        had no test at all: a mutant no test reaches counts against the score."""
        tried = self.mutants - self.n("not checked") - self.n("skipped")
        caught = self.n("killed") + self.n("timeout") + self.n("segfault")
        return None if tried == 0 else 100 * caught / tried


def setup_cfg(group: Group, extra_tests: list[str], timeout_constant: float) -> str:
    def lines(key: str, values: list[str]) -> str:
        return f"{key}=" + "\n    ".join(values) + "\n"

    warmup = ("" if group.collect
              else "forkserver_warmup=import\npreload_modules_file=preload.txt\n")

    return ("[mutmut]\n"
            "source_paths=ingest\n"
            + lines("only_mutate", list(group.mutate))
            + lines("pytest_add_cli_args_test_selection", list(group.tests) + extra_tests)
            # scripts/mutant_plugin.py: each mutant's cheapest tests first, imports
            # paid once in the fork server, and --profile
            + lines("pytest_add_cli_args", ["-p", "no:cacheprovider", "-p", "mutant_plugin",
                                            *(f"--deselect={t}" for t in group.deselect)])
            + lines("also_copy", ["tests", "schemas", "flows", "r", "scripts", "README.md"])
            # Fork isolation forks each mutant's tests from the process that already ran
            # them all: polars' thread pool and gpg-agent's sockets do not survive that,
            # and tests hang. A fork server that has only collected the tests is safe.
            + "process_isolation=forkserver\n"
            + warmup
            # A mutant's estimate covers only its tests' call phase; the session keyring
            # (GnuPG key generation) is built again in each mutant's process.
            + f"timeout_constant={timeout_constant}\n"
            # mutmut's default (15) lets a hung mutant hold a core for many minutes.
            + "timeout_multiplier=3\n"
            + "use_git_change_detection=false\n")


def copy_of(ref: str, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref],
                             check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    (work / ".venv").symlink_to(ROOT / ".venv")
    # mutmut runs the tests inside mutants/, and some tests start .venv/bin/ingest
    (work / "mutants").mkdir()
    (work / "mutants" / ".venv").symlink_to(ROOT / ".venv")


@dataclass
class Timing:
    wall: float
    cpu: float
    """User and system seconds of mutmut and every process it waited for."""
    load: tuple[float, float]
    """One-minute load average at the start and at the end."""

    def __str__(self) -> str:
        return (f"{self.wall:.0f} s wall, {self.cpu:.0f} s CPU, "
                f"load {self.load[0]:.1f}-{self.load[1]:.1f}")


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_group(name: str, group: Group, args: argparse.Namespace) -> tuple[list[Row], Timing]:
    work = Path(args.workdir) / name
    copy_of(args.ref, work)
    extra = sorted(str(p.relative_to(work))
                   for p in (work / "tests").glob(f"test_mutants_{name}*.py"))
    if args.tests:  # these tests alone: does a new test kill the mutants it was written for?
        group, extra = dataclasses.replace(group, tests=tuple(args.tests)), []
    (work / "setup.cfg").write_text(setup_cfg(group, extra, args.timeout_constant))
    (work / "preload.txt").write_text("".join(f"{m}\n" for m in group.imports))
    patterns = list(group.functions)
    if args.only:
        patterns = args.only
    elif args.quick:
        patterns = ([p.replace("__mutmut_*", "__mutmut_1") for p in patterns]
                    or ["*__mutmut_1"])
    # A child process (the `ingest` command a test starts) must import the mutated
    # copy too, not the working tree the editable install points to.
    # scripts/mutant_plugin.py comes from the copy's scripts/ (a folder that exists when
    # Python starts: mutants/ is made later, and a path entry missing at start is skipped)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join((str(work / "mutants"), str(work / "scripts"))),
               MUTANT_WARMUP=",".join(group.imports))
    env.pop("INGEST_HOME", None)
    if args.profile:
        env["MUTANT_PROFILE_OUT"] = str(work / "profile.jsonl")
    log = work / "mutmut.log"
    started, cpu, load = time.monotonic(), _children_cpu(), os.getloadavg()[0]
    server_home = work / "prefect-home"
    if group.prefect_server:
        env[SHARED_PREFECT_HOME] = str(server_home)
        _managed_server("ensure_server", server_home)
    try:
        with log.open("wb") as out:
            done = subprocess.run([str(ROOT / ".venv/bin/mutmut"), "run", "--max-children",
                                   str(args.jobs), *patterns], cwd=work, env=env,
                                  stdout=out, stderr=subprocess.STDOUT,
                                  preexec_fn=_limit_file_size)
    finally:
        if group.prefect_server:
            _managed_server("stop_server", server_home)
    elapsed = Timing(time.monotonic() - started, _children_cpu() - cpu,
                     (load, os.getloadavg()[0]))
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print(f"[{name}] mutmut failed (exit {done.returncode}); last lines of {log}:",
              *tail, sep="\n", file=sys.stderr)
    rows = collect(work, group, patterns)
    write_survivors(work, name, rows)
    return rows, elapsed


MAX_FILE_BYTES = 2 << 30
"""No file a mutant's tests write may grow past 2 GiB (the largest a test writes is tens
of MiB). A mutant that makes a writer loop (the writers group has some) wrote 10-14 GiB
each until its timeout and filled the disk; past the limit its process gets SIGXFSZ
and dies, which counts as killed."""


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))


SHARED_PREFECT_HOME = "INGEST_TEST_PREFECT_HOME"  # read by tests/test_mutants_keys_prefect.py


def _managed_server(action: str, home: Path) -> None:
    """Start (``ensure_server``) or stop (``stop_server``) the project's own Prefect
    server for ``home``, from the unmutated tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "INGEST_MANAGED_PREFECT_API_URL",
                        "INGEST_SERVER_IDLE_MINUTES")}
    env["INGEST_HOME"] = str(home)
    subprocess.run([str(ROOT / ".venv/bin/python"), "-c",
                    f"from flows.server import {action}; from ingest.settings import "
                    f"load_settings; {action}(load_settings())"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def collect(work: Path, group: Group, patterns: list[str]) -> list[Row]:
    rows = []
    for meta in sorted((work / "mutants" / "ingest").rglob("*.py.meta")):
        module = str(meta.relative_to(work / "mutants"))[: -len(".meta")]
        if not any(fnmatch.fnmatch(module, g) for g in group.mutate):
            continue
        row = Row(module)
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if patterns and not any(fnmatch.fnmatch(key, p) for p in patterns):
                continue
            status = STATUS.get(code, "suspicious")
            row.counts[status] = row.counts.get(status, 0) + 1
            if status in ("survived", "no tests", "suspicious"):
                row.survivors.append(key)
        rows.append(row)
    return rows


_DIFFS = """
import sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
for line in sys.stdin.read().splitlines():
    key, path = line.split("\\t")
    print(f"# {key}")
    print(get_diff_for_mutant(key, path=path).rstrip() + "\\n")
"""


def write_survivors(work: Path, name: str, rows: list[Row]) -> None:
    """Every surviving mutant with its diff, for triage (one process for all of them:
    a ``mutmut show`` each took seconds on a loaded machine)."""
    keys = sorted((k, row.module) for row in rows for k in row.survivors)
    path = work / "survivors.txt"
    with path.open("w") as out:
        subprocess.run([str(ROOT / ".venv/bin/python"), "-c", _DIFFS], cwd=work, text=True,
                       input="".join(f"{k}\t{m}\n" for k, m in keys), stdout=out, check=False)
    print(f"[{name}] {len(keys)} survivors (and mutants no test reaches): {path}")


def table(results: list[tuple[str, list[Row], Timing]]) -> str:
    head = ("group", "module", "mutants", "killed", "survived", "no tests", "timeout",
            "crashed", "score", "time")
    out = [head]
    for name, rows, elapsed in results:
        for i, row in enumerate(rows):
            score = "-" if row.score is None else f"{row.score:.1f}%"
            out.append((name if i == 0 else "", row.module, str(row.mutants),
                        str(row.n("killed")), str(row.n("survived")), str(row.n("no tests")),
                        str(row.n("timeout")), str(row.n("segfault")), score,
                        str(elapsed) if i == 0 else ""))
    widths = [max(len(r[i]) for r in out) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in out]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutants", description=__doc__.split("\n")[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP",
                        help=f"groups to run (default all): {', '.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true",
                        help="a small sample: the first mutant of each function")
    parser.add_argument("--ref", default="HEAD", help="the commit to test (default HEAD)")
    parser.add_argument("--workdir", default=os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "ingest-mutants"),
        help="where the throwaway copies go (default $TMPDIR/ingest-mutants)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                        help="mutants tested at once (default: the number of cores)")
    parser.add_argument("--timeout-constant", type=float, default=15.0,
                        help="seconds added to each mutant's expected test time before the "
                             "timeout multiplier (default 15)")
    parser.add_argument("--only", action="append", metavar="MUTANT",
                        help="only these mutants (mutmut names or globs, as survivors.txt "
                             "lists them; repeatable), e.g. to check that new tests kill them")
    parser.add_argument("--tests", action="append", metavar="TEST",
                        help="run these tests (files or node ids; repeatable) instead of the "
                             "group's, e.g. a new test file with --only the mutants it was "
                             "written for: each must be killed by it alone")
    parser.add_argument("--profile", action="store_true",
                        help="record each test process's time (wall, CPU, set-up, call, "
                             "tear-down, the tests it ran) in <workdir>/<group>/profile.jsonl")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    args = parser.parse_args()
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name:9} {' '.join(group.mutate)}  <-  {' '.join(group.tests)}  ({group.why})"
                  + "".join(f" [without {t}]" for t in group.deselect)
                  + ("" if group.default else " [not in the default run]"))
        return 0
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}; the groups are {', '.join(GROUPS)}")
    # one commit for every group, however long the run and whatever is committed meanwhile
    args.ref = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify",
                               f"{args.ref}^{{commit}}"], check=True, capture_output=True,
                              text=True).stdout.strip()
    results = []
    started = time.monotonic()
    load = os.getloadavg()[0]
    for name in args.groups or [n for n, g in GROUPS.items() if g.default]:
        print(f"[{name}] running ({'quick, ' if args.quick else ''}{args.ref[:12]})", flush=True)
        rows, elapsed = run_group(name, GROUPS[name], args)
        results.append((name, rows, elapsed))
        print(table(results[-1:]), flush=True)
    print()
    print(table(results))
    print(f"\ntotal {time.monotonic() - started:.0f} s on {os.cpu_count()} cores, "
          f"{args.jobs} at once; load average at start {load:.1f}, at end "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
