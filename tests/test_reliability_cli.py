"""CLI misuse: every mistake below ends with ``irl COMMAND: error: ...`` on stderr and exit
status 2, before any work is done: no traceback, no silently wrong run, no output written.

``{data}``, ``{base}``, ``{meta}``, ``{nan_base}``, ``{wide_meta}``, ``{tmp}``, ``{file}`` and
``{pretrain}`` in an argument stand for a tiny dataset, base model, metacontroller, a base
model with a NaN weight, a metacontroller of another width, an empty folder, a plain file and
a pretraining run folder.
"""

from __future__ import annotations

import pytest
import torch

from irl_agents.cli import main
from irl_agents.discovery import save_metacontroller
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig
from irl_agents.models import ModelConfig, build_model, save_model
from irl_agents.run_folder import claim_run
from irl_envs.datasets import generate_dataset

PRETRAIN = ["pretrain", "--dataset", "{data}", "--out", "{tmp}/run", "--d-model", "16",
            "--n-layers", "1", "--n-heads", "2", "--d-mlp", "16", "--no-progress"]
DISCOVER = ["discover", "--base", "{base}", "--dataset", "{data}", "--out", "{tmp}/d",
            "--no-progress"]
INTERNAL_RL = ["internal-rl", "--base", "{base}", "--meta", "{meta}", "--out", "{tmp}/irl",
               "--no-progress"]
SEGMENT_CODES = ["segment-codes", "--base", "{base}", "--meta", "{meta}", "--dataset", "{data}",
                 "--out", "{tmp}/s", "--no-progress"]
DATA = ["data", "--episodes", "4", "--num-envs", "2", "--no-progress"]
PROBE = ["probe", "--model", "{base}", "--dataset", "{data}"]
CONTROLLERS = ["controllers", "--model", "{base}", "--dataset", "{data}", "--no-progress"]
ANT = ["train-ant-expert", "--out", "{tmp}/ant", "--no-progress"]

