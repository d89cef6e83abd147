"""Video of the simulated cell: frames at a fixed rate of simulated time, MP4 that plays."""

from __future__ import annotations

import pytest

from rmskill.connect import connect

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="needs the 'video' extra (imageio, imageio-ffmpeg)")
pytest.importorskip("imageio", reason="needs the 'video' extra (imageio, imageio-ffmpeg)")


def test_recording_follows_simulated_time(ur5e_file, tmp_path):
    path = tmp_path / "clip.mp4"
    with connect(ur5e_file) as arm:
        with arm.sim.record(str(path), fps=10, width=160, height=112) as rec:
            arm.unwrapped.advance(0.45)  # one batch of steps: the frames it spans repeat
            for _ in range(100):  # 0.2 s of servo periods
                arm.unwrapped.advance(0.002)
        assert not arm.unwrapped.step_hooks  # the hook is gone with the recorder
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert frames == rec.frames and 6 <= frames <= 8
    assert seconds == pytest.approx(frames / 10, abs=0.11)


def test_views_side_by_side(ur5e_file):
    with connect(ur5e_file) as arm:
        cams = arm.sim.cameras(96, 64)
        frame = cams.frame()
        cams.close()
    assert frame.shape == (64, 192, 3) and frame.std() > 0
