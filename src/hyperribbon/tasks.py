"""Tasks as subsets of a dataset's classes, and their distances in WordNet (chapter 5).

A :class:`Task` is a set of class indices of one dataset (at least two: a one-class task
cannot be trained) with a kind:

* ``"full"``: every class;
* ``"natural"``: the classes under one WordNet hypernym (``garment``, ``footwear``, ...)
  or the union of two hypernym groups;
* ``"strided"``: every other class (the authors' "every 3rd class", at 10 classes);
* ``"diverse"``: as many classes as a natural group, spread over several groups, so that
  diversity is not confused with size;
* ``"random_labels"``: every image gets a label drawn uniformly at random, once
  (:func:`task_targets`), never a permutation of the classes.

WordNet. Each class is mapped to a WordNet 3.0 noun synset (lemma and sense number chosen
once, in :data:`CLASS_SENSES`); its offset and hypernym graph up to ``entity.n.01`` are read
from the database (Debian's ``wordnet-base``: ``data.noun`` and ``index.noun``, format
``wndb(5WN)``) and kept in the fact file ``data/wordnet.yml``, which is all a user without
the database needs. :func:`write_fact_file` regenerates it. Distances follow the hypernym
graph (``@`` and ``@i`` pointers) only.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

__all__ = [
    "CLASS_NAMES",
    "CLASS_SENSES",
    "KINDS",
    "Synset",
    "Task",
    "WordNet",
    "class_distances",
    "class_names",
    "class_synsets",
    "fact_file_path",
    "full_task",
    "groups",
    "groups_spanned",
    "hypernym_tasks",
    "lowest_common_hypernyms",
    "load_facts",
    "parse_data_line",
    "parse_index_line",
    "parse_tasks",
    "random_labels",
    "task_catalogue",
    "task_distance",
    "task_distances",
    "task_targets",
    "wordnet_dir",
    "wordnet_distance",
    "write_fact_file",
]

Kind = Literal["full", "natural", "strided", "diverse", "random_labels"]
KINDS: tuple[str, ...] = ("full", "natural", "strided", "diverse", "random_labels")

# ---------------------------------------------------------------------------------------
# Classes of each dataset and their WordNet senses (the one choice made by hand)

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"),
    "cifar100": ("apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee",
                 "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus",
                 "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair",
                 "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile",
                 "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
                 "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
                 "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
                 "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter",
                 "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate",
                 "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
                 "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper",
                 "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
                 "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
                 "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
                 "willow_tree", "wolf", "woman", "worm"),
}

# (lemma, sense number in index.noun) per class, in label order. Sense 1 unless WordNet's
# first sense is another meaning: zero.n.01 is "nothing" (a quantity), zero.n.02 the digit.
# WordNet has no "ankle boot": boot.n.01 ("footwear that covers the whole foot and lower
# leg"). "Bag" is bag.n.01 (a flexible container), not handbag (bag.n.04). CIFAR-100: the
# animal, plant or object sense of each name (ray.n.07 the fish, seal.n.09 the mammal,
# table.n.02 the furniture, ...); WordNet has no "aquarium fish": fish.n.01; the trees
# by their genus noun (maple.n.02, oak.n.02, palm.n.03, pine.n.01, willow.n.01); boy and
# girl as male_child.n.01 and female_child.n.01.
CLASS_SENSES: dict[str, tuple[tuple[str, int], ...]] = {
    "mnist": (("zero", 2), ("one", 1), ("two", 1), ("three", 1), ("four", 1), ("five", 1),
              ("six", 1), ("seven", 1), ("eight", 1), ("nine", 1)),
    "fashion-mnist": (("t-shirt", 1), ("trouser", 1), ("pullover", 1), ("dress", 1),
                      ("coat", 1), ("sandal", 1), ("shirt", 1), ("sneaker", 1), ("bag", 1),
                      ("boot", 1)),
    "cifar10": (("airplane", 1), ("automobile", 1), ("bird", 1), ("cat", 1), ("deer", 1),
                ("dog", 1), ("frog", 1), ("horse", 1), ("ship", 1), ("truck", 1)),
    "cifar100": (("apple", 1), ("fish", 1), ("baby", 1), ("bear", 1), ("beaver", 7),
                 ("bed", 1), ("bee", 1), ("beetle", 1), ("bicycle", 1), ("bottle", 1),
                 ("bowl", 1), ("boy", 1), ("bridge", 1), ("bus", 1), ("butterfly", 1),
                 ("camel", 1), ("can", 1), ("castle", 2), ("caterpillar", 1),
                 ("cattle", 1), ("chair", 1), ("chimpanzee", 1), ("clock", 1),
                 ("cloud", 2), ("cockroach", 1), ("couch", 1), ("crab", 1),
                 ("crocodile", 1), ("cup", 1), ("dinosaur", 1), ("dolphin", 2),
                 ("elephant", 1), ("flatfish", 2), ("forest", 1), ("fox", 1), ("girl", 2),
                 ("hamster", 1), ("house", 1), ("kangaroo", 1), ("keyboard", 1),
                 ("lamp", 1), ("lawn_mower", 1), ("leopard", 2), ("lion", 1),
                 ("lizard", 1), ("lobster", 2), ("man", 1), ("maple", 2),
                 ("motorcycle", 1), ("mountain", 1), ("mouse", 1), ("mushroom", 2),
                 ("oak", 2), ("orange", 1), ("orchid", 1), ("otter", 2), ("palm", 3),
                 ("pear", 1), ("pickup_truck", 1), ("pine", 1), ("plain", 1), ("plate", 4),
                 ("poppy", 1), ("porcupine", 1), ("possum", 1), ("rabbit", 1),
                 ("raccoon", 2), ("ray", 7), ("road", 1), ("rocket", 1), ("rose", 1),
                 ("sea", 1), ("seal", 9), ("shark", 1), ("shrew", 2), ("skunk", 4),
                 ("skyscraper", 1), ("snail", 1), ("snake", 1), ("spider", 1),
                 ("squirrel", 1), ("streetcar", 1), ("sunflower", 1), ("sweet_pepper", 2),
                 ("table", 2), ("tank", 1), ("telephone", 1), ("television", 3),
                 ("tiger", 2), ("tractor", 1), ("train", 1), ("trout", 2), ("tulip", 1),
                 ("turtle", 2), ("wardrobe", 1), ("whale", 2), ("willow", 1), ("wolf", 1),
                 ("woman", 1), ("worm", 1)),
}

SOURCE: dict[str, str] = {
    "database": "WordNet 3.0",
    "publisher": "Princeton University",
    "url": "https://wordnet.princeton.edu/",
    "format": "https://wordnet.princeton.edu/documentation/wndb5wn",
    "package": "Debian wordnet-base (files data.noun, index.noun)",
    "license": "WordNet 3.0 license (BSD-like; https://wordnet.princeton.edu/license-and-commercial-use)",
    "citation": "George A. Miller (1995). WordNet: A Lexical Database for English. "
                "Communications of the ACM 38(11): 39-41. Princeton University, "
                "WordNet 3.0 (2006).",
}


def _split_union(dataset: str) -> list[str]:
    parts = dataset.split("+")
    for p in parts:
        if p not in CLASS_NAMES:
            raise ValueError(f"unknown dataset {p!r}; known: {', '.join(CLASS_NAMES)} "
                             "(or a union such as 'mnist+fashion-mnist')")
    if len(set(parts)) != len(parts):
        raise ValueError(f"dataset {dataset!r} names a dataset twice")
    return parts


def class_names(dataset: str) -> tuple[str, ...]:
    """Class names in label order; a union ``"a+b"`` stacks a's classes then b's.

    Returns
    -------
    tuple of str, length C
    """
    return tuple(n for p in _split_union(dataset) for n in CLASS_NAMES[p])


# ---------------------------------------------------------------------------------------
# The WordNet database files (wndb(5WN))

@dataclass(frozen=True)
class Synset:
    """One noun synset of ``data.noun``.

    Attributes
    ----------
    offset : byte offset of its line in ``data.noun`` (its WordNet 3.0 id).
    words : its words (lemmas), first the head word.
    hypernyms : offsets of its hypernyms (``@``) and instance hypernyms (``@i``).
    gloss : the definition and examples.
    """

    offset: int
    words: tuple[str, ...]
    hypernyms: tuple[int, ...]
    gloss: str


def parse_data_line(line: str) -> Synset:
    """Parse one synset line of ``data.noun``.

    Fields: ``offset lex_filenum ss_type w_cnt (word lex_id)*w_cnt p_cnt
    (ptr_symbol offset pos source/target)*p_cnt | gloss``; ``w_cnt`` is two hex digits,
    ``p_cnt`` three decimal digits.
    """
    head, _, gloss = line.partition(" | ")
    f = head.split()
    try:
        offset, ss_type, w_cnt = int(f[0]), f[2], int(f[3], 16)
        words = tuple(f[4:4 + 2 * w_cnt:2])
        i = 4 + 2 * w_cnt
        p_cnt = int(f[i])
        ptrs = [f[i + 1 + 4 * k:i + 5 + 4 * k] for k in range(p_cnt)]
    except (IndexError, ValueError) as e:
        raise ValueError(f"not a wndb data line: {line[:60]!r}") from e
    if ss_type != "n" or len(words) != w_cnt or any(len(p) != 4 for p in ptrs):
        raise ValueError(f"not a noun synset line: {line[:60]!r}")
    hyper = tuple(int(p[1]) for p in ptrs if p[0] in ("@", "@i") and p[2] == "n")
    return Synset(offset, words, hyper, gloss.strip())


def parse_index_line(line: str) -> tuple[str, tuple[int, ...]]:
    """Parse one line of ``index.noun``: the lemma and its synset offsets in sense order.

    Fields: ``lemma pos synset_cnt p_cnt (ptr_symbol)*p_cnt sense_cnt tagsense_cnt
    (synset_offset)*synset_cnt``.
    """
    f = line.split()
    try:
        n_syn, p_cnt = int(f[2]), int(f[3])
        offsets = tuple(int(o) for o in f[4 + p_cnt + 2:4 + p_cnt + 2 + n_syn])
    except (IndexError, ValueError) as e:
        raise ValueError(f"not a wndb index line: {line[:60]!r}") from e
    if len(offsets) != n_syn:
        raise ValueError(f"index line lists fewer offsets than its count: {line[:60]!r}")
    return f[0], offsets


_SYSTEM_DIRS = ("/usr/share/wordnet", "/usr/local/share/wordnet",
                "/opt/homebrew/share/wordnet", "/usr/local/WordNet-3.0/dict")


def wordnet_dir() -> Path | None:
    """The folder holding WordNet 3.0's ``data.noun`` and ``index.noun``, or None.

    Looks at ``HYPERRIBBON_WORDNET``, then the files of Debian's ``wordnet-base``
    (``dpkg -L``), then the usual share folders.
    """
    cands: list[Path] = []
    if os.environ.get("HYPERRIBBON_WORDNET"):
        cands.append(Path(os.environ["HYPERRIBBON_WORDNET"]).expanduser())
    if shutil.which("dpkg"):
        try:
            out = subprocess.run(["dpkg", "-L", "wordnet-base"], capture_output=True,
                                 text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        cands += [Path(p).parent for p in out.split() if p.endswith("/data.noun")]
    cands += [Path(p) for p in _SYSTEM_DIRS]
    for c in cands:
        if (c / "data.noun").is_file() and (c / "index.noun").is_file():
            return c
    return None


class WordNet:
    """Reader of the noun part of a WordNet 3.0 database folder.

    Parameters
    ----------
    folder : path, optional
        Holds ``data.noun`` and ``index.noun``; default :func:`wordnet_dir`.
    """

    def __init__(self, folder: Path | str | None = None) -> None:
        folder = wordnet_dir() if folder is None else Path(folder)
        if folder is None:
            raise FileNotFoundError("WordNet 3.0 database not found: install Debian's "
                                    "wordnet-base or set HYPERRIBBON_WORDNET")
        self.folder = Path(folder)
        self._data = self.folder / "data.noun"
        with open(self._data, encoding="utf-8") as fh:
            header = "".join(line for line in fh if line.startswith("  "))
        if "WordNet 3.0" not in header:
            raise ValueError(f"{self._data}: not WordNet 3.0 (offsets differ between "
                             "versions)")
        self._index: dict[str, tuple[int, ...]] | None = None

    def synset(self, offset: int) -> Synset:
        """The synset at ``offset`` (a seek: offsets are byte offsets in data.noun)."""
        with open(self._data, "rb") as fh:
            fh.seek(int(offset))
            line = fh.readline().decode("utf-8")
        if not line[:8].isdigit() or int(line[:8]) != int(offset):
            raise ValueError(f"{offset:08d} is not a synset offset of {self._data}")
        return parse_data_line(line)

    def offsets(self, lemma: str) -> tuple[int, ...]:
        """Noun synset offsets of ``lemma`` in sense order (empty when unknown)."""
        if self._index is None:
            index: dict[str, tuple[int, ...]] = {}
            with open(self.folder / "index.noun", encoding="utf-8") as fh:
                for line in fh:
                    if not line.startswith("  "):
                        k, v = parse_index_line(line)
                        index[k] = v
            self._index = index
        return self._index.get(lemma.lower().replace(" ", "_"), ())

    def lookup(self, lemma: str, sense: int) -> Synset:
        """Synset of sense number ``sense`` (from 1) of noun ``lemma``."""
        offs = self.offsets(lemma)
        if not 1 <= sense <= len(offs):
            raise ValueError(f"noun {lemma!r} has {len(offs)} senses in WordNet, "
                             f"not sense {sense}")
        return self.synset(offs[sense - 1])

    def name(self, offset: int) -> str:
        """nltk-style name ``word.n.NN``: the head word and its sense number."""
        head = self.synset(offset).words[0].lower()
        return f"{head}.n.{self.offsets(head).index(int(offset)) + 1:02d}"

    def ancestors(self, offset: int) -> dict[int, Synset]:
        """The synset and every hypernym above it (up to entity.n.01), by offset."""
        out: dict[int, Synset] = {}
        todo = [int(offset)]
        while todo:
            o = todo.pop()
            if o not in out:
                out[o] = self.synset(o)
                todo += out[o].hypernyms
        return out


# ---------------------------------------------------------------------------------------
# The fact file

def fact_file_path() -> Path:
    """``data/wordnet.yml`` of the package's checkout."""
    return Path(__file__).resolve().parents[2] / "data" / "wordnet.yml"


