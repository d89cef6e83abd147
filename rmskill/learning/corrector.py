"""The residual corrector both fine-tuners train: a small MLP that sees the observation and the
base action and outputs a bounded correction, zero before any training (ResFiT's recipe).

``executed = clip(base + correction, -1, 1)``, ``correction = scale * tanh(MLP([obs_n, base]))``,
with the last layer initialised to zero. Trained in torch; run in numpy at control time.
Saved as ``residual.safetensors`` beside the weights folder's ``manifest.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import nn

from rmskill.errors import SkillError
from rmskill.storage import atomic_write

RESIDUAL_FILE = "residual.safetensors"
#: A feature whose spread in the data a corrector was normalised on is at most this did not vary there.
CONSTANT_SPREAD = 1e-3


def normalisation_spread(std: np.ndarray) -> np.ndarray:
    """The divisor of each observation feature: its spread in the data, or infinity (the feature held at
    its mean) where it did not vary. The corrector cannot have learned what a change in such a feature
    means; dividing by a small floor instead turns a 0.06 mm difference in a gripper's reading on another
    arm into 60 "standard deviations" and saturates the correction. Weights saved with the old floor
    (spread exactly ``CONSTANT_SPREAD``) read the same way."""
    std = np.asarray(std, dtype=np.float64)
    return np.where(std <= CONSTANT_SPREAD * (1 + 1e-6), np.inf, std)  # files store float32: 1e-3 reads 1.00000005e-3


class CorrectorNet(nn.Module):
    """Torch side: ``scale * tanh(MLP([(obs - mean) / std, base_action]))``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64, scale: float = 0.2):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Linear(obs_dim + act_dim, hidden), nn.LayerNorm(hidden), nn.Tanh(),
                                  nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, act_dim))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(normalisation_spread(std), dtype=torch.float32))

    def forward(self, obs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        x = torch.cat(((obs - self.obs_mean) / self.obs_std, base), dim=-1)
        return self.scale * torch.tanh(self.body(x))


class Corrector:
    """Numpy inference of a ``CorrectorNet``: callable as the skill's ``residual(obs, base)``.

    ``noise`` (set per episode by a fine-tuner) is added to the correction for exploration.
    """

    def __init__(self, tensors: dict[str, np.ndarray], scale: float):
        self.t = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
        if "obs_std" in self.t:
            self.t["obs_std"] = normalisation_spread(self.t["obs_std"])
        self.scale = float(scale)
        self.noise: np.ndarray | None = None

    @classmethod
    def from_net(cls, net: CorrectorNet) -> Corrector:
        return cls({k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}, net.scale)

    def mean_correction(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        t = self.t
        x = np.concatenate(((np.asarray(obs, dtype=np.float64) - t["obs_mean"]) / t["obs_std"], base))
        h = t["body.0.weight"] @ x + t["body.0.bias"]
        h = (h - h.mean()) / np.sqrt(h.var() + 1e-5) * t["body.1.weight"] + t["body.1.bias"]
        h = np.tanh(t["body.3.weight"] @ np.tanh(h) + t["body.3.bias"])
        return self.scale * np.tanh(t["body.5.weight"] @ h + t["body.5.bias"])

    def __call__(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        c = self.mean_correction(obs, base)
        if self.noise is not None:
            c = np.clip(c + self.noise, -self.scale, self.scale)
        return c

    def act(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        """As a fine-tuner's ``act``: the correction with this episode's exploration offset."""
        return self(obs, base)

    def save_to(self, path: str | Path) -> None:
        save_file({k: v.astype(np.float32) for k, v in self.t.items()}, str(path), metadata={"scale": repr(self.scale)})

    def save(self, folder: str | Path) -> Path:
        """Write ``residual.safetensors`` into ``folder`` atomically."""
        return atomic_write(Path(folder) / RESIDUAL_FILE, self.save_to)


def load_corrector(folder: str | Path) -> Corrector | None:
    """The corrector saved in a weights folder, or ``None`` when it has none."""
    path = Path(folder) / RESIDUAL_FILE
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    try:
        scale = float(meta["scale"])
    except (KeyError, ValueError):
        raise SkillError(f"{path} has no valid 'scale' in its metadata") from None
    return Corrector(load_file(str(path)), scale)
