"""The batched views of the fast path (dinocourse/views.py): each part equals torchvision's transform, and the views
have the statistics the graders require of a student's LocalGlobalPathMNIST (per kind of view)."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision import transforms
from torchvision.transforms import functional as TF

from dinocourse import views as V
from dinocourse.data import SAMPLE_DIR


def images(n=6, seed=0):
    return torch.rand(n, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_color_parts_equal_torchvision_per_image():
    x = images()
    factors = torch.linspace(0.6, 1.4, len(x))
    hue = torch.linspace(-0.1, 0.1, len(x))
    for name, ours, theirs in [
        ("brightness", V._blend(x, torch.zeros_like(x), factors), TF.adjust_brightness),
        ("contrast", V._blend(x, V._grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factors), TF.adjust_contrast),
        ("saturation", V._blend(x, V._grayscale(x), factors), TF.adjust_saturation),
    ]:
        expected = torch.stack([theirs(x[i], float(factors[i])) for i in range(len(x))])
        torch.testing.assert_close(ours, expected, msg=name)
    expected = torch.stack([TF.adjust_hue(x[i], float(hue[i])) for i in range(len(x))])
    torch.testing.assert_close(V._adjust_hue(x, hue), expected, atol=1e-5, rtol=0)


def test_blur_equals_torchvision_with_the_same_sigma():
    x = images()
    torch.manual_seed(3)
    ours = V.gaussian_blur(x, V.GLOBAL1, p=1.0)
    torch.manual_seed(3)
    torch.rand(len(x))  # the draw of which images are blurred
    sigma = torch.empty(len(x)).uniform_(*V.GLOBAL1.blur_sigma)
    expected = torch.stack([TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2) for i in range(len(x))])
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_resized_crop_equals_torchvision_for_any_box():
    x = images(4)
    boxes = torch.tensor([[3.0, 5.0, 10.0, 14.0], [0.0, 0.0, 28.0, 28.0], [20.0, 1.0, 8.0, 27.0], [0, 27, 28, 1]])
    expected = torch.stack([TF.resized_crop(x[i], *[int(v) for v in boxes[i]], [28, 28], antialias=True)
                            for i in range(len(x))])
    torch.testing.assert_close(V.resized_crop(x, boxes, 28), expected, atol=1e-5, rtol=0)


def test_crop_boxes_are_inside_and_sized_like_torchvision():
    torch.manual_seed(0)
    boxes = V.crop_boxes(20000, 28, 28, V.LOCAL.crop_scale, V.LOCAL.crop_ratio, "cpu")
    top, left, h, w = boxes.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all() and (top + h <= 28).all() and (left + w <= 28).all())
    theirs = torch.tensor([transforms.RandomResizedCrop.get_params(torch.zeros(3, 28, 28), V.LOCAL.crop_scale,
                                                                   V.LOCAL.crop_ratio) for _ in range(20000)]).float()
    for column, name in [(2, "height"), (3, "width")]:
        assert abs(float(boxes[:, column].mean()) - float(theirs[:, column].mean())) < 0.15, name
        assert abs(float(boxes[:, column].std()) - float(theirs[:, column].std())) < 0.15, name
    assert abs(float((h * w).mean()) - float((theirs[:, 2] * theirs[:, 3]).mean())) < 4


def test_solarize_flips_and_jitter_probabilities():
    torch.manual_seed(0)
    x = torch.full((4000, 3, 2, 2), 0.75)
    solarized = V.solarize(x, 0.5, 0.2)
    assert abs(float((solarized[:, 0, 0, 0] == 0.25).float().mean()) - 0.2) < 0.03
    ramp = torch.arange(4.0).view(1, 1, 2, 2).expand(4000, 3, 2, 2) / 4
    flipped = V.random_flips(ramp, 0.5)
    corner = flipped[:, 0, 0, 0]  # 0 unflipped, 0.25 horizontal, 0.5 vertical, 0.75 both
    for value in (0.0, 0.25, 0.5, 0.75):
        assert abs(float((corner == value).float().mean()) - 0.25) < 0.03
    jittered = V.color_jitter(torch.full((4000, 3, 4, 4), 0.5), V.GLOBAL1)
    changed = (jittered != 0.5).flatten(1).any(dim=1).float().mean()
    assert abs(float(changed) - 0.8) < 0.03


@pytest.fixture(scope="module")
def reference_values(dino):
    return json.loads((dino.graders_dir / "reference_values.json").read_text())["local_global_dataset"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_views_have_the_statistics_the_graders_require(nb, reference_values, seed):
    """The graders' own statistics test, applied to the batched views of the same 256 sample images."""
    from importlib import import_module

    cases = import_module("autograder.graders.01_dino.cases")
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR)
    norm = dataset.NORMALIZE
    torch.manual_seed(seed)
    views = V.BatchedViews(2, 2, norm.mean, norm.std)(V.dataset_images(dataset)[:cases.VIEW_IMAGES])
    assert views.shape == (cases.VIEW_IMAGES, 4, 3, 28, 28) and views.dtype == torch.float32
    stats = V.view_statistics(cases.unnormalize(views, norm))
    for kind, per_stat in reference_values.items():
        for stat, ref in per_stat.items():
            assert abs(stats[kind][stat] - ref["mean"]) <= ref["tolerance"], (kind, stat, stats[kind][stat], ref)


def test_compare_views_accepts_the_solution_and_refuses_a_wrong_pipeline(nb):
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR)
    agree, table = V.compare_views(dataset)
    assert agree, table
    dataset.global2 = dataset.global1  # a student who forgot the solarization of global 2
    agree, table = V.compare_views(dataset)
    assert not agree and "global 2  solarized" in table and "differ" in table


def test_compare_views_leaves_the_random_state_as_it_was(nb):
    dataset = nb.LocalGlobalPathMNIST(num_local=2, num_global=2, root=SAMPLE_DIR)
    torch.manual_seed(5)
    V.compare_views(dataset, n_images=8)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))


def test_loader_yields_dataloader_shaped_batches_and_drops_the_last_partial_one(nb):
    dataset = nb.subset(nb.LocalGlobalPathMNIST(num_local=3, num_global=3, root=SAMPLE_DIR), 50)
    norm = nb.LocalGlobalPathMNIST.NORMALIZE
    loader = V.BatchedViewLoader(V.dataset_images(dataset), 16, 3, 3, norm.mean, norm.std)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    assert {tuple(b.shape) for b in batches} == {(16, 6, 3, 28, 28)}
    # the images behind the subset, in its order
    first = dataset.indices[0]
    assert torch.equal(V.dataset_images(dataset)[0], torch.from_numpy(dataset.dataset.imgs[first]))


def test_loader_refuses_images_that_are_not_uint8_hwc():
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, H, W, 3\), got torch.float32"):
        V.BatchedViewLoader(torch.zeros(4, 3, 28, 28), 2, 2, 2, (0.5,) * 3, (0.2,) * 3)