def _paths(offset: str, table: dict[str, dict]) -> list[list[str]]:
    """Every hypernym path from ``offset`` up to a root, as lists of offsets."""
    hyper = table[offset]["hypernyms"]
    if not hyper:
        return [[offset]]
    return [[offset, *p] for h in hyper for p in _paths(h, table)]


def write_fact_file(path: Path | str | None = None, folder: Path | str | None = None,
                    datasets: Sequence[str] | None = None) -> dict:
    """Regenerate the WordNet fact file from the database.

    Parameters
    ----------
    path : default :func:`fact_file_path`.
    folder : the database folder; default :func:`wordnet_dir`.
    datasets : default every dataset of :data:`CLASS_SENSES`.

    Returns
    -------
    dict : what was written (``source``, ``datasets``, ``synsets``).
    """
    wn = WordNet(folder)
    table: dict[str, dict] = {}
    ds_out: dict[str, list[dict]] = {}
    for ds in datasets or CLASS_SENSES:
        rows = []
        for name, (lemma, sense) in zip(CLASS_NAMES[ds], CLASS_SENSES[ds], strict=True):
            syn = wn.lookup(lemma, sense)
            for o, s in wn.ancestors(syn.offset).items():
                table.setdefault(f"{o:08d}", {
                    "name": wn.name(o), "words": list(s.words),
                    "hypernyms": [f"{h:08d}" for h in s.hypernyms]})
            rows.append({"class": name, "lemma": lemma, "sense": sense,
                         "offset": f"{syn.offset:08d}", "synset": wn.name(syn.offset),
                         "gloss": syn.gloss})
        for r in rows:
            r["paths"] = [[table[o]["name"] for o in p] for p in _paths(r["offset"], table)]
        ds_out[ds] = rows
    facts = {"source": dict(SOURCE), "datasets": ds_out,
             "synsets": {k: table[k] for k in sorted(table)}}
    path = Path(path) if path is not None else fact_file_path()
    text = ("# WordNet 3.0 facts of the classes of each dataset (chapter 5).\n"
            "# Generated by hyperribbon.tasks.write_fact_file from the WordNet database;\n"
            "# do not edit by hand. Offsets are WordNet 3.0 noun synset offsets.\n")
    path.write_text(text + yaml.safe_dump(facts, sort_keys=False, allow_unicode=True,
                                          width=100))
    return facts


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict:
    facts = yaml.safe_load(Path(path).read_text())
    if not isinstance(facts, dict) or not {"datasets", "synsets"} <= set(facts):
        raise ValueError(f"{path}: not a WordNet fact file (needs datasets and synsets)")
    return facts


