"""Keeps generated frames in the reference photo's colours: per-channel mean and spread matched in Lab.

Autoregressive chunks drift in colour; the published pipeline pulls every decoded frame back to the
reference's Lab statistics (strength 1.0). Works on whole batches of chunks on the GPU.
"""

from __future__ import annotations

import torch

_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_XYZ_TO_RGB = (
    (3.2404542, -1.5371385, -0.4985314),
    (-0.9692660, 1.8760108, 0.0415560),
    (0.0556434, -0.2040259, 1.0572252),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856
_KAPPA = 903.3


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], channels last -> CIE Lab (D65), channels last."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ torch.tensor(_RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device).T
    xyz = (xyz / torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device)).clamp(1e-8, 1.0)
    f = torch.where(xyz > _EPSILON, xyz ** (1 / 3), (_KAPPA * xyz + 16) / 116)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65), channels last -> sRGB clamped to [0, 1]."""
    lightness, a, b = lab.unbind(-1)
    fy = (lightness + 16) / 116
    fx, fz = a / 500 + fy, fy - b / 200
    x = torch.where(fx**3 > _EPSILON, fx**3, (116 * fx - 16) / _KAPPA)
    y = torch.where(lightness > _KAPPA * _EPSILON, fy**3, lightness / _KAPPA)
    z = torch.where(fz**3 > _EPSILON, fz**3, (116 * fz - 16) / _KAPPA)
    xyz = torch.stack([x, y, z], dim=-1) * torch.tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device)
    linear = xyz @ torch.tensor(_XYZ_TO_RGB, dtype=lab.dtype, device=lab.device).T
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def reference_stats(reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab mean and std of reference pictures (B, 3, 1, H, W) in [-1, 1], each (B, 1, 1, 1, 3)."""
    lab = rgb_to_lab(((reference.float() + 1) / 2).permute(0, 2, 3, 4, 1))
    return lab.mean(dim=(2, 3), keepdim=True), lab.std(dim=(2, 3), keepdim=True, unbiased=False)


def match_colours(video: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor], strength: float = 1.0) -> torch.Tensor:
    """Video (B, 3, T, H, W) in [-1, 1] with each frame's Lab mean/std moved to the reference's.

    Computed in float32 whatever the video's dtype: the published match runs in the video's (bf16 on a GPU),
    which is less accurate. Input outside [-1, 1] (the raw decoder output) is fine; the output is clamped.
    """
    ref_mean, ref_std = stats
    rgb = ((video.float() + 1) / 2).permute(0, 2, 3, 4, 1)
    lab = rgb_to_lab(rgb)
    mean = lab.mean(dim=(2, 3), keepdim=True)
    std = lab.std(dim=(2, 3), keepdim=True, unbiased=False)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    corrected = lab_to_rgb((lab - mean) * (ref_std / std) + ref_mean)
    blended = (1 - strength) * rgb + strength * corrected
    return (blended * 2 - 1).permute(0, 4, 1, 2, 3).to(video.dtype)
