"""The ``ingest`` command.

Every failure ends with one line saying what went wrong and what to do, and a
non-zero exit status; no traceback, no data value, no key.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from .errors import IngestError, UsageError
from .settings import Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    os.umask(0o077)  # whatever this process writes is the owner's alone
    try:
        settings = load_settings(home=getattr(args, "home", None))
        if args.keyring_passphrase_prompt:
            import getpass

            from .keys import session

            session.set_keyring_passphrase(getpass.getpass("Keyring passphrase: "))
        args.whole_process = argv is None  # the ``ingest`` command, not a caller's import
        code = int(args.func(args, settings) or 0)
    except IngestError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("ingest: interrupted; nothing was published", file=sys.stderr)
        code = 130
    if getattr(args, "whole_process", False):
        _exit_now(code)
    return code


# -- commands ----------------------------------------------------------------------

def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from .keys import session

    session.set_passphrase(session.resolve_passphrase(args.passphrase_file,
                                                      args.passphrase_prompt))
    started = time.perf_counter()
    with _progress(args.progress, beside_logs=not args.no_prefect):
        if args.no_prefect:
            from .pipeline import run_delivery

            summary = run_delivery(args.delivery, schema=_schemas(args.schema),
                                   out=args.out, delivery_date=args.delivery_date,
                                   force=args.force, settings=settings).to_json()
        else:
            summary = run_flow(settings, delivery=str(Path(args.delivery).resolve()),
                               out=str(Path(args.out).resolve()),
                               dataset=_schemas(args.schema),
                               delivery_date=args.delivery_date, force=args.force)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    _report(summary, args.json)
    return 0


def _exit_now(code: int) -> None:
    """End the ``ingest`` command once its work is over: exit handlers run (logging,
    Prefect's queues), but not the interpreter's teardown of every module and object,
    which took 2-3 s after a flow run (Prefect's thousands of modules and models) and
    0.3-0.8 s after the library path on a loaded 2-core machine, and in which
    pyarrow's thread pools can abort the process after a complete, correct run
    ("terminate called without an active exception", apache/arrow#34314): a script
    piping ``ingest export`` would see a crash. Everything a command wrote is
    published and synced by then; its output is flushed."""
    import atexit

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()  # logging.shutdown among them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


PROGRESS_SECONDS = 5.0
"""How often ``--progress`` writes a line when stderr is no terminal (a log)."""
LIVE_PROGRESS_SECONDS = 0.5


def _progress(flag: bool | None,
              beside_logs: bool = False) -> contextlib.AbstractContextManager[object]:
    """Rows read, validated and written, bytes decrypted, rates and time left on
    stderr: on a terminal by default, elsewhere with ``--progress``; never with
    ``--quiet``. ``beside_logs``: the flow's log lines go to the same terminal, so
    plain lines, not one rewritten in place (a log line would land in it)."""
    from . import progress

    if not progress.wants_progress(flag):
        return contextlib.nullcontext()
    lines = progress.TerminalLines(live=False if beside_logs else None)
    return progress.Tracker([lines], LIVE_PROGRESS_SECONDS if lines.live
                            else PROGRESS_SECONDS)


def _schemas(given: list[str] | None) -> str | list[str]:
    """``--schema`` once (the schema's spec) or repeated (one table each)."""
    if not given:
        return "reference"
    return given[0] if len(given) == 1 else given


def run_flow(settings: Settings, **params: Any) -> dict[str, Any]:
    """Run the Prefect flow in this process against our server (or the user's)."""
    from flows.server import fast_flow_runs, use_prefect

    use_prefect(settings)
    from prefect.states import State

    from flows.ingest_delivery import ingest_delivery

    _quiet_tracebacks()
    with fast_flow_runs():
        state: State = ingest_delivery(**params,  # type: ignore[assignment]
                                       return_state=True)
    _drain_prefect()
    if state.is_completed():
        return state.result()
    error = state.result(raise_on_failure=False)
    if isinstance(error, IngestError):
        raise error
    raise IngestError(f"the flow run ended {state.type.value.lower()}; "
                      "see 'ingest server status' for the server log")


class _NoTraceback(logging.Filter):
    """A failed run ends with our one-line message, not a traceback on the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def _quiet_tracebacks() -> None:
    names = [n for n in logging.root.manager.loggerDict if n.startswith("prefect")]
    for logger in [logging.getLogger(), *(logging.getLogger(n) for n in names)]:
        for handler in logger.handlers:
            handler.addFilter(_NoTraceback())


def _drain_prefect() -> None:
    """Send Prefect's queued events and logs now, so nothing prints after our summary."""
    from prefect._internal.concurrency.services import QueueService

    for service in list(QueueService.__subclasses__()):
        for sub in [service, *service.__subclasses__()]:
            try:
                sub.drain_all(timeout=10)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .crypto.openpgp import encrypt_openpgp, export_public_key
    from .keys import Keyring
    from .synth import generate, to_delimited

    ring = Keyring.init(settings)
    demo = settings.home / "demo"
    folder = demo / f"delivery-{args.rows}"
    print(f"Generating the reference delivery: {args.rows:,} rows, Windows-1252 CSV, "
          "OpenPGP-encrypted to this keyring's key ...", flush=True)
    frame, truth = generate(args.rows, seed=args.seed)
    cipher = encrypt_openpgp(to_delimited(frame), demo / "sender-gnupg",
                             recipient_key=export_public_key(ring.gnupg_home))
    del frame
    _write_delivery(folder, {"cases.csv.gpg": cipher})
    (demo / f"truth-{args.rows}.json").write_text(json.dumps(truth.to_json()))
    out = Path(args.out) if args.out else demo / "out"
    print(f"Running the Prefect flow on {folder} ...", flush=True)
    started = time.perf_counter()
    with _progress(None, beside_logs=True):
        summary = run_flow(settings, delivery=str(folder), out=str(out.resolve()),
                           dataset="reference", delivery_date=truth.delivery_date,
                           force=True)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    _report(summary, False)
    ok = _check_against_truth(summary, truth, settings)
    print("\nChecked against the generator's truth: "
          + ("every row accounted for, and exactly the rule-breaking rows quarantined"
             if ok else "MISMATCH"))
    print(f"Load it in Python:  import ingest; df = ingest.load({str(out)!r})")
    return 0 if ok else 1


def _check_against_truth(summary: dict[str, Any], truth: Any, settings: Settings) -> bool:
    """Counts add up, and the quarantined rows are exactly the generator's bad rows."""
    from .keys import Keyring
    from .outputs import load
    from .writers import decrypt_jsonl

    folder = Path(summary["output_dir"])
    accepted = load(folder, columns=["case_id"], settings=settings).height
    quarantine = decrypt_jsonl((folder / "quarantine.jsonl.age").read_bytes(),
                               Keyring.open(settings).age_identity())
    rows = set(quarantine["_row"].to_list()) if quarantine.height else set()
    return (summary["rows_in"] == truth.rows
            and summary["rows_accepted"] + summary["rows_quarantined"] == summary["rows_in"]
            and accepted == summary["rows_accepted"] == truth.accepted
            and rows == set(truth.bad_rows))


def _write_delivery(folder: Path, files: dict[str, bytes]) -> None:
    import hashlib

    from ._fs import private_dir, write_private

    private_dir(folder)
    sums = []
    for name, data in files.items():
        write_private(folder / name, data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    write_private(folder / "SHA256SUMS", "".join(sums).encode())


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    from .synth import generate, to_delimited

    frame, truth = generate(args.rows, seed=args.seed,
                            delivery_date=args.delivery_date or date(2026, 6, 30))
    sep = "\t" if args.format == "tsv" else ","
    data = to_delimited(frame, separator=sep, encoding=args.encoding)
    name = f"cases.{args.format}"
    if args.encrypt == "pgp":
        from .crypto.openpgp import encrypt_openpgp, export_public_key
        from .keys import Keyring

        ring = Keyring.init(settings)
        data = encrypt_openpgp(data, settings.home / "demo" / "sender-gnupg",
                               recipient_key=export_public_key(ring.gnupg_home))
        name += ".gpg"
    elif args.encrypt == "pgp-passphrase":
        from .crypto.openpgp import encrypt_openpgp
        from .keys import session

        secret = session.resolve_passphrase(args.passphrase_file, prompt=True)
        if not secret:
            raise UsageError("--encrypt pgp-passphrase needs --passphrase-file")
        data = encrypt_openpgp(data, settings.home / "demo" / "sender-gnupg",
                               passphrase=secret)
        name += ".gpg"
    else:
        print("ingest: warning: writing a plaintext synthetic delivery", file=sys.stderr)
    out = Path(args.out)
    _write_delivery(out, {name: data})
    (out.parent / f"{out.name}.truth.json").write_text(json.dumps(truth.to_json(), indent=1))
    print(f"wrote {out / name} ({args.rows} rows; truth in {out.name}.truth.json)")
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from .keys import Keyring

    if args.keys_cmd == "init":
        ring = Keyring.init(settings)
        print(f"keyring ready at {ring.home}")
        print(f"  general master key     {ring.master_key('general').id}")
        print(f"  restricted master key  {ring.master_key('restricted').id}")
        print(f"  pseudonymisation key   {ring.pseudonym_key().id}")
        print(f"  age recipient          {ring.age_recipient()}")
        return 0
    if args.keys_cmd == "import-pgp":
        from .crypto.openpgp import import_key
        from .keys import session

        ring = Keyring.open(settings)
        secret = session.resolve_passphrase(args.passphrase_file, args.passphrase_prompt)
        fprs = import_key(ring.gnupg_home, Path(args.file).read_bytes(), secret)
        print("imported OpenPGP key(s): " + ", ".join(fprs))
        return 0
    if args.keys_cmd == "export-pgp":
        from .crypto.openpgp import export_public_key

        ring = Keyring.open(settings)
        sys.stdout.buffer.write(export_public_key(ring.gnupg_home))
        return 0
    if args.keys_cmd == "protect":
        from .keys import session

        ring = Keyring.open(settings)
        secret = session.resolve_passphrase(args.passphrase_file, prompt=False)
        if not secret:
            import getpass

            secret = getpass.getpass("New keyring passphrase: ")
            if secret != getpass.getpass("Repeat it: "):
                raise UsageError("the two passphrases differ; nothing was changed")
        if len(secret) < 12:
            raise UsageError("choose a keyring passphrase of at least 12 characters")
        count = ring.protect(secret)
        print(f"sealed {count} key file(s); runs now need INGEST_KEYRING_PASSPHRASE "
              "or --keyring-passphrase-prompt")
        return 0
    if args.keys_cmd == "rotate":
        from .custody import rotate

        roles = ("general", "restricted") if args.role == "all" else (args.role,)
        done = rotate(settings, roles)
        for role, ids in done["keys"].items():
            print(f"{role}: {ids['retired']} retired and destroyed, now {ids['current']}")
        print(f"re-wrapped the keys of {done['files_rewrapped']} Parquet output(s)")
        return 0
    raise UsageError("keys: say init, import-pgp, export-pgp or rotate")


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> int:
    from .inspect import inspect_delivery, render
    from .keys import session

    session.set_passphrase(session.resolve_passphrase(args.passphrase_file,
                                                      args.passphrase_prompt))
    found = inspect_delivery(args.delivery, schema=args.schema, settings=settings,
                             delivery_date=args.delivery_date)
    print(json.dumps(found.to_json()) if args.json else render(found))
    return 0


def cmd_schema_draft(args: argparse.Namespace, settings: Settings) -> int:
    """Draft a schema module from a delivery; prints names and counts, never a value."""
    from .draft import FROM_THE_DATA, draft_delivery, write_draft
    from .keys import session

    session.set_passphrase(session.resolve_passphrase(args.passphrase_file,
                                                      args.passphrase_prompt))
    out = Path(args.out or f"{args.name}.py")
    if out.exists():  # checked before the delivery is opened, and again on writing
        raise UsageError(f"{out} exists; give another --out or remove it first")
    draft = draft_delivery(args.delivery, name=args.name, settings=settings, table=args.table,
                           member=args.member)
    write_draft(draft, out)
    kinds = ", ".join(f"{name} {kind}" for name, kind in draft.columns)
    print(f"drafted schema '{draft.name}' from {draft.rows:,} rows: {kinds}")
    if draft.demoted:
        print("kept as text, as some values would not parse as first inferred: "
              + ", ".join(draft.demoted))
    print(f"written to {out}; its lines ending '{FROM_THE_DATA}' hold values from the "
          "delivery: keep it where the data may be kept")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from .custody import verify_outputs
    from .keys import Keyring

    for entry in verify_outputs(args.path, Keyring.open(settings)):
        several = f" of {len(entry['tables'])} tables" if "tables" in entry else ""
        print(f"{entry['delivery_id']}: {entry['outputs_checked']} outputs{several} verified")
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from . import audit

    lines = audit.verify(settings.audit_log)
    print(f"audit log {settings.audit_log}: {lines} entries, chain intact")
    return 0


def cmd_server(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from flows import server

    if args.database is not None:
        if args.server_cmd != "start":
            raise UsageError("--database goes with 'ingest server start'")
        settings = replace(settings, prefect_database=args.database)
    if args.server_cmd == "start":
        print(server.ensure_server(settings))
    elif args.server_cmd == "stop":
        print("stopped" if server.stop_server(settings) else "not running")
    else:
        print(json.dumps(server.server_status(settings), indent=2, default=str))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from flows.inbox import serve

    watcher = serve(settings, args.inbox, args.out, dataset=args.schema, pool=args.pool,
                    workers=args.workers, deployment=args.deployment, settle=args.settle,
                    poll=args.poll, passphrase_file=args.passphrase_file,
                    passphrase_secret=args.passphrase_secret, until_empty=args.until_empty,
                    say=lambda line: print(line, flush=True))
    return 1 if args.until_empty and any(not ok for _, ok, _ in watcher.done) else 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from .status import deliveries, render

    rows = deliveries(settings, args.out)
    print(json.dumps(rows, indent=1) if args.json else render(rows))
    return 0


def cmd_cat(args: argparse.Namespace, settings: Settings) -> int:
    from .export import stream_table

    columns = args.columns.split(",") if args.columns else None
    stream_table(args.path, columns=columns, fmt=args.format, sink=sys.stdout.buffer,
                 settings=settings, table=args.table)
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from .export import export_plaintext

    if not args.plaintext:
        raise UsageError("export writes plaintext: say so with --plaintext")
    print("ingest: warning: writing PLAINTEXT Parquet; keep it on an encrypted volume",
          file=sys.stderr)
    from . import audit

    columns = args.columns.split(",") if args.columns else None
    paths = export_plaintext(args.path, Path(args.out), columns=columns, settings=settings,
                             table=args.table)
    audit.append(settings.audit_log, "plaintext-export", source=str(Path(args.path).resolve()),
                 destination=str(Path(args.out).resolve()), files=[p.name for p in paths],
                 columns=columns or "all")
    for path in paths:
        print(path)
    return 0


# -- output ------------------------------------------------------------------------

def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        keys = ("delivery_sha256", "rows_in", "rows_accepted", "rows_quarantined",
                "quarantine_reasons", "repairs", "outputs", "seconds", "output_dir",
                "skipped", "warnings")
        doc = {k: summary[k] for k in keys}
        if summary.get("tables"):  # a delivery of several tables: each table's counts
            doc["tables"] = summary["tables"]
        doc["outputs"] = [{k: o[k] for k in ("path", "kind", "sha256")} for o in doc["outputs"]]
        print(json.dumps(doc))
        return
    note = "  (already processed: outputs unchanged)" if summary.get("skipped") else ""
    print(f"\nDelivery {summary['delivery_id']}{note}")
    print(f"  rows delivered    {summary['rows_in']:>10,}")
    print(f"  rows accepted     {summary['rows_accepted']:>10,}")
    print(f"  rows quarantined  {summary['rows_quarantined']:>10,}")
    for rule, count in summary["quarantine_reasons"].items():
        print(f"    {count:>8,}  {rule}")
    for part in summary.get("tables") or []:
        print(f"  table {part['name']:<22} {part['rows_in']:>10,} delivered, "
              f"{part['rows_accepted']:,} accepted, {part['rows_quarantined']:,} quarantined")
    for repair, count in (summary.get("repairs") or {}).items():
        print(f"  repaired {count:>10,}  {repair}")
    print(f"  outputs in {summary['output_dir']}")
    for out in summary["outputs"]:
        print(f"    {out['path']:<42} {out['kind']:<12} sha256 {out['sha256'][:16]}…")
    for warning in summary.get("warnings", []):
        print(f"  warning: {warning}")
    print(f"  time taken        {summary['seconds']:>9.2f} s")


SCHEMA_HELP = ("dataset schema: a .py file, a module name (pkg.mod), or a name in schemas/, "
               "$INGEST_SCHEMA_PATH or the ingest.schemas entry points (default reference)")


def _schema(spec: str) -> str:
    """A path made absolute, so a flow run started elsewhere finds the same file."""
    from .catalog import absolute

    return absolute(spec)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest", description="Confidential data deliveries in, validated encrypted "
        "data out.")
    parser.add_argument("--home", help="keyring and state folder (default: $INGEST_HOME, "
                        "else the per-user data folder)")
    parser.add_argument("--keyring-passphrase-prompt", action="store_true",
                        help="ask for the passphrase of a protected keyring (else "
                        "$INGEST_KEYRING_PASSPHRASE)")
    sub = parser.add_subparsers(metavar="COMMAND")

    def passphrase_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--passphrase-file", metavar="F",
                       help="file holding the passphrase or password (else "
                       "$INGEST_PASSPHRASE)")
        p.add_argument("--passphrase-prompt", action="store_true",
                       help="ask for the passphrase without echo")

    run = sub.add_parser("run", help="ingest one delivery through the Prefect flow")
    run.add_argument("delivery", help="a file, a folder (mounted disc), an image or archive")
    run.add_argument("--schema", action="append", type=_schema,
                     help=SCHEMA_HELP + "; repeat it for a delivery of several tables, one "
                     "schema each (--schema cases --schema counties)")
    run.add_argument("--out", required=True, help="output root; one folder per delivery")
    run.add_argument("--delivery-date", type=_date, help="the delivery's date (default today)")
    run.add_argument("--force", action="store_true",
                     help="replace the outputs of an already processed delivery")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--no-prefect", action="store_true",
                     help="run the library path in this process, without Prefect")
    shown = run.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true", default=None,
                       help="show rows read, validated and written per second and the time "
                       "left on stderr, also when it is no terminal (a line every "
                       f"{PROGRESS_SECONDS:g} s and at each stage's end)")
    shown.add_argument("--quiet", dest="progress", action="store_false",
                       help="show no progress (default: shown when stderr is a terminal)")
    passphrase_options(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="generate the reference delivery and run the flow on it")
    demo.add_argument("--rows", type=int, default=400_000)
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--out", help="output root (default $INGEST_HOME/demo/out)")
    demo.set_defaults(func=cmd_demo)

    synth = sub.add_parser("synth", help="write a synthetic reference delivery and its truth")
    synth.add_argument("--rows", type=int, default=400_000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--format", choices=["csv", "tsv"], default="csv")
    synth.add_argument("--encoding", default="cp1252")
    synth.add_argument("--encrypt", choices=["pgp", "pgp-passphrase", "none"], default="pgp")
    synth.add_argument("--delivery-date", type=_date)
    synth.add_argument("--out", required=True, help="folder to write the delivery into")
    passphrase_options(synth)
    synth.set_defaults(func=cmd_synth)

    keys = sub.add_parser("keys", help="the keyring")
    keys_sub = keys.add_subparsers(dest="keys_cmd", metavar="ACTION")
    keys_sub.add_parser("init", help="create any missing key")
    imp = keys_sub.add_parser("import-pgp", help="import a recipient's OpenPGP secret key")
    imp.add_argument("file")
    passphrase_options(imp)
    keys_sub.add_parser("export-pgp", help="print this keyring's OpenPGP public key")
    prot = keys_sub.add_parser("protect", help="seal the keyring with a passphrase (scrypt)")
    prot.add_argument("--passphrase-file", metavar="F")
    rot = keys_sub.add_parser("rotate", help="replace master keys; re-wrap every output")
    rot.add_argument("--role", choices=["general", "restricted", "all"], default="all")
    keys.set_defaults(func=cmd_keys)

    look = sub.add_parser("inspect", help="a dry run that writes nothing: members, table, "
                          "columns; with --schema, what the rules would quarantine")
    look.add_argument("delivery", help="a file, a folder (mounted disc), an image or archive")
    look.add_argument("--schema", action="append", type=_schema,
                      help=SCHEMA_HELP + "; repeat it for a delivery of several tables")
    look.add_argument("--delivery-date", type=_date, help="the delivery's date (default today)")
    look.add_argument("--json", action="store_true", help="print one JSON object")
    passphrase_options(look)
    look.set_defaults(func=cmd_inspect)

    schema = sub.add_parser("schema", help="schemas: draft one from a delivery")
    schema_sub = schema.add_subparsers(metavar="ACTION")
    draft = schema_sub.add_parser("draft", help="profile a delivery (in memory) and write a "
                                  "ready-to-edit schema module")
    draft.add_argument("delivery", help="a file, a folder (mounted disc), an image or archive")
    draft.add_argument("--name", required=True, help="the dataset's name")
    draft.add_argument("--out", help="the module to write (default NAME.py; never replaced)")
    draft.add_argument("--table", help="an Access database's table (default: its largest)")
    draft.add_argument("--member", help="the file to draft from, when the delivery holds "
                       "several tables")
    passphrase_options(draft)
    draft.set_defaults(func=cmd_schema_draft)

    verify = sub.add_parser("verify", help="check outputs against manifest and encryption")
    verify.add_argument("path")
    verify.set_defaults(func=cmd_verify)

    aud = sub.add_parser("audit", help="the audit trail")
    aud.add_argument("audit_cmd", choices=["verify"])
    aud.set_defaults(func=cmd_audit)

    server = sub.add_parser("server", help="the local Prefect server this tool manages")
    server.add_argument("server_cmd", choices=["status", "start", "stop"], nargs="?",
                        default="status")
    server.add_argument("--database", metavar="URL", help="start: the server's database, "
                        "postgresql+asyncpg://USER@HOST:PORT/DATABASE, no password in it "
                        "(it is read from ~/.pgpass or PGPASSFILE); default the setting "
                        "prefect_database, else SQLite under INGEST_HOME")
    server.set_defaults(func=cmd_server)

    serve = sub.add_parser("serve", help="watch an inbox folder; one flow run per delivery")
    serve.add_argument("--inbox", required=True, help="folder deliveries are dropped into")
    serve.add_argument("--out", required=True, help="output root; one folder per delivery")
    serve.add_argument("--schema", default="reference", type=_schema, help=SCHEMA_HELP)
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, metavar="N",
                       help="start N local process workers (default 2; pool ingest-local)")
    where.add_argument("--pool", metavar="NAME",
                       help="use this work pool's workers, run elsewhere; start none")
    serve.add_argument("--deployment", metavar="NAME", help="use this existing deployment "
                       "(default: create or update ingest-delivery/<pool>)")
    serve.add_argument("--settle", type=float, default=5.0, metavar="SECONDS",
                       help="a delivery unchanged this long has arrived (default 5)")
    serve.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                       help="how often to look at the inbox and the runs (default 2)")
    serve.add_argument("--passphrase-file", metavar="F",
                       help="file holding the passphrase, read by each flow run")
    serve.add_argument("--passphrase-secret", metavar="BLOCK",
                       help="name of a Prefect Secret block holding the passphrase")
    serve.add_argument("--until-empty", action="store_true",
                       help="exit once the inbox is empty and every run has ended")
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="list deliveries and their outcome")
    status.add_argument("--out", help="output root (default: every root this keyring "
                        "published to)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    cat = sub.add_parser("cat", help="stream a decrypted table to stdout (for R, pipes)")
    cat.add_argument("path")
    cat.add_argument("--format", choices=["arrow", "parquet"], default="arrow")
    cat.add_argument("--columns", help="comma-separated column names")
    cat.add_argument("--table", help="the table, when a delivery holds several")
    cat.set_defaults(func=cmd_cat)

    export = sub.add_parser("export", help="write plaintext Parquet (encrypted volumes only)")
    export.add_argument("path")
    export.add_argument("--plaintext", action="store_true", required=True)
    export.add_argument("--out", required=True)
    export.add_argument("--columns")
    export.add_argument("--table", help="only this table (default: every table)")
    export.set_defaults(func=cmd_export)
    return parser


if __name__ == "__main__":
    sys.exit(main())
