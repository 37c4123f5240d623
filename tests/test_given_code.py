"""The given code of the solution (not graded): kNN evaluation on toy cases with known answers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset


def toy_sets():
    # train: two clusters on the x and y axes; test: three points, the last one nearer the wrong cluster
    train = TensorDataset(torch.tensor([[1.0, 0.1], [2.0, -0.1], [0.1, 1.0], [-0.1, 3.0]]),
                          torch.tensor([[0], [0], [1], [1]]))
    test = TensorDataset(torch.tensor([[5.0, 0.5], [0.2, 4.0], [1.0, 0.2]]), torch.tensor([[0], [1], [1]]))
    return train, test


def test_features_are_unit_norm_with_flat_labels(nb):
    train, _ = toy_sets()
    features, labels = nb.get_features(nn.Identity(), train, torch.device("cpu"))
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(4))
    assert labels.tolist() == [0, 0, 1, 1]


def test_knn_accuracy_on_a_toy_case_with_a_known_answer(nb):
    train, test = toy_sets()
    acc = nb.eval_knn(nn.Identity(), train, test, torch.device("cpu"))
    assert float(acc) == pytest.approx(2 / 3)


def test_knn_uses_cosine_similarity_not_distance(nb):
    # far along the x axis is still "the same direction" as the near x-axis point
    train = TensorDataset(torch.tensor([[0.1, 0.0], [3.0, 3.0]]), torch.tensor([[0], [1]]))
    test = TensorDataset(torch.tensor([[100.0, 0.0]]), torch.tensor([[0]]))
    assert float(nb.eval_knn(nn.Identity(), train, test, torch.device("cpu"))) == 1.0
