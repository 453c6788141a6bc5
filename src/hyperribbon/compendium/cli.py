"""``hyperribbon run | sweep | train | embed | claims | book | data``: the compendium's
command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .. import data as data_mod
from ..paths import RootNotFound, repo_root
from ..util import InputError
from . import claims as claims_mod
from . import run as run_mod
from .book import build_book, claim_rows, claims_page, markdown_table, short_value


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


def _cmd_sweep(args: argparse.Namespace) -> int:
    from . import sweep as sweep_mod

    results = sweep_mod.sweep(args.notebook, args.grid, args.profile, args.out, args.jobs,
                              args.scheduler)
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        bad = [c["name"] for c in r.claims if not c.get("passed")]
        extra = f" failing claims: {', '.join(bad)}" if bad else ""
        err = f" — {r.error.splitlines()[0]}" if r.error else ""
        print(f"{r.status:8s} {r.id}{extra}{err}")
    folder = sweep_mod.output_folder(args.notebook, args.grid, args.out)
    print(f"{len(results) - len(failed)} of {len(results)} points finished; "
          f"table: {folder / 'sweep.csv'}")
    return 1 if failed else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .train_grid import train_grid

    report = train_grid(args.grid, args.scheduler, args.jobs, args.device)
    print(f"{len(report.runs)} runs: {len(report.trained)} trained, "
          f"{len(report.runs) - len(report.trained)} from the cache "
          f"{report.runs[0].path.parent}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from ..embedding import embed

    try:
        res = embed(args.predictions, k=args.k, out_dir=args.out, name=args.set,
                    landmarks=args.landmarks, device=args.device, memmap=args.memmap)
    except (FileNotFoundError, ValueError) as exc:  # a bad file or option: one line
        raise InputError(str(exc)) from None
    es = res.explained_stress
    print(f"{len(res.coords)} models embedded; explained stress "
          + ", ".join(f"k={i + 1}: {v:.3f}" for i, v in enumerate(es[:3]))
          + f"; written to {args.out}: " + ", ".join(sorted(p.name for p in res.files.values())))
    return 0


def _cmd_claims(args: argparse.Namespace) -> int:
    rows = claim_rows(args.dir)
    if args.page:
        args.page.write_text(claims_page(rows))
        print(f"wrote {args.page} ({len(rows)} claims)")
    elif args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1, default=str))
    elif args.markdown:
        print(markdown_table(rows), end="")
    else:
        for r in rows:
            print(f"{r.notebook:24s} {r.name:34s} {r.kind:10s} {short_value(r.value):>10s} "
                  f"{r.relation:>2s} {short_value(r.target):12s} {r.profile or '':6s} {r.status}"
                  + (f"  — {r.reason}" if r.reason else ""))
    if args.check:
        bad = claims_mod.problems(rows)
        executed = {r.notebook for r in rows}
        absent = [p.stem for p in run_mod.notebooks(repo_root()).values()
                  if p.stem not in executed]
        if args.dir is None and absent:
            print(f"not executed: {', '.join(absent)} (run `hyperribbon run`)",
                  file=sys.stderr)
            return 1
        if bad:
            for r in bad:
                print(f"CLAIM {r.status}: {r.notebook} {r.name} {r.reason}", file=sys.stderr)
            return 1
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    reg = data_mod.registry()
    for name in args.names:
        data_mod.entry(name, reg)  # an unknown name: one line, exit 2, before any work
    if args.action == "check":  # only the named sets are hashed (hashing takes time)
        statuses = data_mod.check(reg=reg, names=args.names or None)
        for s in statuses:
            print(f"{s.name:16s} {s.status:8s} {s.detail}")
        return 1 if any(s.status == "corrupt" for s in statuses) else 0
    if args.action == "get":  # no names: the image sets (the expression sets are large)
        for name in args.names or [n for n, e in reg.items() if e.get("kind") == "images"]:
            files = data_mod.locate(name, reg=reg, download=True,
                                    files=list(reg[name]["files"]))
            where = ", ".join(sorted({str(p.parent) for p in files.values()}))
            print(f"{name}: present under {where}")
        return 0
    if args.action == "hash":
        for name in args.names:
            for fn, path in data_mod.locate(name, reg=reg, download=False).items():
                print(f"{name} {fn} sha256={data_mod.file_hash(path)}")
        return 0
    raise AssertionError(args.action)


def _cmd_book(args: argparse.Namespace) -> int:
    index = build_book(args.repo_url, strict=not args.no_strict)
    print(f"The book is built. Open it: file://{index}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors (an unknown command, profile or option) on one line."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _cluster_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help=f"send the {what} to a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--jobs", type=int, default=1,
                   help=f"{what} in parallel on a local Dask cluster of this many worker "
                        "processes (default 1: one after the other here)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and the tests)."""
    ap = _Parser(prog="hyperribbon", description=__doc__)
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
    c.add_argument("--page", type=Path, default=None, help="write the book's claims page")
    c.add_argument("--dir", type=Path, default=None, help="folder of executed notebooks")
    c.set_defaults(func=_cmd_claims)

    sw = sub.add_parser("sweep", help="run a notebook over a parameter grid (resumable)")
    sw.add_argument("notebook", help="notebook id, e.g. 02")
    sw.add_argument("grid", type=Path, help="grid YAML: grid: {name: [values]}, points: [...]")
    sw.add_argument("--profile", default=None, choices=run_mod.PROFILES,
                    help="profile (default: the grid's, else ci)")
    sw.add_argument("--out", type=Path, default=None,
                    help="output folder (default sweeps/<notebook>-<grid>)")
    _cluster_options(sw, "points")
    sw.set_defaults(func=_cmd_sweep)

    t = sub.add_parser("train", help="train a grid of runs into the (shared) cache")
    t.add_argument("grid", type=Path,
                   help="run grid YAML: a list of runs, or base/grid/runs/device "
                        "(see hyperribbon.compendium.train_grid)")
    t.add_argument("--device", default=None,
                   help="auto, cpu, cuda, ... (default: the grid's, else auto)")
    _cluster_options(t, "run groups")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("embed", help="InPCA of anyone's models: predictions in, "
                                     "coordinates, spectrum and a 3-D figure out")
    e.add_argument("predictions", help=".npy/.npz array (models x samples x classes), or a "
                                       "folder of per-run .npy files or training-engine runs")
    e.add_argument("--k", type=int, default=10, help="InPCA components (default 10)")
    e.add_argument("--out", default="embedding", help="output folder (default ./embedding)")
    e.add_argument("--set", default=None, help="recorded set of training-engine runs")
    e.add_argument("--landmarks", type=int, default=None,
                   help="embed this many models exactly, place the rest by projection")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    e.add_argument("--memmap", action="store_true",
                   help="keep the N x N matrix in a memory-mapped file in --out")
    e.set_defaults(func=_cmd_embed)

    b = sub.add_parser("book", help="build the HTML book from the executed notebooks")
    b.add_argument("--repo-url", default=None,
                   help="repository URL for the launch/download/source buttons")
    b.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    b.set_defaults(func=_cmd_book)

    d = sub.add_parser("data", help="datasets: check, get, hash")
    d.add_argument("action", choices=["check", "get", "hash"])
    d.add_argument("names", nargs="*")
    d.set_defaults(func=_cmd_data)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hyperribbon`` console script: 0 on success, 1 when a run,
    a claim check or the data fail, 2 (and one line naming the culprit) for a mistake in
    the command: a missing, unreadable or malformed file, an unknown name or option."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return int(exc.code or 0)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (InputError, RootNotFound) as exc:  # a mistake in what was asked: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (run_mod.RunError, data_mod.DataError) as exc:  # a failure while doing it
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
