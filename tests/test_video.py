"""Video in: decoding (PyAV, TorchCodec when usable), samplers, transforms, datasets. Videos are written with
PyAV in the tests (tests/video_samples.py): tiny frames, few frames, two codecs, odd sizes, variable rate."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from video_samples import background_level, decode_by_hand, write_audio_only, write_video

from i3zoo.video import (
    VideoError,
    VideoFolder,
    VideoList,
    VideoReader,
    VideoWindows,
    evenly_spaced_clips,
    find_videos,
    random_clip,
    resample_by_time,
    resolve_backend,
    sliding_windows,
    torchcodec_status,
    transforms_for,
)

VFR_MS = [0, 40, 50, 200, 210, 400, 433, 500]


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """name -> path of the session's test videos."""
    folder = tmp_path_factory.mktemp("videos")
    made = {
        "h264_even": write_video(folder / "h264_even.mp4", 12, 32, 40, fps=25),
        "h264_odd": write_video(folder / "h264_odd.mp4", 9, 33, 45, fps=30),
        "mpeg4_odd": write_video(folder / "mpeg4_odd.avi", 10, 31, 41, fps=24, codec="mpeg4"),
        "vfr": write_video(folder / "vfr.mp4", len(VFR_MS), 32, 40, times_ms=VFR_MS),
        "with_audio": write_video(folder / "with_audio.mkv", 20, 32, 40, fps=25, audio=True),
        "long": write_video(folder / "long.mp4", 240, 64, 80, fps=25),
        "audio_only": write_audio_only(folder / "audio_only.m4a"),
    }
    not_video = folder / "notes.mp4"
    not_video.write_text("this is not a video\n" * 20)
    made["not_video"] = not_video
    whole = made["h264_even"].read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) * 6 // 10])  # the mp4 index (moov) is lost
    made["truncated_mp4"] = folder / "truncated.mp4"
    whole = made["with_audio"].read_bytes()
    (folder / "truncated.mkv").write_bytes(whole[: len(whole) // 2])  # Matroska streams: a readable prefix
    made["truncated_mkv"] = folder / "truncated.mkv"
    return made


DECODABLE = [("h264_even", 12, (32, 40), 25), ("h264_odd", 9, (33, 45), 30), ("mpeg4_odd", 10, (31, 41), 24),
             ("vfr", len(VFR_MS), (32, 40), None), ("with_audio", 20, (32, 40), 25)]


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("name,count,size,fps", DECODABLE)
def test_reader_gives_pyav_frames_and_stream_times(videos, name, count, size, fps):
    reader = VideoReader(videos[name], backend="pyav")
    assert reader.num_frames == count and reader.size == size
    expected_times = [t / 1000 for t in VFR_MS] if fps is None else [i / fps for i in range(count)]
    assert torch.allclose(reader.frame_times, torch.tensor(expected_times, dtype=torch.float64), atol=1e-9)
    by_hand = torch.from_numpy(decode_by_hand(videos[name])).permute(0, 3, 1, 2)
    indices = [count - 1, 0, 2, 2, 1]
    assert torch.equal(reader.get_frames(indices), by_hand[indices])
    # each decoded frame is the picture written at its index (lossy coding: within a few levels)
    levels = reader.get_frames(list(range(count)))[:, :, 0, 0].float().mean(dim=1)
    assert (levels - torch.tensor([background_level(i) for i in range(count)])).abs().max() < 6


def test_codecs_are_the_ones_asked_for(videos):
    assert VideoReader(videos["h264_odd"]).codec == "h264"
    assert VideoReader(videos["mpeg4_odd"]).codec == "mpeg4"


def test_iter_clips_streams_the_same_frames_as_random_access(videos):
    reader = VideoReader(videos["with_audio"])
    windows = sliding_windows(reader.num_frames, clip_len=4, frame_interval=2, step=3)
    streamed = list(reader.iter_clips(windows.tolist()))
    assert [k for k, _ in streamed] == list(range(len(windows)))
    for k, clip in streamed:
        assert torch.equal(clip, reader.get_frames(windows.indices[k].tolist()))


def test_streaming_memory_does_not_grow_with_the_video(videos):
    """Decoded frames are numpy arrays, which tracemalloc sees: a 240-frame video read window by window
    never holds more than about one window of frames."""
    reader = VideoReader(videos["long"])
    frame_bytes = 64 * 80 * 3
    windows = sliding_windows(reader.num_frames, clip_len=8, step=8)
    assert len(windows) == 30
    tracemalloc.start()
    try:
        for _, clip in reader.iter_clips(windows.tolist()):
            del clip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * frame_bytes, f"peak {peak} bytes = {peak / frame_bytes:.1f} frames"


@pytest.mark.parametrize("name,reason", [
    ("not_video", "not a readable video file"),
    ("audio_only", "no video stream (streams: audio)"),
    ("truncated_mp4", "not a readable video file"),
])
def test_unreadable_files_raise_video_error_naming_file_and_reason(videos, name, reason):
    with pytest.raises(VideoError) as info:
        VideoReader(videos[name])
    assert str(videos[name]) in str(info.value) and reason in info.value.reason


def test_a_video_stream_without_frames_is_an_error(tmp_path):
    import av
    from video_samples import _write_tone

    path = tmp_path / "no_frames.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        _write_tone(container, container.add_stream("aac", rate=8000), 0.2)
        for packet in video.encode():
            container.mux(packet)
    with pytest.raises(VideoError, match="no decodable video frame"):
        VideoReader(path)


def test_truncated_stream_reads_the_frames_that_survive(videos):
    full, cut = VideoReader(videos["with_audio"]), VideoReader(videos["truncated_mkv"])
    assert 0 < cut.num_frames < full.num_frames
    assert torch.equal(cut.get_frames(list(range(cut.num_frames))), full.get_frames(list(range(cut.num_frames))))


def test_missing_file_and_bad_indices(videos, tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        VideoReader(tmp_path / "nope.mp4")
    with pytest.raises(ValueError, match=r"out of range .* \(12 frames\)"):
        VideoReader(videos["h264_even"]).get_frames([0, 12])


def test_backend_names_and_auto_fallback(videos):
    with pytest.raises(ValueError, match="unknown video backend 'decord'; choose from auto, pyav, torchcodec"):
        resolve_backend("decord")
    problem = torchcodec_status()
    if problem is None:  # TorchCodec works here: both backends give the same frames for the same indices
        assert resolve_backend("auto") == "torchcodec"
        for name, count, _, _ in DECODABLE:
            indices = list(range(count - 1, -1, -1))
            ours = VideoReader(videos[name], backend="torchcodec").get_frames(indices).float()
            pyav = VideoReader(videos[name], backend="pyav").get_frames(indices).float()
            if name.startswith("h264") or name in ("vfr", "with_audio"):  # H.264 decodes bit-exactly everywhere
                assert torch.equal(ours, pyav), name
            # each index is the same picture: nearest to PyAV's frame at that index, within a level on average
            # (TorchCodec uses the system's FFmpeg, PyAV its own build; their MPEG-4 Part 2 decoders at odd
            # sizes differ by rounding, under a level on average with Debian's FFmpeg 5.1)
            distance = (ours[:, None] - pyav[None]).abs().mean(dim=(2, 3, 4))
            assert torch.equal(distance.argmin(dim=1), torch.arange(count)), name
            assert distance.diagonal().max() < 1.5, name
    else:  # installed without FFmpeg libraries, or not installed: "auto" is PyAV and "torchcodec" says why
        assert "torchcodec" in problem
        assert resolve_backend("auto") == "pyav"
        assert VideoReader(videos["h264_even"]).backend == "pyav"
        with pytest.raises(ValueError, match="video backend 'torchcodec' cannot be used: torchcodec"):
            VideoReader(videos["h264_even"], backend="torchcodec")


def test_auto_falls_back_when_torchcodec_is_not_installed(videos):
    """A fresh interpreter in which ``import torchcodec`` fails, as where the extra is not installed."""
    code = ("import sys; sys.modules['torchcodec'] = None\n"
            "from i3zoo.video import VideoReader, torchcodec_status\n"
            f"r = VideoReader({str(videos['h264_even'])!r})\n"
            "print(r.backend, r.num_frames); print(torchcodec_status())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert first == "pyav 12"
    assert second.startswith("torchcodec does not import") and 'pip install "i3zoo[torchcodec]"' in second


# ---------------------------------------------------------------- samplers


def test_sliding_windows_indices():
    assert sliding_windows(10, clip_len=4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]  # back to back, tail left
    assert sliding_windows(10, clip_len=4, step=3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert sliding_windows(10, clip_len=3, frame_interval=2, step=2).tolist() == [
        [0, 2, 4], [2, 4, 6], [4, 6, 8]]
    exact = sliding_windows(4, clip_len=4)
    assert exact.tolist() == [[0, 1, 2, 3]] and exact.padded.tolist() == [0]
    short = sliding_windows(3, clip_len=5, frame_interval=2)
    assert short.tolist() == [[0, 2, 2, 2, 2]] and short.padded.tolist() == [3]
    one = sliding_windows(1, clip_len=3)
    assert one.tolist() == [[0, 0, 0]] and one.padded.tolist() == [2]


def test_sliding_window_times():
    times = [0.0, 0.04, 0.08, 0.12, 0.16, 0.2]
    windows = sliding_windows(6, clip_len=2, step=2, frame_times=times)
    assert windows.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert torch.allclose(windows.start, torch.tensor([0.0, 0.08, 0.16], dtype=torch.float64))
    assert torch.allclose(windows.end, torch.tensor([0.08, 0.16, 0.24], dtype=torch.float64))


def test_resampling_by_timestamps_follows_variable_frame_rate():
    times = [t / 1000 for t in VFR_MS]  # 0, 40, 50, 200, 210, 400, 433, 500 ms
    # 10 fps: instants 0, 100, ..., 500 ms, until the last frame ends (500 + median gap 40 ms = 540 ms); at
    # each, the frame on screen is the last one shown at or before it
    assert resample_by_time(times, fps=10).tolist() == [0, 2, 3, 4, 5, 7]
    windows = sliding_windows(len(times), clip_len=2, step=2, frame_times=times, fps=10)
    assert windows.tolist() == [[0, 2], [3, 4], [5, 7]]
    assert torch.allclose(windows.start, torch.tensor([0.0, 0.2, 0.4], dtype=torch.float64))
    assert torch.allclose(windows.end, torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64))
    # a constant 25 fps video resampled at 12.5 fps takes every other frame
    assert resample_by_time([i / 25 for i in range(8)], fps=12.5).tolist() == [0, 2, 4, 6]


def _mmaction_test_clips(num_frames, clip_len, frame_interval, num_clips):
    """MMAction2's SampleFrames(test_mode=True, out_of_bound_opt="repeat_last"), transcribed with numpy."""
    ori_clip_len = clip_len * frame_interval
    avg_interval = (num_frames - ori_clip_len + 1) / float(num_clips)
    if num_frames > ori_clip_len - 1:
        base_offsets = np.arange(num_clips) * avg_interval
        clip_offsets = (base_offsets + avg_interval / 2.0).astype(np.int32)
    else:
        clip_offsets = np.zeros((num_clips,), dtype=np.int32)
    frame_inds = clip_offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    safe = frame_inds < num_frames
    last = np.max(safe * frame_inds, axis=1)
    return (safe * frame_inds + ((1 - safe).T * last).T).tolist()


def test_evenly_spaced_clips_are_mmaction_test_mode():
    # MMAction2 0.x's test mode, kept as a named sampler (the default follows MMAction2 >= 1.0: test_reliability_iii)
    assert evenly_spaced_clips(100, clip_len=8, frame_interval=2, num_clips=3, sampler="mmaction2_0x").tolist() == [
        list(range(14, 29, 2)), list(range(42, 57, 2)), list(range(70, 85, 2))]
    for num_frames in (1, 5, 15, 16, 17, 64, 301):
        for clip_len, interval, num_clips in ((8, 2, 3), (4, 1, 1), (16, 4, 10), (1, 1, 5)):
            clips = evenly_spaced_clips(num_frames, clip_len, interval, num_clips, sampler="mmaction2_0x")
            assert clips.tolist() == _mmaction_test_clips(num_frames, clip_len, interval, num_clips)
    short = evenly_spaced_clips(5, clip_len=4, frame_interval=2, num_clips=2, sampler="mmaction2_0x")
    assert short.tolist() == [[0, 2, 4, 4]] * 2 and short.padded.tolist() == [1, 1]


def test_random_clip_covers_every_start_and_is_seeded():
    starts = {random_clip(10, 4, 2, generator=torch.Generator().manual_seed(s)).tolist()[0][0] for s in range(200)}
    assert starts == {0, 1, 2, 3}  # span 7 frames: starts 0..3
    a = random_clip(50, 4, generator=torch.Generator().manual_seed(3))
    b = random_clip(50, 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.indices, b.indices) and a.indices[0, 1] - a.indices[0, 0] == 1
    short = random_clip(2, 4)
    assert short.tolist() == [[0, 1, 1, 1]] and short.padded.tolist() == [2]


@pytest.mark.parametrize("call,message", [
    (lambda: sliding_windows(0, 4), "at least one frame"),
    (lambda: sliding_windows(10, 0), "clip_len must be an integer >= 1; got 0"),
    (lambda: sliding_windows(10, 4, step=0), "step must be an integer >= 1; got 0"),
    (lambda: sliding_windows(10, 4, fps=5), "fps needs frame_times"),
    (lambda: sliding_windows(3, 2, frame_times=[0.0, 0.1, 0.2], fps=-1), "fps must be a positive number"),
    (lambda: evenly_spaced_clips(10, 4, num_clips=0), "num_clips must be an integer >= 1"),
    (lambda: random_clip(10, 4, frame_interval=1.5), "frame_interval must be an integer"),
])
def test_sampler_arguments_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- transforms

CFG = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=(3, 224, 224), crop_pct=0.875,
           interpolation="bilinear")


def test_eval_transform_is_resize_center_crop_normalize_to_c_t_h_w():
    frames = torch.randint(0, 256, (3, 3, 30, 45), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    clip = transforms_for(CFG, crop_size=16)(frames)
    assert clip.shape == (3, 3, 16, 16) and clip.dtype == torch.float32
    # the same steps written with torchvision's functional API, frame by frame
    resized = v2.functional.resize(frames, [18], antialias=True)  # floor(16 / 0.875) = 18 on the short side
    expected = v2.functional.normalize(v2.functional.center_crop(resized, [16]).float() / 255, CFG["mean"], CFG["std"])
    assert torch.allclose(clip, expected.permute(1, 0, 2, 3), atol=1e-6)


def test_transform_from_a_model_name_uses_its_cfg():
    """i3resnet50's cfg: 224 crop from a 256 short side, ImageNet mean/std."""
    transform = transforms_for("i3resnet50")
    resize = [t for t in transform.transforms if isinstance(t, v2.Resize)][0]
    crop = [t for t in transform.transforms if isinstance(t, v2.CenterCrop)][0]
    assert resize.size == [256] and crop.size == (224, 224)
    assert transform(torch.zeros(2, 3, 24, 30, dtype=torch.uint8)).shape == (3, 2, 224, 224)


def test_three_crop_takes_start_center_end_of_the_long_side():
    frames = torch.arange(20, dtype=torch.uint8).repeat(2, 3, 10, 1)  # (T=2, C=3, 10, 20): value = column
    crops = transforms_for(dict(CFG, mean=(0, 0, 0), std=(1, 1, 1)), crop_size=10, three_crop=True)(frames)
    assert crops.shape == (3, 3, 2, 10, 10)
    first_columns = (crops[:, 0, 0, 0, 0] * 255).round().tolist()
    assert first_columns == [0.0, 5.0, 10.0]


def test_train_transform_crops_and_flips_all_frames_alike():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8)
    transform = transforms_for(CFG, train=True, crop_size=16)
    outputs = [transform(frame.expand(4, -1, -1, -1)) for _ in range(6)]
    for clip in outputs:
        assert clip.shape == (3, 4, 16, 16)
        assert all(torch.equal(clip[:, t], clip[:, 0]) for t in range(4))  # one crop and flip for the clip
    assert len({tuple(c[:, 0].flatten()[:8].tolist()) for c in outputs}) > 1  # random across calls


def test_transform_arguments_are_checked():
    with pytest.raises(ValueError, match="lacks mean"):
        transforms_for(dict(std=(1, 1, 1), input_size=(3, 8, 8)))
    with pytest.raises(ValueError, match="interpolation 'lanczos' is not supported"):
        transforms_for(dict(CFG, interpolation="lanczos"))
    with pytest.raises(ValueError, match="frames must be \\(T, 3, H, W\\)"):
        transforms_for(CFG, crop_size=8)(torch.zeros(3, 10, 10, dtype=torch.uint8))


# ---------------------------------------------------------------- datasets


@pytest.fixture(scope="session")
def class_folders(videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    for name, source in (("jump", "h264_even"), ("jump", "mpeg4_odd"), ("run", "vfr"), ("run", "h264_odd")):
        (root / name).mkdir(exist_ok=True)
        os.link(videos[source], root / name / videos[source].name)
    (root / "run" / "readme.txt").write_text("not a video")
    return root


def test_video_folder_items_are_transformed_evenly_spaced_clips(class_folders):
    transform = transforms_for(CFG, crop_size=16)
    dataset = VideoFolder(class_folders, clip_len=4, frame_interval=2, num_clips=2, transform=transform)
    assert dataset.classes == ["jump", "run"] and len(dataset) == 4
    assert [label for _, label in dataset.samples] == [0, 0, 1, 1]
    clip, label = dataset[0]  # jump/h264_even.mp4: 12 frames
    assert clip.shape == (2, 3, 4, 16, 16) and label == 0
    frames = torch.from_numpy(decode_by_hand(class_folders / "jump" / "h264_even.mp4")).permute(0, 3, 1, 2)
    for k, indices in enumerate(evenly_spaced_clips(12, 4, 2, 2).tolist()):
        assert torch.equal(clip[k], transform(frames[indices]))


def test_dataloader_with_two_workers_yields_the_same_clips(class_folders):
    dataset = VideoFolder(class_folders, clip_len=4, transform=transforms_for(CFG, crop_size=16))
    serial = list(DataLoader(dataset, batch_size=2, num_workers=0))
    parallel = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert len(serial) == len(parallel) == 2
    for (a, la), (b, lb) in zip(serial, parallel):
        assert torch.equal(a, b) and torch.equal(la, lb)
    training = VideoFolder(class_folders, clip_len=4, train=True, seed=7)
    assert torch.equal(training[1][0], training[1][0])  # seeded: the same clip for the same epoch and index


def test_video_list_with_names_indices_and_label_file(class_folders, tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text(f"# kinetics style\n{class_folders}/jump/h264_even.mp4,jump\n"
                       "run/vfr.mp4, run\n\nrun/h264_odd.mp4,run\n")
    dataset = VideoList(listing, clip_len=2, root=class_folders)
    assert dataset.classes == ["jump", "run"] and [s[1] for s in dataset.samples] == [0, 1, 1]
    clip, label = dataset[1]
    assert clip.shape == (2, 3, 32, 40) and clip.dtype == torch.uint8 and label == 1
    names = tmp_path / "labels.txt"
    names.write_text("walk\nrun\njump\n")
    by_index = tmp_path / "val.csv"
    by_index.write_text("jump/mpeg4_odd.avi,2\nrun/vfr.mp4,run\n")
    dataset = VideoList(by_index, clip_len=2, root=class_folders, label_names=names)
    assert dataset.classes == ["walk", "run", "jump"] and [s[1] for s in dataset.samples] == [2, 1]


@pytest.mark.parametrize("text,message", [
    ("a.mp4\n", "expected 'path,label'"),
    ("a.mp4,dance\n", "unknown label 'dance'"),
    ("a.mp4,7\n", "label 7 is out of range for 3 label names"),
])
def test_video_list_errors_name_the_line(tmp_path, text, message):
    listing = tmp_path / "list.csv"
    listing.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        VideoList(listing, clip_len=2, label_names=["walk", "run", "jump"])
    assert f"{listing}:1" in str(info.value)


def test_windows_dataset_equals_frames_decoded_by_hand_and_reports_bad_videos(videos):
    transform = transforms_for(CFG, crop_size=16)
    paths = [videos["h264_odd"], videos["not_video"], videos["vfr"], videos["audio_only"]]
    dataset = VideoWindows(paths, clip_len=3, step=2, transform=transform)
    items = list(dataset)
    errors = {i["video"]: i["reason"] for i in items if i["kind"] == "error"}
    assert set(errors) == {1, 3} and "no video stream" in errors[3]
    done = {i["video"]: i for i in items if i["kind"] == "done"}
    assert done[0]["windows"] == 4 and done[2]["windows"] == 3  # 9 frames: starts 0, 2, 4, 6; 8 frames: 0, 2, 4
    frames = torch.from_numpy(decode_by_hand(videos["h264_odd"])).permute(0, 3, 1, 2)
    windows = [i for i in items if i["kind"] == "window" and i["video"] == 0]
    for item, start in zip(windows, (0, 2, 4, 6)):
        assert torch.equal(item["clip"], transform(frames[start:start + 3]))
        assert item["start"] == pytest.approx(start / 30) and item["end"] == pytest.approx((start + 3) / 30)
    serial = {(i["video"], i["window"]): i["clip"] for i in items if i["kind"] == "window"}
    parallel = [i for i in DataLoader(dataset, batch_size=None, num_workers=2)]
    assert sorted(i["kind"] for i in parallel) == sorted(i["kind"] for i in items)
    for item in parallel:
        if item["kind"] == "window":
            assert torch.equal(item["clip"], serial[(item["video"], item["window"])])


def test_find_videos_is_recursive_and_by_extension(class_folders):
    found = find_videos(class_folders)
    assert [p.relative_to(class_folders).as_posix() for p in found] == [
        "jump/h264_even.mp4", "jump/mpeg4_odd.avi", "run/h264_odd.mp4", "run/vfr.mp4"]
