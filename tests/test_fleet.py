"""Fleet fine-tuning (``finetune --fleet``): the fleet file is checked in one line, each cell's episodes
reach its model's learner, each model gets a weights folder ``rmskill eval`` loads, ``--resume`` goes
on; an emulated UR5e (its emulator's operator starts the episodes) works beside a simulated FR3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rmskill import cli
from rmskill.errors import ConfigError, DriverError, Interrupted, SkillError
from rmskill.finetune import CELL_STRIDE, finetune
from rmskill.fleet import load_fleet
from rmskill.learning.episodes import EpisodeStore

ROOT = Path(__file__).resolve().parents[1]
ARMS = ROOT / "examples" / "arms"
UR = ARMS / "sim-ur5e-perturbed.yaml"
FR3 = ARMS / "sim-fr3-perturbed.yaml"


@pytest.fixture(scope="module")
def ray_up():
    pytest.importorskip("ray", reason="finetune --fleet needs Ray: pip install 'rmskill[ray]'")
    from rmskill.workers import start_local_ray

    ray = start_local_ray(3)
    yield ray
    ray.shutdown()


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _renamed(src: Path, folder: Path, name: str, **changes: object) -> Path:
    data = yaml.safe_load(src.read_text())
    data.update(name=name, **changes)
    return _write(folder / f"{name}.yaml", data)


@pytest.mark.parametrize("content, message", [
    ({"cells": []}, r"cells.*at least 1"),
    ({"cells": [{"arm": "sim-ur5e-perturbed.yaml", "robot": 1}]}, r"cells\.0\.robot.*unknown key"),
    ({"cells": [{"arm": "nowhere.yaml"}]}, r"cells\[0\]: arm file .*nowhere.yaml' does not exist"),
    ({"cells": [{"arm": "sim-ur5e-perturbed.yaml"}, {"arm": "sim-ur5e-perturbed.yaml"}]},
     r"cells\[0\] and cells\[1\] are both arm 'sim-ur5e-perturbed'"),
    ({"cells": [{"arm": "emulated-ur5e.yaml"}, {"arm": "ur-twin.yaml"}]},
     r"'emulated-ur5e' and 'ur-twin' are both at host 127.0.0.1"),
    ({"cells": [{"arm": "sim-ur5e-perturbed.yaml", "node": "no such node"}]}, r"cells\.0\.node"),
])
def test_a_bad_fleet_file_is_one_line_naming_the_problem(tmp_path, content, message):
    for name in ("sim-ur5e-perturbed.yaml", "emulated-ur5e.yaml"):
        (tmp_path / name).write_text((ARMS / name).read_text())
    _renamed(ARMS / "emulated-ur5e.yaml", tmp_path, "ur-twin")
    fleet = _write(tmp_path / "fleet.yaml", content)
    with pytest.raises(ConfigError, match=message) as err:
        load_fleet(fleet)
    assert "\n" not in str(err.value)


def test_a_missing_fleet_file_and_arm_and_fleet_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"fleet file .* does not exist"):
        load_fleet(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="either an arm file"):
        finetune("plate_placement", UR, "role-model", 1, tmp_path / "run", fleet=tmp_path / "none.yaml")


def test_a_node_not_in_the_cluster_is_refused(ray_up, tmp_path):
    fleet = _write(tmp_path / "fleet.yaml", {"cells": [{"arm": str(UR), "node": "10.255.255.1"}]})
    with pytest.raises(ConfigError, match=r"node '10.255.255.1' is not in the Ray cluster \(nodes: "):
        finetune("plate_placement", None, "role-model", 1, tmp_path / "run", fleet=fleet)


def test_two_simulated_ur5e_share_a_learner_and_a_weights_folder_and_resume(ray_up, tmp_path, capsys):
    """Interrupted after its first written episode (the other cell's in flight is lost), then resumed:
    each cell's episodes once, in one learner's folder, which ``rmskill eval --weights`` takes."""
    twin = _renamed(UR, tmp_path, "sim-ur5e-twin")
    node = ray_up.nodes()[0]["NodeManagerAddress"]  # pinned to the one node there is
    fleet = _write(tmp_path / "fleet.yaml", {"name": "lab", "cells": [{"arm": str(UR)},
                                                                     {"arm": twin.name, "node": node}]})
    out = tmp_path / "run"

    def stop_at_first(i: int, record: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"1 finished episodes are saved.*--fleet .*--episodes 2 .*--resume"):
        finetune("plate_placement", None, "role-model", 2, out, fleet=fleet, progress=stop_at_first)
    assert len(EpisodeStore(out).records()) == 1  # one model: the run directory is its weights folder
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 1
    with pytest.raises(ConfigError, match="already holds a fine-tuning run"):
        finetune("plate_placement", None, "role-model", 2, out, fleet=fleet)
    data = finetune("plate_placement", None, "role-model", 2, out, fleet=fleet, resume=True)
    assert data["episodes"] == 4 and list(data["models"]) == ["ur5e"]
    assert {c: v["episodes"] for c, v in data["cells"].items()} == {"sim-ur5e-perturbed": 2, "sim-ur5e-twin": 2}
    records = EpisodeStore(out).records()
    assert sorted(r["cell"] for r in records) == ["sim-ur5e-perturbed"] * 2 + ["sim-ur5e-twin"] * 2
    assert sorted(r["index"] for r in records) == [0, 1, CELL_STRIDE, CELL_STRIDE + 1]  # each once
    assert all(r["truth"] is not None for r in records)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arms"] == ["sim-ur5e-perturbed", "sim-ur5e-twin"] and manifest["episodes"] == 4
    assert json.loads((out / "run.json").read_text())["models"] == {"ur5e": "."}
    cli.app(["eval", "plate_placement", "--arm", str(twin), "--weights", str(out), "--episodes", "1", "--json"],
            standalone_mode=False)  # a weights folder for each of its arms
    assert json.loads(capsys.readouterr().out)["episodes"] == 1


def test_the_cli_takes_an_arm_or_a_fleet(tmp_path, capsys):
    with pytest.raises(ConfigError, match="either --arm ARM_FILE or --fleet FLEET_FILE"):
        cli.app(["finetune", "plate_placement", "--arm", str(UR), "--fleet", str(UR), "--out", str(tmp_path)],
                standalone_mode=False)
    with pytest.raises(ConfigError, match="--workers does not apply"):
        cli.app(["finetune", "plate_placement", "--fleet", str(ROOT / "examples" / "fleet" / "fleet.yaml"),
                 "--workers", "2", "--out", str(tmp_path)], standalone_mode=False)


def test_an_emulated_ur5e_and_a_simulated_fr3_fine_tune_together(ray_up, tmp_path):
    """The emulator's operator starts the UR5e's episodes; the same UR5e without the operator option
    needs a person, which a fleet cell cannot prompt: refused."""
    pytest.importorskip("rtde_control", reason="the UR driver needs ur_rtde: pip install 'rmskill[ur]'")
    from rmskill.drivers.ur.emulator import EmulatorProcess
    from rmskill.drivers.ur.operator_service import EmulatorOperator

    host = "127.0.0.43"
    ur = _renamed(ROOT / "examples" / "fleet" / "emulated-ur5e-a.yaml", tmp_path, "emu-ur5e", host=host,
                  gripper={**yaml.safe_load((ROOT / "examples" / "fleet" / "emulated-ur5e-a.yaml").read_text())[
                      "gripper"], "port": str(tmp_path / "ttyUR")})
    fleet = _write(tmp_path / "fleet.yaml", {"cells": [{"arm": ur.name}, {"arm": str(FR3)}]})
    by_hand = _renamed(ur, tmp_path, "emu-ur5e-by-hand", options={"emulator_backend": "mujoco"})
    out = tmp_path / "run"
    with EmulatorProcess(ur, host=host):
        data = finetune("plate_placement", None, "role-model", 1, out, fleet=fleet)
        with pytest.raises(SkillError, match="needs a person to start each episode"):
            finetune("plate_placement", None, "role-model", 1, tmp_path / "by-hand",
                     fleet=_write(tmp_path / "by-hand.yaml", {"cells": [{"arm": by_hand.name}]}))
        operator = EmulatorOperator(host)
        with pytest.raises(DriverError, match="unknown reset keys"):
            operator.reset(teleport=True)
        operator.close()
    assert data["cells"]["emu-ur5e"]["episodes"] == 1 and data["cells"]["sim-fr3-perturbed"]["episodes"] == 1
    records = EpisodeStore(out / "ur5e").records()  # two models: a weights folder each
    assert [r["cell"] for r in records] == ["emu-ur5e"]
    assert all(r["truth"] is None for r in records)  # an emulated cell reports no simulator truth
    assert all(r["truth"] is not None for r in EpisodeStore(out / "fr3").records())
    assert json.loads((out / "ur5e" / "manifest.json").read_text())["arms"] == ["emu-ur5e"]
    assert json.loads((out / "run.json").read_text())["models"] == {"ur5e": "ur5e", "fr3": "fr3"}
