"""``stylize video`` and :func:`stylize.video.video`: clip I/O, the per-frame loop, resuming, the CLI.

Every clip is made by the tests (a real photo of tests/data filmed by a known pan and zoom,
:mod:`stylize.video.synthetic`), written and read back through PyAV. The tiny random network
stands in for VGG (milliseconds per step).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from stylize import StopTransfer, transfer  # noqa: E402
from stylize.backbone import Backbone, tiny_backbone  # noqa: E402
from stylize.cli import main as cli_main  # noqa: E402
from stylize.errors import InputError, OptionError, OutputError  # noqa: E402
from stylize.video import FrameProgress, video  # noqa: E402
from stylize.video import run as video_run  # noqa: E402  (stylize.video may name the function)
from stylize.video.flow import inside, warp  # noqa: E402
from stylize.video.io import MissingExtraError, open_clip, require, write_video  # noqa: E402
from stylize.video.synthetic import CameraClip, CameraMotion  # noqa: E402

DATA = Path(__file__).parent / "data"
STYLE = DATA / "style" / "van_gogh_starry_night.jpg"
FAST = {"size": 64, "steps": 6, "frame_steps": 3}  # later frames: 3 steps at 64 px


def camera_clip(count: int = 5, size: tuple[int, int] = (64, 48)) -> CameraClip:
    from stylize.imageio import load_image

    return CameraClip(load_image(DATA / "content" / "forest_stream.jpg"), size, count, CameraMotion((1.5, 0.5), 1.01))


def write_with_audio(frames: list[Image.Image], path: Path, fps: int = 10) -> None:
    """An MP4 with an AAC sine tone as long as the frames (made with PyAV directly)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        audio = out.add_stream("aac", rate=22050, layout="mono")
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        samples = np.sin(np.arange(int(22050 * len(frames) / fps)) * 0.05).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 22050, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "pan.mp4"
    write_with_audio(list(camera_clip().frames()), path)
    return path


@pytest.fixture
def tiny() -> Backbone:
    return tiny_backbone("vgg19", seed=0)


def frames_of(path: Path) -> list[Image.Image]:
    return list(open_clip(path).frames())


# --- clip I/O -------------------------------------------------------------------------------------


def test_clip_reads_frames_rate_and_audio(clip_file: Path) -> None:
    clip = open_clip(clip_file)
    assert (clip.fps, clip.count, clip.size, clip.has_audio, clip.is_folder) == (10, 5, (64, 48), True, False)
    frames = list(clip.frames())
    assert len(frames) == 5 and all(f.mode == "RGB" and f.size == (64, 48) for f in frames)
    original = np.asarray(camera_clip().frame(2), np.float32)
    assert np.abs(np.asarray(frames[2], np.float32) - original).mean() < 6  # H.264 at crf 18: close


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif", ".mov"])
def test_write_video_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = list(camera_clip(4, (63, 47)).frames())  # odd sides: 4:2:0 formats drop a row and a column
    path = write_video(iter(frames), tmp_path / f"out{suffix}", Fraction(12))
    clip = open_clip(path)
    assert abs(clip.fps - 12) < (1 if suffix == ".gif" else 1e-9)  # GIF stores delays in 1/100 s
    assert len(list(clip.frames())) == 4
    assert clip.size == ((63, 47) if suffix == ".gif" else (62, 46))
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temporary file left


def test_audio_is_copied_and_cut_at_the_last_frame(clip_file: Path, tmp_path: Path) -> None:
    frames = frames_of(clip_file)
    write_video(frames, tmp_path / "all.mp4", Fraction(10), audio_from=clip_file)
    write_video(frames[:2], tmp_path / "two.mp4", Fraction(10), audio_from=clip_file)
    with av.open(str(clip_file)) as source, av.open(str(tmp_path / "all.mp4")) as full, \
            av.open(str(tmp_path / "two.mp4")) as short:
        assert full.streams.audio[0].codec_context.name == "aac"
        sizes = [[p.size for p in c.demux(audio=0) if p.size] for c in (source, full, short)]
    assert sizes[1] == sizes[0]  # the same packets, not re-encoded
    assert 0 < len(sizes[2]) < len(sizes[0]) * 0.6


