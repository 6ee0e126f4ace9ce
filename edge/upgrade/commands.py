"""Technician verbs `edge upgrade`, `edge rollback`, `edge models`, `edge audit`, and the
vendor's `edge bundle keygen|build|verify`.

Exit status: 0 done, 1 refused (a check failed: signature, compatibility, gate, ...),
2 bad input (a file that is not there, bad options).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import BadInputError
from edge.upgrade.errors import UpgradeRefusedError

EXIT_OK, EXIT_REFUSED = 0, 1


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _setup(args: argparse.Namespace) -> tuple[Path, Any]:
    from edge.cli import default_data_dir, default_model_dir
    from edge.config import load_config

    config = load_config(Path(args.config) if args.config else None)
    if config.model.dir is None:
        config = config.model_copy(
            update={"model": config.model.model_copy(update={"dir": default_model_dir()})}
        )
    data = Path(args.data or config.store.data_dir or default_data_dir())
    return data, config


def _upgrader(args: argparse.Namespace) -> Any:
    from edge.upgrade.audit import cli_actor
    from edge.upgrade.engine import Upgrader, UpgradeSettings
    from edge.upgrade.gate import RegressionGate

    data, config = _setup(args)
    settings = UpgradeSettings.from_config(config, data)
    assert settings.suite_dir is not None
    gate = RegressionGate(settings.suite_dir, record_in=data)
    return Upgrader(data, settings, gate=gate, actor=cli_actor())


def cmd_upgrade(args: argparse.Namespace) -> int:
    upgrader = _upgrader(args)
    try:
        outcome = upgrader.install(Path(args.bundle), allow_downgrade=args.allow_downgrade)
    except UpgradeRefusedError as exc:
        if args.json:
            active = upgrader.store.active()
            _print_json(
                {
                    "accepted": False,
                    "message": exc.message,
                    "step": exc.step,
                    "active": None if active is None else active.as_json(),
                }
            )
        sys.stderr.write(f"edge: {exc.message}\nthe active model is unchanged\n"
                         if exc.step != "health" else f"edge: {exc.message}\n")  # fmt: skip
        return EXIT_REFUSED
    if args.json:
        _print_json(outcome.as_json())
    else:
        print(outcome.message)
        print(f"  sha256 {outcome.model.model_sha256}, signed by key {outcome.key_id}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from edge.upgrade.manager import describe_model

    now, before = _upgrader(args).roll_back()
    message = f"rolled back: {now.model_id} is active again (was {before.model_id})"
    if args.json:
        doc = {"message": message, "active": describe_model(now)}
        _print_json(doc | {"rolled_back_from": describe_model(before)})
    else:
        print(message)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from edge.upgrade.errors import UpgradeBusyError
    from edge.upgrade.manager import models_listing

    upgrader = _upgrader(args)
    try:
        with upgrader.store.lock():
            notes = upgrader.prepare()
    except UpgradeBusyError:
        notes = ["an upgrade is in progress: the list may change in a moment"]
    doc = models_listing(upgrader.store) | {"notes": notes}
    if args.json:
        _print_json(doc)
        return EXIT_OK
    for note in notes:
        print(f"note: {note}")
    for m in doc["models"]:
        mark = {"active": "*", "previous": "<"}.get(m["state"], " ")
        state = doc["active"]["state"] if m["state"] == "active" else m["state"]
        tests = ", ".join(
            f"{t.get('origin')} suite {t.get('suite')}: {'passed' if t.get('passed') else 'FAILED'}"
            for t in m["tests"]
        ) or ("factory model" if m["factory"] else "no tests recorded")
        print(f"{mark} {m['id']:<28} release {m['release']:<4} {state:<9} sha256 {m['sha256']}")
        print(f"    installed {m['installed']}; {tests}")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from edge.upgrade import audit

    data, _ = _setup(args)
    result = audit.verify(data)
    if args.json:
        _print_json(result.as_json())
    elif result.ok:
        print(f"audit log intact: {result.entries} entries, hash chain verified")
    else:
        print(f"audit log DAMAGED: {result.problem} (first bad entry: {result.first_bad})")
    return EXIT_OK if result.ok else EXIT_REFUSED


def cmd_audit_show(args: argparse.Namespace) -> int:
    from edge.upgrade import audit

    data, _ = _setup(args)
    found = audit.entries(data, args.limit)
    if args.json:
        _print_json([e.as_json() for e in found])
        return EXIT_OK
    for e in found:
        extra = " ".join(
            f"{k} {v}"
            for k, v in (("model", e.model), ("bundle", (e.bundle_sha256 or "")[:16]),
                         ("key", e.key_id))
            if v
        )  # fmt: skip
        print(f"{e.id:>5} {e.at} {e.actor} {e.action}: {e.message or ''} {extra}".rstrip())
    return EXIT_OK


# ----------------------------------------------------------------------------- bundle


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge.upgrade import minisign

    secret = minisign.generate_key()
    public_path = args.pub or args.key.with_suffix(".pub")
    minisign.write_key_pair(secret, args.key, public_path)
    print(f"key {secret.public_key.id_text}: secret key {args.key} (unencrypted: keep it "
          f"offline), public key {public_path} (install it in DATA/keys/ on devices)")  # fmt: skip
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from edge.upgrade import minisign
    from edge.upgrade.bundle import build_bundle

    if not args.model_dir.is_dir():
        raise BadInputError(f"{args.model_dir}: no such model directory")
    compatible = [c.strip() for item in args.compatible for c in item.split(",") if c.strip()]
    out, doc = build_bundle(
        args.model_dir,
        minisign.read_secret_key(args.key),
        version=args.version,
        release=args.release,
        compatible=compatible,
        tests_dir=args.tests,
        out=args.out,
    )
    print(f"wrote {out}: {doc.name} {doc.version} release {doc.release}, {len(doc.files)} "
          f"files, for {', '.join(doc.compatible)}")  # fmt: skip
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from edge.upgrade import archive, minisign
    from edge.upgrade.bundle import describe

    key = minisign.read_public_key(args.pubkey)
    with tempfile.TemporaryDirectory(prefix="edge-verify-") as tmp:
        try:
            copy, sha = archive.copy_in(args.bundle, Path(tmp) / "in", args.max_mb << 20)
            signed = archive.read_signed(copy, sha, [key], args.max_mb << 20)
            archive.extract_listed(signed, Path(tmp) / "out")
        except UpgradeRefusedError as exc:
            message = exc.message.replace("bundle refused: ", "")
            if args.json:
                _print_json({"valid": False, "message": message})
            sys.stderr.write(f"edge: {args.bundle}: NOT valid: {message}\n")
            return EXIT_REFUSED
        finally:
            shutil.rmtree(Path(tmp) / "out", ignore_errors=True)
    doc = describe(signed.doc) | {"sha256": sha, "key_id": signed.key_id}
    if args.json:
        _print_json({"valid": True, **doc})
    else:
        print(f"{args.bundle}: valid, signed by key {signed.key_id}: {doc['name']} "
              f"{doc['version']} release {doc['release']} for {', '.join(doc['compatible'])}")  # fmt: skip
    return EXIT_OK


def add_parsers(verbs: Any, common: argparse.ArgumentParser) -> None:
    """Register upgrade, rollback, models, audit and bundle on the `edge` sub-parsers."""
    p = verbs.add_parser("upgrade", parents=[common], help="install a signed model bundle")
    p.add_argument("bundle", metavar="BUNDLE", help="the .edgebundle file (e.g. on the USB stick)")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="accept a release not newer than the installed one")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_upgrade)

    p = verbs.add_parser("rollback", parents=[common], help="go back to the previous model")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_rollback)

    p = verbs.add_parser("models", parents=[common], help="installed models, the active one")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_models)

    p = verbs.add_parser("audit", help="the audit log of upgrades and rollbacks")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("verify", parents=[common], help="check the hash chain")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    a.set_defaults(func=cmd_audit_verify)
    a = actions.add_parser("show", parents=[common], help="the newest entries")
    a.add_argument("--limit", type=int, default=50, help="entries (default 50)")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    a.set_defaults(func=cmd_audit_show)

    p = verbs.add_parser("bundle", help="vendor tooling: signing keys, building, verifying")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    k = actions.add_parser(
        "keygen", parents=[common], help="a minisign key pair (unencrypted secret key)"
    )
    k.add_argument("--key", type=Path, default=Path("edge-bundle.key"), help="secret key file")
    k.add_argument("--pub", type=Path, help="public key file (default: KEY with .pub)")
    k.set_defaults(func=cmd_keygen)
    b = actions.add_parser("build", parents=[common], help="pack and sign a model directory")
    b.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    b.add_argument("--key", type=Path, required=True, help="minisign secret key (unencrypted)")
    b.add_argument("--version", required=True, help="the model's version (as its manifest)")
    b.add_argument("--release", type=int, required=True, help="release counter (increasing)")
    b.add_argument("--compatible", action="append", required=True,
                   help="device compatible string (repeatable or comma-separated)")  # fmt: skip
    b.add_argument("--tests", type=Path, help="a regression suite folder to include")
    b.add_argument("--out", type=Path, help="bundle file (default NAME-VERSION.edgebundle)")
    b.set_defaults(func=cmd_build)
    v = actions.add_parser(
        "verify", parents=[common], help="check a bundle's signature and contents"
    )
    v.add_argument("bundle", type=Path, metavar="BUNDLE")
    v.add_argument("--pubkey", type=Path, required=True, help="minisign public key file")
    v.add_argument("--max-mb", type=int, default=1024, help="size limit, MiB (default 1024)")
    v.add_argument("--json", action="store_true", help="print one JSON document")
    v.set_defaults(func=cmd_verify)