def load_facts(path: Path | str | None = None) -> dict:
    """The fact file as a dict (``source``, ``datasets``: rows per class, ``synsets``:
    offset → name, words, hypernyms)."""
    return _load(str(Path(path) if path is not None else fact_file_path()))


def class_synsets(dataset: str, facts: dict | None = None) -> list[dict]:
    """Per class (label order): class, lemma, sense, offset, synset, gloss, paths."""
    facts = facts or load_facts()
    out = []
    for p in _split_union(dataset):
        if p not in facts["datasets"]:
            raise ValueError(f"the WordNet fact file has no classes of {p!r}")
        out += facts["datasets"][p]
    return out


# ---------------------------------------------------------------------------------------
# Distances in the hypernym graph

def _up(offset: str, table: dict[str, dict]) -> dict[str, int]:
    """Fewest hypernym steps from ``offset`` to each of its ancestors (itself: 0)."""
    dist = {offset: 0}
    frontier = [offset]
    while frontier:
        nxt = []
        for o in frontier:
            for h in table[o]["hypernyms"]:
                if h not in dist:
                    dist[h] = dist[o] + 1
                    nxt.append(h)
        frontier = nxt
    return dist


def _offset(x: str | int, dataset: str | None, facts: dict) -> str:
    if isinstance(x, (int, np.integer)) and dataset is not None:
        return class_synsets(dataset, facts)[int(x)]["offset"]
    s = str(x)
    if re.fullmatch(r"\d{8}", s) and s in facts["synsets"]:
        return s
    for o, row in facts["synsets"].items():
        if row["name"] == s:
            return o
    raise ValueError(f"{x!r} is neither a class index (with a dataset), nor an offset or "
                     "synset name in the fact file")


