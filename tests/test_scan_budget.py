"""A scan configures adversarial training for the attack it measures it against (same budget)."""

from __future__ import annotations

from finmlsec.attacks.base import ATTACKS
from finmlsec.defences import DEFENCES
from finmlsec.scan.work import make_defence, training_budget

AT = DEFENCES.get("adversarial_training")


def test_image_attack_budget_reaches_adversarial_training() -> None:
    simba = ATTACKS.get("evasion.image")(eps=0.25, clip_min=0.0, clip_max=1.0, seed=3)
    assert training_budget(AT, simba, "image") == {"eps": 0.25, "clip_min": 0.0, "clip_max": 1.0}
    at = make_defence("adversarial_training", 0, None, "image", simba)
    assert at.attack_params == {"eps": 0.25, "clip_min": 0.0, "clip_max": 1.0}
    assert at.random_state == 0


def test_tabular_goal_and_changes_reach_adversarial_training() -> None:
    attack = ATTACKS.get("evasion.constrained")(target_class=1, max_changes=2, n_grid=5)
    assert training_budget(AT, attack, "tabular") == {"target_class": 1, "max_changes": 2}


def test_no_budget_without_an_evasion_attack() -> None:
    mia = ATTACKS.get("membership.metric")()
    assert training_budget(AT, mia, "tabular") == {}
    assert training_budget(AT, None, "image") == {}
    assert make_defence("adversarial_training", 0, None, "image", mia).attack_params is None
    # defences that train against no attack (no training_attacks) get no budget
    assert training_budget(DEFENCES.get("pate"), ATTACKS.get("evasion.pgd")(), "image") == {}
    assert "attack_params" not in make_defence("pate", 0, None, "tabular",
                                               ATTACKS.get("evasion.pgd")()).get_params()


def test_the_trained_against_attack_is_declared_by_the_defence() -> None:
    assert AT.training_attacks == {"image": "evasion.pgd", "tabular": "evasion.constrained",
                                   "text": "evasion.text"}
    assert all(n in ATTACKS for n in AT.training_attacks.values())