MISUSES = [
    # counts and ranges
    (PRETRAIN + ["--steps", "0"], "steps must be >= 1"),
    (PRETRAIN + ["--steps", "-1"], "steps must be >= 1"),
    (PRETRAIN + ["--log-every", "0"], "log_every must be >= 1"),
    (PRETRAIN + ["--checkpoint-every", "-1"], "checkpoint_every must be >= 0"),
    (PRETRAIN + ["--eval-every", "-5"], "eval_every must be >= 0"),
    (PRETRAIN + ["--batch-size", "0"], "batch_size must be >= 1"),
    (PRETRAIN + ["--lr", "-0.1"], "lr must be a finite float > 0"),
    (PRETRAIN + ["--lr", "nan"], "lr must be a finite float"),
    (PRETRAIN + ["--obs-weight", "-1"], "obs_weight"),
    (PRETRAIN + ["--decay-fraction", "2"], "decay_fraction"),
    (PRETRAIN + ["--milestones", "0"], "milestones must be >= 1"),
    (PRETRAIN + ["--seed", "-1"], "seed"),
    (PRETRAIN + ["--device", "nonsense"], "device must be a torch device"),
    (PRETRAIN + ["--device", "cuda:99"], "no such CUDA device"),
    (DISCOVER + ["--alpha", "-1"], "alpha must be a finite float >= 0"),
    (DISCOVER + ["--alpha", "0.1", "inf"], "alpha must be a finite float"),
    (DISCOVER + ["--n-z", "0"], "n_z must be >= 1"),
    (DISCOVER + ["--steps", "0"], "steps must be >= 1"),
    (DISCOVER + ["--batch-size", "0"], "batch_size must be >= 1"),
    (DISCOVER + ["--kl-warmup", "-1"], "kl_warmup must be >= 0"),
    (DISCOVER + ["--codebook", "-2"], "codebook must be >= 0"),
    (DISCOVER + ["--rank", "-1"], "rank must be >= 0"),
    (INTERNAL_RL + ["--episodes", "0"], "episodes must be >= 256"),
    (INTERNAL_RL + ["--episodes", "-1"], "episodes must be >="),
    (INTERNAL_RL + ["--batch-episodes", "0"], "batch_episodes must be >= 1"),
    (INTERNAL_RL + ["--episodes", "4", "--batch-episodes", "8"], "episodes must be >= 8"),
    (INTERNAL_RL + ["--epochs", "-1"], "epochs must be >= 0"),
    (INTERNAL_RL + ["--threshold", "0"], "threshold"),
    (INTERNAL_RL + ["--threshold", "1.5"], "threshold"),
    (INTERNAL_RL + ["--lr", "0"], "lr must be a finite float > 0"),
    (INTERNAL_RL + ["--env-workers", "0"], "env_workers must be >= 1"),
    (INTERNAL_RL + ["--seed", "-1"], "seed must be in"),
    (INTERNAL_RL + ["--task", "0-x"], "task must look like"),
    (["demo", "--episodes", "0", "--no-progress", "--out", "{tmp}/demo"], "episodes must be >="),
    (["demo", "--episodes", "-5", "--no-progress", "--out", "{tmp}/demo"], "episodes must be"),
    (["demo", "--seed", "-1", "--no-progress", "--out", "{tmp}/demo"], "seed must be in"),
    (["compare", "--seeds", "0", "--out", "{tmp}/c"], "seeds must be >= 1"),
    (["compare", "--episodes", "0", "--out", "{tmp}/c"], "episodes must be >="),
    (["compare", "--batch-episodes", "0", "--out", "{tmp}/c"], "batch_episodes must be >= 1"),
    (["compare", "--workers", "0", "--out", "{tmp}/c"], "workers must be >= 1"),
    (["compare", "--prepare-steps", "-3", "--out", "{tmp}/c"], "prepare_steps must be >= 1"),
    (["compare", "--threshold", "2", "--out", "{tmp}/c"], "threshold"),
    (["compare", "--task", "1-a", "--out", "{tmp}/c"], "task must look like"),
    (SEGMENT_CODES + ["--k", "0"], "k must be >= 1"),
    (SEGMENT_CODES + ["--threshold", "0"], "threshold"),
    (SEGMENT_CODES + ["--cluster-episodes", "0"], "cluster_episodes must be >= 1"),
    (SEGMENT_CODES + ["--controller-steps", "0"], "controller_steps must be >= 1"),
    (DATA + ["--episodes", "0"], "--episodes must be >= 1"),
    (DATA + ["--num-envs", "0"], "--num-envs must be >= 1"),
    (DATA + ["--noise", "1.5"], "--noise must be a finite float >= 0 and <= 1"),
    (DATA + ["--relabel"], "--relabel needs --noise > 0"),
    (DATA + ["--noise", "-0.1"], "--noise"),
    (DATA + ["--seed", "-1"], "--seed must be in"),
    (DATA + ["--env", "ant", "--tie-break", "first"], "--tie-break is a grid option"),
    (["expert-eval", "--episodes", "0"], "--episodes must be >= 1"),
    (["expert-eval", "--num-envs", "0"], "--num-envs must be >= 1"),
    (["expert-eval", "--noise", "2"], "--noise"),
    (PROBE + ["--episodes", "0"], "--episodes must be >= 1"),
    (CONTROLLERS + ["--steps", "0"], "--steps must be >= 1"),
    (CONTROLLERS + ["--rank", "-1"], "--rank must be >= 0"),
    (CONTROLLERS + ["--eval-episodes", "0"], "--eval-episodes must be >= 1"),
    (CONTROLLERS + ["--layers", "-1"], "--layers must be >= 0"),
    (CONTROLLERS + ["--layers", "3"], "--layers must be in [0, 1]"),
    (ANT + ["--steps", "0"], "steps must be >= 1"),
    (ANT + ["--n-envs", "0"], "n_envs must be >= 1"),
    (ANT + ["--learning-rate", "-1"], "learning_rate"),
    (ANT + ["--gamma", "0"], "gamma"),
    (ANT + ["--checkpoint-every", "0"], "checkpoint_every must be >= 1"),
    (ANT + ["--seed", "-1"], "seed"),
    (ANT + ["--device", "cuda:99"], "no such CUDA device"),
    # argparse's own checks
    (INTERNAL_RL + ["--episodes", "abc"], "invalid int value"),
    (DATA + ["--env", "moon"], "invalid choice"),
    (["pretrain", "--out", "{tmp}/p"], "one of the arguments --dataset --stream is required"),
    # input files: missing, corrupt, non-finite
    (PRETRAIN[:2] + ["{tmp}/missing.safetensors"] + PRETRAIN[3:], "missing.safetensors"),
    (PRETRAIN[:2] + ["{file}"] + PRETRAIN[3:], "not-a-dataset"),
    (DISCOVER[:2] + ["{tmp}/nowhere"] + DISCOVER[3:], "nowhere"),
    (INTERNAL_RL[:2] + ["{nan_base}"] + INTERNAL_RL[3:], "non-finite"),
    (INTERNAL_RL[:4] + ["{tmp}/nowhere"] + INTERNAL_RL[5:], "not a readable metacontroller"),
    (SEGMENT_CODES[:6] + ["{tmp}/missing.safetensors"] + SEGMENT_CODES[7:], "missing"),
    # inputs that do not fit together: refused before the first batch
    (INTERNAL_RL[:4] + ["{wide_meta}"] + INTERNAL_RL[5:], "width 32 != base model width 16"),
    (INTERNAL_RL + ["--env", "ant", "--episodes", "2", "--batch-episodes", "2"],
     "does not match the base model"),
    (DISCOVER + ["--layer", "9"], "layer must be in [0, 1]"),
    (SEGMENT_CODES[:4] + ["{wide_meta}"] + SEGMENT_CODES[5:], "width 32 != base model width"),
    (["probe", "--model", "{tmp}/nowhere", "--dataset", "{data}"], "not found"),
    # output paths, checked before the work
    (DATA + ["--out", "{tmp}"], "--out: {tmp} is a folder"),
    (DATA + ["--out", "{file}/x.safetensors"], "is not a folder"),
    (DATA + ["--json", "{tmp}"], "--json: {tmp} is a folder"),
    (PROBE + ["--plot", "{file}/p.png"], "--plot"),
    (PRETRAIN[:4] + ["{file}"] + PRETRAIN[5:], "exists and is not a folder"),
    (["demo", "--out", "{file}", "--no-progress"], "is not a folder"),
    (INTERNAL_RL[:6] + ["{pretrain}"] + INTERNAL_RL[7:], "holds a `pretrain` run"),
    (DISCOVER[:6] + ["{pretrain}"] + DISCOVER[7:], "holds a `pretrain` run"),
    (["compare", "--out", "{pretrain}"], "holds a `pretrain` run"),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-misuse")
    generate_dataset("grid", "pretrain", episodes=16, seed=0, num_envs=8,
                     progress=False).save(root / "data.safetensors")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=16, n_layers=1, n_heads=2,
                                   d_mlp=16))
    save_model(base, root / "base")
    with torch.no_grad():
        next(base.parameters()).view(-1)[0] = float("nan")
    save_model(base, root / "nan_base")
    save_metacontroller(Metacontroller(MetacontrollerConfig(d_model=16, layer=1, n_z=4, rank=2)),
                        root / "meta")
    save_metacontroller(Metacontroller(MetacontrollerConfig(d_model=32, layer=1, n_z=4, rank=2)),
                        root / "wide_meta")
    (root / "not-a-dataset").write_bytes(b"\x00 not a safetensors file")
    claim_run(root / "pretrain", "pretrain", {"steps": 1}).release()
    (root / "pretrain" / "metrics.csv").write_text("step,wall_time,tag,value\n1,0,x,1\n")
    return {"data": root / "data.safetensors", "base": root / "base", "meta": root / "meta",
            "nan_base": root / "nan_base", "wide_meta": root / "wide_meta",
            "file": root / "not-a-dataset",
            "pretrain": root / "pretrain"}


