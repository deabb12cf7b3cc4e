"""Clips with a known camera motion made from one photo, so that the true optical flow is known.

A virtual camera looks at the photo: frame ``t`` shows the photo around centre ``c_t`` at ``z_t``
photo pixels per frame pixel (``p = c_t + z_t (x - m)``, ``m`` the frame's centre). A pixel ``x``
of frame ``t`` therefore shows what frame ``t-1`` had at ``(c_t - c_{t-1} + z_t (x - m)) / z_{t-1} + m``,
which gives the exact backward flow. Used by the tests and by ``bench/bench_video.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import PIL.Image

from stylize.video.io import require


@dataclass(frozen=True)
class CameraMotion:
    """Per frame: a pan of ``pan`` frame pixels (x, y) and a zoom by ``zoom`` (> 1 zooms in)."""

    pan: tuple[float, float] = (2.0, 0.5)
    zoom: float = 1.005

    def centre_and_zoom(self, t: int, start: tuple[float, float]) -> tuple[np.ndarray, float]:
        """Frame ``t``'s centre in photo pixels and its photo pixels per frame pixel."""
        z = 1 / self.zoom**t  # zooming in: fewer photo pixels per frame pixel
        centre = np.array(start, np.float64) + np.array(self.pan) * sum(1 / self.zoom**k for k in range(t))
        return centre, z


class CameraClip:
    """``count`` frames of ``size`` (width, height) filmed from ``photo`` by ``motion``."""

    def __init__(self, photo: PIL.Image.Image, size: tuple[int, int], count: int,
                 motion: CameraMotion = CameraMotion()) -> None:
        self.size, self.count, self.motion = size, count, motion
        width, height = size
        # Fit the photo so that the whole path stays inside it with a margin, at about 1:1.
        reach = np.abs(np.array(motion.pan)) * count + np.array([width, height]) * 0.6
        fit = min(photo.width / (2 * reach[0]), photo.height / (2 * reach[1]))
        self.photo = np.asarray(photo.convert("RGB").resize(
            (max(1, round(photo.width / fit)), max(1, round(photo.height / fit))), PIL.Image.Resampling.LANCZOS))
        self.start = ((self.photo.shape[1] - 1) / 2 - motion.pan[0] * count / 2,
                      (self.photo.shape[0] - 1) / 2 - motion.pan[1] * count / 2)

    def _affine(self, t: int) -> np.ndarray:
        centre, z = self.motion.centre_and_zoom(t, self.start)
        mid = (np.array(self.size, np.float64) - 1) / 2
        return np.array([[z, 0, centre[0] - z * mid[0]], [0, z, centre[1] - z * mid[1]]])

    def frame(self, t: int) -> PIL.Image.Image:
        cv2 = require("cv2")
        out = cv2.warpAffine(self.photo, self._affine(t), self.size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
        return PIL.Image.fromarray(out)

    def frames(self) -> Iterator[PIL.Image.Image]:
        for t in range(self.count):
            yield self.frame(t)

    def backward_flow(self, t: int) -> np.ndarray:
        """The true (H, W, 2) flow from frame ``t`` to frame ``t-1``."""
        width, height = self.size
        a_now, a_before = self._affine(t), self._affine(t - 1)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        px = a_now[0, 0] * xs + a_now[0, 2]
        py = a_now[1, 1] * ys + a_now[1, 2]
        bx = (px - a_before[0, 2]) / a_before[0, 0]
        by = (py - a_before[1, 2]) / a_before[1, 1]
        return np.stack([bx - xs, by - ys], -1).astype(np.float32)
