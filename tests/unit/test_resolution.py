"""Entity resolution: surface forms and the evidence each merge decision rests on."""
import numpy as np
import pytest

from graph_store.resolution.decision import EntityName, Resolver
from graph_store.resolution.names import comparable, initials, is_subsequence, looks_like_acronym


@pytest.mark.parametrize("name,expected", [
    ("@realDonaldTrump", "real donald trump"),
    ("#BlackLivesMatter", "black lives matter"),
    ("São Paulo", "sao paulo"),
    ("Bolivia, Plurinational State of", "bolivia plurinational state of"),
    ("  NASA ", "nasa"),
    ("#", ""),
])
def test_comparable_forms(name, expected):
    assert comparable(name) == expected


def test_initials_and_acronyms():
    assert initials("United States of America") == "usa" and initials("Bank of England") == "be"
    assert initials("France") == ""  # one word has no acronym
    assert looks_like_acronym("U.S.A.") and looks_like_acronym("NATO") and not looks_like_acronym("Nato")
    assert is_subsequence("fra", "france") and not is_subsequence("deu", "germany")


PAIRS = [  # (a, b, merge, evidence)
    (("Sao Paulo", "LOC"), ("São Paulo", "LOC"), True, "same comparable form"),
    (("Korea, Republic of", "LOC"), ("Republic of Korea", "LOC"), True, "same words"),
    (("USA", "LOC"), ("United States of America", "LOC"), True, "acronym"),
    (("FRA", "LOC"), ("France", "LOC"), True, "code of"),
    (("@realDonaldTrump", "PER"), ("Donald Trump", "PER"), True, "handle or hashtag of"),
    (("Bolivia, Plurinational State of", "LOC"), ("Bolivia", "LOC"), True, "the same name with a designator"),
    (("Obama", "PER"), ("Barack Obama", "PER"), True, "given name or surname of"),
    (("Massachusets", "LOC"), ("Massachusetts", "LOC"), True, "spelling variant"),
    # hard negatives
    (("Niger", "LOC"), ("Nigeria", "LOC"), False, "names differ"),  # edit similarity 0.83: two countries
    (("Adrian", "PER"), ("Adriane", "PER"), False, "names differ"),  # one-word person names: other names
    (("York", "LOC"), ("New York", "LOC"), False, "names differ"),  # "new" is no designator
    (("Trump", "PER"), ("Trump", "ORG"), False, "types differ"),
]


@pytest.mark.parametrize("a,b,merge,evidence", PAIRS, ids=[f"{p[0][0]}|{p[1][0]}" for p in PAIRS])
def test_name_evidence_without_an_encoder(a, b, merge, evidence):
    decision = Resolver().decide(EntityName(*a), EntityName(*b))
    assert decision.merge is merge and decision.evidence.startswith(evidence), decision
    assert decision.context_similarity is None


def fake_embed(vectors: dict[str, list[float]]):
    """Unit vectors for the texts a test names; other texts (the names) are orthogonal to all."""
    def embed(texts):
        out = []
        for i, text in enumerate(texts):
            v = np.array(vectors.get(text, [0.0, 0.0, 0.0] + [1.0 if j == i else 0.0 for j in range(len(texts))]))
            out.append(v / np.linalg.norm(v))
        width = max(len(v) for v in out)
        return np.stack([np.pad(v, (0, width - len(v))) for v in out])
    return embed


def test_contexts_that_disagree_veto_even_the_same_name():
    embed = fake_embed({"river side mud": [1, 0, 0], "loans and deposits": [0, 1, 0], "money lender": [0, 0.95, 0.3]})
    resolver = Resolver(embed)
    homonym = resolver.decide(EntityName("bank", "MISC", "river side mud"), EntityName("bank", "MISC", "loans and deposits"))
    same = resolver.decide(EntityName("bank", "MISC", "money lender"), EntityName("bank", "MISC", "loans and deposits"))
    assert not homonym.merge and homonym.evidence.startswith("contexts disagree") and homonym.context_similarity < 0.1
    assert same.merge and same.context_similarity > 0.9


def test_another_type_merges_only_on_the_same_name_with_agreeing_contexts():
    embed = fake_embed({"the president said": [1, 0, 0], "president trump's speech": [0.95, 0.3, 0]})
    resolver = Resolver(embed)
    per, org = EntityName("Trump", "PER", "the president said"), EntityName("Trump", "ORG", "president trump's speech")
    assert resolver.decide(per, org).merge
    assert not Resolver().decide(per, org).merge  # no contexts to agree: the tag difference stands
