"""Part IV: the k-NN probe (Euclidean distance, k neighbors, unweighted majority vote, ties to the smallest)."""

from __future__ import annotations

import pytest

from autograder.runtime.checks import expect, expect_close, fail

from .cases import KNN_CASES, KNN_POINT_CASES, knn_case, knn_point_data, knn_point_hits

HINT = ("Take the k training points with the smallest Euclidean distance (torch.cdist, topk(largest=False)), "
        "predict the most common of their labels (a tie of votes goes to the smallest label) and return the "
        "share of correct predictions")


@pytest.mark.parametrize("name", KNN_CASES)
def test_accuracy_equals_the_reference(ns, values, name):
    """The accuracy equals the reference's"""
    got = knn_case(ns, name)
    expect(isinstance(got, float), f"{name}: knn_accuracy must return a Python float, got {type(got).__name__}",
           "Use .item() on the mean")
    expect_close(got, values[name], f"{name}: the k-NN accuracy", HINT, atol=1e-6)


@pytest.mark.parametrize("name", KNN_POINT_CASES)
def test_each_test_point_gets_the_reference_prediction(ns, values, name):
    """Each test point alone gets the reference's prediction (accuracies can hide wrong predictions)"""
    got = knn_point_hits(ns, name)
    want = values["per point"][name]
    test_y = knn_point_data(name)[3]
    wrong = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    if not wrong:
        return
    i = wrong[0]
    predicted = want[i].index(1.0)
    ones = [label for label, hit in enumerate(got[i]) if hit == 1.0]
    odd = [hit for hit in got[i] if hit not in (0.0, 1.0)]
    found = (f"it returns {odd[0]!r} for one test point (expected 0.0 or 1.0)" if odd else
             f"yours gives 1.0 for test label(s) {ones}" if ones else "yours gives 0.0 for every test label")
    fail(f"{name}: {len(wrong)} of {len(got)} test points, each passed alone, are predicted differently from the "
         f"reference; e.g. test point {i} (true label {int(test_y[i])}): the reference predicts label {predicted} "
         f"(knn_accuracy gives 1.0 with test_labels=[{predicted}] and 0.0 with any other label), {found}",
         "A point's prediction depends only on the training set and that point: the most common label among its k "
         "nearest training points (Euclidean distance), a tie to the smallest label; count votes for every label "
         "of the training set")
