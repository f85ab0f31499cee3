"""Random resized crops of a whole batch in one call on the batch's device: torchvision's
``RandomResizedCrop`` parameters drawn for every image at once from a ``torch.Generator``, then
crop, resize, optional horizontal flip and normalisation as one ``grid_sample`` and one affine map.
"""

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# grid_sample's interpolations, by torchvision's InterpolationMode value.
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# torchvision's RandomResizedCrop.get_params: tries before the centre-crop fallback.
ATTEMPTS = 10


def crop_boxes(
    batch_size: int,
    height: int,
    width: int,
    scale: Tuple[float, float],
    ratio: Tuple[float, float],
    generator: torch.Generator,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """``[B, 4]`` boxes ``(top, left, h, w)`` in whole pixels, each drawn as
    ``RandomResizedCrop.get_params`` draws one: area share uniform in ``scale``, aspect ratio
    log-uniform in ``ratio``, the first of 10 attempts that fits the image, else the centre crop
    at the nearest allowed ratio; the corner uniform over the positions that fit. All attempts of
    all images are drawn at once, so the host never waits for the device."""
    shape = (batch_size, ATTEMPTS)
    area = height * width * torch.empty(shape, device=device).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(shape, device=device)
    aspect = log_ratio.uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    w, h = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(dim=1, keepdim=True)  # the first fitting attempt (0 if none fits)
    found = fits.any(dim=1)

    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = round(height * max(ratio)), height
    else:
        fallback_w, fallback_h = width, height
    w = torch.where(found, w.gather(1, first).squeeze(1), fallback_w)
    h = torch.where(found, h.gather(1, first).squeeze(1), fallback_h)
    # randint(0, height - h + 1) with a bound per image
    corner = torch.rand((2, batch_size), device=device, generator=generator)
    top = torch.where(found, (corner[0] * (height - h + 1)).floor(), (height - fallback_h) // 2)
    left = torch.where(found, (corner[1] * (width - w + 1)).floor(), (width - fallback_w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def resized_crops(
    images: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    flip: Optional[torch.Tensor] = None,
    mode: str = "bicubic",
) -> torch.Tensor:
    """``[B, C, size, size]``: each image's box resized to ``size`` px, mirrored left-right where
    ``flip`` ``[B]`` is true. Output pixels sample the image at the centres of a ``size`` x
    ``size`` grid laid over the box (``align_corners=False``, as ``resize`` of the cropped box, and
    ``roi_align(aligned=True, sampling_ratio=1)`` for bilinear); where a tap falls outside the
    image the edge pixel is repeated. ``images`` must be floating point."""
    _, _, height, width = images.shape
    top, left, h, w = boxes.to(images.dtype).unbind(dim=1)
    centres = (torch.arange(size, device=images.device, dtype=images.dtype) + 0.5) / size
    ys = top[:, None] + centres * h[:, None] - 0.5
    xs = left[:, None] + centres * w[:, None] - 0.5
    if flip is not None:
        xs = torch.where(flip[:, None], xs.flip(1), xs)
    # pixel centres -> grid_sample's [-1, 1] (align_corners=False)
    gy, gx = (2 * ys + 1) / height - 1, (2 * xs + 1) / width - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=False)


class BatchRandomResizedCrop(nn.Module):
    def __init__(
        self,
        size: int,
        scale: Tuple[float, float],
        ratio: Tuple[float, float],
        mean: Sequence[float],
        std: Sequence[float],
        flip_prob: float = 0.0,
        interpolation: str = "bicubic",
    ):
        """``RandomResizedCrop(size, scale, ratio, interpolation)``, ``RandomHorizontalFlip(
        flip_prob)``, ``ToTensor()`` and ``Normalize(mean, std)`` for a batch of uint8 images.

        The normalisation constants are buffers, so ``.to(device)`` moves them with no copy from
        the host at each call.
        """
        super().__init__()
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be in {INTERPOLATIONS}, got {interpolation!r}")
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)
        self.flip_prob, self.interpolation = flip_prob, interpolation
        mean_, std_ = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (mean, std))
        # ToTensor's 1/255 and Normalize as one affine map of the 0-255 values
        self.register_buffer("gain", 1 / (255 * std_), persistent=False)
        self.register_buffer("offset", -mean_ / std_, persistent=False)

    def forward(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Normalised float crops ``[B, C', size, size]`` of uint8 ``images`` ``[B, C, H, W]`` on
        the generator's device; a grey batch (``C = 1``) comes out with as many equal channels as
        the normalisation has, as PIL's ``convert("RGB")`` copies grey to three channels."""
        batch_size, _, height, width = images.shape
        device = images.device
        boxes = crop_boxes(batch_size, height, width, self.scale, self.ratio, generator, device)
        flip = None
        if self.flip_prob > 0:
            flip = torch.rand(batch_size, device=device, generator=generator) < self.flip_prob
        crops = resized_crops(images.float(), boxes, self.size, flip, self.interpolation)
        # bicubic overshoots; PIL's uint8 result is clipped to 0-255
        return crops.clamp(0, 255) * self.gain + self.offset

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={tuple(round(r, 4) for r in self.ratio)}"
            f", interpolation={self.interpolation}, flip_prob={self.flip_prob}"
        )
