"""AntSubgoals (ant-pinpad): rules, resets, observation, MuJoCo reset state, rendering, video.

Rule tests pin a layout, place the ant with ``ant_xy`` and then move it by editing the MuJoCo
state directly ("teleporting"), so each rule is exercised deterministically in one env step.
"""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.envs.mujoco.utils import check_mujoco_reset_state

import irl_envs  # noqa: F401  (registers the ids)
from irl_envs import grid_logic
from irl_envs.ant_subgoals import PROPRIO_DIM, START_MARGIN, VIEW_MARGIN, AntSubgoalsEnv
from irl_envs.grid_render import colour_rgb
from irl_envs.tasks import ANT_PRETRAIN_TASKS

# 4x4 grid, 1 m cells, centred at the origin: cell (r, c) centre = (c - 1.5, 1.5 - r).
LAYOUT = {"agent": (1, 1), "colours": [(1, 2), (0, 0), (3, 3), (2, 0)], "walls": [(2, 2)]}
START = (-0.5, 0.5)  # centre of (1, 1)
ZERO = np.zeros(8, dtype=np.float32)


def centre(row: int, col: int) -> tuple[float, float]:
    return col - 1.5, 1.5 - row


@pytest.fixture
def env():
    e = AntSubgoalsEnv(task=(0, 1, 2, 3))
    yield e
    e.close()


def start(env, **options):
    options = {"layout": LAYOUT, "ant_xy": START, "ant_yaw": 0.0, **options}
    return env.reset(seed=0, options=options)


def teleport(env, x: float, y: float, z: float | None = None) -> None:
    """Move the torso (keeping the legs' pose) and stop it."""
    env.data.qpos[0], env.data.qpos[1] = x, y
    if z is not None:
        env.data.qpos[2] = z
    env.data.qvel[:] = 0.0
    mujoco.mj_forward(env.model, env.data)


def step_at(env, x: float, y: float, z: float | None = None):
    teleport(env, x, y, z)
    return env.step(ZERO)


# ------------------------------------------------------------------------------------ rules
def test_visit_counts_on_entering_only(env):
    _, info = start(env)
    assert info["agent"] == (1, 1) and info["next_index"] == 0
    _, r, term, trunc, info = step_at(env, *centre(1, 2))  # enter colour 0
    assert (r, term, trunc) == (0.0, False, False)
    assert info["next_index"] == 1 and info["event"] == "visit" and info["agent"] == (1, 2)
    _, r, term, _, info = env.step(ZERO)  # staying in the cell is not a new visit
    assert not term and info["next_index"] == 1 and info["event"] == ""
    _, _, term, _, info = step_at(env, *START)  # leave to an empty cell: nothing happens
    assert not term and info["event"] == ""
    _, r, term, _, info = step_at(env, *centre(1, 2))  # re-entering colour 0 is a new visit
    assert term and r == 0.0 and info["event"] == "wrong_colour" and not info["is_success"]


def test_start_cell_does_not_count(env):
    start(env, ant_xy=centre(1, 2))  # placed inside colour 0 (allowed)
    _, _, term, _, info = env.step(ZERO)
    assert not term and info["next_index"] == 0 and info["agent"] == (1, 2)


def test_wrong_colour_terminates(env):
    start(env)
    _, r, term, trunc, info = step_at(env, *centre(0, 0))  # colour 1, but 0 is next
    assert term and not trunc and r == 0.0
    assert info["event"] == "wrong_colour" and info["next_index"] == 0


def test_success_reward(env):
    start(env, task=[0, 1, 0])
    rewards = []
    for cell in [(1, 2), (1, 1), (0, 1), (0, 0), (0, 1), (1, 1), (1, 2)]:
        _, r, term, _, info = step_at(env, *centre(*cell))
        rewards.append(r)
    assert term and info["is_success"] and info["event"] == "success"
    assert info["next_index"] == 3 and info["task"] == [0, 1, 0]
    assert rewards == [0.0] * 6 + [1.0]


def test_wall_terminates(env):
    start(env)
    _, r, term, _, info = step_at(env, *centre(2, 2))
    assert term and r == 0.0 and info["event"] == "wall" and info["agent"] == (2, 2)


def test_leaving_the_grid_terminates(env):
    start(env)
    _, r, term, _, info = step_at(env, -2.3, 0.5)
    assert term and r == 0.0 and info["event"] == "off_grid"
    assert info["agent"] == (1, 0)  # clipped to the grid


def test_height_above_range_terminates(env):
    start(env)
    _, r, term, _, info = step_at(env, *START, z=1.3)
    assert term and r == 0.0 and info["event"] == "height"


def test_height_below_range_terminates(env):
    start(env)
    env.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)  # let it sink
    teleport(env, *START, z=0.21)
    env.data.qvel[2] = -2.0
    _, r, term, _, info = env.step(ZERO)
    assert env.data.qpos[2] < 0.2
    assert term and r == 0.0 and info["event"] == "height"


def test_height_inside_range_is_healthy(env):
    start(env)
    for z in (0.3, 0.95):
        _, _, term, _, info = step_at(env, *START, z=z)
        assert not term, (z, info)


