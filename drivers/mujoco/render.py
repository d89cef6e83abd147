"""Offscreen render of the cell to PNG (headless: EGL by default, ``MUJOCO_GL`` overrides)."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from rmskill.errors import DriverError


def render_png(model: mujoco.MjModel, data: mujoco.MjData, path: str | Path, width: int = 960, height: int = 720,
               camera: str = "overview") -> Path:
    from PIL import Image

    try:
        renderer = mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # no OpenGL context: say what to install
        raise DriverError(f"offscreen rendering is unavailable ({err}); install EGL (libegl1, libgl1-mesa-dri) "
                          "or set MUJOCO_GL=osmesa with libosmesa6") from err
    try:
        renderer.update_scene(data, camera=camera)
        pixels: np.ndarray = renderer.render()
    finally:
        renderer.close()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(out)
    return out
