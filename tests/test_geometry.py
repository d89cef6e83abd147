import numpy as np
import pytest

from rmskill import ConfigError, Pose


def random_pose(rng) -> Pose:
    rotvec = rng.normal(size=3)
    rotvec *= rng.uniform(0, np.pi - 1e-3) / np.linalg.norm(rotvec)
    return Pose.from_ur([*rng.uniform(-1, 1, 3), *rotvec])


def test_ur_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = random_pose(rng)
        q = Pose.from_ur(p.to_ur())
        assert p.isclose(q, mm=1e-9, deg=1e-9)
        np.testing.assert_allclose(p.to_ur(), q.to_ur(), atol=1e-9)


def test_matrix_franka_and_quaternion_round_trips():
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = random_pose(rng)
        assert Pose.from_matrix(p.matrix()).isclose(p, mm=1e-9, deg=1e-7)
        assert Pose.from_franka(p.to_franka()).isclose(p, mm=1e-9, deg=1e-7)
        assert Pose.from_quat_xyzw(p.xyz, p.xyzw).isclose(p, mm=1e-12, deg=1e-9)
        assert Pose(p.xyz, p.wxyz).isclose(p)


def test_franka_layout_is_column_major():
    p = Pose.from_ur([0.1, 0.2, 0.3, 0, 0, 0])
    o_t_ee = p.to_franka()
    assert o_t_ee[12:15] == pytest.approx([0.1, 0.2, 0.3])  # translation is the last column
    assert o_t_ee[15] == 1.0


def test_compose_inverse_and_distances():
    rng = np.random.default_rng(2)
    a, b = random_pose(rng), random_pose(rng)
    assert (a @ a.inverse()).isclose(Pose.identity(), mm=1e-9, deg=1e-6)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-12)
    moved = Pose.from_ur([0.0, 0.0, 0.001, 0.0, 0.0, np.radians(2.0)])
    assert Pose.identity().distance_mm(moved) == pytest.approx(1.0)
    assert Pose.identity().angle_deg(moved) == pytest.approx(2.0)
    mid = Pose.identity().interpolate(moved, 0.5)
    assert mid.distance_mm(Pose.identity()) == pytest.approx(0.5)
    assert mid.angle_deg(Pose.identity()) == pytest.approx(1.0)


def test_pose_is_frozen_and_validated():
    p = Pose.from_ur([0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        p.xyz[0] = 1.0
    with pytest.raises(ConfigError, match="non-finite"):
        Pose([np.nan, 0, 0])
    with pytest.raises(ConfigError, match="6 numbers"):
        Pose.from_ur([0, 0, 0])