def test_non_finite_state_terminates(env):
    start(env)
    env.data.qvel[0] = np.nan
    with np.errstate(invalid="ignore"):
        obs, r, term, _, info = env.step(ZERO)
    assert term and r == 0.0 and info["event"] == "nonfinite"
    assert np.isfinite(obs).all() and env.observation_space.contains(obs)


def test_truncation_at_max_steps():
    env = AntSubgoalsEnv(max_steps=3)
    start(env)
    flags = [env.step(ZERO)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


# ------------------------------------------------------------------------------------ reset
def test_ant_xy_and_yaw_are_exact(env):
    _, info = start(env, ant_xy=(0.7, -1.2), ant_yaw=0.9)
    assert (info["x"], info["y"]) == (0.7, -1.2) and info["agent"] == (3, 2)
    q = env.data.qpos[3:7]
    assert np.allclose(q, [math.cos(0.45), 0, 0, math.sin(0.45)])
    assert env.data.qpos[2] == 0.75


def test_ant_xy_without_layout_keeps_its_cell_free(env):
    for seed in range(20):
        _, info = env.reset(seed=seed, options={"ant_xy": (1.2, 1.7)})
        assert info["agent"] == (0, 3) and env.cells[3] == grid_logic.EMPTY


@pytest.mark.parametrize("options", [
    {"ant_xy": centre(2, 2), "layout": LAYOUT},  # in the wall
    {"ant_xy": (2.0, 0.0)},  # off the grid (the right edge is outside)
    {"ant_xy": (0.0, -2.5)},
    {"ant_xy": (0.0, float("nan"))},
    {"ant_xy": (1.0,)},
    {"ant_yaw": "north"},
    {"colour": 3},
    {"task": [0, 9]},
    {"task": []},
    {"layout": {"agent": (0, 0), "colours": [(1, 1)] * 4, "walls": [(2, 2)]}},
    {"layout": {"agent": (0, 0), "colours": [(1, 1), (1, 2), (1, 3)], "walls": [(2, 2)]}},
    {"layout": {"agent": (0, 0), "colours": [(1, 1), (1, 2), (1, 3), (4, 0)],
                "walls": [(2, 2)]}},
    {"layout": {"colours": [(1, 1), (1, 2), (1, 3), (3, 0)], "walls": [(2, 2)]}},
])
def test_bad_reset_options_raise(env, options):
    with pytest.raises(ValueError):
        env.reset(seed=0, options=options)


@pytest.mark.parametrize("kwargs", [
    {"grid_size": 1}, {"num_colours": 0}, {"num_walls": -1}, {"num_colours": 15},
    {"cell_size": 0.0}, {"cell_size": float("inf")}, {"max_steps": 0}, {"frame_skip": 0},
    {"tasks": [[0, 7]]}, {"task": [4]}, {"render_mode": "human"}, {"camera_name": "side"},
    {"width": 0}, {"grid_size": 4.0},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        AntSubgoalsEnv(**kwargs)


def test_random_layouts_are_valid_and_solvable():
    env = AntSubgoalsEnv(tasks=ANT_PRETRAIN_TASKS)
    tasks_seen = set()
    for seed in range(40):
        _, info = env.reset(seed=seed)
        cells = env.cells
        assert sorted(cells[cells >= 0].tolist()) == list(range(5))  # 4 colours, 1 wall
        row, col = info["agent"]
        agent = row * 4 + col
        assert cells[agent] == grid_logic.EMPTY
        task = np.array([info["task"]])
        assert grid_logic.solvable(cells[None], np.array([agent]), task, np.array([3]), 4)[0]
        cx, cy = env.cell_centres[agent]
        assert abs(info["x"] - cx) <= 0.5 - START_MARGIN and abs(info["y"] - cy) <= 0.4
        tasks_seen.add(tuple(info["task"]))
        # The arena follows the layout: tile colours and the wall block.
        colour0 = int(np.flatnonzero(cells == 0)[0])
        rgba = env.model.geom_rgba[env._tile_ids[colour0], :3]
        assert np.allclose(rgba, colour_rgb(0) / 255)
        wall = int(np.flatnonzero(cells == 4)[0])
        assert np.allclose(env.model.geom_pos[env._wall_ids[0], :2], env.cell_centres[wall])
    assert len(tasks_seen) > 5


def test_reset_edits_the_model_in_place(env):
    model = env.model
    env.reset(seed=0)
    first = env.model.geom_rgba.copy()
    env.reset(seed=1)
    assert env.model is model and not np.array_equal(first, env.model.geom_rgba)


def test_mujoco_reset_state():
    check_mujoco_reset_state(AntSubgoalsEnv(tasks=ANT_PRETRAIN_TASKS))
    check_mujoco_reset_state(gym.make("InternalRL/AntSubgoals-v0"), seed=7)


def test_locomotion_dynamics_are_ant_v5s(env):
    env.reset(seed=0)
    ant = gym.make("Ant-v5").unwrapped
    ant.reset(seed=0)
    ant.set_state(env.data.qpos.copy(), env.data.qvel.copy())
    rng = np.random.default_rng(0)
    for _ in range(30):  # the rules may end the episode; the physics goes on regardless
        action = rng.uniform(-1, 1, 8)
        env.step(action)
        ant.step(action)
    assert np.allclose(env.data.qpos, ant.data.qpos, atol=1e-8)
    assert np.allclose(env.data.qvel, ant.data.qvel, atol=1e-6)


# ------------------------------------------------------------------------------ observation
def test_observation_slices(env):
    obs, info = start(env, ant_xy=(0.3, 0.9))
    assert obs.shape == (41,) and obs.dtype == np.float32
    q, v = env.data.qpos, env.data.qvel
    symlog = np.sign(np.r_[q[2:], v]) * np.log1p(np.abs(np.r_[q[2:], v]))
    assert np.allclose(obs[:PROPRIO_DIM], symlog, atol=1e-6)
    assert np.allclose(obs[27:29], [0.3 / 2, 0.9 / 2])
    cells = [*LAYOUT["colours"], *LAYOUT["walls"]]
    rel = [(np.array(centre(*c)) - (0.3, 0.9)) / 4 for c in cells]
    assert np.allclose(obs[29:39], np.ravel(rel), atol=1e-6)
    assert info["agent"] == (1, 2)
    assert np.allclose(obs[39:41], [(0.3 - 0.5) * 2, (0.9 - 0.5) * 2], atol=1e-6)


def test_observation_has_no_task_information(env):
    a, _ = start(env, task=[0, 1, 2, 3])
    b, _ = start(env, task=[3, 2, 1])
    assert np.array_equal(a, b)


def test_same_seed_same_episode():
    def run(seed):
        e = gym.make("InternalRL/AntSubgoalsPretrain-v0")
        obs, _ = e.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out = [obs]
        for _ in range(20):
            out.append(e.step(rng.uniform(-1, 1, 8).astype(np.float32))[0])
        return np.stack(out)

    assert np.array_equal(run(1), run(1)) and not np.array_equal(run(1), run(2))


# -------------------------------------------------------------------------------- rendering
def _render_env(**kwargs):
    env = AntSubgoalsEnv(render_mode="rgb_array", width=96, height=96, **kwargs)
    env.reset(seed=0, options={"layout": LAYOUT, "ant_xy": centre(3, 0)})
    try:
        frame = env.render()
    except Exception as err:  # noqa: BLE001  (no OpenGL at all on this machine)
        pytest.skip(f"MuJoCo cannot open an OpenGL context here ({err!r}); install Mesa's EGL "
                    f"(libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1) and set MUJOCO_GL=egl")
    return env, frame


def test_render_top_view_shows_the_layout():
    env, frame = _render_env()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    # The grid spans the image up to a thin frame; row 0 is at the top.
    span = 96 * 4 / (4 + 2 * VIEW_MARGIN)
    for colour, (row, col) in enumerate(LAYOUT["colours"]):
        if (row, col) == (3, 3):
            continue
        y = int(96 / 2 - span / 2 + (row + 0.5) * span / 4 + span / 16)  # lower part of the
        x = int(96 / 2 - span / 2 + (col + 0.5) * span / 4 + span / 16)  # cell, off the ant
        assert np.abs(frame[y, x].astype(int) - colour_rgb(colour)).max() < 40, colour
    env.close()


def test_render_track_view_and_camera_choice():
    env, top = _render_env(camera_name="track")
    assert top.shape == (96, 96, 3)
    other = env.render_view("top")
    assert other.shape == (96, 96, 3) and not np.array_equal(top, other)
    with pytest.raises(ValueError):
        env.render_view("side")
    env.close()


def test_render_without_mode_returns_none():
    env = AntSubgoalsEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning):
        assert env.render() is None


def test_save_episode_video(tmp_path):
    import imageio.v3 as iio

    from irl_envs.video import save_episode_video

    env, _ = _render_env()
    path = tmp_path / "episode.gif"
    stats = save_episode_video(env, lambda obs: np.zeros(8), path, seed=0, max_steps=6,
                               cameras=("top", "track"))
    frames = iio.imread(path)
    assert stats["length"] == 6 and stats["frames"] == 7
    assert frames.shape == (7, 96, 192, 3)
    with pytest.raises(ValueError):
        save_episode_video(env, None, tmp_path / "episode.avi")


def test_pickled_clone_continues_the_episode():
    import pickle

    env = gym.make("InternalRL/AntSubgoalsPretrain-v0")
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(rng.uniform(-1, 1, 8).astype(np.float32))
    clone = pickle.loads(pickle.dumps(env))
    assert np.array_equal(clone.unwrapped.cells, env.unwrapped.cells)
    for _ in range(10):
        action = rng.uniform(-1, 1, 8).astype(np.float32)
        a, b = env.step(action), clone.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
        if a[2] or a[3]:
            break
    assert np.array_equal(env.reset()[0], clone.reset()[0])  # same generator state