def written(folder) -> dict:
    """Modification times of a run folder's files (its lock file aside)."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.name != ".lock"}


@pytest.mark.parametrize(("argv", "message"), MISUSES,
                         ids=[" ".join(a[:1] + [x for x in a[1:] if x.startswith("--")][-2:])
                              for a, _ in MISUSES])
def test_misuse_is_a_clean_usage_error(paths, tmp_path, capsys, argv, message):
    names = {**{k: str(v) for k, v in paths.items()}, "tmp": str(tmp_path)}
    argv = [a.format(**names) for a in argv]
    before = written(paths["pretrain"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"irl {argv[0]}: error: " in err and "Traceback" not in err
    assert message.format(**names) in err
    # nothing was written: no output folder (beyond what existed) and no other run touched
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert written(paths["pretrain"]) == before


def test_data_checks_out_before_generating(paths, tmp_path, monkeypatch, capsys):
    import irl_envs.datasets

    def generate(*args, **kwargs):
        raise AssertionError("generated before checking --out")

    monkeypatch.setattr(irl_envs.datasets, "generate_dataset", generate)
    assert main(["data", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_segment_codes_defaults_work_from_any_directory(tmp_path, monkeypatch):
    from irl_agents.segment_codes import SegmentCodesConfig

    monkeypatch.chdir(tmp_path)
    cfg = SegmentCodesConfig(dataset="d.safetensors").resolved()
    for path in (cfg.base, cfg.meta):
        assert path.startswith("/") and (tmp_path / path).is_dir()


def test_a_second_writer_is_refused_while_the_first_runs(paths, tmp_path, capsys):
    with claim_run(tmp_path / "irl", "internal-rl", {"any": 1}):
        argv = [a.format(base=paths["base"], meta=paths["meta"], tmp=tmp_path)
                for a in INTERNAL_RL]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "being written by another process" in err and "pid " in err
