"""Ant-pinpad: the MuJoCo ant visits coloured cells of a grid in order (Kobayashi et al., §2.2).

The arena (floor tiles, wall blocks, cameras) is generated as MJCF once per environment
instance; every reset recolours the tiles and moves the wall blocks by editing
``model.geom_rgba`` / ``model.geom_pos``, never by rebuilding the XML. The ant body, its
actuators, integrator (RK4, 0.01 s) and default frame skip (5) are those of Gymnasium's
``Ant-v5`` (``gymnasium/envs/mujoco/assets/ant.xml``), so the locomotion problem is the
familiar one and the two can be benchmarked side by side.

Headless rendering: set ``MUJOCO_GL=egl``. Without a GPU, Mesa's llvmpipe renders in software
through EGL (Debian/Ubuntu packages ``libegl1 libegl-mesa0 libgl1-mesa-dri libgl1
libopengl0``; Python package ``PyOpenGL``), about 45 ms per 480x480 frame on one CPU core.
When an environment is created with ``render_mode="rgb_array"``, ``MUJOCO_GL`` is unset and
there is no ``DISPLAY`` / ``WAYLAND_DISPLAY``, it is set to ``egl`` for you.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco import MujocoEnv

from irl_envs import grid_logic
from irl_envs.grid_render import EMPTY_RGB, WALL_RGB, colour_rgb
from irl_envs.tasks import ANT_POSTTRAIN_TASK, Task, validate_tasks
from irl_envs.validation import check_float, check_int, check_seed

DEFAULT_CELL_SIZE = 1.0
"""Side of a grid cell in metres. See the class docstring (## Arguments) for the choice."""
TIMESTEP = 0.01
"""MuJoCo integration step (as Ant-v5); one env step lasts ``frame_skip * TIMESTEP`` s."""
HEALTHY_Z_RANGE = (0.2, 1.0)
TORSO_START_Z = 0.75
RESET_NOISE = 0.1
START_MARGIN = 0.1
"""The start position is drawn uniformly in the cell shrunk by this fraction of a cell side on
each side, so an episode never starts on a cell boundary."""
CAMERAS = ("top", "track")
PROPRIO_DIM = 27
PROPRIO_BOUND = math.log1p(mujoco.mjMAXVAL)
"""symlog of MuJoCo's divergence threshold (|qpos|, |qvel| > 1e10 resets the data): ~23.03."""
_MAX_LAYOUT_DRAWS = 10_000


def symlog(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``, what the observation applies to the proprioception."""
    return np.sign(x) * np.log1p(np.abs(x))


def symexp(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`symlog`."""
    return np.sign(x) * np.expm1(np.abs(x))


_LAYOUT_BATCH = 8
_WALL_HEIGHT = 0.3
_TILE_GAP = 0.02
VIEW_MARGIN = 0.75
"""Metres of floor shown around the grid by the top-down camera (the ant's legs reach ~1 m)."""
_PICKLED_STATE = int(mujoco.mjtState.mjSTATE_INTEGRATION)
_BAD_STATE_WARNINGS = (
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
)



def _mujoco_warning(message: str) -> None:
    """MuJoCo warnings go to Gymnasium's logger: the default handler appends them to
    ``MUJOCO_LOG.TXT`` in the working directory. The envs detect bad states themselves."""
    gym.logger.warn(f"MuJoCo: {message}")


if mujoco.get_mju_user_warning() is None:  # leave a handler the user installed alone
    mujoco.set_mju_user_warning(_mujoco_warning)


def check_torques(action: Any, size: int) -> np.ndarray:
    """``action`` as a float64 array of ``size`` finite torques clipped to [-1, 1]; else
    ``ValueError``. Clipping is what the actuators' ``ctrlrange`` does to finite values; a NaN
    or Inf would instead be zeroed by MuJoCo with a warning and the episode would go on."""
    try:
        torques = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"action must be {size} finite floats, got {action!r}") from None
    if torques.shape != (size,):
        raise ValueError(f"action must have shape ({size},), got {torques.shape}")
    if not np.isfinite(torques).all():
        raise ValueError(f"action must be finite, got {action!r}")
    return np.clip(torques, -1.0, 1.0)


# The ant of gymnasium/envs/mujoco/assets/ant.xml (MIT licence, Farama Foundation), unchanged
# but for the tracking camera.
_ANT_BODY = """
    <body name="torso" pos="0 0 {z0}">
      <camera name="track" mode="trackcom" pos="0 -3.5 3.5" xyaxes="1 0 0 0 0.707 0.707"/>
      <geom name="torso_geom" pos="0 0 0" size="0.25" type="sphere"/>
      <joint armature="0" damping="0" limited="false" margin="0.01" name="root"
            pos="0 0 0" type="free"/>
      <body name="front_left_leg" pos="0 0 0">
        <geom fromto="0.0 0.0 0.0 0.2 0.2 0.0" name="aux_1_geom" size="0.08" type="capsule"/>
        <body name="aux_1" pos="0.2 0.2 0">
          <joint axis="0 0 1" name="hip_1" pos="0.0 0.0 0.0" range="-30 30" type="hinge"/>
          <geom fromto="0.0 0.0 0.0 0.2 0.2 0.0" name="left_leg_geom" size="0.08" type="capsule"/>
          <body pos="0.2 0.2 0">
            <joint axis="-1 1 0" name="ankle_1" pos="0.0 0.0 0.0" range="30 70" type="hinge"/>
            <geom fromto="0.0 0.0 0.0 0.4 0.4 0.0" name="left_ankle_geom"
                  size="0.08" type="capsule"/>
          </body>
        </body>
      </body>
      <body name="front_right_leg" pos="0 0 0">
        <geom fromto="0.0 0.0 0.0 -0.2 0.2 0.0" name="aux_2_geom" size="0.08" type="capsule"/>
        <body name="aux_2" pos="-0.2 0.2 0">
          <joint axis="0 0 1" name="hip_2" pos="0.0 0.0 0.0" range="-30 30" type="hinge"/>
          <geom fromto="0.0 0.0 0.0 -0.2 0.2 0.0" name="right_leg_geom"
                size="0.08" type="capsule"/>
          <body pos="-0.2 0.2 0">
            <joint axis="1 1 0" name="ankle_2" pos="0.0 0.0 0.0" range="-70 -30" type="hinge"/>
            <geom fromto="0.0 0.0 0.0 -0.4 0.4 0.0" name="right_ankle_geom"
                  size="0.08" type="capsule"/>
          </body>
        </body>
      </body>
      <body name="back_leg" pos="0 0 0">
        <geom fromto="0.0 0.0 0.0 -0.2 -0.2 0.0" name="aux_3_geom" size="0.08" type="capsule"/>
        <body name="aux_3" pos="-0.2 -0.2 0">
          <joint axis="0 0 1" name="hip_3" pos="0.0 0.0 0.0" range="-30 30" type="hinge"/>
          <geom fromto="0.0 0.0 0.0 -0.2 -0.2 0.0" name="back_leg_geom"
                size="0.08" type="capsule"/>
          <body pos="-0.2 -0.2 0">
            <joint axis="-1 1 0" name="ankle_3" pos="0.0 0.0 0.0" range="-70 -30" type="hinge"/>
            <geom fromto="0.0 0.0 0.0 -0.4 -0.4 0.0" name="third_ankle_geom"
                  size="0.08" type="capsule"/>
          </body>
        </body>
      </body>
      <body name="right_back_leg" pos="0 0 0">
        <geom fromto="0.0 0.0 0.0 0.2 -0.2 0.0" name="aux_4_geom" size="0.08" type="capsule"/>
        <body name="aux_4" pos="0.2 -0.2 0">
          <joint axis="0 0 1" name="hip_4" pos="0.0 0.0 0.0" range="-30 30" type="hinge"/>
          <geom fromto="0.0 0.0 0.0 0.2 -0.2 0.0" name="rightback_leg_geom"
                size="0.08" type="capsule"/>
          <body pos="0.2 -0.2 0">
            <joint axis="1 1 0" name="ankle_4" pos="0.0 0.0 0.0" range="30 70" type="hinge"/>
            <geom fromto="0.0 0.0 0.0 0.4 -0.4 0.0" name="fourth_ankle_geom"
                  size="0.08" type="capsule"/>
          </body>
        </body>
      </body>
    </body>"""

_ACTUATORS = """
  <actuator>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="hip_4" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="ankle_4" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="hip_1" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="ankle_1" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="hip_2" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="ankle_2" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="hip_3" gear="150"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" joint="ankle_3" gear="150"/>
  </actuator>"""


def arena_xml(grid_size: int, num_walls: int, cell_size: float, width: int, height: int) -> str:
    """MJCF of the arena: floor, G*G tiles, W wall blocks, a border frame, cameras, the ant.

    Tiles, walls and the frame are visual only (``contype=0 conaffinity=0``): the ant only
    touches the floor, exactly as in Ant-v5. Tile colours and wall positions are placeholders
    that every reset overwrites.
    """
    g, c = grid_size, cell_size
    half = g * c / 2
    tile = c / 2 - _TILE_GAP / 2
    frame = max(0.05 * c, 0.05)
    view = 2 * half + 2 * VIEW_MARGIN
    wall_rgba = " ".join(f"{v / 255:.3f}" for v in WALL_RGB) + " 1"
    geoms = []
    for cell in range(g * g):
        r, col = divmod(cell, g)
        x, y = (col + 0.5) * c - half, half - (r + 0.5) * c
        geoms.append(f'<geom name="tile_{cell}" type="box" pos="{x:.6g} {y:.6g} 0.004" '
                     f'size="{tile:.6g} {tile:.6g} 0.004" contype="0" conaffinity="0" '
                     f'material="flat" rgba="0.9 0.9 0.9 1"/>')
    for j in range(num_walls):
        geoms.append(f'<geom name="wall_{j}" type="box" pos="0 0 {-2 * _WALL_HEIGHT}" '
                     f'size="{tile:.6g} {tile:.6g} {_WALL_HEIGHT / 2}" contype="0" '
                     f'conaffinity="0" material="flat" rgba="{wall_rgba}"/>')
    for k, (sx, sy) in enumerate(((1, 0), (-1, 0), (0, 1), (0, -1))):
        length = half + 2 * frame
        size = (frame, length) if sx else (length, frame)
        pos = (sx * (half + frame), sy * (half + frame))
        geoms.append(f'<geom name="frame_{k}" type="box" pos="{pos[0]:.6g} {pos[1]:.6g} 0.05" '
                     f'size="{size[0]:.6g} {size[1]:.6g} 0.05" contype="0" conaffinity="0" '
                     f'rgba="0.25 0.25 0.25 1"/>')
    arena = "\n    ".join(geoms)
    floor = half + 20
    return f"""<mujoco model="ant_subgoals">
  <compiler angle="degree" inertiafromgeom="true"/>
  <option integrator="RK4" timestep="{TIMESTEP}"/>
  <visual>
    <global offwidth="{width}" offheight="{height}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.2 0.2 0.2" specular="0 0 0"/>
  </visual>
  <default>
    <joint armature="1" damping="1" limited="true"/>
    <geom conaffinity="0" condim="3" density="5.0" friction="1 0.5 0.5" margin="0.01"
          rgba="0.8 0.6 0.4 1"/>
  </default>
  <asset>
    <texture builtin="gradient" height="100" rgb1="1 1 1" rgb2="0 0 0" type="skybox"
             width="100"/>
    <texture builtin="checker" height="100" name="texplane" rgb1="0.55 0.6 0.55"
             rgb2="0.65 0.7 0.65" type="2d" width="100"/>
    <material name="MatPlane" reflectance="0.1" shininess="0.2" specular="0.2"
              texrepeat="20 20" texture="texplane"/>
    <material name="flat" specular="0" shininess="0" reflectance="0"/>
  </asset>
  <worldbody>
    <light cutoff="100" diffuse="0.45 0.45 0.45" dir="0 0 -1.3" directional="true"
           exponent="1" pos="0 0 1.3" specular=".1 .1 .1"/>
    <camera name="top" pos="0 0 {2 * half + 10:.6g}" xyaxes="1 0 0 0 1 0"
            projection="orthographic" fovy="{view:.6g}"/>
    <geom conaffinity="1" condim="3" material="MatPlane" rgba="1 1 1 1" name="floor"
          pos="0 0 0" size="{floor:.6g} {floor:.6g} 40" type="plane"/>
    {arena}
{_ANT_BODY.format(z0=TORSO_START_Z)}
  </worldbody>
{_ACTUATORS}
</mujoco>
"""


class AntSubgoalsEnv(MujocoEnv, utils.EzPickle):
    r"""Ant-pinpad (``InternalRL/AntSubgoals-v0``, ``InternalRL/AntSubgoalsPretrain-v0``).

    ## Description
    The MuJoCo ant of Gymnasium's ``Ant-v5`` walks on a G x G grid of floor tiles (G=4) that
    holds O uniquely coloured cells (O=4) and W wall cells (W=1). The task is a sequence of
    colours; the ant must walk its torso centre into them in order without entering any other
    colour, a wall, or leaving the grid. Rewards are sparse: 1 on completing the task, 0
    otherwise. ``AntSubgoals-v0`` uses the post-training task 0-1-2-3;
    ``AntSubgoalsPretrain-v0`` draws one of the 16 tasks of Table A2 per episode.

    Geometry: the grid is centred at the world origin, cells are ``cell_size`` metres wide,
    cells are numbered row-major (``cell = row * G + col``), row 0 is the top row of the
    top-down image (largest y) and column 0 the left one (smallest x). With ``h = G *
    cell_size / 2``, cell (row, col) spans ``x in [col * cell_size - h, (col + 1) * cell_size
    - h)`` and ``y in (h - (row + 1) * cell_size, h - row * cell_size]``, so its centre is
    ``x = (col + 0.5) * cell_size - h``, ``y = h - (row + 0.5) * cell_size``. The ant is in
    the cell that holds its torso centre (the x, y of the free joint).

    Walls and colours are drawn on the floor (walls as dark blocks) but do not collide: as in
    the paper, a wall is a cell whose entry ends the episode, not an obstacle. Only the floor
    has contacts, exactly as in Ant-v5, so the locomotion dynamics are Ant-v5's.

    ## Action space
    ``Box(-1, 1, (8,), float32)``: torques of the eight hinges, in Ant-v5's order (hip_4,
    ankle_4, hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3), gear 150.

    ## Observation space
    ``Box(low, high, (31 + 2 * (O + W),), float32)``: 41 dims for the defaults. Notation:
    ``symlog(v) = sign(v) * log(1 + |v|)``; ``h = G * cell_size / 2`` (half the grid side);
    ``(x, y)`` is the torso centre; ``K = O + W``. Relative positions are *world-frame*
    offsets (not rotated into the ant's heading, which the quaternion gives).

    | index            | observation                                                 | range  |
    |------------------|-------------------------------------------------------------|--------|
    | 0                | symlog torso z (m)                                          | +-B    |
    | 1 - 4            | symlog torso orientation quaternion (w, x, y, z)            | +-B    |
    | 5 - 12           | symlog hinge angles hip_1, ankle_1, ..., hip_4, ankle_4     | +-B    |
    | 13 - 15          | symlog torso linear velocity (world frame, m/s)             | +-B    |
    | 16 - 18          | symlog torso angular velocity (body frame, rad/s)           | +-B    |
    | 19 - 26          | symlog hinge angular velocities (rad/s)                     | +-B    |
    | 27, 28           | global position ``x / h``, ``y / h``                        | [-1, 1]|
    | 29 + 2i, 30 + 2i | colour i's cell centre minus (x, y), over ``2 h`` (i < O)   | [-1, 1]|
    | 29+2(O+j), +1    | wall j's cell centre minus (x, y), over ``2 h`` (j < W)     | [-1, 1]|
    | 29 + 2K, 30 + 2K | (x, y) minus the ant's cell centre, over ``cell_size / 2``  | [-1, 1]|

    Indices 0-26 are Ant-v5's default ``qpos[2:]`` and ``qvel`` (no contact forces), symlog
    applied. ``B = log(1 + 1e10) ~ 23.03`` because MuJoCo treats any |qpos|, |qvel| above
    1e10 as divergence. Everything is clipped to its range, which only bites on the step that
    leaves the grid. Neither the task nor the progress through it is observed: they must be
    inferred from history, as in the paper.

    ## Rewards
    1.0 on the step that enters the last colour of the task, else 0.0.

    ## Episode end
    Checked after every step, in this order (the first that applies decides):

    1. Terminated (failure) when the state is not finite (MuJoCo met NaN/Inf in qpos, qvel
       or qacc; MuJoCo then resets its data and warns, which we detect).
    2. Terminated (failure) when the torso centre is off the grid or in a wall cell.
    3. Terminated (failure) when the torso height leaves ``[0.2, 1.0]`` m.
    4. When the torso centre has entered a coloured cell from another cell (its cell at the
       previous step): the next colour of the task counts as visited; the last one ends the
       episode with reward 1; any other colour terminates (failure). Staying in a cell never
       counts again; leaving a colour and re-entering it does. The start cell never counts.

    Truncated after ``max_steps`` steps (T=500, 25 s of simulated time at the default frame
    skip) unless terminated on that step.

    Stepping after the end (without ``reset()``) is a caller's mistake, handled as in
    Gymnasium's classic-control envs: it warns once, and until the next reset the physics
    goes on but the task does not: no visits, reward 0.0, and the ``terminated``/``truncated``
    flags the episode ended with. A non-finite action (NaN,
    Inf) or one of the wrong shape raises ``ValueError``; finite torques are clipped to
    [-1, 1] (the actuators' ``ctrlrange``). Seeds must lie in ``[0, 2**64 - 1]``.

    ## Starting state
    The task is drawn uniformly from ``tasks``. Colours, walls and the ant's start cell are
    drawn uniformly without overlap, redrawn until the task is solvable at grid level
    (:func:`irl_envs.grid_logic.solvable`: the colours can be entered in order crossing
    empty cells only). The torso starts at height 0.75 m, upright with a uniform random yaw,
    at the centre of its cell plus a uniform offset that keeps it ``START_MARGIN`` (10 %) of a
    cell side away from the cell's edges; hinge angles and all 14 velocities get uniform
    noise in [-0.1, 0.1] around Ant-v5's initial state. All randomness comes from
    ``self.np_random`` (``reset(seed=s)`` reproduces an episode exactly).

    Reset options (an unknown key raises ``ValueError``):

    - ``task``: a colour sequence that replaces the drawn task for this episode.
    - ``layout``: ``{"agent": (row, col), "colours": [(row, col), ...], "walls": [(row,
      col), ...]}`` pins the layout (colour i at the i-th cell, O colours and W walls, on the
      grid, no overlap). Pinned layouts are used as given, without a solvability check.
    - ``ant_xy``: world ``(x, y)`` of the torso centre, used exactly (no noise). It overrides
      ``layout["agent"]``; without ``layout`` the drawn layout keeps the ant's cell free. A
      position in a wall cell or off the grid raises ``ValueError``; a coloured cell is
      allowed (it does not count as a visit).
    - ``ant_yaw``: heading in radians, used exactly.

    ## Info
    On reset and every step: ``is_success`` (bool, the task is done), ``task`` (list of
    colours), ``next_index`` (colours of the task done so far), ``agent`` ((row, col) of the
    torso centre's cell, clipped to the grid once it has left it), ``x``, ``y`` (torso centre,
    metres) and ``event`` (what this step did: ``""`` nothing, ``"visit"``, ``"success"``,
    ``"wrong_colour"``, ``"wall"``, ``"off_grid"``, ``"height"``, ``"nonfinite"``).

    ## Arguments
    - ``grid_size`` (4): G.
    - ``num_colours`` (4): O.
    - ``num_walls`` (1): W.
    - ``cell_size`` (1.0 m): side of a cell, chosen so that a modestly trained expert has
      ample time within T. The grid-level shortest tour of a pretraining task on this env's
      layouts is 8.8 cell moves on average and 12 at the 90th percentile (post-training task:
      11.5 and 15), and the torso walks about (moves - 0.5) cell sides. At 1 m cells and
      0.75 m/s that is 220 env steps on average and 307 at the 90th percentile (post-training:
      294 / 387), inside T=500; at 2 m cells the same walker would need 440 / 613. 0.75 m/s
      is deliberately modest: an open-loop sinusoidal gait hill-climbed for half a minute of
      CPU already walks 0.3-0.6 m/s, and well-trained Ant-v5 policies run several m/s. The
      ant (0.75 m tall, about 1.8 m from foot to foot) is wider than a cell, which is fine
      because only the torso centre counts and nothing but the floor collides. Reproduce the
      numbers with ``python benchmarks/bench_ant.py --tours 2000``.
    - ``max_steps`` (500): T.
    - ``tasks``: the task set, a list of colour sequences (default: the post-training task
      0-1-2-3); one is drawn per episode.
    - ``task``: a single colour sequence; if given it replaces ``tasks``.
    - ``frame_skip`` (5): MuJoCo steps per env step (0.05 s per step by default).
    - ``render_mode``: ``"rgb_array"`` or None.
    - ``width``, ``height`` (480): size of rendered frames.
    - ``camera_name`` (``"top"``): the view ``render()`` returns: ``"top"``, an orthographic
      top-down view of the whole grid, or ``"track"``, a camera following the ant from behind
      and above. :meth:`render_view` renders either one on demand.

    ## Pickling
    A pickled environment carries its whole episode (MuJoCo integration state, layout, task,
    progress, step count, random generators): the clone continues it step for step. Render
    contexts are not carried.

    ## Version history
    - v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, grid_size: int = 4, num_colours: int = 4, num_walls: int = 1,
                 cell_size: float = DEFAULT_CELL_SIZE, max_steps: int = 500,
                 tasks: Sequence[Sequence[int]] | None = None, task: Sequence[int] | None = None,
                 frame_skip: int = 5, render_mode: str | None = None, width: int = 480,
                 height: int = 480, camera_name: str = "top"):
        utils.EzPickle.__init__(self, grid_size, num_colours, num_walls, cell_size, max_steps,
                                tasks, task, frame_skip, render_mode, width, height, camera_name)
        self.grid_size = g = check_int("grid_size", grid_size, 2)
        self.num_colours = check_int("num_colours", num_colours, 1)
        self.num_walls = check_int("num_walls", num_walls, 0)
        if self.num_colours + self.num_walls + 1 > g * g:
            raise ValueError(
                f"num_colours + num_walls + 1 must be <= grid_size**2 = {g * g}, "
                f"got {self.num_colours} + {self.num_walls} + 1"
            )
        self.cell_size = check_float("cell_size", cell_size, positive=True)
        self.max_steps = check_int("max_steps", max_steps, 1)
        frame_skip = check_int("frame_skip", frame_skip, 1)
        width = check_int("width", width, 1)
        height = check_int("height", height, 1)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} "
                             f"or None, got {render_mode!r}")
        if camera_name not in CAMERAS:
            raise ValueError(f"camera_name must be one of {list(CAMERAS)}, got {camera_name!r}")
        if task is not None:
            self.tasks: tuple[Task, ...] = validate_tasks([task], self.num_colours, "task")
        else:
            self.tasks = validate_tasks(tasks if tasks is not None else [ANT_POSTTRAIN_TASK],
                                        self.num_colours, "tasks")
        if render_mode is not None and "MUJOCO_GL" not in os.environ and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ["MUJOCO_GL"] = "egl"  # headless: software or GPU rendering through EGL

        self.half = g * self.cell_size / 2
        self._xml = arena_xml(g, self.num_walls, self.cell_size, width, height)
        self.metadata = {**self.metadata,
                         "render_fps": int(np.round(1.0 / (TIMESTEP * frame_skip)))}
        num_objects = self.num_colours + self.num_walls
        obs_dim = PROPRIO_DIM + 2 + 2 * num_objects + 2
        low = np.full(obs_dim, -1.0, dtype=np.float32)
        high = np.full(obs_dim, 1.0, dtype=np.float32)
        low[:PROPRIO_DIM], high[:PROPRIO_DIM] = -PROPRIO_BOUND, PROPRIO_BOUND
        self._low, self._high = low.astype(np.float64), high.astype(np.float64)
        # MujocoEnv wants an existing model path; ours is generated and loaded from a string
        # (see _initialize_simulation), so this module's own path stands in.
        MujocoEnv.__init__(self, os.path.abspath(__file__), frame_skip,
                           observation_space=spaces.Box(low, high, dtype=np.float32),
                           render_mode=render_mode, width=width, height=height,
                           camera_name=camera_name)
        self.fullpath = None  # the model is generated (see arena_xml), not read from a file
        self.camera_name = camera_name
        m = self.model
        self._tile_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"tile_{k}")
                                   for k in range(g * g)])
        self._wall_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"wall_{j}")
                                   for j in range(self.num_walls)], dtype=np.int64)
        self._camera_ids = {name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name)
                            for name in CAMERAS}
        # Tile colours: empty cells in two checkerboard shades, then one row per colour/wall.
        shades = [np.array(EMPTY_RGB) / 255, np.array(EMPTY_RGB) / 255 * 0.93]
        self._empty_rgba = np.array([[*shades[(r + c) % 2], 1.0] for r in range(g)
                                     for c in range(g)])
        self._object_rgba = np.array(
            [[*(colour_rgb(i) / 255), 1.0] for i in range(self.num_colours)]
            + [[*(np.array(WALL_RGB) / 255), 1.0]] * self.num_walls)
        rows, cols = np.divmod(np.arange(g * g), g)
        self.cell_centres = np.stack([(cols + 0.5) * self.cell_size - self.half,
                                      self.half - (rows + 0.5) * self.cell_size], axis=1)
        """``(G*G, 2)`` world (x, y) of every cell centre, row-major."""

        # Episode state.
        self.cells = np.full(g * g, grid_logic.EMPTY, dtype=np.int64)
        """Layout: per cell EMPTY (-1), a colour 0..O-1 or a wall O+j (see grid_logic).
        Read-only: change layouts through ``reset(options={"layout": ...})``."""
        self.task: Task = self.tasks[0]
        self.next_index = 0
        self.agent_cell = 0
        """Cell (row-major index) of the torso centre, clipped to the grid."""
        self.event = ""
        self._cells_list: list[int] = self.cells.tolist()
        self._obj_xy = np.zeros((num_objects, 2))
        self._t = 0
        self._ended: tuple[bool, bool] | None = None
        """``(terminated, truncated)`` once the episode has ended, else None."""
        self._warned_after_end = False
        self._bad_warnings = 0
        self._obs = np.zeros(obs_dim)
        self._rel = self._obs[PROPRIO_DIM + 2: PROPRIO_DIM + 2 + 2 * num_objects].reshape(-1, 2)
        self._inv_span = 1.0 / (2 * self.half)

    # ----------------------------------------------------------------------- construction
    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = mujoco.MjModel.from_xml_string(self._xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    # ----------------------------------------------------------------------- geometry
    def world_to_cell(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) holding world point (x, y); may lie off the grid (outside [0, G))."""
        c = self.cell_size
        return math.floor((self.half - y) / c), math.floor((x + self.half) / c)

    def cell_to_world(self, row: int, col: int) -> tuple[float, float]:
        """World (x, y) of the centre of cell (row, col)."""
        return tuple(float(v) for v in self.cell_centres[row * self.grid_size + col])

    @property
    def target_colour(self) -> int:
        """The next colour of the task to enter (-1 once the task is done)."""
        return self.task[self.next_index] if self.next_index < len(self.task) else -1

    # ----------------------------------------------------------------------- reset
    def _parse_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"options must be a dict or None, got {options!r}")
        options = dict(options or {})
        unknown = set(options) - {"task", "layout", "ant_xy", "ant_yaw"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: 'task', "
                             f"'layout', 'ant_xy', 'ant_yaw'")
        out: dict[str, Any] = {"task": None, "layout": None, "ant_xy": None, "ant_yaw": None}
        if options.get("task") is not None:
            out["task"] = validate_tasks([options["task"]], self.num_colours,
                                         "options['task']")[0]
        if options.get("layout") is not None:
            out["layout"] = self._pinned_layout(options["layout"])
        if options.get("ant_xy") is not None:
            xy = options["ant_xy"]
            try:  # numbers only: a string or a bool is a mistake, not a position
                x, y = (check_float("options['ant_xy']", v) for v in xy)
            except (TypeError, ValueError):
                raise ValueError(f"options['ant_xy'] must be a pair of finite floats (x, y), "
                                 f"got {xy!r}") from None
            r, c = self.world_to_cell(x, y)
            if not (0 <= r < self.grid_size and 0 <= c < self.grid_size):
                raise ValueError(f"options['ant_xy'] = {xy!r} is off the grid: x and y must lie "
                                 f"in [-{self.half:g}, {self.half:g})")
            cell = r * self.grid_size + c
            if out["layout"] is not None and out["layout"][0][cell] >= self.num_colours:
                raise ValueError(f"options['ant_xy'] = {xy!r} lies in a wall cell {(r, c)}")
            out["ant_xy"] = (x, y, cell)
        if options.get("ant_yaw") is not None:
            out["ant_yaw"] = check_float("options['ant_yaw']", options["ant_yaw"])
        return out

    def _pinned_layout(self, layout: Any) -> tuple[np.ndarray, int]:
        return grid_logic.parse_layout(layout, self.grid_size, self.num_colours,
                                       self.num_walls)

    def _sample_layout(self, task: Task, agent_cell: int | None) -> tuple[np.ndarray, int]:
        n, k = self.grid_size ** 2, self.num_colours + self.num_walls
        pool = np.arange(n) if agent_cell is None else np.delete(np.arange(n), agent_cell)
        task_arr = np.array([task] * _LAYOUT_BATCH)
        task_len = np.full(_LAYOUT_BATCH, len(task))
        rows = np.arange(_LAYOUT_BATCH)[:, None]
        for _ in range(_MAX_LAYOUT_DRAWS // _LAYOUT_BATCH):
            perm = self.np_random.permuted(np.broadcast_to(pool, (_LAYOUT_BATCH, len(pool))),
                                           axis=1)
            cells = np.full((_LAYOUT_BATCH, n), grid_logic.EMPTY, dtype=np.int64)
            cells[rows, perm[:, :k]] = np.arange(k)
            agent = perm[:, k] if agent_cell is None else np.full(_LAYOUT_BATCH, agent_cell)
            ok = grid_logic.solvable(cells, agent, task_arr, task_len, self.grid_size)
            if ok.any():
                i = int(np.argmax(ok))
                return cells[i], int(agent[i])
        raise ValueError(
            f"no solvable layout found in {_MAX_LAYOUT_DRAWS} draws: grid_size="
            f"{self.grid_size}, num_colours={self.num_colours}, num_walls={self.num_walls} "
            f"leave too little room for task {task}"
        )

    def _apply_layout(self, cells: np.ndarray) -> None:
        """Recolour the tiles and move the wall blocks (model edits, no recompilation)."""
        self.cells = cells.copy()
        self._cells_list = self.cells.tolist()
        m = self.model
        rgba = self._empty_rgba.copy()
        filled = cells >= 0
        rgba[filled] = self._object_rgba[cells[filled]]
        m.geom_rgba[self._tile_ids] = rgba
        where = np.full(self.num_colours + self.num_walls, -1, dtype=np.int64)
        where[cells[filled]] = np.flatnonzero(filled)
        self._obj_xy = self.cell_centres[where]
        if self.num_walls:
            wall_pos = m.geom_pos[self._wall_ids]
            wall_pos[:, :2] = self._obj_xy[self.num_colours:]
            wall_pos[:, 2] = _WALL_HEIGHT / 2
            m.geom_pos[self._wall_ids] = wall_pos

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seed = check_seed("seed", seed)
        opts = self._parse_options(options)  # validate before touching any state
        gym.Env.reset(self, seed=seed)
        rng = self.np_random
        if opts["task"] is not None:
            self.task = opts["task"]
        elif len(self.tasks) == 1:
            self.task = self.tasks[0]
        else:
            self.task = self.tasks[int(rng.integers(len(self.tasks)))]
        placed = opts["ant_xy"]
        if opts["layout"] is not None:
            cells, agent = opts["layout"]
        else:
            cells, agent = self._sample_layout(self.task, None if placed is None else placed[2])
        self._apply_layout(cells)

        mujoco.mj_resetData(self.model, self.data)
        qpos, qvel = self.init_qpos.copy(), self.init_qvel.copy()
        if placed is None:
            span = self.cell_size * (0.5 - START_MARGIN)
            qpos[:2] = self.cell_centres[agent] + rng.uniform(-span, span, size=2)
        else:
            qpos[:2] = placed[:2]
        yaw = rng.uniform(-math.pi, math.pi) if opts["ant_yaw"] is None else opts["ant_yaw"]
        qpos[2] = TORSO_START_Z
        qpos[3:7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        qpos[7:] += rng.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nq - 7)
        qvel += rng.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nv)
        self.set_state(qpos, qvel)

        x, y = float(qpos[0]), float(qpos[1])
        r, c = self.world_to_cell(x, y)
        self.agent_cell = r * self.grid_size + c
        self.next_index, self._t, self.event = 0, 0, ""
        self._ended, self._warned_after_end = None, False
        self._bad_warnings = self._warning_count()
        return self._get_obs(x, y), self._info(x, y)

    def reset_model(self) -> np.ndarray:
        """MujocoEnv hook; :meth:`reset` does the work (with options and layout sampling)."""
        return self.reset()[0]

    # ----------------------------------------------------------------------- step
    def _warning_count(self) -> int:
        w, (a, b, c) = self.data.warning, _BAD_STATE_WARNINGS
        return w[a].number + w[b].number + w[c].number

    def step(self, action):
        d = self.data
        d.ctrl[:] = check_torques(action, self.model.nu)
        mujoco.mj_step(self.model, d, nstep=self.frame_skip)
        self._t += 1
        x, y, z = d.qpos[:3].tolist()
        g = self.grid_size
        row = math.floor((self.half - y) / self.cell_size) if math.isfinite(y) else -1
        col = math.floor((x + self.half) / self.cell_size) if math.isfinite(x) else -1
        if self._ended is not None:
            return self._step_after_end(x, y, row, col)
        reward, terminated, event = 0.0, False, ""
        warnings = self._warning_count()
        if warnings != self._bad_warnings or not math.isfinite(x + y + z):
            self._bad_warnings = warnings
            terminated, event = True, "nonfinite"
        elif not (0 <= row < g and 0 <= col < g):
            terminated, event = True, "off_grid"
        else:
            cell = row * g + col
            content = self._cells_list[cell]
            if content >= self.num_colours:
                terminated, event = True, "wall"
            elif not HEALTHY_Z_RANGE[0] <= z <= HEALTHY_Z_RANGE[1]:
                terminated, event = True, "height"
            elif content >= 0 and cell != self.agent_cell:
                if (self.next_index < len(self.task)
                        and content == self.task[self.next_index]):
                    self.next_index += 1
                    if self.next_index == len(self.task):
                        reward, terminated, event = 1.0, True, "success"
                    else:
                        event = "visit"
                else:
                    terminated, event = True, "wrong_colour"
            self.agent_cell = cell
        if event in ("off_grid", "nonfinite") and math.isfinite(x + y):
            self.agent_cell = min(max(row, 0), g - 1) * g + min(max(col, 0), g - 1)
        self.event = event
        truncated = not terminated and self._t >= self.max_steps
        if terminated or truncated:
            self._ended = (terminated, truncated)
        return self._get_obs(x, y), reward, terminated, truncated, self._info(x, y)

    def _step_after_end(self, x: float, y: float, row: int, col: int):
        """A step after the episode ended: the physics goes on, the task does not (reward 0,
        no visits, the flags the episode ended with)."""
        if not self._warned_after_end:
            self._warned_after_end = True
            gym.logger.warn("step() called after the episode ended (terminated or truncated); "
                            "call reset(). Until then the task is over: every reward is 0.")
        g = self.grid_size
        if math.isfinite(x + y):
            self.agent_cell = min(max(row, 0), g - 1) * g + min(max(col, 0), g - 1)
        self.event = ""
        terminated, truncated = self._ended
        return self._get_obs(x, y), 0.0, terminated, truncated, self._info(x, y)

    def _get_obs(self, x: float, y: float) -> np.ndarray:
        d, buf = self.data, self._obs
        p = buf[:PROPRIO_DIM]
        p[:13] = d.qpos[2:]
        p[13:] = d.qvel
        np.copysign(np.log1p(np.abs(p)), p, out=p)
        buf[PROPRIO_DIM] = x / self.half
        buf[PROPRIO_DIM + 1] = y / self.half
        np.subtract(self._obj_xy, (x, y), out=self._rel)
        self._rel *= self._inv_span
        cx, cy = self.cell_centres[self.agent_cell]
        buf[-2] = (x - cx) * 2 / self.cell_size
        buf[-1] = (y - cy) * 2 / self.cell_size
        np.clip(buf, self._low, self._high, out=buf)
        obs = buf.astype(np.float32)
        if self.event == "nonfinite":
            np.nan_to_num(obs, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return obs

    def _info(self, x: float, y: float) -> dict[str, Any]:
        return {
            "is_success": self.next_index >= len(self.task),
            "task": list(self.task),
            "next_index": self.next_index,
            "agent": divmod(self.agent_cell, self.grid_size),
            "x": x,
            "y": y,
            "event": self.event,
        }

    # ----------------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """Constructor arguments (rebuild the arena) plus the whole episode state.

        A clone continues the episode exactly: same physics (MuJoCo's integration state,
        warm start included), layout, task, progress, step count and random generators.
        """
        state = utils.EzPickle.__getstate__(self)
        physics = np.empty(mujoco.mj_stateSize(self.model, _PICKLED_STATE))
        mujoco.mj_getState(self.model, self.data, physics, _PICKLED_STATE)
        state["_episode"] = {
            "physics": physics, "cells": self.cells, "task": self.task,
            "next_index": self.next_index, "agent_cell": self.agent_cell, "t": self._t,
            "event": self.event, "ended": self._ended, "np_random": self._np_random,
            "np_random_seed": self._np_random_seed, "action_space": self.action_space,
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        episode = state.pop("_episode", None)
        utils.EzPickle.__setstate__(self, state)
        if episode is None:
            return
        self._apply_layout(episode["cells"])
        mujoco.mj_setState(self.model, self.data, episode["physics"], _PICKLED_STATE)
        mujoco.mj_forward(self.model, self.data)
        self.task, self.next_index = episode["task"], episode["next_index"]
        self.agent_cell, self._t, self.event = episode["agent_cell"], episode["t"], episode["event"]
        self._ended = episode.get("ended")
        self._np_random, self._np_random_seed = episode["np_random"], episode["np_random_seed"]
        self.action_space = episode["action_space"]
        self._bad_warnings = self._warning_count()

    # ----------------------------------------------------------------------- render
    def render(self):
        """The ``camera_name`` view as an ``(height, width, 3)`` uint8 array."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass "
                            "render_mode='rgb_array' to gym.make")
            return None
        return self.render_view(self.camera_name)

    def render_view(self, camera_name: str) -> np.ndarray:
        """Render ``"top"`` (the whole grid from above) or ``"track"`` (following the ant)."""
        if camera_name not in CAMERAS:
            raise ValueError(f"camera_name must be one of {list(CAMERAS)}, got {camera_name!r}")
        if self.render_mode != "rgb_array":
            raise ValueError("render_view needs render_mode='rgb_array'")
        self.mujoco_renderer.camera_id = self._camera_ids[camera_name]
        return self.mujoco_renderer.render("rgb_array")
