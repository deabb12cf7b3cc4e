"""Dense optical flow (OpenCV's DIS), warping, and the forward-backward consistency mask.

Convention: ``flow(a, b)`` returns, for every pixel ``x`` of ``a``, the displacement ``f(x)`` such
that ``a(x) ≈ b(x + f(x))``. So the previous output is brought into the current frame ``t`` with
``warp(previous, flow(frame_t, frame_t-1))``.

The mask follows Ruder, Dosovitskiy & Brox (GCPR 2016, section 3.1): a pixel is reliable when the
backward flow and the forward flow warped back to it cancel out (otherwise it was occluded, or
the flow is wrong), when it is not on a motion boundary (where the flow's gradient is large), and
when its source lies inside the previous frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image

from stylize.video.io import require

FLOW_QUALITIES = ("fast", "medium", "accurate")


def _dis(quality: str) -> Any:
    cv2 = require("cv2")
    if quality not in FLOW_QUALITIES:
        raise ValueError(f"flow quality {quality!r} is not one of {', '.join(FLOW_QUALITIES)}")
    preset = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
              "accurate": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[quality]
    dis = cv2.DISOpticalFlow_create(preset)
    if quality != "fast":  # down to full resolution: endpoint error 0.045 px instead of 0.11 (a 256 px pan)
        dis.setFinestScale(0)
    if quality == "accurate":  # denser patches and more variational refinement: twice the time
        dis.setPatchStride(2)
        dis.setVariationalRefinementIterations(10)
    return dis


def gray(image: PIL.Image.Image | np.ndarray) -> np.ndarray:
    """uint8 luminance of an RGB image (PIL or HxWx3 array in [0, 255] or [0, 1] float)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(require("cv2").cvtColor(array[..., :3], require("cv2").COLOR_RGB2GRAY))


def flow(a: np.ndarray, b: np.ndarray, quality: str = "medium") -> np.ndarray:
    """(H, W, 2) float32 flow with ``a(x) ≈ b(x + f(x))``; ``a`` and ``b`` are uint8 grayscale."""
    if a.shape != b.shape:
        raise ValueError(f"frames of different sizes: {a.shape} and {b.shape}")
    return _dis(quality).calc(a, b, None)


def _coords(flow_field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow_field.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs + flow_field[..., 0], ys + flow_field[..., 1]


def warp(image: np.ndarray, flow_field: np.ndarray) -> np.ndarray:
    """``out(x) = image(x + f(x))`` (bilinear; outside the frame the nearest border pixel)."""
    cv2 = require("cv2")
    map_x, map_y = _coords(flow_field)
    source = np.ascontiguousarray(image.astype(np.float32, copy=False))
    return cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inside(flow_field: np.ndarray) -> np.ndarray:
    """bool (H, W): whether ``x + f(x)`` lies inside the frame."""
    h, w = flow_field.shape[:2]
    map_x, map_y = _coords(flow_field)
    return (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """float32 (H, W) in {0, 1}: 1 where the flow from frame t back to t-1 (``backward``) is reliable.

    ``forward`` is the flow from t-1 to t. Ruder et al.'s tests: disocclusion
    ``|w̃ + w|² > 0.01 (|w̃|² + |w|²) + 0.5`` with ``w̃`` the forward flow warped to frame t, and
    motion boundary ``|∇u|² + |∇v|² > 0.01 |w|² + 0.002``.
    """
    returned = warp(forward, backward)  # forward flow at the point each pixel came from
    w2 = (backward**2).sum(-1)
    consistent = ((returned + backward) ** 2).sum(-1) <= 0.01 * ((returned**2).sum(-1) + w2) + 0.5
    grad = sum(g**2 for c in range(2) for g in np.gradient(backward[..., c]))
    smooth = grad <= 0.01 * w2 + 0.002
    return (consistent & smooth & inside(backward)).astype(np.float32)
