"""Part III: local and global views."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("n_global, n_local", [(2, 2), (2, 6), (3, 4), (4, 1)])
def test_every_item_stacks_global_then_local_views(nb, n_global, n_local, seeded):
    dataset = nb.LocalGlobalPathMNIST(num_local=n_local, num_global=n_global)
    for i in range(4):
        views = dataset[i]
        assert isinstance(views, torch.Tensor) and views.dtype == torch.float32
        assert views.shape == (n_global + n_local, 3, 28, 28)


def unnormalize(nb, views):
    norm = nb.LocalGlobalPathMNIST.NORMALIZE
    mean, std = torch.tensor(norm.mean).view(3, 1, 1), torch.tensor(norm.std).view(3, 1, 1)
    return views * std + mean


def test_every_view_is_normalized_exactly_once(nb, seeded):
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=3)
    views = torch.stack([dataset[i] for i in range(16)])  # (images, views, 3, 28, 28)
    for v in range(views.shape[1]):
        pixels = unnormalize(nb, views[:, v])
        # after undoing the normalization, the view is an image in [0, 1] ...
        assert pixels.min() >= -1e-4 and pixels.max() <= 1 + 1e-4, f"view {v} is not normalized exactly once"
        # ... and the view itself is not (it was normalized: darker-than-average pixels are negative)
        assert views[:, v].min() < -0.5, f"view {v} is not normalized"


def test_views_are_augmented_differently_and_reproducibly(nb):
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2)
    torch.manual_seed(1)
    first = dataset[0]
    torch.manual_seed(1)
    again = dataset[0]
    torch.testing.assert_close(first, again)
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(first[a], first[b]), f"views {a} and {b} are identical"


def test_local_views_are_zoomed_in_crops(nb):
    """A crop of 20-80 % of the area resized back to 28x28 is smoother than the whole image."""
    dataset = nb.LocalGlobalPathMNIST(num_local=4, num_global=2)
    torch.manual_seed(0)
    views = unnormalize(nb, torch.stack([dataset[i] for i in range(24)]))

    def roughness(x):  # mean absolute difference between vertically neighbouring pixels
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean()

    assert roughness(views[:, 2:]) < 0.8 * roughness(views[:, 1])  # local views vs global 2 (rarely blurred)


def test_too_few_views_are_refused(nb):
    with pytest.raises(AssertionError):
        nb.LocalGlobalPathMNIST(num_local=0)
    with pytest.raises(AssertionError):
        nb.LocalGlobalPathMNIST(num_global=1)
