"""The gate's trees (rag/scoring.py GateModel) walked all at once decide as walking each tree node by node
does — the format's meaning (sklearn's trees exported as plain data) — on the shipped model and on small
trees of unequal size, a lone leaf among them."""
import math
import random
from array import array

from metrotest_bot.rag.scoring import FEATURES, MONOTONE, GateModel, load_gate


def reference_raw(model: GateModel, values: dict) -> float:
    x = [values.get(name, 0.0) for name in model.features]
    if model.float32:  # as the sklearn model that trained it compares
        x = array("f", x).tolist()
    total = 0.0
    for tree in model.trees:
        node = tree[0]
        while node[2] != -1:
            node = tree[node[2]] if x[node[0]] <= node[1] else tree[node[3]]
        total += node[4]
    return model.base + model.rate * total


def test_the_shipped_model_decides_as_its_trees_walked_one_by_one():
    model = load_gate()
    rng = random.Random(5)
    for _ in range(500):
        values = {f: rng.choice([0.0, 1.0, rng.random(), round(rng.random(), 1)]) for f in FEATURES}
        assert math.isclose(model.raw(values), reference_raw(model, values), abs_tol=1e-9)


def test_a_passage_standing_apart_never_counts_against_answering():
    """A KB of three passages: the best one far apart from the next (sem_gap 0.5, margin 1.0), values a big KB
    rarely shows. An unconstrained retrain read them as evidence against and refused a question it answered."""
    model = load_gate()
    rng = random.Random(11)
    for _ in range(300):
        values = {f: rng.choice([0.0, 1.0, rng.random(), round(rng.random(), 1)]) for f in FEATURES}
        for name in MONOTONE:
            probabilities = [model.probability({**values, name: v}) for v in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)]
            assert probabilities == sorted(probabilities), (name, values)


def test_trees_of_unequal_depth_and_a_lone_leaf():
    data = {"features": ["a", "b"], "base": -0.25, "rate": 0.5, "threshold": 0.5, "trees": [
        [[0, 0.5, 1, 2, 0.0], [0, 0.0, -1, -1, -1.0], [1, 0.25, 3, 4, 0.0], [0, 0.0, -1, -1, 2.0],
         [0, 0.0, -1, -1, 3.0]],
        [[0, 0.0, -1, -1, 0.75]],  # a tree that is one leaf
        [[1, 0.9, 1, 2, 0.0], [0, 0.0, -1, -1, -0.5], [0, 0.0, -1, -1, 0.5]],
    ]}
    model = GateModel.from_dict(data)
    cases = {(0.2, 0.0): -1.0 + 0.75 - 0.5, (0.8, 0.25): 2.0 + 0.75 - 0.5, (0.8, 0.2500001): 3.0 + 0.75 - 0.5,
             (0.8, 0.95): 3.0 + 0.75 + 0.5, (0.5, 1.0): -1.0 + 0.75 + 0.5}
    for (a, b), leaves in cases.items():
        values = {"a": a, "b": b}
        assert math.isclose(model.raw(values), -0.25 + 0.5 * leaves), (a, b)
        assert math.isclose(model.raw(values), reference_raw(model, values))
    assert model.answers({"a": 0.8, "b": 0.95}) and not model.answers({"a": 0.2, "b": 0.0})


def test_features_compared_as_the_trees_were_trained():
    """GradientBoosting's trees compare float32 (0.30000001 rounds to above 0.3), histogram boosting's float64."""
    tree = [[0, 0.30000001, 1, 2, 0.0], [0, 0.0, -1, -1, -1.0], [0, 0.0, -1, -1, 1.0]]
    x = {"a": 0.30000001}
    as32 = GateModel.from_dict({"features": ["a"], "base": 0.0, "rate": 1.0, "trees": [tree]})
    as64 = GateModel.from_dict({"features": ["a"], "base": 0.0, "rate": 1.0, "trees": [tree], "float32": False})
    assert as64.raw(x) == -1.0  # 0.30000001 <= 0.30000001: left
    assert as32.raw(x) == 1.0  # float32(0.30000001) = 0.30000001192…: right
