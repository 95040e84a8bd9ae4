"""Write one episode of an environment as a video (GIF always; MP4 with ``imageio-ffmpeg``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from irl_envs.atomic import atomic_path


def _frame(env: gym.Env, cameras: Sequence[str] | None) -> np.ndarray:
    if not cameras:
        frame = env.render()
        if not isinstance(frame, np.ndarray):
            raise ValueError("env.render() must return an RGB array: make the env with "
                             "render_mode='rgb_array'")
        return frame
    render_view = getattr(env.unwrapped, "render_view", None)
    if render_view is None:
        raise ValueError(f"cameras={list(cameras)!r} needs an env with render_view(name) "
                         f"(e.g. AntSubgoalsEnv); pass cameras=None to use env.render()")
    return np.concatenate([render_view(name) for name in cameras], axis=1)


def save_episode_video(env: gym.Env, policy: Callable[[np.ndarray], Any] | None,
                       path: str | os.PathLike, *, seed: int | None = None,
                       options: dict[str, Any] | None = None, max_steps: int | None = None,
                       cameras: Sequence[str] | None = None, fps: int | None = None,
                       every: int = 1) -> dict[str, Any]:
    """Run one episode and write its frames to ``path``.

    Args:
        env: an environment made with ``render_mode="rgb_array"``.
        policy: ``policy(obs) -> action``; ``None`` samples random actions.
        path: output file; ``.gif`` (Pillow, always available) or ``.mp4`` (needs the
            ``imageio-ffmpeg`` package).
        seed, options: passed to ``env.reset``.
        max_steps: stop after this many steps even if the episode goes on.
        cameras: views to show side by side, e.g. ``("top", "track")`` for
            :class:`~irl_envs.ant_subgoals.AntSubgoalsEnv` (uses ``env.unwrapped.render_view``);
            ``None`` records ``env.render()``.
        fps: frames per second of the video (default: the env's ``render_fps`` / ``every``).
        every: keep one frame in ``every`` steps (smaller files for long episodes).

    Returns:
        ``{"path", "length", "return", "is_success", "frames"}``.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"path must end in .gif or .mp4, got {str(path)!r}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError("writing .mp4 needs the imageio-ffmpeg package "
                             "(pip install imageio-ffmpeg); .gif works without it") from None
    if fps is None:
        fps = max(1, round(env.metadata.get("render_fps", 20) / every))

    obs, info = env.reset(seed=seed, options=options)
    frames = [_frame(env, cameras)]
    total, length, done = 0.0, 0, False
    while not done and (max_steps is None or length < max_steps):
        action = env.action_space.sample() if policy is None else policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        length += 1
        done = terminated or truncated
        if length % every == 0 or done:
            frames.append(_frame(env, cameras))

    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        if suffix == ".gif":
            iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
        else:
            iio.imwrite(tmp, np.stack(frames), extension=".mp4", plugin="FFMPEG", fps=fps)
    return {"path": str(path), "length": length, "return": total,
            "is_success": bool(info.get("is_success", False)), "frames": len(frames)}