def _lch(a: str, b: str, table: dict[str, dict]) -> tuple[int, list[str]]:
    ua, ub = _up(a, table), _up(b, table)
    common = {h: ua[h] + ub[h] for h in ua.keys() & ub.keys()}
    if not common:
        raise ValueError(f"{a} and {b} share no hypernym")
    d = min(common.values())
    return d, sorted(h for h, v in common.items() if v == d)


def wordnet_distance(a: str | int, b: str | int, dataset: str | None = None,
                     facts: dict | None = None) -> int:
    """Shortest-path length between two synsets through the hypernym graph.

    d(a, b) = min over common hypernyms h of [steps(a → h) + steps(b → h)], steps being
    the fewest hypernym links upward (WordNet's "shortest path distance"; nltk's
    ``shortest_path_distance`` for nouns). d(a, a) = 0. The path turns once (up, then
    down), so with multiple inheritance d is not a metric: dog.n.01 is also a
    domestic_animal, and airplane-dog + dog-cat = 13 + 4 < airplane-cat = 18.

    Parameters
    ----------
    a, b : class indices of ``dataset``, or synset offsets ("02084071") or names
        ("dog.n.01") in the fact file.
    """
    facts = facts or load_facts()
    return _lch(_offset(a, dataset, facts), _offset(b, dataset, facts), facts["synsets"])[0]


