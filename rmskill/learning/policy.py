"""Small MLP policies: trained in torch, shipped as safetensors + a JSON manifest, run in numpy.

The runtime forward pass is plain numpy (a few microseconds per control step, no torch import);
``TorchMLP`` is the same network for training. Weights load with safetensors only, never pickle.

Files in a weights folder:
    base.safetensors   ``layers.{i}.weight`` (out x in) and ``layers.{i}.bias``, float32
    manifest.json      skill, version, arm models, ``obs_mean``/``obs_std`` (raw observation
                       normalisation), ``action_asinh_scale`` (optional: the network predicts
                       ``asinh(action / scale)``, which resolves small corrections as finely as
                       large ones), ``action_scale`` (physical units per normalised unit),
                       ``obs_names``, ``action_names``, ``activation``, ``calibration_hash``
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.errors import SkillError
from rmskill.storage import atomic_write, atomic_write_text

WEIGHTS_FILE = "base.safetensors"
MANIFEST_FILE = "manifest.json"

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(folder: Path, manifest: dict[str, Any], source: str) -> None:
    """Every file the manifest's ``sha256`` map names must be there with that digest (a one-line
    ``SkillError`` otherwise); a manifest without the map is used with a warning."""
    digests = manifest.get("sha256")
    if not isinstance(digests, dict):
        log.warning("%s: the manifest lists no sha256 digests; its weights cannot be checked", source)
        return
    for name, want in digests.items():
        path = folder / name
        if not path.is_file():
            raise SkillError(f"weights not found: {path} does not exist (named by {source})")
        got = file_sha256(path)
        if got != want:
            raise SkillError(f"{path} is damaged: its sha256 {got[:12]}... is not the manifest's {str(want)[:12]}...")


class MLPPolicy:
    """``y = W_n(... tanh(W_1 ((obs - mean) / std) + b_1) ...) + b_n``, in numpy; the action is ``y``,
    or ``asinh_scale * sinh(y)`` where the network was trained on ``asinh``-compressed actions.

    Args:
        layers: ``[(weight (out, in), bias (out,)), ...]``.
        obs_mean: Mean of the raw observation, shape (obs_dim,).
        obs_std: Its spread; features are divided by it.
        asinh_scale: Per action dimension, or ``None`` for a linear output.
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], obs_mean: np.ndarray, obs_std: np.ndarray,
                 asinh_scale: np.ndarray | None = None):
        self.layers = [(np.ascontiguousarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
                       for w, b in layers]
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_std = np.asarray(obs_std, dtype=np.float64)
        self.asinh_scale = None if asinh_scale is None else np.asarray(asinh_scale, dtype=np.float64)
        if self.layers[0][0].shape[1] != self.obs_mean.shape[0]:
            raise SkillError(f"policy input is {self.layers[0][0].shape[1]} wide but the normalisation has "
                             f"{self.obs_mean.shape[0]} entries")

    @property
    def obs_dim(self) -> int:
        return self.layers[0][0].shape[1]

    @property
    def action_dim(self) -> int:
        return self.layers[-1][0].shape[0]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = (np.asarray(obs, dtype=np.float64) - self.obs_mean) / self.obs_std
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = w @ x + b
            if i < last:
                x = np.tanh(x)
        if self.asinh_scale is not None:
            return self.asinh_scale * np.sinh(x)
        return x

    def tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(self.layers):
            out[f"layers.{i}.weight"] = w.astype(np.float32)
            out[f"layers.{i}.bias"] = b.astype(np.float32)
        return out


def _resolve(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_name(MANIFEST_FILE)
    return path / WEIGHTS_FILE, path / MANIFEST_FILE


def load_policy(path: str | Path) -> tuple[MLPPolicy, dict[str, Any]]:
    """Read a weights folder (or its ``.safetensors`` file); ``SkillError`` names what is missing."""
    from safetensors.numpy import load_file

    weights, manifest_path = _resolve(path)
    if not Path(path).exists():
        raise SkillError(f"weights not found: {path} does not exist")
    if Path(path).is_file() and Path(path).suffix != ".safetensors":
        raise SkillError(f"weights must be a weights folder (base.safetensors + manifest.json) or its .safetensors "
                         f"file; {path} is another file")
    for p in (weights, manifest_path):
        if not p.is_file():
            raise SkillError(f"weights not found: {p} does not exist")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise SkillError(f"cannot read {manifest_path}: {err}") from None
    if not isinstance(manifest, dict):
        raise SkillError(f"{manifest_path} is not a JSON object")
    verify_weights(weights.parent, manifest, str(manifest_path))
    try:
        tensors = load_file(str(weights))
    except (OSError, ValueError) as err:
        raise SkillError(f"cannot read the policy at {weights}: {err}") from None
    layers = []
    i = 0
    while f"layers.{i}.weight" in tensors:
        layers.append((tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]))
        i += 1
    if not layers:
        raise SkillError(f"{weights} holds no 'layers.0.weight': not an rmskill MLP policy")
    try:
        scale = manifest.get("action_asinh_scale")
        policy = MLPPolicy(layers, np.array(manifest["obs_mean"]), np.array(manifest["obs_std"]),
                           None if scale is None else np.array(scale))
    except KeyError as err:
        raise SkillError(f"{manifest_path} lacks the key {err}") from None
    return policy, manifest


def save_policy(folder: str | Path, policy: MLPPolicy, manifest: dict[str, Any]) -> None:
    """Write ``base.safetensors`` and ``manifest.json`` atomically into ``folder``."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {**manifest, "obs_mean": policy.obs_mean.tolist(), "obs_std": policy.obs_std.tolist()}
    if policy.asinh_scale is not None:
        manifest["action_asinh_scale"] = policy.asinh_scale.tolist()
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(policy.tensors(), tmp))
    manifest["sha256"] = {WEIGHTS_FILE: file_sha256(folder / WEIGHTS_FILE)}
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


def torch_mlp(obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (128, 128)):
    """The same network in torch, for training: Linear-tanh-...-Linear."""
    import torch.nn as nn

    dims = [obs_dim, *hidden, action_dim]
    mods: list[nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(nn.Tanh())
    return nn.Sequential(*mods)


def from_torch(net, obs_mean: np.ndarray, obs_std: np.ndarray, asinh_scale: np.ndarray | None = None) -> MLPPolicy:
    """Export a ``torch_mlp`` (normalised inputs) to the numpy runtime policy."""
    import torch.nn as nn

    layers = [(m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
              for m in net if isinstance(m, nn.Linear)]
    return MLPPolicy(layers, obs_mean, obs_std, asinh_scale)
