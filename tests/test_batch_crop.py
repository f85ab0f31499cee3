"""The batched random resized crop against torchvision: its boxes are distributed as
``RandomResizedCrop.get_params`` draws them (fallback included), its pixels are those of a plain
resize, of ``resized_crop`` and of ``roi_align``, and of PIL's bicubic crop within interpolation
tolerance; it is a pure function of its generator and never waits for the device."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.ops import roi_align
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from bench.syncs import HostSyncCounter
from solo_cjepa.batch_crop import BatchRandomResizedCrop, crop_boxes, resized_crops

IJEPA = {"scale": (0.3, 1.0), "ratio": (3 / 4, 4 / 3)}


def _torchvision_boxes(n, height, width, scale, ratio):
    torch.manual_seed(0)
    image = torch.zeros(1, height, width)
    return torch.tensor(
        [RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)],
        dtype=torch.float32,
    )


def _ours(n, height, width, scale, ratio, seed=0):
    return crop_boxes(n, height, width, scale, ratio, torch.Generator().manual_seed(seed))


def _summary(boxes, height, width):
    """Mean, standard deviation and range of the area share and log aspect ratio, mean and
    standard deviation of the centre, and the share of boxes that are the whole image."""
    top, left, h, w = boxes.unbind(1)
    share, log_aspect = h * w / (height * width), (w / h).log()
    whole = ((h == height) & (w == width)).float().mean()
    return {
        "share": [share.mean(), share.std(), share.min(), share.max()],
        "log aspect": [log_aspect.mean(), log_aspect.std()],
        "log aspect range": [log_aspect.min(), log_aspect.max()],  # rounding widens the range
        "centre, px": [(top + h / 2).mean(), (top + h / 2).std(), (left + w / 2).mean()],
        "whole image": [whole],
    }


# Six standard errors of torchvision's 4000 draws, at least (a ratio drawn uniformly instead of
# log-uniformly moves the mean log aspect ratio by 0.028).
TOLERANCES = {
    "share": 0.01,
    "log aspect": 0.015,
    "log aspect range": 0.05,
    "centre, px": 0.25,
    "whole image": 0.03,
}


@pytest.mark.parametrize(
    "height, width, scale, ratio",
    [
        (28, 28, *IJEPA.values()),  # the Fashion-MNIST recipe
        (32, 24, (0.08, 1.0), (3 / 4, 4 / 3)),  # solo's default scale on a tall image
        (28, 28, (0.8, 1.0), (0.5, 2.0)),  # about a tenth fall back to the whole image
    ],
)
def test_boxes_are_distributed_as_torchvision_draws_them(height, width, scale, ratio):
    ours = _ours(20_000, height, width, scale, ratio)
    theirs = _torchvision_boxes(4_000, height, width, scale, ratio)
    top, left, h, w = ours.unbind(1)
    assert torch.equal(ours, ours.round()) and (h >= 1).all() and (w >= 1).all()
    assert (top >= 0).all() and (top + h <= height).all()
    assert (left >= 0).all() and (left + w <= width).all()
    mine, reference = _summary(ours, height, width), _summary(theirs, height, width)
    for key, tolerance in TOLERANCES.items():
        for a, b in zip(mine[key], reference[key]):
            assert abs(float(a) - float(b)) < tolerance, (key, mine[key], reference[key])


def test_no_fitting_attempt_gives_torchvision_centre_crop():
    # areas of 90-100 % at ratios 3-4 never fit a square: the centre crop at ratio 3
    scale, ratio = (0.9, 1.0), (3.0, 4.0)
    expected = _torchvision_boxes(1, 28, 28, scale, ratio)[0]
    assert expected.tolist() == [9, 0, 9, 28]
    assert (_ours(64, 28, 28, scale, ratio) == expected).all()


def test_full_box_is_a_plain_resize():
    images = torch.rand(3, 2, 12, 10)
    full = torch.tensor([[0.0, 0.0, 12.0, 10.0]]).expand(3, 4)
    for mode in ("bilinear", "bicubic"):
        expected = F.interpolate(images, size=(28, 28), mode=mode, align_corners=False)
        assert torch.allclose(resized_crops(images, full, 28, mode=mode), expected, atol=1e-5)


def test_a_box_gives_the_pixels_of_crop_then_resize_and_of_roi_align():
    images = torch.rand(2, 3, 28, 28)
    boxes = torch.tensor([[5.0, 3.0, 14.0, 17.0], [0.0, 9.0, 28.0, 19.0]])
    ours = resized_crops(images, boxes, 28, mode="bilinear")
    for image, box, crop in zip(images, boxes.int().tolist(), ours):
        expected = TF.resized_crop(
            image, *box, [28, 28], InterpolationMode.BILINEAR, antialias=False
        )
        # the outermost output pixels sample just outside the box: the image's own pixels here,
        # the box's edge pixel repeated after a crop
        assert torch.allclose(crop[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1], atol=1e-5)
    top, left, h, w = boxes.unbind(1)
    rois = torch.stack([torch.arange(2.0), left, top, left + w, top + h], dim=1)
    expected = roi_align(images, rois, 28, sampling_ratio=1, aligned=True)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_flip_mirrors_the_crop():
    images = torch.rand(2, 1, 28, 28)
    boxes = torch.tensor([[5.0, 3.0, 14.0, 17.0], [2.0, 1.0, 20.0, 25.0]])
    flip = torch.tensor([True, False])
    flipped = resized_crops(images, boxes, 28, flip)
    plain = resized_crops(images, boxes, 28)
    assert torch.allclose(flipped[0], plain[0].flip(-1), atol=1e-5)
    assert torch.equal(flipped[1], plain[1])


def test_bicubic_crops_match_pil_within_interpolation_tolerance():
    """The same boxes through PIL's bicubic crop (solo's per-image path): grid_sample's cubic
    kernel (a = -0.75) is a little sharper than PIL's (a = -0.5), and PIL rounds to uint8."""
    rng = np.random.default_rng(0)
    # flat patches with sharp edges, like clothes on a black background
    images = rng.integers(0, 256, (64, 7, 7), dtype=np.uint8).repeat(4, 1).repeat(4, 2)
    boxes = _ours(64, 28, 28, *IJEPA.values())
    ours = resized_crops(torch.from_numpy(images).unsqueeze(1).float(), boxes, 28).clamp(0, 255)
    pil = torch.stack(
        [
            TF.pil_to_tensor(
                TF.resized_crop(Image.fromarray(image), *box, [28, 28], InterpolationMode.BICUBIC)
            )
            for image, box in zip(images, boxes.int().tolist())
        ]
    )
    assert (ours - pil).abs().mean() < 3  # grey levels of 255


