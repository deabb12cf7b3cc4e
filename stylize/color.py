"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer").

Two ways to keep the photo's palette while taking the artwork's brush work:

``luminance``
    Style transfer on the luminance channel only. The content and the style are turned into
    grey images (the Y of YIQ, as in the paper); the style's luminance is shifted and scaled
    so that its mean and standard deviation equal the content's; after stylizing, the result's
    luminance is recombined with the content's I and Q (chroma) channels.

``histogram``
    Before stylizing, the style image's colours are moved by an affine map
    ``x' = A (x - mu_s) + mu_c`` so that their mean and covariance equal the content's (the
    paper's linear colour transfer). ``A = Sigma_c^1/2 Sigma_s^-1/2`` with symmetric matrix
    square roots (the paper's "Image Analogies" variant, which it found to work best; a
    Cholesky variant is available too).

:class:`ColorControl` applies either mode around a run: ``content``/``style`` prepare the
inputs, ``finish`` post-processes the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from stylize.imageio import image_to_tensor, tensor_to_image
from stylize.options import PRESERVE_COLOR_MODES

# RGB -> YIQ (NTSC 1953, as used by Gatys et al. 2016); rows give Y, I, Q.
_RGB_TO_YIQ = np.array([
    [0.299, 0.587, 0.114],
    [0.595716, -0.274453, -0.321263],
    [0.211456, -0.522591, 0.311135],
])
# RGB -> YCbCr (ITU-R BT.601, full range, values in [0, 1] with chroma centred on 0.5); used
# to *measure* chroma, independently of the YIQ the method works in.
_RGB_TO_YCBCR = np.array([
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
])
_EPS = 1e-5


def _apply(matrix: np.ndarray, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix to (N, 3, H, W) or (3, H, W) images."""
    m = torch.as_tensor(matrix, dtype=image.dtype, device=image.device)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) RGB in [0, 1] -> YIQ (Y in [0, 1], I and Q centred on 0)."""
    return _apply(_RGB_TO_YIQ, rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yiq` (not clamped)."""
    return _apply(np.linalg.inv(_RGB_TO_YIQ), yiq)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) RGB in [0, 1] -> YCbCr in [0, 1] (BT.601 full range)."""
    out = _apply(_RGB_TO_YCBCR, rgb)
    offset = torch.tensor([0.0, 0.5, 0.5], dtype=out.dtype, device=out.device).view(3, 1, 1)
    return out + offset


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """The Y channel, shape (…, 1, H, W)."""
    return rgb_to_yiq(rgb)[..., :1, :, :]


def grey(y: torch.Tensor) -> torch.Tensor:
    """A one-channel luminance as a 3-channel grey RGB image."""
    return y.expand(*y.shape[:-3], 3, *y.shape[-2:]).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale ``style_y`` so that its mean and std equal ``content_y``'s."""
    s_mean, s_std = style_y.mean(), style_y.std()
    c_mean, c_std = content_y.mean(), content_y.std()
    return (style_y - s_mean) * (c_std / s_std.clamp_min(_EPS)) + c_mean


def recombine(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylized`` with the chroma (I, Q) of ``content`` -> RGB in [0, 1]."""
    out = rgb_to_yiq(content.to(stylized.dtype))
    out = torch.cat([luminance(stylized.clamp(0, 1)), out[..., 1:, :, :]], dim=-3)
    return yiq_to_rgb(out).clamp(0, 1)


def color_stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (3,) and covariance (3, 3) of an (…, 3) array of RGB values."""
    flat = pixels.reshape(-1, 3).astype(np.float64)
    return flat.mean(axis=0), np.cov(flat, rowvar=False)


def _sym_sqrt(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, _EPS, None)
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def color_transfer_matrix(style_cov: np.ndarray, content_cov: np.ndarray, method: str = "sqrt") -> np.ndarray:
    """``A`` with ``A style_cov Aᵀ = content_cov``: symmetric square roots or Cholesky factors."""
    reg = np.eye(3) * _EPS
    if method == "sqrt":
        return _sym_sqrt(content_cov + reg) @ _sym_sqrt(style_cov + reg, inverse=True)
    if method == "cholesky":
        return np.linalg.cholesky(content_cov + reg) @ np.linalg.inv(np.linalg.cholesky(style_cov + reg))
    raise ValueError(f"unknown colour transfer method {method!r}; choose sqrt or cholesky")


def match_color_histogram(style: PIL.Image.Image, content: PIL.Image.Image, method: str = "sqrt") -> PIL.Image.Image:
    """The style image with its colours' mean and covariance moved to the content's.

    Values are clipped to [0, 255] at the end (for most pairs a few pixels at most).
    """
    s = np.asarray(style.convert("RGB"), dtype=np.float64) / 255.0
    c = np.asarray(content.convert("RGB"), dtype=np.float64) / 255.0
    s_mean, s_cov = color_stats(s)
    c_mean, c_cov = color_stats(c)
    a = color_transfer_matrix(s_cov, c_cov, method)
    out = (s.reshape(-1, 3) - s_mean) @ a.T + c_mean
    out = np.clip(np.rint(out.reshape(s.shape) * 255.0), 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(out, "RGB")


@dataclass
class ColorControl:
    """Prepares a run's images for one ``--preserve-color`` mode and post-processes its result.

    ``content_image`` is the (full-size) content photo whose colours are kept.
    """

    mode: str
    content_image: PIL.Image.Image

    def __post_init__(self) -> None:
        if self.mode not in PRESERVE_COLOR_MODES:
            raise ValueError(f"unknown colour mode {self.mode!r}; choose {', '.join(PRESERVE_COLOR_MODES)}")
        self._content_y = luminance(image_to_tensor(self.content_image))

    def content(self) -> PIL.Image.Image:
        """The content image the optimizer works on (grey in luminance mode)."""
        if self.mode != "luminance":
            return self.content_image
        return tensor_to_image(grey(self._content_y))

    def style(self, style: PIL.Image.Image) -> PIL.Image.Image:
        """A style image prepared for this mode."""
        if self.mode == "histogram":
            return match_color_histogram(style, self.content_image)
        if self.mode == "luminance":
            y = match_luminance(luminance(image_to_tensor(style)), self._content_y)
            return tensor_to_image(grey(y))
        return style

    def finish(self, image: torch.Tensor) -> torch.Tensor:
        """The optimizer's output (N, 3, H, W) -> the final image (luminance: content chroma put back)."""
        if self.mode != "luminance":
            return image
        height, width = image.shape[-2:]
        content = self.content_image
        if content.size != (width, height):
            content = content.resize((width, height), PIL.Image.Resampling.LANCZOS)
        return recombine(image, image_to_tensor(content, image.device))


__all__ = [
    "ColorControl", "color_stats", "color_transfer_matrix", "grey", "luminance",
    "match_color_histogram", "match_luminance", "recombine", "rgb_to_ycbcr", "rgb_to_yiq", "yiq_to_rgb",
]
