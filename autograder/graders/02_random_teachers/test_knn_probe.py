"""Part IV: the k-NN probe (Euclidean distance, k neighbors, unweighted majority vote, ties to the smallest)."""

from __future__ import annotations

import pytest

from autograder.checks import expect, expect_close

from .cases import KNN_CASES, knn_case

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
