"""Part III: local and global views (shapes, normalization, randomness, crops, statistics of the augmentations)."""

from __future__ import annotations

import pytest
import torch

from autograder.runtime.checks import expect, fail
from dinocourse.data import SAMPLE_DIR

from .cases import VIEW_IMAGES, unnormalize, view_statistics


def views_of(ns, n_images=16, **kwargs):
    dataset = ns.LocalGlobalPathMNIST(root=SAMPLE_DIR, **kwargs)
    return torch.stack([dataset[i] for i in range(n_images)])


@pytest.mark.parametrize("n_global, n_local", [(2, 2), (2, 6), (3, 4), (4, 1)])
def test_every_item_stacks_global_then_local_views(ns, n_global, n_local):
    """Every item is a float tensor of shape (num_global + num_local, 3, 28, 28)"""
    dataset = ns.LocalGlobalPathMNIST(num_local=n_local, num_global=n_global, root=SAMPLE_DIR)
    for i in range(3):
        views = dataset[i]
        expect(isinstance(views, torch.Tensor), f"num_global={n_global}, num_local={n_local}: expected a tensor, "
               f"got {type(views).__name__}", "Stack the views with torch.stack")
        expect(tuple(views.shape) == (n_global + n_local, 3, 28, 28), f"num_global={n_global}, num_local="
               f"{n_local}: expected shape {(n_global + n_local, 3, 28, 28)}, got {tuple(views.shape)}")
        expect(views.dtype == torch.float32, f"expected float32 views, got {views.dtype}")


def test_every_view_is_normalized_exactly_once(ns):
    """Every view is normalized once (undoing NORMALIZE gives pixels in [0, 1])"""
    views = views_of(ns, num_local=2, num_global=3)
    for v in range(views.shape[1]):
        pixels = unnormalize(views[:, v], ns.LocalGlobalPathMNIST.NORMALIZE)
        expect(float(pixels.min()) >= -1e-3 and float(pixels.max()) <= 1 + 1e-3, f"view {v}: after undoing "
               f"NORMALIZE, expected pixels in [0, 1], got [{float(pixels.min()):.3f}, {float(pixels.max()):.3f}]",
               "Convert with ToTensor first and apply NORMALIZE exactly once, as the last step of every view")
        expect(float(views[:, v].min()) < -0.5, f"view {v} is not normalized", "Apply NORMALIZE to every view")


def test_views_differ_and_are_reproducible_with_a_seed(ns):
    """The views of an image all differ, and torch.manual_seed reproduces them"""
    dataset = ns.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR)
    torch.manual_seed(1)
    first = dataset[0]
    torch.manual_seed(1)
    again = dataset[0]
    expect(torch.equal(first, again), "the same seed gave different views",
           "Use torch's random number generator (torchvision transforms do) for every random choice")
    for a in range(4):
        for b in range(a + 1, 4):
            expect(not torch.allclose(first[a], first[b]), f"views {a} and {b} of an image are identical",
                   "Apply the augmentation separately for every view")


def test_local_views_are_zoomed_in_crops(ns):
    """Local views are crops of 20-80 % of the image resized to 28x28 (smoother than global 2)"""
    views = unnormalize(views_of(ns, 24, num_local=4, num_global=2), ns.LocalGlobalPathMNIST.NORMALIZE)

    def roughness(x):
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean())

    local, global2 = roughness(views[:, 2:]), roughness(views[:, 1])
    expect(local < 0.8 * global2, f"local views are about as rough as the global ones ({local:.3f} vs "
           f"{global2:.3f}): they do not look zoomed in", "Use RandomResizedCrop(28, scale=(0.2, 0.8))")


@pytest.fixture(scope="module")
def statistics(ns, solution):
    return view_statistics(ns, 0, solution.LocalGlobalPathMNIST.NORMALIZE)


@pytest.mark.parametrize("kind", ["global 1", "global 2", "local"])
def test_augmentation_statistics_match_the_reference(values, statistics, kind):
    """Brightness, roughness and share of solarized views match the reference's augmentations"""
    got = statistics[kind]
    hints = {"brightness": "Check color jitter, solarization and the normalization",
             "roughness": "Check the Gaussian blur (global 1 always, global 2 10 %, local 50 %) and the crop",
             "solarized": "Solarize (threshold 0.5 on [0, 1]) global 2 views only, with probability 0.2"}
    for stat, ref in values[kind].items():
        if abs(got[stat] - ref["mean"]) > ref["tolerance"]:
            fail(f"{kind} views, {stat} over {VIEW_IMAGES} images: expected {ref['mean']:.3f} ± "
                 f"{ref['tolerance']:.3f}, got {got[stat]:.3f}", hints[stat])


def test_too_few_views_are_refused(ns):
    """num_local < 1 or num_global < 2 is refused with an AssertionError"""
    for kwargs in (dict(num_local=0), dict(num_global=1)):
        try:
            ns.LocalGlobalPathMNIST(root=SAMPLE_DIR, **kwargs)
        except AssertionError:
            continue
        fail(f"LocalGlobalPathMNIST({kwargs}) was accepted", "Keep the assertions at the top of __init__")
