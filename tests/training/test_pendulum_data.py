"""Generating the pendulum data set in parallel gives exactly the serial result, and the manifest
fields that describe the data and horizon come from the spec."""

import numpy as np

from training.data import pendulum


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
