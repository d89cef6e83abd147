"""Offscreen video of the simulated cell: a wrist-side and a front view, side by side, at a fixed rate
of simulated time.

``VideoRecorder`` hooks the arm's stepping (``MujocoArm.step_hooks``): after each stepped servo
period it renders a frame whenever simulated time has passed the next frame's time, so the video's
clock is the simulation's whatever the wall clock did, and a batch of steps (a reset's settle)
repeats the last frame to keep the timing. Shadows and reflections are off: on a software OpenGL
(llvmpipe) they cost ten times the rest of a frame. MP4 is written with imageio's ffmpeg (the
``video`` extra); ``rmskill run --record`` and ``rmskill eval --record`` use it through
``SimWorld.record``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from rmskill.errors import ConfigError, DriverError

if TYPE_CHECKING:
    from rmskill.drivers.mujoco.driver import MujocoArm

#: The views a frame shows, left to right.
VIEWS = ("wrist", "front")


def _writer(path: Path, fps: float):
    """An imageio MP4 (H.264) or GIF writer for ``path``; a one-line error names the extra when missing."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise ConfigError("video recording needs imageio and imageio-ffmpeg; pip install 'rmskill[video]'") from None
    if path.suffix.lower() == ".gif":
        return imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)
    try:
        import imageio_ffmpeg  # noqa: F401  (ships the ffmpeg binary)
    except ImportError:
        raise ConfigError("MP4 recording needs imageio-ffmpeg; pip install 'rmskill[video]'") from None
    return imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=16,
                              ffmpeg_log_level="error")


class Cameras:
    """Renders named views of a simulated arm's cell into one side-by-side RGB frame.

    ``wrist``: a camera that follows the gripper from the side (close-up of the contact);
    ``front``: a fixed camera on the fixtures, from beyond them toward the arm.
    """

    def __init__(self, arm: MujocoArm, width: int = 320, height: int = 240, views: tuple[str, ...] = VIEWS):
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise ConfigError(f"unknown camera views {unknown} (views: {', '.join(VIEWS)})")
        self.arm, self.views = arm, views
        try:
            self.renderer = mujoco.Renderer(arm.model, height=height, width=width)
        except Exception as err:  # no OpenGL context: say what to install
            raise DriverError(f"offscreen rendering is unavailable ({err}); install EGL (libegl1, libgl1-mesa-dri) "
                              "or set MUJOCO_GL=osmesa with libosmesa6") from err
        self.cameras = {v: self._camera(v) for v in views}

    def _camera(self, view: str) -> mujoco.MjvCamera:
        m = self.arm.model
        cam = mujoco.MjvCamera()
        if view == "wrist":
            cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = m.body("gripper").id
            cam.distance, cam.azimuth, cam.elevation = 0.45, 90.0, -12.0
            return cam
        config = self.arm.config
        fixtures = [np.asarray(config.fixture(name).xyz) for name in config.fixtures]
        centre = np.mean(fixtures, axis=0) if fixtures else np.array([0.4, 0.0, 0.1])
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = centre + np.array([-0.05, 0.0, 0.05])
        cam.distance, cam.azimuth, cam.elevation = 1.1, 200.0, -22.0
        return cam

    def frame(self) -> np.ndarray:
        """The current scene, one view per column block: (height, width * views, 3) uint8."""
        parts = []
        r = self.renderer
        for view in self.views:
            r.update_scene(self.arm.data, camera=self.cameras[view])
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            parts.append(r.render())
        return np.concatenate(parts, axis=1)

    def close(self) -> None:
        self.renderer.close()


class VideoRecorder:
    """Records the simulated arm to ``path`` (``.mp4``, or ``.gif``) while open.

    ``with VideoRecorder(arm, "out.mp4", fps=20): skill.run(arm, ...)``. ``fps`` is frames per
    second of simulated time [Hz]; ``width``/``height`` the size of one view [px].
    """

    def __init__(self, arm: MujocoArm, path: str | Path, fps: float = 20.0, width: int = 320, height: int = 240,
                 views: tuple[str, ...] = VIEWS):
        if not fps > 0:
            raise ConfigError(f"video fps must be positive, got {fps}")
        self.arm, self.path, self.fps = arm, Path(path), float(fps)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _writer(self.path, self.fps)
        self.cameras = Cameras(arm, width, height, views)
        self.frames = 0
        self._next: float | None = None
        self._last = -np.inf

    def __enter__(self) -> VideoRecorder:
        self._next = self._last = float(self.arm.data.time)  # the video starts now
        self.arm.step_hooks.append(self._on_step)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_step(self) -> None:
        t = float(self.arm.data.time)
        if self._next is None or t < self._last:  # a reset turned the clock back: the video goes on from here
            self._next = t
        self._last = t
        if t < self._next:
            return
        frame = self.cameras.frame()
        while t >= self._next:
            self._writer.append_data(frame)
            self.frames += 1
            self._next += 1.0 / self.fps

    @property
    def duration_s(self) -> float:
        """Length of what was written [s]."""
        return self.frames / self.fps

    def close(self) -> None:
        if self._on_step in self.arm.step_hooks:
            self.arm.step_hooks.remove(self._on_step)
        if self._writer is not None:
            if self.frames == 0:  # an empty video is no video: one frame of how it ended
                self._writer.append_data(self.cameras.frame())
                self.frames = 1
            self._writer.close()
            self._writer = None
            self.cameras.close()
