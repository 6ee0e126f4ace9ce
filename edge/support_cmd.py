"""`edge support-bundle`: its options and the command (the archive itself: edge/support.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import EdgeError


def run(args: argparse.Namespace) -> int:
    """One archive for the vendor: config (secrets removed), logs, health, counters, audit
    log, test reports; read-only beside a running service."""
    from edge.cli import default_data_dir, default_model_dir
    from edge.support import BundleOptions, write_support_bundle

    if not 1 <= args.max_mb <= 65536:
        raise EdgeError(f"--max-mb: expected 1..65536, got {args.max_mb}")
    written = write_support_bundle(
        BundleOptions(
            out_dir=Path(args.out),
            data_dir=Path(args.data) if args.data else None,
            config_path=Path(args.config) if args.config else None,
            since_days=args.since,
            factory_dir=default_model_dir(),
            default_data_dir=default_data_dir(),
            max_bytes=args.max_mb << 20,
        )
    )
    if args.json:
        sys.stdout.write(json.dumps(written.as_json(), indent=2) + "\n")
    else:
        cut = f"; cut to fit: {', '.join(written.cut)}" if written.cut else ""
        print(f"wrote {written.path} ({written.size} bytes){cut}")
    return 0


def add_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    """`edge support-bundle --out DIR [--since DAYS] [--max-mb N] [--json]`."""
    p = verbs.add_parser(
        "support-bundle",
        parents=[common],
        help="one archive for the vendor: config (secrets removed), logs, health, counters, "
        "audit log, test reports (read-only; no images)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="existing folder to write into")
    p.add_argument(
        "--since",
        type=int,
        default=14,
        metavar="DAYS",
        help="logs, events and counters of the last DAYS days (default 14)",
    )
    p.add_argument(
        "--max-mb",
        type=int,
        default=512,
        metavar="N",
        help="the archive is at most N MiB; what does not fit is left out and listed in "
        "manifest.json (default 512)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)