def lowest_common_hypernyms(a: str | int, b: str | int, dataset: str | None = None,
                            facts: dict | None = None) -> list[str]:
    """Names of the common hypernyms through which the shortest path between a and b
    passes (usually one)."""
    facts = facts or load_facts()
    _, hs = _lch(_offset(a, dataset, facts), _offset(b, dataset, facts), facts["synsets"])
    return [facts["synsets"][h]["name"] for h in hs]


def class_distances(dataset: str, facts: dict | None = None) -> np.ndarray:
    """Matrix of :func:`wordnet_distance` between the classes of a dataset.

    Returns
    -------
    numpy.ndarray of int, shape (C, C), symmetric, zero diagonal
    """
    facts = facts or load_facts()
    offs = [r["offset"] for r in class_synsets(dataset, facts)]
    C = len(offs)
    D = np.zeros((C, C), dtype=np.int64)
    for i in range(C):
        for j in range(i + 1, C):
            D[i, j] = D[j, i] = _lch(offs[i], offs[j], facts["synsets"])[0]
    return D


# ---------------------------------------------------------------------------------------
# Tasks

@dataclass(frozen=True)
class Task:
    """A training task: a set of classes of one dataset.

    Attributes
    ----------
    name : str, as parameters name it (``"garment"``, ``"random_labels"``).
    dataset : str, e.g. ``"fashion-mnist"``.
    classes : sorted tuple of class indices (at least 2).
    kind : one of :data:`KINDS`.
    seed : for ``random_labels``, the seed of the per-image labels (else 0).
    """

    name: str
    dataset: str
    classes: tuple[int, ...]
    kind: Kind
    seed: int = 0

    def __post_init__(self) -> None:
        C = len(class_names(self.dataset))
        cls = tuple(int(c) for c in self.classes)
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of "
                             f"{', '.join(KINDS)}")
        if tuple(sorted(set(cls))) != cls:
            raise ValueError(f"task {self.name!r}: classes must be sorted and distinct, "
                             f"got {cls}")
        if len(cls) < 2:
            raise ValueError(f"task {self.name!r} has {len(cls)} class(es): a task needs "
                             "at least 2 to be trained")
        if cls[0] < 0 or cls[-1] >= C:
            raise ValueError(f"task {self.name!r}: classes must lie in [0, {C - 1}]")
        if self.kind in ("full", "random_labels") and len(cls) != C:
            raise ValueError(f"task {self.name!r}: a {self.kind} task has every class")
        object.__setattr__(self, "classes", cls)

    @property
    def key(self) -> str:
        """Stable identifier from the content (dataset, kind, classes, seed), not the name:
        ``fashion-mnist.natural.0-1-2-4-6``."""
        k = f"{self.dataset}.{self.kind}.{'-'.join(map(str, self.classes))}"
        return f"{k}.s{self.seed}" if self.kind == "random_labels" else k

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the task's classes."""
        names = class_names(self.dataset)
        return tuple(names[c] for c in self.classes)

    @property
    def n_classes(self) -> int:
        """Number of classes (outputs of the task's head)."""
        return len(self.classes)


