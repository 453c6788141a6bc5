"""Tasks, the WordNet fact file and WordNet distances (hyperribbon.tasks)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hyperribbon import tasks as T

WORDNET = T.wordnet_dir()
needs_wordnet = pytest.mark.skipif(
    WORDNET is None, reason="WordNet 3.0 database not installed (Debian: apt-get install "
    "wordnet-base, or `make wordnet-deps`); the fact file is checked against it when present")

# Lines of WordNet 3.0 (data.noun / index.noun), as printed in the database.
ZERO_LINE = ("13740168 23 n 0e nothing 0 nil 0 nix 0 nada 0 null 0 aught 0 cipher 0 cypher 0 "
             "goose_egg 0 naught 0 zero 2 zilch 0 zip 0 zippo 0 004 @ 13576982 n 0000 + "
             "00297507 v 0b01 ~ 13740591 n 0000 ~ 13740765 n 0000 | a quantity of no import  ")
DOG_INDEX = ("dog n 7 5 @ ~ #m #p %p 7 1 02084071 10114209 10023039 09886220 07676602 "
             "03901548 02710044  ")


# --- the file format ------------------------------------------------------------------

def test_parse_data_line_hex_word_count_and_hypernyms():
    s = T.parse_data_line(ZERO_LINE)
    assert s.offset == 13740168
    assert len(s.words) == 0x0E and s.words[0] == "nothing" and s.words[-1] == "zippo"
    assert s.hypernyms == (13576982,)  # '+' (derivation) and '~' (hyponym) are not
    assert s.gloss == "a quantity of no import"


def test_parse_data_line_instance_hypernym_counts():
    line = ("00000100 03 n 02 foo 0 bar 1 003 @ 00000200 n 0000 ~ 00000300 n 0000 "
            "@i 00000400 n 0000 | made up")
    assert T.parse_data_line(line).hypernyms == (200, 400)


def test_parse_lines_refuse_garbage():
    with pytest.raises(ValueError, match="not a"):
        T.parse_data_line("  1 This software and database is being provided")
    with pytest.raises(ValueError, match="not a"):
        T.parse_index_line("dog n seven")


def test_parse_index_line_sense_order():
    lemma, offs = T.parse_index_line(DOG_INDEX)
    assert lemma == "dog" and len(offs) == 7 and offs[0] == 2084071


# --- the fact file --------------------------------------------------------------------

def test_fact_file_known_offsets_and_paths():
    # ImageNet ids are WordNet 3.0 offsets: n02084071 dog, n03595614 "jersey, T-shirt,
    # tee shirt", n04133789 sandal.
    fm = {r["class"]: r for r in T.class_synsets("fashion-mnist")}
    assert fm["T-shirt/top"]["offset"] == "03595614"
    assert fm["Sandal"]["offset"] == "04133789"
    c10 = {r["class"]: r for r in T.class_synsets("cifar10")}
    assert c10["dog"]["offset"] == "02084071" and c10["dog"]["synset"] == "dog.n.01"
    facts = T.load_facts()
    assert facts["source"]["database"] == "WordNet 3.0"
    for ds in T.CLASS_NAMES:
        rows = T.class_synsets(ds)
        assert [r["class"] for r in rows] == list(T.CLASS_NAMES[ds])
        for r in rows:
            assert r["paths"] and all(p[0] == r["synset"] and p[-1] == "entity.n.01"
                                      for p in r["paths"])


@needs_wordnet
def test_fact_file_matches_the_database(tmp_path):
    regenerated = yaml.safe_load(T.write_fact_file(tmp_path / "wn.yml", WORDNET) and
                                 (tmp_path / "wn.yml").read_text())
    shipped = yaml.safe_load(T.fact_file_path().read_text())
    assert regenerated == shipped, "data/wordnet.yml differs from the WordNet database: " \
        "regenerate it with hyperribbon.tasks.write_fact_file()"


@needs_wordnet
def test_wordnet_reader_on_the_database():
    wn = T.WordNet(WORDNET)
    dog = wn.lookup("dog", 1)
    assert dog.offset == 2084071 and "domestic_dog" in dog.words
    assert wn.name(2084071) == "dog.n.01"
    assert wn.name(2137) == "abstraction.n.06"  # nltk's name of 00002137
    assert wn.synset(1740).hypernyms == ()  # entity.n.01 is the root
    with pytest.raises(ValueError, match="not a synset offset"):
        wn.synset(2084072)
    with pytest.raises(ValueError, match="senses"):
        wn.lookup("dog", 8)


def test_wordnet_missing_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError):
        T.WordNet(tmp_path)


# --- distances ------------------------------------------------------------------------

def test_wordnet_distance_hand_checked():
    # dog.n.01 -> canine -> carnivore <- feline <- cat.n.01: 4 steps (nltk's HOWTO:
    # dog.path_similarity(cat) = 0.2 = 1/(1+4), lowest common hypernym carnivore.n.01).
    assert T.wordnet_distance("dog.n.01", "cat.n.01") == 4
    assert T.wordnet_distance(5, 3, "cifar10") == 4
    assert T.lowest_common_hypernyms(3, 5, "cifar10") == ["carnivore.n.01"]
    # sandal -> shoe <- gym_shoe (sneaker): 2; sandal -> shoe -> footwear <- boot: 3
    assert T.wordnet_distance(5, 7, "fashion-mnist") == 2
    assert T.wordnet_distance(5, 9, "fashion-mnist") == 3
    assert T.wordnet_distance("00001740", "00001740") == 0


def test_class_distances_digits_flat_and_symmetric():
    D = T.class_distances("mnist")  # every digit sits directly under digit.n.01
    assert np.array_equal(D, 2 * (1 - np.eye(10, dtype=int)))
    D = T.class_distances("cifar10")
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0)
    # not a metric: dog is also a domestic_animal (dog -> domestic_animal -> animal), so
    # airplane-dog (13) + dog-cat (4) < airplane-cat (18): paths turn only once
    assert (D[0, 3], D[0, 5], D[5, 3]) == (18, 13, 4)


def test_task_distance_hand_checked():
    cat = T.task_catalogue("fashion-mnist")
    # shoe {sandal, sneaker} vs footwear {sandal, sneaker, boot}:
    # (0 + 2 + 3 + 2 + 0 + 3) / 6
    assert T.task_distance(cat["shoe"], cat["footwear"]) == pytest.approx(10 / 6)
    m = T.task_catalogue("mnist")
    a = T.Task("low", "mnist", (0, 1), "natural")
    assert T.task_distance(a, m["every_other"]) == pytest.approx((0 + 2 * 9) / 10)
    M = T.task_distances([cat["shoe"], cat["footwear"], cat["garment"]])
    assert M.shape == (3, 3) and np.allclose(M, M.T)
    assert M[0, 1] == pytest.approx(10 / 6) and M[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different datasets"):
        T.task_distance(a, cat["shoe"])


def test_unknown_synset_is_named():
    with pytest.raises(ValueError, match="'nosuch.n.01'"):
        T.wordnet_distance("nosuch.n.01", "dog.n.01")


# --- tasks ----------------------------------------------------------------------------

def test_groups_fashion_mnist_as_in_wordnet():
    # WordNet 3.0: trouser sits with the tops under garment, dress under
    # woman's_clothing, footwear under covering, bag under container.
    g = dict(T.groups("fashion-mnist"))
    assert g == {"garment": (0, 1, 2, 4, 6), "dress": (3,), "footwear": (5, 7, 9),
                 "bag": (8,)}
    assert T.groups("mnist") == [("digit", tuple(range(10)))]
    # CIFAR-10: vehicles and mammals; bird and frog alone (vertebrate spans the mammals)
    assert dict(T.groups("cifar10")) == {"vehicle": (0, 1, 8, 9), "bird": (2,),
                                         "placental": (3, 4, 5, 7), "frog": (6,)}
    assert ("carnivore", (3, 5)) in T.groups("cifar10", height=3)
    parts = T.groups("cifar100")
    assert sorted(c for _, cls in parts for c in cls) == list(range(100))  # a partition
    assert ("tree", (47, 52, 56, 59, 96)) in parts  # maple, oak, palm, pine, willow


def test_hypernym_tasks_cifar10_vehicles_and_animals():
    tasks = {t.name: t.classes for t in T.hypernym_tasks("cifar10")}
    assert tasks["vehicle"] == (0, 1, 8, 9)
    assert tasks["vertebrate"] == (2, 3, 4, 5, 6, 7)  # every animal class
    assert tasks["placental"] == (3, 4, 5, 7)  # the mammals
    assert T.hypernym_tasks("mnist") == []  # digit spans every class


def test_catalogue_tasks_trainable_and_size_matched_diverse():
    for ds in ("mnist", "fashion-mnist", "cifar10", "cifar100", "mnist+fashion-mnist"):
        cat = T.task_catalogue(ds)
        part = T.groups(ds)
        assert cat["all"].kind == "full" and "random_labels" in cat
        for name, t in cat.items():
            assert t.name == name and t.n_classes >= 2
        assert len({t.key for t in cat.values()}) == len(cat)
        for gname, cls in part:
            if len(cls) >= 2 and len(part) > 1:
                d = cat[f"diverse_{gname}"]
                assert d.kind == "diverse" and d.n_classes == len(cls)
                assert T.groups_spanned(d, part) == min(len(cls), len(part)) > 1
    assert not any(t.kind == "diverse" for t in T.task_catalogue("mnist").values())
    fm = T.task_catalogue("fashion-mnist")
    assert fm["garment+footwear"].classes == (0, 1, 2, 4, 5, 6, 7, 9)
    assert fm["every_other"].classes == (0, 2, 4, 6, 8)
    assert T.groups_spanned(fm["garment"], T.groups("fashion-mnist")) == 1


def test_union_dataset():
    assert T.class_names("mnist+fashion-mnist")[10] == "T-shirt/top"
    D = T.class_distances("mnist+fashion-mnist")
    assert D.shape == (20, 20) and D[0, 1] == 2 and D[0, 10] > 8


def test_task_validation_messages():
    with pytest.raises(ValueError, match="'bag' has 1 class.*at least 2"):
        T.Task("bag", "fashion-mnist", (8,), "natural")
    with pytest.raises(ValueError, match="sorted and distinct"):
        T.Task("x", "fashion-mnist", (3, 1), "natural")
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        T.Task("x", "fashion-mnist", (1, 10), "natural")
    with pytest.raises(ValueError, match="kind 'odd'"):
        T.Task("x", "fashion-mnist", (1, 2), "odd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        T.class_names("svhn")


def test_key_is_content_not_name():
    a = T.Task("garment", "fashion-mnist", (0, 1, 2, 4, 6), "natural")
    b = T.Task("tops", "fashion-mnist", (0, 1, 2, 4, 6), "natural")
    assert a.key == b.key == "fashion-mnist.natural.0-1-2-4-6"
    r0, r1 = (T.Task("random_labels", "mnist", tuple(range(10)), "random_labels", seed=s)
              for s in (0, 1))
    assert r0.key != r1.key


def test_parse_tasks():
    ts = T.parse_tasks(["all", "garment", "random_labels"], "fashion-mnist")
    assert [t.name for t in ts] == ["all", "garment", "random_labels"]
    with pytest.raises(ValueError) as e:
        T.parse_tasks(["garment", "bag"], "fashion-mnist")
    msg = str(e.value)
    assert "\n" not in msg and "'bag'" in msg and "garment" in msg and "footwear" in msg
    with pytest.raises(ValueError, match="twice"):
        T.parse_tasks(["all", "all"], "fashion-mnist")
    with pytest.raises(ValueError, match="no task"):
        T.parse_tasks([], "mnist")


def test_random_labels_per_image_not_a_permutation():
    y = np.repeat(np.arange(10), 100)
    task = T.task_catalogue("mnist")["random_labels"]
    idx, r = T.task_targets(task, y)
    assert np.array_equal(idx, np.arange(1000)) and r.min() >= 0 and r.max() <= 9
    # a permutation would give one random label per true class; per image, many
    assert all(len(np.unique(r[y == c])) > 5 for c in range(10))
    assert np.array_equal(r, T.task_targets(task, y)[1])  # drawn once (seeded)
    assert np.bincount(r, minlength=10).min() > 60


def test_task_targets_restrict_and_remap():
    y = np.array([8, 5, 7, 0, 9, 5])
    task = T.task_catalogue("fashion-mnist")["footwear"]  # classes (5, 7, 9)
    idx, tgt = T.task_targets(task, y)
    assert idx.tolist() == [1, 2, 4, 5] and tgt.tolist() == [0, 1, 2, 0]
