"""Entity resolution: surface forms and the evidence each merge decision rests on."""
import numpy as np
import pytest

from graph_store.resolution.decision import EntityName, Resolver, ResolverConfig, evidence_kind
from graph_store.resolution.job import Candidate, blocking_keys, candidate_pairs, unambiguous
from graph_store.resolution.links import Link
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


NAMES_ALONE = Resolver(config=ResolverConfig(weak_context_min=None))  # what names say, weak evidence included

PAIRS = [  # (a, b, merge, evidence)
    (("Sao Paulo", "LOC"), ("São Paulo", "LOC"), True, "same comparable form"),
    (("Korea, Republic of", "LOC"), ("Republic of Korea", "LOC"), True, "same words"),
    (("USA", "LOC"), ("United States of America", "LOC"), True, "acronym"),
    (("FRA", "LOC"), ("France", "LOC"), True, "code of"),
    (("@realDonaldTrump", "PER"), ("Donald Trump", "PER"), True, "handle or hashtag of"),
    (("Bolivia, Plurinational State of", "LOC"), ("Bolivia", "LOC"), True, "the same name with a designator"),
    (("Obama", "PER"), ("Barack Obama", "PER"), True, "given name or surname of"),
    (("Massachusets", "LOC"), ("Massachusetts", "LOC"), True, "spelling variant"),
    (("Arsenal", "ORG"), ("Arsenal FC", "ORG"), True, "the same name with a designator"),
    # hard negatives
    (("Niger", "LOC"), ("Nigeria", "LOC"), False, "names differ"),  # edit similarity 0.83: two countries
    (("Adrian", "PER"), ("Adriane", "PER"), False, "names differ"),  # one-word person names: other names
    (("York", "LOC"), ("New York", "LOC"), False, "the other name with more words"),  # "new" is no designator
    (("Kolkata", "LOC"), ("South Kolkata", "LOC"), False, "the other name with more words"),  # a part of it
    (("GST", "ORG"), ("GST Council", "ORG"), False, "the other name with more words"),  # named after it, no code
    (("Trump", "PER"), ("Trump", "ORG"), False, "types differ"),
    (("Halsey @BTS_twt", "PER"), ("Halsey", "PER"), False, "a span of several names"),
    (("@ArianaGrande @Camila_Cabello", "PER"), ("@Camila_Cabello", "PER"), False, "a span of several names"),
]


def test_weak_evidence_needs_a_shared_post_or_agreeing_contexts():
    """On a stream, "Obama" alone is as likely another Obama: a surname, an acronym or a designator merges
    only with a post that mentions both names, or contexts at least weak_context_min alike."""
    embed = fake_embed({"the 44th president": [1, 0, 0], "president obama said": [0.9, 0.43, 0],
                        "obama at a rally": [0.5, 0, 0.866]})
    resolver = Resolver(embed)
    assert ResolverConfig().weak_context_min is not None  # the default demands it
    short, full = EntityName("Obama", "PER", "obama at a rally"), EntityName("Barack Obama", "PER", "the 44th president")
    refused = resolver.decide(short, full)
    assert not refused.merge and refused.vetoed and "weak without a shared post" in refused.evidence
    assert 0.3 < refused.context_similarity < 0.6  # not disagreeing: only not alike enough
    agreeing = resolver.decide(EntityName("Obama", "PER", "president obama said"), full)
    assert agreeing.merge and agreeing.context_similarity > 0.6 and agreeing.partial
    shared = resolver.decide(EntityName("Obama", "PER", "obama at a rally", frozenset({"p1"})),
                             EntityName("Barack Obama", "PER", "the 44th president", frozenset({"p1", "p2"})))
    assert shared.merge and shared.evidence.endswith("mentioned in one post")
    # strong evidence needs neither
    assert Resolver().decide(EntityName("Sao Paulo", "LOC"), EntityName("São Paulo", "LOC")).merge


def test_posts_that_mention_only_one_of_the_names_are_not_a_shared_post():
    """Bug once let through (``&`` -> ``|``): any post counted as shared, which silently removed the
    context gate for weak evidence. Here each name has its own posts and no post mentions both."""
    resolver = Resolver()  # no encoder: no contexts, so only a shared post could let the surname merge
    apart = resolver.decide(EntityName("Obama", "PER", posts=frozenset({"p3"})),
                            EntityName("Barack Obama", "PER", posts=frozenset({"p1", "p2"})))
    assert not apart.merge and apart.vetoed and "weak without a shared post" in apart.evidence
    together = resolver.decide(EntityName("Obama", "PER", posts=frozenset({"p2", "p3"})),
                               EntityName("Barack Obama", "PER", posts=frozenset({"p1", "p2"})))
    assert together.merge and together.evidence.endswith("mentioned in one post")


@pytest.mark.parametrize("a,b,merge,evidence", PAIRS, ids=[f"{p[0][0]}|{p[1][0]}" for p in PAIRS])
def test_name_evidence_without_an_encoder(a, b, merge, evidence):
    decision = NAMES_ALONE.decide(EntityName(*a), EntityName(*b))
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


