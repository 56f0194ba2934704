"""What a custodian does with published outputs: verify them, rotate master keys.

``verify_outputs`` checks every output against its manifest's hash and against
the encryption's own authentication. ``rotate`` replaces a master key and
re-wraps the keys of every output the keyring has published, without rewriting
any data; the retired key is destroyed afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from . import audit
from ._fs import exclusive_lock, write_private
from .errors import IngestError, OutputError
from .keys import MASTER_ROLES, Keyring
from .outputs import manifest, output_dirs
from .settings import Settings
from .writers import MANIFEST
from .writers.parquet import open_parquet, rotate_parquet

REGISTRY = "output-roots.json"


def register_output_root(settings: Settings, root: Path) -> None:
    """Remember where this keyring published, so a rotation can find every output."""
    path = settings.home / REGISTRY
    # concurrent runs must not lose each other's root
    with exclusive_lock(settings.home / f".{REGISTRY}.lock"):
        roots = set(json.loads(path.read_text())) if path.exists() else set()
        if str(root.resolve()) not in roots:
            roots.add(str(root.resolve()))
            write_private(path, json.dumps(sorted(roots)).encode())


def output_roots(settings: Settings) -> list[Path]:
    path = settings.home / REGISTRY
    return [Path(p) for p in json.loads(path.read_text())] if path.exists() else []


def published_manifests(settings: Settings) -> dict[str, set[str]]:
    """Delivery SHA-256 -> SHA-256 of every manifest the audit log saw published."""
    found: dict[str, set[str]] = {}
    if not settings.audit_log.exists():
        return found
    audit.verify(settings.audit_log)
    for raw in settings.audit_log.read_bytes().splitlines():
        entry = json.loads(raw)
        if entry.get("event") == "run" and entry.get("outcome") in ("publishing",
                                                                    "published"):
            found.setdefault(entry["delivery_sha256"], set()).add(
                entry["outputs"].get(MANIFEST, ""))
    return found


def verify_outputs(path: str | Path, keyring: Keyring) -> list[dict[str, Any]]:
    """Every delivery under ``path``: the manifest is the one the audit log recorded,
    every output matches its hash, and the ciphertext authenticates."""
    from .writers import decrypt_jsonl

    report = []
    identity = keyring.age_identity()
    recorded = published_manifests(keyring.settings)
    for folder in output_dirs(path):
        doc = _readable_manifest(folder)
        sha = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
        seen = recorded.get(doc["delivery"]["sha256"])
        if seen is not None and sha not in seen:
            raise OutputError(f"{folder / MANIFEST}: differs from the manifest the audit log "
                              "recorded for this delivery; it was altered")
        checked = 0
        for out in doc["outputs"]:
            file = folder / out["path"]
            if not file.is_file():
                raise OutputError(f"{file}: listed in the manifest but missing")
            if out["kind"] != "key-material":  # re-wrapped by key rotation
                if hashlib.sha256(file.read_bytes()).hexdigest() != out["sha256"]:
                    raise OutputError(f"{file}: does not match its hash in {MANIFEST}; "
                                      "it was altered")
            if out["kind"] == "parquet":
                pf = open_parquet(file, keyring)
                try:
                    for group in range(pf.num_row_groups):
                        pf.read_row_group(group)
                except OSError:
                    raise OutputError(f"{file}: fails authentication (tampered)") from None
            elif out["path"].endswith(".age"):
                decrypt_jsonl(file.read_bytes(), identity, out["path"]) \
                    if out["kind"] in ("jsonl", "quarantine") else _age_ok(file, identity)
            checked += 1
        tables = _tables_listed(folder, doc)
        entry: dict[str, Any] = {"delivery_id": folder.name, "outputs_checked": checked}
        if len(tables) > 1:  # a delivery of one table keeps the entry it always had
            entry["tables"] = tables
        report.append(entry)
    return report


def _tables_listed(folder: Path, doc: dict[str, Any]) -> list[str]:
    """The tables of the delivery; for several, each table's files are outputs the
    manifest lists (and were checked above), its Parquet file among them."""
    try:
        parts = doc.get("tables")
        if parts is None:
            return [str(doc["schema"]["name"])]
        listed = {out["path"] for out in doc["outputs"]}
        for part in parts:
            files = {str(f) for f in part["outputs"]}
            if not files <= listed or f"{part['name']}.parquet" not in files:
                raise OutputError(f"{folder / MANIFEST}: table {part['name']}'s outputs "
                                  "are not among the outputs it lists; it was altered")
        return [str(part["name"]) for part in parts]
    except (KeyError, TypeError):
        raise OutputError(f"{folder / MANIFEST}: is not a readable manifest; it was damaged "
                          "or altered") from None


def _readable_manifest(folder: Path) -> dict[str, Any]:
    """The manifest with the fields verification reads; a damaged or edited one is
    our error, not a JSON or key error (whose text could quote what it holds)."""
    try:
        doc = manifest(folder)
        str(doc["delivery"]["sha256"])
        for out in doc["outputs"]:
            str(out["path"]), str(out["kind"]), str(out["sha256"])
    except (ValueError, KeyError, TypeError):
        raise OutputError(f"{folder / MANIFEST}: is not a readable manifest; it was damaged "
                          "or altered") from None
    return doc


def _age_ok(file: Path, identity: object) -> None:
    import pyrage

    try:
        pyrage.decrypt(file.read_bytes(), [identity])
    except pyrage.DecryptError:
        raise OutputError(f"{file}: fails authentication (tampered or truncated)") from None


def rotate(settings: Settings, roles: tuple[str, ...] = MASTER_ROLES) -> dict[str, Any]:
    """Replace the master keys of ``roles``; every published output is re-wrapped."""
    keyring = Keyring.open(settings)
    files = [folder / out["path"]
             for root in output_roots(settings) if root.exists()
             for folder in output_dirs(root)
             for out in manifest(folder)["outputs"] if out["kind"] == "parquet"]
    changed = {}
    for role in roles:
        old, new = keyring.begin_rotation(role)
        changed[role] = {"retired": old.id, "current": new.id}
    try:
        for file in files:
            rotate_parquet(file, keyring)
    except IngestError:
        # the retired keys stay in keys/retired/ so nothing becomes unreadable;
        # running the rotation again finishes it
        audit.append(settings.audit_log, "key-rotation", outcome="failed", keys=changed)
        raise
    keyring.finish_rotation()
    audit.append(settings.audit_log, "key-rotation", outcome="ok", keys=changed,
                 files=len(files))
    return {"keys": changed, "files_rewrapped": len(files)}