def full_task(dataset: str) -> Task:
    """The task of every class, named ``"all"``."""
    return Task("all", dataset, tuple(range(len(class_names(dataset)))), "full")


def _word(offset: str, facts: dict) -> str:
    return facts["synsets"][offset]["name"].split(".")[0]


def _spans(dataset: str, facts: dict) -> dict[tuple[int, ...], str]:
    """Each class set spanned by a hypernym → the head word of its lowest hypernym (the
    one with the fewest summed steps from the classes; ties by name)."""
    table = facts["synsets"]
    offs = [r["offset"] for r in class_synsets(dataset, facts)]
    ups = [_up(o, table) for o in offs]
    best: dict[tuple[int, ...], tuple[int, str]] = {}
    for h in set().union(*ups):
        cls = tuple(i for i in range(len(offs)) if h in ups[i])
        score = (sum(ups[i][h] for i in cls), _word(h, facts))
        best[cls] = min(best.get(cls, score), score)
    return {c: v[1] for c, v in best.items()}


def hypernym_tasks(dataset: str, facts: dict | None = None) -> list[Task]:
    """Every distinct class set spanned by one WordNet hypernym, 2 ≤ size < C.

    Each set is named after its lowest hypernym (the one closest to its classes,
    fewest summed steps); sorted by size, descending, then name.
    """
    facts = facts or load_facts()
    C = len(class_names(dataset))
    tasks = [Task(name, dataset, c, "natural") for c, name in _spans(dataset, facts).items()
             if 2 <= len(c) < C]
    return sorted(tasks, key=lambda t: (-t.n_classes, t.name))


