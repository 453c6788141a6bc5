"""The robustness page: every claim of every chapter across the seeds of its sweep.

Every chapter with a ``seed`` parameter has a sweep file ``notebooks/sweeps/NN_seeds.yml``
(five seeds); ``make robustness`` runs them (``hyperribbon sweep``, resumable) into
``sweeps/<chapter>-NN_seeds/``. :func:`collect` reads the executed points back,
:func:`summarise` gives each claim its value at every seed, min / median / max and how
many seeds pass, and :func:`robustness_page` writes the book's page. A claim whose
verdict changes with the seed is *unstable*; :func:`mark_unstable` says so on the claims
table too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..paths import repo_root
from . import claims as claims_mod
from .book import short_value

#: The sweep files of the robustness page: one per chapter, named ``NN_seeds.yml``.
SWEEP_GLOB = "[0-9][0-9]_seeds.yml"


@dataclass
class SeedRecord:
    """One claim recorded at one seed of a sweep."""

    notebook: str
    name: str
    kind: str
    seed: int
    value: object
    passed: bool
    profile: str | None


@dataclass
class Robustness:
    """One claim across the seeds of its chapter's sweep (seeds ascending)."""

    notebook: str
    name: str
    kind: str
    seeds: list[int]
    values: list[object]
    passed: list[bool]
    profile: str | None

    @property
    def n_pass(self) -> int:
        return sum(self.passed)

    @property
    def unstable(self) -> bool:
        """The verdict changes with the seed: it passes at some seeds and fails at others."""
        return 0 < self.n_pass < len(self.passed)

    def stats(self) -> tuple[float, float, float] | None:
        """(min, median, max) of the numeric values; None when a value is not a number."""
        nums = [v for v in self.values
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(nums) != len(self.values) or any(math.isnan(v) for v in nums):
            return None
        return min(nums), statistics.median(nums), max(nums)


def sweep_folders(root: Path | None = None) -> list[Path]:
    """The output folders of the chapters' seed sweeps (existing or not), in chapter order."""
    from .sweep import output_folder

    root = root or repo_root()
    return [output_folder(f.name[:2], f)
            for f in sorted((root / "notebooks" / "sweeps").glob(SWEEP_GLOB))]


def collect(folders: Iterable[Path]) -> list[SeedRecord]:
    """The claims of every executed point of the given sweep folders (points without a
    ``seed`` parameter and failed runs are left out)."""
    import nbformat

    out = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.ipynb")):
            if path.name.startswith(".") or path.name.endswith(".failed.ipynb"):
                continue
            nb = nbformat.read(str(path), as_version=4)
            meta = nb.metadata.get("hyperribbon", {})
            seed = (meta.get("parameters") or {}).get("seed")
            stem = Path(folder).name.split("-")[0]  # sweeps/<notebook>-<grid>
            if seed is None:
                continue
            for rec in meta.get("claims") or claims_mod.claims_in_notebook(nb):
                out.append(SeedRecord(stem, rec["name"], rec.get("kind", "claim"),
                                      int(seed), rec["value"], bool(rec["passed"]),
                                      meta.get("profile")))
    return out


def summarise(records: Iterable[SeedRecord]) -> list[Robustness]:
    """One :class:`Robustness` per (notebook, claim), claims in the order first recorded."""
    by: dict[tuple[str, str], list[SeedRecord]] = {}
    for r in records:
        by.setdefault((r.notebook, r.name), []).append(r)
    out = []
    for (notebook, name), recs in by.items():
        recs = sorted(recs, key=lambda r: r.seed)
        profiles = {r.profile for r in recs}
        out.append(Robustness(notebook, name, recs[0].kind, [r.seed for r in recs],
                              [r.value for r in recs], [r.passed for r in recs],
                              profiles.pop() if len(profiles) == 1 else "mixed"))
    return sorted(out, key=lambda s: s.notebook)


def robustness_page(summaries: list[Robustness]) -> str:
    """The book's robustness page (MyST markdown): per chapter, each claim's value at every
    seed, min / median / max, and how many seeds pass."""
    lines = [
        "# Robustness across seeds", "",
        "Every claim of every chapter with a `seed` parameter, recomputed at each seed of "
        "the chapter's sweep (`notebooks/sweeps/NN_seeds.yml`, run by `make robustness`). "
        "A claim marked **unstable** passes at some seeds and fails at others; the claims "
        "page marks it too. Generated from the executed sweeps; nothing here is typed in.",
        ""]
    if not summaries:
        return "\n".join(lines + ["No seed sweeps have been run yet: `make robustness`.", ""])
    held = {}
    for s in summaries:
        held.setdefault(s.notebook, []).append(s)
    for notebook, rows in held.items():
        seeds = sorted({x for s in rows for x in s.seeds})
        n_all = sum(s.n_pass == len(seeds) == len(s.seeds) for s in rows)
        lines += [f"## {notebook}", "",
                  f"Seeds {', '.join(map(str, seeds))} (profile {rows[0].profile}): "
                  f"{n_all} of {len(rows)} claims and diagnostics pass at every seed.", "",
                  "| claim | kind | " + " | ".join(f"seed {x}" for x in seeds)
                  + " | min | median | max | seeds passing |",
                  "|---|---|" + "---|" * len(seeds) + "---|---|---|---|"]
        for s in rows:
            at = dict(zip(s.seeds, zip(s.values, s.passed, strict=True), strict=True))
            cells = [(short_value(at[x][0]) + ("" if at[x][1] else " ✗")) if x in at else ""
                     for x in seeds]
            st = s.stats()
            mmm = [short_value(float(v)) for v in st] if st else ["", "", ""]
            verdict = f"{s.n_pass} of {len(s.passed)}" + (" **unstable**" if s.unstable else "")
            lines.append(f"| `{s.name}` | {s.kind} | " + " | ".join(cells) + " | "
                         + " | ".join(mmm) + f" | {verdict} |")
        lines.append("")
    lines.append("✗: the claim fails at that seed.")
    return "\n".join(lines) + "\n"


def mark_unstable(rows: list[claims_mod.Row], summaries: list[Robustness]) -> None:
    """Add to the reason of each row of the claims table whose verdict changes with the
    seed: "verdict changes with the seed (k of n seeds pass)"."""
    unstable = {(s.notebook, s.name): s for s in summaries if s.unstable}
    for r in rows:
        s = unstable.get((r.notebook, r.name))
        if s is not None:
            note = (f"verdict changes with the seed ({s.n_pass} of {len(s.passed)} seeds "
                    "pass; see the robustness page)")
            r.reason = f"{r.reason}; {note}" if r.reason else note


def write_page(page: Path | None = None, folders: Iterable[Path] | None = None) -> Path:
    """Write the robustness page (default ``book/robustness.md``) from the seed sweeps
    (default: those of :func:`sweep_folders`)."""
    page = Path(page) if page is not None else repo_root() / "book" / "robustness.md"
    folders = sweep_folders() if folders is None else folders
    page.write_text(robustness_page(summarise(collect(folders))))
    return page
