"""Corrupted and crafted artifacts, run folders that belong to someone else, file modes.

Every artifact a command reads is refused with a ``ValueError`` naming the file when it is
truncated, crafted, non-finite or of the wrong type; nothing is ever unpickled; run folders
are never mixed, truncated or silently restarted; written files get ordinary permissions.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import stat
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from irl_agents.ant_expert_training import TrainConfig, train_locomotion
from irl_agents.discovery import load_metacontroller, save_metacontroller
from irl_agents.internal_rl import InternalRLConfig, internal_rl
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, load_model, save_model
from irl_agents.pretrain import PretrainConfig, pretrain
from irl_agents.run_folder import RunFolderError, claim_run
from irl_agents.run_logger import RunLogger
from irl_envs.atomic import atomic_path, remove_orphans, write_json
from irl_envs.datasets import generate_dataset
from irl_envs.experts.ant_locomotion import LocomotionPolicy, load_policy, save_policy


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=16, n_layers=2, n_heads=2,
                                   d_mlp=32))
    save_model(base, root / "base")
    save_metacontroller(Metacontroller(MetacontrollerConfig(d_model=16, layer=1, n_z=4, rank=2)),
                        root / "meta")
    generate_dataset("grid", "pretrain", episodes=16, seed=0, num_envs=8,
                     progress=False).save(root / "data.safetensors")
    return root


def tamper(path: Path, change) -> None:
    """Rewrite a safetensors file with ``change(tensors)`` applied (metadata kept)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


def copy_of(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


# ------------------------------------------------------------------------------ weights
@pytest.mark.parametrize(("change", "message"), [
    (lambda t: next(iter(t.values())).view(-1).__setitem__(0, float("nan")), "non-finite"),
    (lambda t: next(iter(t.values())).view(-1).__setitem__(0, float("inf")), "non-finite"),
    (lambda t: t.update({k: v.to(torch.int8) for k, v in t.items()}), "dtypes do not match"),
    (lambda t: t.update({k: v.double() for k, v in list(t.items())[:1]}), "dtypes do not match"),
    (lambda t: t.popitem(), "missing"),
    (lambda t: t.update(extra=torch.zeros(1)), "unexpected"),
])
def test_crafted_model_weights_are_refused(models, tmp_path, change, message):
    folder = copy_of(models / "base", tmp_path / "base")
    tamper(folder / "model.safetensors", change)
    with pytest.raises(ValueError, match=message) as err:
        load_model(folder)
    assert "model.safetensors" in str(err.value)


def test_crafted_metacontroller_weights_are_refused(models, tmp_path):
    folder = copy_of(models / "meta", tmp_path / "meta")
    tamper(folder / "metacontroller.safetensors",
           lambda t: next(iter(t.values())).view(-1).__setitem__(0, float("nan")))
    with pytest.raises(ValueError, match="metacontroller.safetensors.*non-finite"):
        load_metacontroller(folder)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "json"])
def test_corrupt_metacontroller_files_are_refused(models, tmp_path, kind):
    folder = copy_of(models / "meta", tmp_path / "meta")
    weights = folder / "metacontroller.safetensors"
    if kind == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif kind == "garbage":
        weights.write_bytes(os.urandom(256))
    else:
        (folder / "metacontroller.json").write_text("{not json")
    with pytest.raises(ValueError, match="metacontroller"):
        load_metacontroller(folder)


def test_crafted_locomotion_weights_are_refused(tmp_path):
    path = save_policy(LocomotionPolicy(hidden=(4,)), tmp_path / "w.safetensors")
    tamper(path, lambda t: t["mu.bias"].__setitem__(0, float("nan")))
    with pytest.raises(ValueError, match="non-finite"):
        load_policy(path)
    path.with_suffix(".json").write_text('{"format": "irl-ant-locomotion", "version": 1}')
    with pytest.raises(ValueError, match="w.json"):
        load_policy(path)