def test_the_same_name_needs_contexts_that_agree_well_or_a_shared_post():
    """Homonyms share their name and nothing else: contexts that do not disagree outright are not enough."""
    embed = fake_embed({"springfield illinois": [1, 0, 0], "springfield massachusetts": [0.5, 0.866, 0],
                        "springfield, the capital of illinois": [0.95, 0.3, 0]})
    resolver = Resolver(embed)
    assert ResolverConfig().same_name_context_min is not None  # the default demands it
    il = EntityName("Springfield", "LOC", "springfield illinois")
    middling = resolver.decide(il, EntityName("Springfield", "LOC", "springfield massachusetts"))
    assert 0.3 < middling.context_similarity < ResolverConfig().same_name_context_min
    assert not middling.merge and middling.vetoed and "may be homonyms" in middling.evidence
    assert resolver.decide(il, EntityName("Springfield", "LOC", "springfield, the capital of illinois")).merge
    shared = resolver.decide(EntityName("Springfield", "LOC", "springfield illinois", frozenset({"p1"})),
                             EntityName("Springfield", "LOC", "springfield massachusetts", frozenset({"p1"})))
    assert shared.merge
    # a handle is an identifier someone chose: "@Springfield" is not a homonym of the name it spells
    assert resolver.decide(EntityName("@Springfield", "LOC", "springfield massachusetts"), il).merge
    assert Resolver(embed, ResolverConfig(same_name_context_min=None)).decide(
        il, EntityName("Springfield", "LOC", "springfield massachusetts")).merge
    assert Resolver().decide(EntityName("Springfield", "LOC"), EntityName("Springfield", "LOC")).merge  # no contexts


def test_another_type_merges_only_on_the_same_name_with_agreeing_contexts():
    embed = fake_embed({"the president said": [1, 0, 0], "president trump's speech": [0.95, 0.3, 0]})
    resolver = Resolver(embed)
    per, org = EntityName("Trump", "PER", "the president said"), EntityName("Trump", "ORG", "president trump's speech")
    assert resolver.decide(per, org).merge
    assert not Resolver().decide(per, org).merge  # no contexts to agree: the tag difference stands


# --- the job's pure parts: blocking and ambiguous partial names -----------------------------------


def test_blocking_files_handles_acronyms_and_words_together():
    assert blocking_keys("@realDonaldTrump", "PER") & blocking_keys("Donald Trump", "PER") == {"word:donald", "word:trump"}
    assert "acronym:un" in blocking_keys("U.N.", "ORG") & blocking_keys("United Nations", "ORG")
    assert blocking_keys("Paris", "LOC") & blocking_keys("Paris", "PER") == {"form:paris", "word:paris"}
    assert not blocking_keys("Jo", "PER") & blocking_keys("Jo Malone", "ORG")  # two-letter words file nothing


def test_candidate_pairs_only_touch_names_to_compare_and_skip_crowded_keys():
    ents = [Candidate(f"PER:{n.lower()}", n, "PER") for n in ("Ann Lee", "Lee", "Bob Lee", "Cy Young")]
    pairs = candidate_pairs(ents, {"PER:lee"}, max_block=10)
    assert [(a.key, b.key) for a, b in pairs] == [("PER:ann lee", "PER:lee"), ("PER:bob lee", "PER:lee")]
    everyone = candidate_pairs(ents, {e.key for e in ents}, max_block=10)
    assert ("PER:ann lee", "PER:bob lee") in [(a.key, b.key) for a, b in everyone]
    assert candidate_pairs(ents, {e.key for e in ents}, max_block=2) == []  # "lee" is shared by three


def test_a_short_name_that_fits_two_entities_links_neither():
    trump, donald, ivanka = (Candidate(f"PER:{n.lower()}", n, "PER") for n in ("Trump", "Donald Trump", "Ivanka Trump"))
    links = [Link.between(trump.key, donald.key, 0.9, "given name or surname of"),
             Link.between(trump.key, ivanka.key, 0.9, "given name or surname of")]
    partial = [(trump, donald), (trump, ivanka)]
    kept, ambiguous = unambiguous(links, partial, [], {})
    assert kept == [] and ambiguous == ["PER:trump"]
    # the same two long names, once the graph holds them in one cluster, are one entity: no ambiguity
    kept, ambiguous = unambiguous(links, partial, [], {donald.key: donald.key, ivanka.key: donald.key})
    assert kept == links and ambiguous == []
    # a link made by an earlier run counts too: "Trump" already stands for Donald
    kept, ambiguous = unambiguous(links[1:], partial[1:], [(trump.key, donald.key, True)], {})
    assert kept == [] and ambiguous == ["PER:trump"]


def test_the_kind_of_evidence_is_read_back_from_a_stored_link():
    """Links keep their evidence text; the ambiguity check reads the rule from it, notes and figures aside."""
    assert evidence_kind("given name or surname of; mentioned in one post") == "given name or surname of"
    assert evidence_kind("spelling variant (0.93)") == "spelling variant"
    assert evidence_kind("acronym") == "acronym"


def test_a_decision_merges_at_a_threshold_only_when_not_vetoed():
    from graph_store.resolution.decision import MergeDecision

    sure = MergeDecision(True, 0.9, "acronym")
    assert sure.merges_at(0.9) and sure.merges_at(0.5) and not sure.merges_at(0.91)  # at or above
    vetoed = MergeDecision(False, 0.95, "contexts disagree; same comparable form", 0.1, vetoed=True)
    assert not vetoed.merges_at(0.5)


def test_a_missing_context_gives_no_context_similarity_rather_than_a_guess():
    """Only pairs where both sides bring a context are compared by context; one side without one,
    or no context at all in the batch, leaves the similarity unknown (None)."""
    embed = fake_embed({"the 44th president": [1, 0, 0]})
    resolver = Resolver(embed)
    one_sided = resolver.decide(EntityName("Barack Obama", "PER", "the 44th president"), EntityName("Obama", "PER"))
    assert one_sided.context_similarity is None
    none = resolver.decide(EntityName("Barack Obama", "PER"), EntityName("Obama", "PER"))
    assert none.context_similarity is None
