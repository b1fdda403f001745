"""Surface forms of entity names, normalised for comparison.

A stream names things in ways a knowledge base does not: handles
(``@realDonaldTrump``), hashtags (``#BlackLivesMatter``), camel case, accents
that some writers drop, punctuation. :func:`comparable` maps all of them to
lower-case words; :func:`initials` gives what an acronym of the name would be.
Nothing here decides identity: that is :mod:`graph_store.resolution.decision`.
"""
from __future__ import annotations

import re
import unicodedata

# words an acronym skips: "United States of America" -> USA, "Bank of England" -> BOE
_ACRONYM_SKIP = frozenset({"of", "the", "and", "for", "de", "la", "le", "des", "du", "&"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)


def strip_accents(text: str) -> str:
    """"São Paulo" -> "Sao Paulo": decomposed, combining marks dropped (other scripts are kept)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def surface_words(name: str) -> list[str]:
    """The words of a name as written: a handle or hashtag loses its sigil and is split at its
    camel-case humps ("@realDonaldTrump" -> real, Donald, Trump); case is kept."""
    name = name.strip()
    if name[:1] in "@#":
        name = _CAMEL.sub(" ", name[1:].replace("_", " "))
    return [w for w in _NOT_WORD.split(strip_accents(name)) if w]


def comparable(name: str) -> str:
    """The form names are compared in: words of :func:`surface_words`, lower-cased, one space."""
    return " ".join(w.lower() for w in surface_words(name))


def initials(name: str) -> str:
    """The acronym a name would have: first letters of its words, small words skipped."""
    words = [w for w in surface_words(name) if w.lower() not in _ACRONYM_SKIP]
    return "".join(w[0] for w in words).lower() if len(words) > 1 else ""


def looks_like_acronym(name: str) -> bool:
    """"USA", "U.S.A.", "NATO": two to six capitals, nothing else but dots."""
    letters = name.replace(".", "").strip()
    return 2 <= len(letters) <= 6 and letters.isalpha() and letters.isupper()


# words that name what kind of state, place or organisation a name is, not which one: "Bolivia,
# Plurinational State of" is Bolivia, "Republic of Korea" is Korea
DESIGNATORS = frozenset({
    "of", "the", "and", "republic", "kingdom", "state", "states", "federal", "federation", "democratic",
    "people", "peoples", "islamic", "arab", "socialist", "united", "plurinational", "bolivarian",
    "commonwealth", "principality", "grand", "duchy", "sultanate", "emirate", "union", "city", "province",
    "county", "municipality", "district", "region", "territory", "island", "islands", "s",
    # and what kind of organisation: "Arsenal FC" is Arsenal, "Apple Inc" is Apple
    "fc", "cf", "afc", "inc", "ltd", "llc", "plc", "corp", "corporation", "co", "company", "official",
})


def is_compound(name: str) -> bool:
    """A tagged span that holds a handle beside other words ("Halsey @BTS_twt", "@acristofalo SIMPSONS"):
    several names run together, so no part of it names the whole."""
    name = name.strip()
    return "@" in name[1:] or (name.startswith("@") and " " in name)


def is_subsequence(short: str, long: str) -> bool:
    """Every letter of ``short`` appears in ``long`` in order ("fra" in "france")."""
    letters = iter(long)
    return all(c in letters for c in short)
