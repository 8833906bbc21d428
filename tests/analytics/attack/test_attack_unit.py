"""The attacker itself, on tiny hand-made publications whose answer is known: it must find
what they give away (a margin minus published cells, primary/secondary labels, a change of one
respondent between two releases) and no more."""

from __future__ import annotations

from attack_harvest import Published
from attack_ilp import Attack, Knowledge, score, score_change
from attack_rounds import Respondent

KNOW = Knowledge(
    kommuner=["A", "B"],
    groups=["g1", "g2"],
    levels={"gender": ("K", "M"), "age_band": ("a",), "duration_band": ("d",)},
    arms=("x",),
    questions=("q",),
    population={("A", "g1"): 40, ("A", "g2"): 30, ("B", "g1"): 50, ("B", "g2"): 20},
)
INVITED = {("A", "g1"): 12, ("A", "g2"): 10, ("B", "g1"): 9, ("B", "g2"): 10}


def people(counts: dict[tuple[str, str], int], tag: str = "") -> list[Respondent]:
    return [
        Respondent(f"{k}{g}{i}{tag}", k, g, "K" if i % 2 else "M", "a", "d", "x", {"q": 4})
        for (k, g), n in counts.items()
        for i in range(n)
    ]


def rates(answers: dict[tuple[str, str], int], hidden: dict[tuple[str, str], str]) -> Published:
    """A response-rate table by municipality x target group with margins; ``hidden`` cells
    suppressed with the given label (None: no label)."""
    pub = Published()
    for k in KNOW.kommuner:
        for g in KNOW.groups:
            label = hidden.get((k, g), "published")
            shown = (k, g) not in hidden
            pub.rates[("maalgruppe", k, g)] = {
                "invited": INVITED[(k, g)], "answers": answers[(k, g)] if shown else None, "suppressed": not shown, "suppression": label,
            }
        pub.rates[("maalgruppe", k, "total")] = {"invited": 0, "answers": sum(answers[(k, g)] for g in KNOW.groups), "suppressed": False}
        pub.rates[("maalgruppe", k, "total")]["invited"] = sum(INVITED[(k, g)] for g in KNOW.groups)
    for g in KNOW.groups:
        pub.rates[("maalgruppe", "national", g)] = {"invited": 99, "answers": sum(answers[(k, g)] for k in KNOW.kommuner), "suppressed": False}
    pub.rates[("maalgruppe", "national", "total")] = {"invited": 99, "answers": sum(answers.values()), "suppressed": False}
    return pub


TRUTH = {("A", "g1"): 6, ("A", "g2"): 2, ("B", "g1"): 5, ("B", "g2"): 7}


def attack_on(pubs: list[Published], blocks: list[list]) -> Attack:
    attack = Attack(KNOW, pubs)
    assert attack.check_truth(blocks) == []
    attack.pool.append(attack.truth_vector(blocks))
    return attack


def test_a_margin_minus_published_cells_is_recovered():
    pub = rates(TRUTH, {("A", "g2"): "primary"})
    attack = attack_on([pub], [people(TRUTH)])
    assert attack.bounds(attack.resp(0, "A", "maalgruppe", "g2")) == (2, 2)
    [cell] = [c for c in score(attack, people(TRUTH), pub) if c.key == ("maalgruppe", "A", "g2")]
    assert cell.exact and cell.narrowed


def test_two_hidden_cells_of_a_line_are_protected_without_labels():
    # A: 6 + 2 = 8, national g2 = 2 + 7 = 9, B = 12 with at most 9 invited in B g1 (so B g2 >= 3):
    # A g2 can be anything from 0 to 6.
    pub = rates(TRUTH, {("A", "g1"): None, ("A", "g2"): None, ("B", "g1"): None, ("B", "g2"): None})
    attack = attack_on([pub], [people(TRUTH)])
    assert attack.bounds(attack.resp(0, "A", "maalgruppe", "g2")) == (0, 6)
    assert not any(c.narrowed for c in score(attack, people(TRUTH), pub))


def test_primary_and_secondary_labels_narrow_the_interval():
    pub = rates(TRUTH, {("A", "g1"): "secondary", ("A", "g2"): "primary", ("B", "g1"): None, ("B", "g2"): None})
    attack = attack_on([pub], [people(TRUTH)])
    assert attack.bounds(attack.resp(0, "A", "maalgruppe", "g2")) == (0, 3)  # g1 >= 5, g1 + g2 = 8
    [cell] = [c for c in score(attack, people(TRUTH), pub) if c.key == ("maalgruppe", "A", "g2")]
    assert cell.narrowed and not cell.exact  # 0..3: never 5 or more


def test_one_new_respondent_between_releases_is_placed():
    before = people(TRUTH)
    later = dict(TRUTH) | {("A", "g2"): 3}
    after = before + [p for p in people(later, "") if p.pseudonym == "Ag22"]
    hidden = {("A", "g1"): None, ("A", "g2"): None, ("B", "g1"): None, ("B", "g2"): None}
    pubs = [rates(TRUTH, hidden), rates(later, hidden)]
    attack = attack_on(pubs, [before, after[len(before):]])
    changes = score_change(attack, before, after, pubs[1], KNOW.kommuner, KNOW.arms)
    placed = {c.key for c in changes if c.narrowed}
    # The margins moved by one: the reader knows the new citizen answered in A (and nationally in g2).
    assert ("respondents", "maalgruppe", "A", "total") in placed
    assert ("respondents", "maalgruppe", "national", "g2") in placed
    assert ("respondents", "maalgruppe", "B", "total") not in placed