def _groups_at(height: int, dataset: str, facts: dict) -> list[tuple[str, tuple[int, ...]]]:
    table = facts["synsets"]
    offs = [r["offset"] for r in class_synsets(dataset, facts)]
    ups = [_up(o, table) for o in offs]
    cands = {}
    for h in set().union(*ups):
        cls = tuple(i for i in range(len(offs)) if ups[i].get(h, height + 1) <= height)
        if cls and len(cls) == sum(h in u for u in ups):  # all of h's classes are near
            score = (-len(cls), sum(ups[i][h] for i in cls), _word(h, facts))
            cands[cls] = min(cands.get(cls, score), score)
    spans = _spans(dataset, facts)
    names = class_names(dataset)
    taken: set[int] = set()
    out = []
    for cls in sorted(cands, key=cands.__getitem__):
        if taken.isdisjoint(cls):
            name = spans[cls] if len(cls) > 1 else names[cls[0]].lower().replace(" ", "_")
            out.append((name, cls))
            taken.update(cls)
    # a class whose own synset spans other classes (fish.n.01 over ray, shark, trout) is
    # not a candidate of its own: left over, it is a group alone
    out += [(names[i].lower().replace(" ", "_"), (i,)) for i in range(len(offs))
            if i not in taken]
    return sorted(out, key=lambda g: g[1][0])