def _crop(**kwargs) -> BatchRandomResizedCrop:
    return BatchRandomResizedCrop(28, **IJEPA, mean=[0.286] * 3, std=[0.353] * 3, **kwargs)


def test_normalised_output_of_a_grey_batch_has_three_equal_channels():
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    crops = _crop(flip_prob=0.5)(images, torch.Generator().manual_seed(0))
    assert crops.shape == (16, 3, 28, 28) and crops.dtype == torch.float32
    assert torch.equal(crops[:, 0], crops[:, 1]) and torch.equal(crops[:, 0], crops[:, 2])
    low, high = (0 - 0.286) / 0.353, (1 - 0.286) / 0.353
    assert crops.min() >= low - 1e-5 and crops.max() <= high + 1e-5  # ToTensor's 0-1, normalised


@pytest.mark.parametrize("flip_prob", [0.0, 0.3])
def test_crops_are_flipped_with_their_probability(flip_prob):
    # brighter to the right: a crop is flipped where its left edge is the brighter one
    ramp = (torch.arange(28, dtype=torch.uint8) * 9).expand(4000, 1, 28, 28)
    crops = _crop(flip_prob=flip_prob)(ramp, torch.Generator().manual_seed(0))
    flipped = (crops[:, 0, :, 0] > crops[:, 0, :, -1]).all(dim=1)
    assert abs(float(flipped.float().mean()) - flip_prob) < 0.03


def test_same_generator_seed_same_crops_other_seed_other_crops():
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    crop = _crop(flip_prob=0.5)
    first, again, other = (crop(images, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_the_host_never_waits_for_the_device():
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    with HostSyncCounter() as counter:
        _crop(flip_prob=0.5)(images, torch.Generator().manual_seed(0))
    assert counter.total == 0, counter.calls


def test_interpolation_is_checked():
    with pytest.raises(ValueError, match="interpolation"):
        _crop(interpolation="lanczos")
