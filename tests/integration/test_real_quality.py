"""What users see, with the real offline VGG-16 at 128 px and every default: the photo is kept.

The quality issue's content bound: the SSIM of luminance against the photo (bench/quality_metrics.py,
the benchmark's own score) stays at or above its target of 0.45 on two test pairs, and the structure
term (the photo's self-similarity) is part of why: without it the same runs keep less of the photo.
Measured with these defaults (128 px, seed 0): Golden Gate x Starry Night 0.639, canal x Kandinsky
0.805 (0.736 without the structure term), forest x Great Wave 0.586 (0.548 without); Golden Gate
x Starry Night gains only 0.006 from the term since block 4's style is off by default (it gained
0.050 with block 4 at 0.5), so it is not among the structure term's cases.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image

from stylize import transfer
from stylize.backbone import Backbone

pytest.importorskip("skimage", reason="the bench extra (scikit-image) is not installed")

from bench import quality_metrics as qm  # noqa: E402

pytestmark = pytest.mark.integration

SIZE = 128
PAIRS = [
    ("content/coast_golden_gate_fog.jpg", "style/van_gogh_starry_night.jpg"),
    ("content/street_canal_colorful_houses.jpg", "style/kandinsky_composition_vii.jpg"),
]
STRUCTURE_PAIRS = [
    ("content/street_canal_colorful_houses.jpg", "style/kandinsky_composition_vii.jpg"),
    ("content/forest_stream.jpg", "style/hokusai_great_wave.jpg"),
]
SSIM_TARGET = 0.45  # the quality issue's median target, here asked of each pair


@pytest.mark.parametrize(("content_name", "style_name"), PAIRS, ids=[p[0].split("/")[1][:-4] for p in PAIRS])
def test_the_defaults_keep_the_photo(real_vgg16: Backbone, small_image: Callable[[str, int], Image.Image],
                                     content_name: str, style_name: str) -> None:
    content = small_image(content_name, SIZE)
    style = small_image(style_name, 256)
    kept = transfer(content, style, backbone=real_vgg16, size=SIZE, seed=0)
    assert qm.ssim(kept.image, content) >= SSIM_TARGET


@pytest.mark.parametrize(("content_name", "style_name"), STRUCTURE_PAIRS,
                         ids=[p[0].split("/")[1][:-4] for p in STRUCTURE_PAIRS])
def test_the_structure_term_keeps_more_of_the_photo(real_vgg16: Backbone,
                                                    small_image: Callable[[str, int], Image.Image],
                                                    content_name: str, style_name: str) -> None:
    content = small_image(content_name, SIZE)
    style = small_image(style_name, 256)
    kept = transfer(content, style, backbone=real_vgg16, size=SIZE, seed=0)
    without = transfer(content, style, backbone=real_vgg16, size=SIZE, seed=0, structure_weight=0.0)
    assert qm.ssim(kept.image, content) > qm.ssim(without.image, content) + 0.02
