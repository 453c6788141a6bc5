"""``hyperribbon run | claims | data`` — the command line of the compendium."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import claims as claims_mod
from . import data as data_mod
from . import run as run_mod
from .params import ParameterError


def _setup_logging(verbose: bool = False) -> None:
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s" if os.environ.get("CI") \
        else "%(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt,
                        datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("traitlets", "asyncio", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    results = run_mod.run(args.notebooks, args.profile, args.param, args.file,
                          args.out, force=args.force)
    for r in results:
        failed = [c["name"] for c in r.claims if not c.get("passed")]
        note = f", failing claims: {', '.join(failed)}" if failed else ""
        print(f"{r.notebook}: {r.status} ({r.wall_s:.1f} s, {len(r.claims)} claims{note}) "
              f"→ {r.output}")
    return 0


def claim_rows(folder: Path | None = None) -> list[claims_mod.Row]:
    """The claims table over the executed notebooks in ``folder`` (default book/papers)."""
    root = run_mod.repo_root()
    folder = folder or root / "book" / "papers"
    executed = [p for p in folder.glob("[0-9][0-9]_*.ipynb")
                if not p.name.endswith(".failed.ipynb")]
    status = claims_mod.load_status(root / "notebooks" / "claims_status.yml")
    return claims_mod.table(executed, run_mod.expected_claims(root), status)


def markdown_table(rows: list[claims_mod.Row]) -> str:
    """The claims table as MyST markdown (the book's claims page)."""
    head = ("| notebook | claim | value | target | profile | result | reason |\n"
            "|---|---|---|---|---|---|---|\n")

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return "" if v is None else str(v)

    lines = []
    for r in rows:
        target = f"{r.relation} {fmt(r.target)}" if r.relation else ""
        link = f"[{r.notebook}](papers/{r.notebook}.ipynb)"
        lines.append(f"| {link} | `{r.name}` | {fmt(r.value)} | {target} | {r.profile or ''} "
                     f"| {r.status} | {r.reason.replace('|', '/')} |")
    return head + "\n".join(lines) + "\n"


def _cmd_claims(args: argparse.Namespace) -> int:
    rows = claim_rows(args.dir)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1, default=str))
    elif args.markdown:
        print(markdown_table(rows), end="")
    else:
        for r in rows:
            print(f"{r.notebook:24s} {r.name:34s} {str(r.value)[:12]:>12s} "
                  f"{r.relation:>2s} {str(r.target)[:14]:14s} {r.profile or '':6s} {r.status}"
                  + (f"  — {r.reason}" if r.reason else ""))
    if args.check:
        bad = claims_mod.problems(rows)
        if not rows:
            print("no executed notebooks found", file=sys.stderr)
            return 1
        if bad:
            for r in bad:
                print(f"CLAIM {r.status}: {r.notebook} {r.name} {r.reason}", file=sys.stderr)
            return 1
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    if args.action == "check":
        bad = 0
        for s in data_mod.check():
            print(f"{s.name:16s} {s.status:8s} {s.detail}")
            bad += s.status == "corrupt"
        return 1 if bad else 0
    if args.action == "get":
        for name in args.names or list(data_mod.registry()):
            data_mod.locate(name, download=True)
            print(f"{name}: present and verified")
        return 0
    if args.action == "hash":
        for name in args.names:
            for fn, path in data_mod.locate(name, download=False).items():
                print(f"{name} {fn} sha256={data_mod.file_hash(path)}")
        return 0
    raise AssertionError(args.action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and the tests)."""
    ap = argparse.ArgumentParser(prog="hyperribbon", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="execute notebooks with papermill under a profile")
    r.add_argument("notebooks", nargs="*", help="ids like 02 or 02_chebyshev (default all)")
    r.add_argument("--profile", default="ci", choices=run_mod.PROFILES)
    r.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter (validated against the notebook's spec)")
    r.add_argument("-f", "--file", action="append", default=[], type=Path,
                   metavar="PARAMS.yml", help="YAML file of parameter overrides")
    r.add_argument("--out", type=Path, default=None, help="output folder (default book/papers)")
    r.add_argument("--force", action="store_true", help="re-run even if unchanged")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("claims", help="the claims table over executed notebooks")
    c.add_argument("--check", action="store_true",
                   help="exit 1 if a claim fails, is missing, or a declared failure passes")
    c.add_argument("--json", action="store_true")
    c.add_argument("--markdown", action="store_true")
    c.add_argument("--dir", type=Path, default=None, help="folder of executed notebooks")
    c.set_defaults(func=_cmd_claims)

    d = sub.add_parser("data", help="datasets: check, get, hash")
    d.add_argument("action", choices=["check", "get", "hash"])
    d.add_argument("names", nargs="*")
    d.set_defaults(func=_cmd_data)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hyperribbon`` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ParameterError, run_mod.RunError, data_mod.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ParameterError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