# ------------------------------------------------------------------------------ no pickle
class _Trap:
    """Unpickling this creates a file: proof that a crafted pickle would have run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_ant_expert_resume_never_unpickles(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "code-ran"
    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True)
    for name in ("last.zip", "last_vecnormalize.pkl"):  # an older version's checkpoint
        (ckpt / name).write_bytes(pickle.dumps(_Trap(marker)))
    (ckpt / "last.json").write_text('{"steps": 128, "wall_s": 1.0}')
    cfg = TrainConfig(out=str(out), steps=256, n_envs=2, n_steps=32, batch_size=32,
                      hidden=(8,), resume=True, progress=False)
    with pytest.raises(ValueError, match="pickle"):
        train_locomotion(cfg)
    assert not marker.exists()


def test_ant_expert_resume_state_is_checked(tmp_path):
    cfg = TrainConfig(out=str(tmp_path), steps=64, n_envs=2, n_steps=32, batch_size=32,
                      n_epochs=1, hidden=(8,), eval_every_s=1e9, eval_episodes=1,
                      checkpoint_every=64, progress=False)
    train_locomotion(cfg)
    state = tmp_path / "checkpoints" / "last_state.safetensors"
    tamper(state, lambda t: t["vecnormalize/obs_rms.mean"].__setitem__(0, float("nan")))
    cfg.steps, cfg.resume = 128, True
    with pytest.raises(ValueError, match="last_state.safetensors"):
        train_locomotion(cfg)


def test_rl_checkpoint_is_one_file_and_never_a_pickle(models, tmp_path):
    cfg = InternalRLConfig(base=str(models / "base"), meta=str(models / "meta"),
                           task_set="pretrain", episodes=8, batch_episodes=4,
                           out_dir=str(tmp_path), progress=False)
    internal_rl(cfg)
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\x80\x04" + os.urandom(64))
    cfg.episodes = 12
    with pytest.raises(ValueError, match="checkpoint.safetensors"):
        internal_rl(cfg)
    assert (tmp_path / "curve.csv").read_text().count("\n") == 3  # nothing truncated


# ------------------------------------------------------------------------------ run folders
def test_a_run_of_an_older_version_is_continued_not_restarted(models, tmp_path):
    """Folders written before run.json existed (policy.json + policy.safetensors) resume."""
    import dataclasses

    cfg = InternalRLConfig(base=str(models / "base"), meta=str(models / "meta"),
                           task_set="pretrain", episodes=4, batch_episodes=4,
                           out_dir=str(tmp_path), progress=False)
    internal_rl(cfg)
    weights = load_file(tmp_path / "policy.safetensors")
    for name in ("run.json", "checkpoint.safetensors", "summary.json"):
        (tmp_path / name).unlink()
    old_config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "overwrite"}
    write_json(tmp_path / "policy.json", {"config": old_config, "batches": 1})
    cfg.episodes = 8
    internal_rl(cfg)
    assert (tmp_path / "curve.csv").read_text().count("\n") == 3  # header, old row, new row
    assert json.loads((tmp_path / "run.json").read_text())["command"] == "internal-rl"
    write_json(tmp_path / "policy.json", {"config": {**old_config, "lr": 1.0}, "batches": 1})
    save_file(weights, str(tmp_path / "policy.safetensors"))
    (tmp_path / "checkpoint.safetensors").unlink()
    (tmp_path / "run.json").unlink()
    with pytest.raises(RunFolderError, match="other settings"):
        internal_rl(cfg)  # an old checkpoint of other settings is not silently restarted



def test_internal_rl_never_truncates_a_pretraining_run(models, tmp_path):
    run = tmp_path / "pretrain"
    pretrain(PretrainConfig(dataset=str(models / "data.safetensors"), out_dir=str(run),
                            model=ModelConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=16),
                            steps=4, batch_size=4, log_every=1, eval_every=0,
                            precision="fp32", progress=False))
    metrics = (run / "metrics.csv").read_text()
    with pytest.raises(RunFolderError, match="holds a `pretrain` run"):
        internal_rl(InternalRLConfig(base=str(models / "base"), meta=str(models / "meta"),
                                     episodes=4, batch_episodes=4, out_dir=str(run),
                                     progress=False))
    assert (run / "metrics.csv").read_text() == metrics
    assert not (run / "curve.csv").exists()


def test_two_pretraining_architectures_never_share_a_folder(models, tmp_path):
    def config(d_model: int, **kw) -> PretrainConfig:
        return PretrainConfig(dataset=str(models / "data.safetensors"), out_dir=str(tmp_path),
                              model=ModelConfig(d_model=d_model, n_layers=1, n_heads=2,
                                                d_mlp=16),
                              steps=2, batch_size=4, eval_every=0, checkpoint_every=1,
                              precision="fp32", progress=False, **kw)

    pretrain(config(16))
    with pytest.raises(RunFolderError, match="other settings.*d_model"):
        pretrain(config(8))
    with pytest.raises(RunFolderError, match="other settings"):
        pretrain(config(8, resume=False))  # not resuming does not make it another folder
    assert load_model(tmp_path / "model").config.d_model == 16
    pretrain(config(8, overwrite=True))  # asked for: the old run is gone, none of it mixed in
    for folder in [tmp_path / "model", *(tmp_path / "checkpoints").glob("ckpt-*/model")]:
        assert load_model(folder).config.d_model == 8


def test_a_locked_folder_refuses_a_second_writer_until_released(tmp_path):
    first = claim_run(tmp_path, "internal-rl", {"a": 1})
    with pytest.raises(RunFolderError, match="another process"):
        claim_run(tmp_path, "internal-rl", {"a": 1})
    first.release()
    claim_run(tmp_path, "internal-rl", {"a": 1}).release()


def test_a_setting_added_later_matches_an_old_record_at_its_default(tmp_path):
    claim_run(tmp_path, "pretrain", {"a": 1}).release()  # recorded before "b" existed
    defaults = {"a": 0, "b": 7}
    claim_run(tmp_path, "pretrain", {"a": 1, "b": 7}, defaults=defaults).release()
    with pytest.raises(RunFolderError, match="b: 7 there, 8 now"):
        claim_run(tmp_path, "pretrain", {"a": 1, "b": 8}, defaults=defaults)


@pytest.mark.parametrize("content", ["{broken", '{"format": 1}', "[]"])
def test_a_corrupt_run_record_is_refused_unless_overwritten(tmp_path, content):
    (tmp_path / "run.json").write_text(content)
    (tmp_path / "curve.csv").write_text("episodes\n1\n")
    with pytest.raises(RunFolderError, match="run.json"):
        claim_run(tmp_path, "internal-rl", {"a": 1})
    claim_run(tmp_path, "internal-rl", {"a": 1}, overwrite=True).release()
    assert not (tmp_path / "curve.csv").exists()


def test_foreign_files_are_never_written_over_without_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="notes.txt"):
        claim_run(tmp_path, "discover", {"a": 1})
    claim_run(tmp_path, "discover", {"a": 1}, overwrite=True).release()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # unknown files are never deleted


def test_a_failed_start_leaves_no_record(models, tmp_path):
    """A typo in an input path must not make the corrected command "other settings"."""
    cfg = InternalRLConfig(base=str(tmp_path / "typo"), meta=str(models / "meta"),
                           episodes=4, batch_episodes=4, out_dir=str(tmp_path / "run"),
                           progress=False)
    with pytest.raises(ValueError, match="typo"):
        internal_rl(cfg)
    assert not (tmp_path / "run").exists()
    cfg.base = str(models / "base")
    internal_rl(cfg)


def test_run_logger_keeps_rows_up_to_the_resume_step_only(tmp_path):
    logger = RunLogger(tmp_path)
    for step in (1, 2, 3, 4):
        logger.log(step, {"losses/x": step})
    logger.close()
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("5,0.1,losses/x,")  # a row cut short by a kill
    RunLogger(tmp_path, resume_step=2).close()
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2"]
    RunLogger(tmp_path).close()  # a fresh run starts a fresh file
    assert (tmp_path / "metrics.csv").read_text().strip() == "step,wall_time,tag,value"


# ------------------------------------------------------------------------------ files
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "new.json", {"a": 1})
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "new.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask


def test_atomic_replace_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1})
    path.chmod(0o640)
    write_json(path, {"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and json.loads(path.read_text()) == {"a": 2}


def test_orphaned_temporary_files_are_cleaned_up(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    orphan = tmp_path / f".x.json.{dead}.0123abcd.tmp"
    legacy = tmp_path / ".x.json.k3j4h5g6.tmp"  # tempfile.mkstemp's names (older versions)
    busy = tmp_path / f".x.json.{os.getpid()}.0123abcd.tmp"  # a live writer's: kept
    for p in (orphan, legacy, busy):
        p.write_text("half")
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    write_json(tmp_path / "x.json", {"a": 1})
    assert not orphan.exists() and not legacy.exists() and busy.exists()
    nested = tmp_path / "ckpt" / f".model.safetensors.{dead}.00000000.tmp"
    nested.parent.mkdir()
    nested.write_text("half")
    remove_orphans(tmp_path)
    assert not nested.exists() and busy.exists()


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