def groups(dataset: str, height: int | None = None,
           facts: dict | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """Partition of the classes into WordNet groups, derived from the hypernym graph.

    A candidate group is the set of all classes under one hypernym, when every one of
    them is at most ``height`` hypernym steps below it; candidates are taken greedily,
    largest first (ties: fewest summed steps, then name), skipping any that overlaps one
    already taken; classes left over are groups of their own. ``height=None`` takes the
    smallest height that leaves at most C/2 groups (Fashion-MNIST: 2, CIFAR-10: 4,
    MNIST: 1).

    Returns
    -------
    list of (name, classes), ordered by first class; name = the head word of the lowest
    hypernym spanning exactly those classes (a singleton: the class name).
    """
    facts = facts or load_facts()
    if height is not None:
        if height < 0:
            raise ValueError(f"height must be >= 0, got {height}")
        return _groups_at(height, dataset, facts)
    C = len(class_names(dataset))
    h = 0
    while len(g := _groups_at(h, dataset, facts)) > C / 2:
        h += 1
    return g


def groups_spanned(task: Task, partition: Sequence[tuple[str, Sequence[int]]]) -> int:
    """Number of groups of ``partition`` (from :func:`groups`) holding a class of the task."""
    return sum(1 for _, cls in partition if set(cls) & set(task.classes))


def _diverse(dataset: str, size: int, partition: list[tuple[str, tuple[int, ...]]],
             avoid: set[tuple[int, ...]], rng: np.random.Generator) -> tuple[int, ...]:
    """``size`` classes spread over as many groups as possible (round-robin over the
    groups in a random order, a random class from each)."""
    for _ in range(100):
        pools = [list(rng.permutation(cls)) for _, cls in partition]
        order = list(rng.permutation(len(pools)))
        picked: list[int] = []
        while len(picked) < size:
            order = [g for g in order if pools[g]]
            for g in order[:size - len(picked)]:
                picked.append(int(pools[g].pop()))
        cls = tuple(sorted(picked))
        if cls not in avoid:
            return cls
    raise ValueError(f"no diverse task of {size} classes of {dataset} differs from the "
                     "natural ones")


def task_catalogue(dataset: str, *, height: int | None = None, pairs: bool | None = None,
                   diverse_seed: int = 0, random_seed: int = 0,
                   facts: dict | None = None) -> dict[str, Task]:
    """Every named task of a dataset.

    * ``all`` (full);
    * natural: each class set spanned by a hypernym (:func:`hypernym_tasks`) and, with
      ``pairs``, each union of two multi-class groups of :func:`groups` that is not
      already one (named ``a+b``; ``pairs=None``: when there are at most 6 such groups);
    * ``every_other`` (strided: classes 0, 2, 4, ...);
    * ``diverse_<group>`` for each multi-class group: as many classes, spread over as many
      groups as possible (seeded by ``diverse_seed``); none when there is one group;
    * ``random_labels`` (per-image labels drawn with ``random_seed``).

    Returns
    -------
    dict name → Task, in that order.
    """
    facts = facts or load_facts()
    C = len(class_names(dataset))
    out: dict[str, Task] = {"all": full_task(dataset)}
    seen = {out["all"].classes}
    for t in hypernym_tasks(dataset, facts):
        out[t.name] = t
        seen.add(t.classes)
    part = groups(dataset, height, facts)
    multi = [(n, c) for n, c in part if len(c) >= 2]
    if pairs or (pairs is None and len(multi) <= 6):
        for i, (na, ca) in enumerate(multi):
            for nb, cb in multi[i + 1:]:
                cls = tuple(sorted(ca + cb))
                if cls not in seen and len(cls) < C:
                    out[f"{na}+{nb}"] = Task(f"{na}+{nb}", dataset, cls, "natural")
                    seen.add(cls)
    out["every_other"] = Task("every_other", dataset, tuple(range(0, C, 2)), "strided")
    seen.add(out["every_other"].classes)
    if len(part) > 1:
        rng = np.random.default_rng(diverse_seed)
        for name, cls in multi:
            dcls = _diverse(dataset, len(cls), part, seen, rng)
            out[f"diverse_{name}"] = Task(f"diverse_{name}", dataset, dcls, "diverse")
            seen.add(dcls)
    out["random_labels"] = Task("random_labels", dataset, tuple(range(C)),
                                "random_labels", seed=random_seed)
    return out


def parse_tasks(names: Iterable[str], dataset: str, **kwargs: Any) -> list[Task]:
    """Tasks named by a parameter list, from :func:`task_catalogue` (``kwargs`` passed on).

    Raises
    ------
    ValueError
        Naming the unknown task and listing the valid ones; or for an empty list or a
        name given twice.
    """
    names = list(names)
    cat = task_catalogue(dataset, **kwargs)
    for n in names:
        if n not in cat:
            raise ValueError(f"unknown task {n!r} for {dataset}; valid: {', '.join(cat)}")
    if not names:
        raise ValueError(f"no task named; valid for {dataset}: {', '.join(cat)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a task is named twice in {names}")
    return [cat[n] for n in names]


def random_labels(n: int, n_classes: int, seed: int) -> np.ndarray:
    """Labels drawn uniformly and independently per image (not a class permutation).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
    """
    if n < 0 or n_classes < 2:
        raise ValueError(f"need n >= 0 and n_classes >= 2, got {n}, {n_classes}")
    return np.random.default_rng(seed).integers(0, n_classes, size=n).astype(np.int64)


def task_targets(task: Task, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Training samples of a task and their targets for a head of ``task.n_classes``.

    Parameters
    ----------
    task : Task
    labels : array_like of int, shape (N,)
        The dataset's labels of the training pool (fixed order: random labels are drawn
        per position, once, with ``task.seed``).

    Returns
    -------
    index : numpy.ndarray of int64, shape (n,)
        Positions of the task's samples in ``labels`` (every sample for random labels).
    targets : numpy.ndarray of int64, shape (n,)
        Each sample's class as a position in ``task.classes`` (random for random labels).
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError("labels must be a 1-d array of integers")
    if task.kind == "random_labels":
        return np.arange(y.size), random_labels(y.size, task.n_classes, task.seed)
    cls = np.asarray(task.classes)
    index = np.flatnonzero(np.isin(y, cls))
    return index, np.searchsorted(cls, y[index]).astype(np.int64)


def task_distance(a: Task, b: Task, facts: dict | None = None) -> float:
    """WordNet distance between two tasks: the mean shortest-path distance between
    their classes, over every pair (i in A, j in B):

        D(A, B) = (1 / |A||B|) sum_{i in A} sum_{j in B} d(i, j),

    d from :func:`wordnet_distance`. Shared classes contribute d = 0; D(A, A) is the mean
    distance within A (zero only for one class). Both tasks must be of one dataset.
    """
    if a.dataset != b.dataset:
        raise ValueError(f"tasks of different datasets: {a.dataset} vs {b.dataset}")
    D = class_distances(a.dataset, facts)
    return float(D[np.ix_(a.classes, b.classes)].mean())


def task_distances(tasks: Sequence[Task], facts: dict | None = None) -> np.ndarray:
    """Matrix of :func:`task_distance`, shape (T, T)."""
    if len({t.dataset for t in tasks}) > 1:
        raise ValueError("tasks of different datasets")
    D = class_distances(tasks[0].dataset, facts)
    return np.array([[D[np.ix_(a.classes, b.classes)].mean() for b in tasks]
                     for a in tasks])
