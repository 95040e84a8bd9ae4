"""Raw batches: a process-parallel batch equals the same environments stepped one by one."""

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from irl_agents.raw_batch import EnvListRawBatch, ProcessRawBatch, make_raw_batch


@pytest.mark.parametrize("env_id", ["InternalRL/ColourSequencePretrain-v0",
                                    "InternalRL/AntSubgoals-v0"])
def test_process_batch_equals_env_list(env_id):
    n = 5
    make = partial(gym.make, env_id)
    serial = EnvListRawBatch([make() for _ in range(n)])
    parallel = ProcessRawBatch(make, n, workers=2)
    try:
        seeds = list(range(100, 100 + n))
        np.testing.assert_array_equal(serial.reset(np.arange(n), seeds),
                                      parallel.reset(np.arange(n), seeds))
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(80):
            rows = np.flatnonzero(rng.random(n) < 0.7)  # a subset, as the latent env steps
            if not len(rows):
                continue
            actions = np.stack([serial.action_space.sample() for _ in rows])
            out = serial.step(rows, actions)
            for a, b in zip(out, parallel.step(rows, actions), strict=True):
                np.testing.assert_array_equal(a, b)
            ended = rows[out[2] | out[3]]
            for row in ended.tolist():
                assert serial.info(row) == parallel.info(row)
            if len(ended):  # continue each row's episode stream
                ends += len(ended)
                np.testing.assert_array_equal(serial.reset(ended, [None] * len(ended)),
                                              parallel.reset(ended, [None] * len(ended)))
        np.testing.assert_array_equal(serial.progress(), parallel.progress())
        assert ends > 0
    finally:
        parallel.close()


def test_make_raw_batch_workers():
    batch = make_raw_batch("ant", "posttrain", 3, workers=2)
    try:
        assert isinstance(batch, ProcessRawBatch)
        assert batch.reset(np.arange(3), [0, 1, 2]).shape == (3, 41)
    finally:
        batch.close()
    assert isinstance(make_raw_batch("ant", "posttrain", 3), EnvListRawBatch)
    with pytest.raises(ValueError, match="workers"):
        make_raw_batch("ant", "posttrain", 3, workers=0)
