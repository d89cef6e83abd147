import pytest
import yaml

from rmskill import ConfigError
from rmskill.config import load_arm_config


def write(tmp_path, text: str):
    path = tmp_path / "arm.yaml"
    path.write_text(text)
    return path


def test_examples_load(ur5e_file, fr3_file):
    for f in (ur5e_file, fr3_file):
        cfg = load_arm_config(f)
        assert cfg.driver == "mujoco"
        assert set(cfg.fixtures) == {"shelf_1", "shelf_2", "shelf_3"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: a\ndriver: mujoco\nmodel: ur5e\ncolour: red\n", "'colour': unknown key"),
        ("name: a\ndriver: mujoco\n", "'model': required key is missing"),
        ("name: a\ndriver: mujoco\nmodel: ur5e\ntcp: [0, 0, 0.1]\n", "'tcp'"),
        ("name: a\ndriver: mujoco\nmodel: ur5e\nlimits: {max_force: -3}\n", "'limits.max_force'"),
        ("name: a\ndriver: mujoco\nmodel: ur5e\nsim: {truth: {latency: 3}}\n", "'sim.truth.latency': unknown key"),
        ("name: a\ndriver: mujoco\nmodel: ur5e\nlimits: {workspace: {min: [0, 0, 1], max: [1, 1, 0]}}\n",
         "workspace min z"),
        ("name: a b\ndriver: mujoco\nmodel: ur5e\n", "'name'"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_arm_config(write(tmp_path, text))
    message = str(err.value)
    assert key in message
    assert "\n" not in message


def test_unparseable_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_arm_config(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_arm_config(tmp_path / "nope.yaml")


def test_unknown_fixture_lists_the_known(ur5e_file):
    cfg = load_arm_config(ur5e_file)
    with pytest.raises(ConfigError, match="shelf_1, shelf_2, shelf_3"):
        cfg.fixture("shelf_9")


def test_with_changes_merges_nested(ur5e_file):
    cfg = load_arm_config(ur5e_file)
    changed = cfg.with_changes(sim={"truth": {"latency_ms": 3.0}})
    assert changed.truth.latency_ms == 3.0
    assert changed.sim.seed == cfg.sim.seed
    data = yaml.safe_load(ur5e_file.read_text())
    assert data["name"] == cfg.name