def test_folder_of_frames_in_natural_order(tmp_path: Path) -> None:
    for i, frame in enumerate(camera_clip(3).frames()):
        frame.save(tmp_path / f"shot{i * 5 + 1}.png")  # shot1, shot6, shot11: sorted as numbers
    clip = open_clip(tmp_path, fps=24)
    assert [f.name for f in clip.files] == ["shot1.png", "shot6.png", "shot11.png"]
    assert clip.fps == 24 and clip.count == 3 and clip.frame_name(2) == "shot11.png"


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_text("not a video at all"), "not a readable video"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(Path(p.parent / "good.mp4").read_bytes()[:200]), "not a readable video"),
])
def test_bad_videos_are_one_line_input_errors(clip_file: Path, tmp_path: Path, make: Callable[[Path], Any],
                                              message: str) -> None:
    (tmp_path / "good.mp4").write_bytes(clip_file.read_bytes())
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        open_clip(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_audio_only_file_and_empty_folder_are_refused(tmp_path: Path) -> None:
    with av.open(str(tmp_path / "tone.m4a"), "w") as out:
        stream = out.add_stream("aac", rate=22050, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 22050, 0
        for packet in [*stream.encode(chunk), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(InputError, match="no video stream"):
        open_clip(tmp_path / "tone.m4a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frames in this folder"):
        open_clip(tmp_path / "empty")


@pytest.mark.parametrize(("module", "package"), [("av", "av"), ("cv2", "opencv-python-headless")])
def test_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch, clip_file: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], module: str, package: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # "import av" now raises ImportError
    message = f"stylize video needs {package}, which is not installed: pip install 'stylize[video]'"
    with pytest.raises(MissingExtraError, match=re.escape(message)):
        require(module)
    assert cli_main(["video", str(clip_file), str(STYLE), "-o", str(tmp_path / "o.mp4")]) == 2
    assert capsys.readouterr().err == f"stylize: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


# --- the per-frame loop ---------------------------------------------------------------------------


def warp_error(frames: list[Image.Image], clip: CameraClip) -> float:
    """Mean |out_t - previous output warped by the true flow| over pixels seen in both frames."""
    errors = []
    for t in range(1, len(frames)):
        true = clip.backward_flow(t)
        before = warp(np.asarray(frames[t - 1], np.float32), true)
        errors.append(np.abs(np.asarray(frames[t], np.float32) - before).mean(-1)[inside(true)].mean())
    return float(np.mean(errors))


def test_video_is_steadier_than_frame_by_frame(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    seen: list[FrameProgress] = []
    result = video(clip_file, STYLE, tmp_path / "out.mp4", backbone=tiny, frame_callback=seen.append, **FAST)
    assert result.muxed and result.complete and result.done == 5 and not result.interrupted
    assert not (tmp_path / "out_frames").exists()  # the work folder goes once the video is written
    out = open_clip(tmp_path / "out.mp4")
    assert (out.fps, out.count, out.size, out.has_audio) == (10, 5, (64, 48), True)
    assert [(p.index, p.event) for p in seen] == [(i, e) for i in range(1, 6) for e in ("start", "done")]
    done = [p for p in seen if p.event == "done"]
    assert done[-1].eta == 0 and done[1].eta is not None and all(p.count == 5 for p in done)
    assert "temporal" not in done[0].result.history[-1] and "temporal" in done[1].result.history[-1]
    assert len(done[1].result.history) <= 3  # later frames: frame_steps at one scale
    inputs = frames_of(clip_file)
    independent = [transfer(f, STYLE, backbone=tiny, size=64, steps=6).image for f in inputs]
    clip = camera_clip()
    assert warp_error(frames_of(tmp_path / "out.mp4"), clip) < 0.7 * warp_error(independent, clip)


def test_folder_in_folder_out_keeps_the_names(tmp_path: Path, tiny: Backbone) -> None:
    source = tmp_path / "shots"
    source.mkdir()
    for i, frame in enumerate(camera_clip(3).frames()):
        frame.save(source / f"shot_{i:02d}.jpg")
    result = video(source, STYLE, tmp_path / "styled", backbone=tiny, **FAST)
    assert result.output == tmp_path / "styled" and not result.muxed
    assert sorted(p.name for p in (tmp_path / "styled").glob("*.png")) == ["shot_00.png", "shot_01.png", "shot_02.png"]


def stop_after(n: int) -> Callable[[FrameProgress], None]:
    def callback(p: FrameProgress) -> None:
        if p.event == "done" and p.index == n:
            raise StopTransfer

    return callback


def test_rerun_continues_after_the_last_finished_frame(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    output = tmp_path / "out.mp4"
    first = video(clip_file, STYLE, output, backbone=tiny, frame_callback=stop_after(2), **FAST)
    assert first.interrupted and first.done == 2 and not output.exists()
    folder = tmp_path / "out_frames"
    assert sorted(p.name for p in folder.glob("*.png")) == ["frame_000001.png", "frame_000002.png"]
    kept = (folder / "frame_000002.png").read_bytes()
    seen: list[FrameProgress] = []
    second = video(clip_file, STYLE, output, backbone=tiny, frame_callback=seen.append, keep_frames=True, **FAST)
    assert second.done == 5 and second.muxed and len(second.frame_seconds) == 3
    assert [p.index for p in seen if p.event == "done"] == [3, 4, 5] and seen[0].resumed == 2
    assert (folder / "frame_000002.png").read_bytes() == kept
    assert open_clip(output).count == 5


def test_interrupted_frame_is_not_written(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    steps = []

    def ctrl_c(p: Any) -> None:
        steps.append(p)
        if len(steps) == 8:  # in the second frame
            raise KeyboardInterrupt

    result = video(clip_file, STYLE, tmp_path / "o", backbone=tiny, callback=ctrl_c, **FAST)
    assert result.interrupted and result.done == 1
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["frame_000001.png"]


def test_finish_writes_the_frames_done_so_far(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    output = tmp_path / "out.webm"
    video(clip_file, STYLE, output, backbone=tiny, frame_callback=stop_after(3), **FAST)
    result = video(clip_file, STYLE, output, backbone=tiny, finish=True, **FAST)
    assert result.muxed and result.done == 3 and open_clip(output).count == 3
    assert open_clip(output).has_audio  # AAC cannot go into WebM as it is: re-encoded to Opus
    assert (tmp_path / "out_frames").is_dir()  # kept: a later run can still continue


def test_other_settings_do_not_mix_with_finished_frames(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    video(clip_file, STYLE, tmp_path / "o", backbone=tiny, frame_callback=stop_after(1), **FAST)
    with pytest.raises(OutputError, match="other settings; pass --force"):
        video(clip_file, STYLE, tmp_path / "o", backbone=tiny, **{**FAST, "steps": 7})
    result = video(clip_file, STYLE, tmp_path / "o", backbone=tiny, force=True, frames=2, **{**FAST, "steps": 7})
    assert result.done == 2 and len(result.frame_seconds) == 2  # started over
    manifest = json.loads((tmp_path / "o" / "stylize-video.json").read_text())
    assert manifest["options"]["steps"] == 7


def test_every_option_reaches_every_frame(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    second_style = DATA / "style" / sorted(p.name for p in (DATA / "style").iterdir() if p.name != STYLE.name)[0]
    seen: list[FrameProgress] = []
    video(clip_file, [STYLE, second_style], tmp_path / "o", backbone=tiny, frame_callback=seen.append, frames=2,
          style_blend=(0.7, 0.3), preserve_color="luminance", style_scale=1.5, tv_weight=0.1, **FAST)
    later = [p for p in seen if p.event == "done"][1].result
    for key, value in {"style_blend": (0.7, 0.3), "preserve_color": "luminance", "style_scale": 1.5,
                       "tv_weight": 0.1, "num_styles": 2, "steps": 3}.items():
        assert later.settings[key] == value, key
    assert "tv" in later.history[-1]
    content, out = np.asarray(frames_of(clip_file)[1].convert("YCbCr"))[..., 1:], np.asarray(
        Image.open(tmp_path / "o" / "frame_000002.png").convert("YCbCr"))[..., 1:]
    assert np.abs(content.astype(float) - out).mean() < 3  # luminance only: the photo's colours stay


@pytest.mark.parametrize(("options", "message"), [
    ({"flow": "best"}, "--flow"), ({"temporal_weight": -1}, "--temporal-weight"),
    ({"frame_steps": 0}, "--frame-steps"), ({"long_term": (1,)}, "--long-term"), ({"steps": 0}, "--steps"),
])
def test_bad_options_before_any_output(clip_file: Path, tmp_path: Path, tiny: Backbone, options: dict[str, Any],
                                       message: str) -> None:
    with pytest.raises(OptionError, match=message):
        video(clip_file, STYLE, tmp_path / "o.mp4", backbone=tiny, **options)
    assert list(tmp_path.iterdir()) == []


def test_long_term_terms(clip_file: Path, tmp_path: Path, tiny: Backbone) -> None:
    seen: list[FrameProgress] = []
    video(clip_file, STYLE, tmp_path / "o", backbone=tiny, frame_callback=seen.append, long_term=(2,), frames=3,
          **FAST)
    rows = [p.result.history[-1] for p in seen if p.event == "done"]
    assert "temporal_2" not in rows[1] and "temporal" in rows[2] and "temporal_2" in rows[2]


# --- the command ------------------------------------------------------------------------------------


@pytest.fixture
def tiny_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_run, "load_network", lambda opts, **kw: tiny_backbone(opts.model, seed=0))


def test_command_writes_the_video(clip_file: Path, tmp_path: Path, tiny_loader: None,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.mp4"
    code = cli_main(["video", str(clip_file), str(STYLE), "-o", str(output), "--size", "64", "--steps", "4",
                     "--frame-steps", "2", "--temporal-weight", "100", "--flow", "fast"])
    err = capsys.readouterr()
    assert code == 0 and open_clip(output).count == 5
    assert "frames:" in err.err and "/5" in err.err and "ETA" in err.err  # the frame bar
    assert "step" in err.err  # the per-frame bar
    assert f"wrote {output} (5 frames" in err.out


def test_command_bad_video_is_one_line_exit_2_no_output(tmp_path: Path, tiny_loader: None,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    code = cli_main(["video", str(bad), str(STYLE), "-o", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"stylize: error: {bad}: not a readable video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_command_interrupt_keeps_frames_and_finish_writes_them(clip_file: Path, tmp_path: Path, tiny_loader: None,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from stylize.cli import video_command

    original = video_command.FrameBars.frame

    def ctrl_c_after_two(self: Any, p: FrameProgress) -> None:
        original(self, p)
        if p.event == "done" and p.index == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(video_command.FrameBars, "frame", ctrl_c_after_two)
    args = ["video", str(clip_file), str(STYLE), "-o", str(tmp_path / "out.mp4"), "--size", "64", "--steps", "4",
            "-q"]
    assert cli_main(args) == 130
    assert "run the same command again to continue, or add --finish" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists() and len(list((tmp_path / "out_frames").glob("*.png"))) == 2
    assert cli_main([*args, "--finish"]) == 0
    assert open_clip(tmp_path / "out.mp4").count == 2


def test_command_refuses_an_image_as_output(clip_file: Path, tmp_path: Path, tiny_loader: None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["video", str(clip_file), str(STYLE), "-o", str(tmp_path / "out.png")]) == 2
    assert "give a folder for PNG frames or a video file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_stylize_video_is_callable_as_a_function(clip_file: Path, tmp_path: Path) -> None:
    import stylize
    import stylize.video.io  # noqa: F401  (binds the name stylize.video to the package)

    with pytest.raises(OptionError, match="--flow"):
        stylize.video(clip_file, STYLE, tmp_path / "o.mp4", flow="best")
    assert callable(stylize.video) and stylize.video.video is video


def test_later_frames_get_a_share_of_the_first_frames_work() -> None:
    from stylize.options import Options

    steps = [video_run.default_frame_steps(Options.from_kwargs(size=s)) for s in (256, 512, 2048)]
    # 0.4 x (48/4 + 24), 0.4 x (48/16 + 24/4 + 12); at 2048 px the first frame visits 128 ... 2048 px with
    # 48 ... 3 steps (issue 15's schedule), 5.8 output-size steps of work, so later frames get the least, 4
    assert steps == [14, 8, 4]
    assert video_run.default_frame_steps(Options.from_kwargs(size=256, steps=6)) == 4  # at least 4
