"""Export demonstrations to a Minari dataset (``pip install "internal-rl[minari]"``).

The episodes are written as Minari's ``DataCollector`` records them: ``observations`` has
``n + 1`` rows (the reset observation, then one per step) and ``infos`` ``n + 1`` entries (the
reset info, then one per step); each episode's metadata holds the ``seed`` it was reset with
(options None), so that::

    env = dataset.recover_environment()
    episode = next(dataset.iterate_episodes([i]))
    seed = next(dataset.storage.get_episode_metadata([i]))["seed"]
    obs, info = env.reset(seed=seed)   # episode.observations[0]; episode.actions replay it

Rewards, terminations and truncations are the recorded ones (version 1 files: rebuilt, see
:mod:`irl_envs.datasets`).
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import numpy as np

from irl_envs.datasets import Demonstrations
from irl_envs.families import family

AUTHOR = "internal-rl"
"""Default author of exported datasets (the generating package: its name and version)."""


def export_minari(data: Demonstrations, dataset_id: str, author: str | None = AUTHOR,
                  author_email: str | None = None, code_permalink: str | None = None,
                  compress: bool = True):
    """Write ``data`` as the local Minari dataset ``dataset_id`` (e.g. ``"irl/grid-pretrain-v0"``).

    Infos: ``is_success``, ``target`` (next colour of the task, -1 once done) and ``subgoal``
    (its subgoal label). Version 1 files have no seeds: their episodes get ``seed`` None.

    Args:
        data: the demonstrations.
        dataset_id: Minari id, ``(namespace/)name-v(version)``.
        author, author_email, code_permalink: Minari's dataset metadata.
        compress: rewrite Minari's HDF5 file gzip-compressed (see :func:`compress_hdf5`).

    Returns:
        The created ``minari.MinariDataset``.
    """
    try:
        import minari
        from minari.data_collector.episode_buffer import EpisodeBuffer
    except ImportError as err:
        raise ImportError('Minari export needs minari: pip install "internal-rl[minari]"') from err
    env_id = data.meta.get("env_id")
    subgoal = family(data.meta["env"]).subgoal if data.meta.get("env") else (lambda c: c)
    buffers = []
    for i in range(data.num_episodes):
        ep = data.episode(i)
        n = len(ep["actions"])
        target = np.append(ep["targets"], ep["final_target"]).astype(np.int64)
        success = np.zeros(n + 1, dtype=bool)
        success[-1] = bool(data.success[i])
        buffers.append(EpisodeBuffer(
            id=i, seed=ep["seed"], options=None,
            observations=np.concatenate([ep["observations"], ep["final_observation"][None]]),
            actions=ep["actions"], rewards=ep["rewards"].astype(np.float64),
            terminations=ep["terminations"], truncations=ep["truncations"],
            infos={"is_success": success, "target": target,
                   "subgoal": np.asarray(subgoal(target), dtype=np.int64)},
        ))
    version = metadata.version("internal-rl")
    dataset = minari.create_dataset_from_buffers(
        dataset_id, buffers, env=env_id, eval_env=env_id, algorithm_name="expert",
        author=author, author_email=author_email, code_permalink=code_permalink,
        requirements=[f"internal-rl>={version}"],
        description="Expert demonstrations exported from internal-rl "
        f"(task set {data.meta.get('task_set')}, seed {data.meta.get('seed')}).",
    )
    if compress:
        compress_hdf5(dataset)
    return dataset


def compress_hdf5(dataset) -> None:
    """Rewrite a Minari dataset's HDF5 file with the same groups, arrays and attributes,
    gzip-compressed and in HDF5's newer, compact object format.

    Minari writes every episode's arrays uncompressed into resizable chunked datasets, about
    20 KB of HDF5 bookkeeping per episode: 12x our own file for gridworld data. h5py, and so
    Minari, reads the compressed file transparently. Datasets in another storage format are
    left as they are.
    """
    import h5py

    storage = dataset.storage
    src = Path(storage.data_path) / "main_data.hdf5"
    if not src.is_file():
        return
    tmp = src.with_name(f".{src.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(src, "r") as fin, h5py.File(tmp, "w", libver=("v110", "latest"),
                                                   track_order=True) as fout:
            _copy_group(fin, fout)
        os.replace(tmp, src)
    finally:
        tmp.unlink(missing_ok=True)
    storage.update_metadata({"dataset_size": storage.get_size()})


def _copy_group(src, dst) -> None:
    import h5py

    dst.attrs.update(src.attrs)
    for key, item in src.items():
        if isinstance(item, h5py.Group):
            _copy_group(item, dst.create_group(key, track_order=True))
            continue
        value = item[()]
        if value.ndim and value.nbytes > 256:  # small arrays: compression costs more than it saves
            dst.create_dataset(key, data=value, chunks=value.shape, compression="gzip",
                               shuffle=value.itemsize > 1)
        else:
            dst.create_dataset(key, data=value)
        dst[key].attrs.update(item.attrs)
