"""Generating the pendulum data set in parallel gives exactly the serial result, the set is seeded,
cached and hash-checked, its network view is the paper's, and the manifest fields that describe the
data and horizon come from the spec."""

import numpy as np
import pytest
import torch

from training.data import pendulum
from training.data.errors import DataFormatError


def test_parallel_generation_equals_serial_generation(monkeypatch):
    monkeypatch.setattr(pendulum, "GENERATION_CHUNK", 3)       # 7 trajectories → chunks 3, 3, 1
    spec = pendulum.PendulumDataSpec(trajectories=7, points=6, train=5, seed=11)
    serial = pendulum.generate(spec, workers=1, progress=False)
    parallel = pendulum.generate(spec, workers=2, progress=False)
    np.testing.assert_array_equal(serial, parallel)
    assert serial.shape == (7, 6, 4)
    rng = np.random.default_rng(11)                            # row 0 is the seeded initial state
    np.testing.assert_array_equal(serial[:, 0], np.deg2rad(rng.uniform(-90, 90, size=(7, 4))))


def test_loaded_splits_carry_a_description_of_their_data(tmp_path):
    spec = pendulum.PendulumDataSpec(trajectories=10, points=5, train=8)
    train, test, digest = pendulum.load_pendulum(tmp_path, spec)
    assert (len(train), len(test), train.sequence_length) == (8, 2, 4)
    assert test.description == train.description == pendulum.describe(spec)
    assert "10 simulated trajectories" in train.description and "(0.4 s)" in train.description
    assert train.subset(np.arange(2)).description == train.description
    _, _, again = pendulum.load_pendulum(tmp_path, spec)       # from the cache, hash checked
    assert again == digest


def test_joint_integration_is_at_least_as_accurate_as_each_trajectory_alone():
    """Oracle: each trajectory integrated alone at rtol = atol = 1e-13. Over 3 s the joint solve of 40
    trajectories is no further from it than the per-trajectory solve at the data's 1e-10 (it is
    closer: its scaled tolerances are tighter), and it conserves energy."""
    from scipy.integrate import solve_ivp

    from physics.pendulum import derivatives, simulate, simulate_joint, total_energy
    initial = np.deg2rad(np.random.default_rng(5).uniform(-90, 90, size=(40, 4)))
    alone, joint = simulate(initial, 30), simulate_joint(initial, 30)
    assert joint.shape == alone.shape == (40, 31, 4)
    np.testing.assert_array_equal(joint[:, 0], initial)
    times = np.arange(31) * 0.1
    tight = np.stack([solve_ivp(derivatives, (0, 3), s0, method="DOP853", t_eval=times, rtol=1e-13,
                                atol=1e-13).y.T for s0 in initial])
    assert np.abs(joint - tight).max() <= np.abs(alone - tight).max() < 1e-6
    assert np.abs(total_energy(joint) - total_energy(initial)[:, None]).max() < 1e-7


def test_joint_sets_have_their_own_cache_key_and_the_standard_key_is_unchanged(tmp_path):
    standard = pendulum.PendulumDataSpec()
    assert standard.key() == "05f2f056dd57bd12"                # the key of every shipped pendulum manifest
    assert "solver" not in standard.record()
    joint = pendulum.PendulumDataSpec(trajectories=6, points=4, train=5, seed=3, solver="joint")
    assert joint.record()["solver"] == "joint" and joint.key() != pendulum.PendulumDataSpec(
        trajectories=6, points=4, train=5, seed=3).key()
    train, _test, _digest = pendulum.load_pendulum(tmp_path, joint)
    assert "integrated jointly" in train.description
    with pytest.raises(ValueError, match="solver"):
        pendulum.PendulumDataSpec(solver="rk4")


def test_a_larger_set_with_the_standard_seed_is_refused():
    pendulum.check_disjoint_from_standard_test(pendulum.PendulumDataSpec())
    pendulum.check_disjoint_from_standard_test(pendulum.PendulumDataSpec(trajectories=20000, train=18000,
                                                                         seed=1))
    with pytest.raises(ValueError, match="standard test trajectories"):
        pendulum.check_disjoint_from_standard_test(pendulum.PendulumDataSpec(trajectories=20000,
                                                                             train=18000))
    # the prefix property the check relies on: the standard rows are the first rows of a larger set
    small = np.random.default_rng(2022).uniform(size=(1000, 4))
    np.testing.assert_array_equal(np.random.default_rng(2022).uniform(size=(3000, 4))[:1000], small)


def test_data_set_is_seeded_cached_and_hash_checked(tmp_path):
    spec = pendulum.PendulumDataSpec(trajectories=12, train=9)
    states, digest = pendulum.load_or_generate(tmp_path, spec, verbose=False)
    assert states.shape == (12, 30, 4)
    low, high = np.deg2rad(-90), np.deg2rad(90)
    assert states[:, 0].min() >= low and states[:, 0].max() <= high
    cache = next(tmp_path.glob("pendulum-*.npz"))
    mtime = cache.stat().st_mtime_ns
    again, digest_again = pendulum.load_or_generate(tmp_path, spec, verbose=False)
    assert cache.stat().st_mtime_ns == mtime and digest_again == digest
    np.testing.assert_array_equal(again, states)
    # a fresh generation (no cache) reproduces the same trajectories: seeded and deterministic
    fresh, fresh_digest = pendulum.load_or_generate(tmp_path / "other", spec, verbose=False)
    assert fresh_digest == digest
    np.testing.assert_array_equal(fresh, states)
    other_seed, _ = pendulum.load_or_generate(tmp_path, pendulum.PendulumDataSpec(12, seed=1, train=9),
                                              verbose=False)
    assert not np.allclose(other_seed, states)
    # tampering is detected
    with np.load(cache) as z:
        items = dict(z)
    items["states"] = items["states"] + 1e-3
    np.savez(cache, **items)
    with pytest.raises(DataFormatError, match="do not match their parameters or content hash"):
        pendulum.load_or_generate(tmp_path, spec, verbose=False)


def test_network_view_of_a_trajectory(tmp_path):
    spec = pendulum.PendulumDataSpec(trajectories=10, train=9)
    train, test, _ = pendulum.load_pendulum(tmp_path, spec)
    assert len(train) == 9 and len(test) == 1
    x, y = train.batch(torch.tensor([3, 5]))
    assert x.shape == (2, 29, 4) and y.shape == (2, 29, 4)
    torch.testing.assert_close(x[:, 0], train.states[[3, 5], 0])
    assert bool((x[:, 1:] == 1.0).all())
    torch.testing.assert_close(y, train.states[[3, 5], 1:])
