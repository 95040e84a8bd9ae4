"""The analysis and training subcommands run end to end on tiny data and write their JSON."""

import json

import pytest
import torch

from irl_agents.cli import main
from irl_agents.controllers import ControllerConfig, evaluate_controllers, train_controllers
from irl_agents.models import ModelConfig, build_model, save_model
from irl_agents.probe import probe_subgoals
from irl_envs.datasets import generate_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = generate_dataset("grid", "pretrain", episodes=40, seed=0, num_envs=8, progress=False)
    data.save(root / "data.safetensors")
    torch.manual_seed(0)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=16, n_layers=2, n_heads=2,
                                   d_mlp=32, obs_encoder="grid_ego", obs_shape=[13, 7, 7],
                                   conv_channels=4))
    save_model(base, root / "base")
    return root, data, base


def test_probe_reports_every_layer(tiny):
    _, data, base = tiny
    res = probe_subgoals(base, data, episodes=40)
    assert len(res.accuracy) == base.n_layers + 1
    assert all(0.0 <= a <= 1.0 for a in res.accuracy) and 0.0 < res.chance <= 1.0


def test_controllers_train_and_evaluate(tiny):
    _, data, base = tiny
    cfg = ControllerConfig(layer=1, rank=2, steps=3, batch_size=8, eval_episodes=6)
    bank, info = train_controllers(base, data, cfg, progress=False)
    assert bank.num_controllers == 4 and info["train_seconds"] >= 0
    res = evaluate_controllers(base, bank, cfg)
    assert 0.0 <= res["success_rate"] <= 1.0 and res["mean_length"] >= 1


def test_unlabelled_steps_train_no_controller(tiny):
    """Steps labelled -1 (segment codes leave some episodes unlabelled) are out of the loss:
    scrambling their actions leaves the trained controllers unchanged."""
    import dataclasses

    import numpy as np

    _, data, base = tiny
    half = np.arange(data.num_steps) < data.episode_starts[data.num_episodes // 2]
    unlabelled = dataclasses.replace(data, subgoals=np.where(half, -1, data.subgoals))
    scrambled = dataclasses.replace(unlabelled, actions=np.where(half, (data.actions + 1) % 4,
                                                                  data.actions))
    cfg = ControllerConfig(layer=1, rank=2, steps=2, batch_size=8)
    banks = [train_controllers(base, d, cfg, progress=False)[0] for d in (unlabelled, scrambled)]
    for a, b in zip(banks[0].parameters(), banks[1].parameters(), strict=True):
        torch.testing.assert_close(a, b)
    labelled = dataclasses.replace(scrambled, subgoals=data.subgoals)  # the check can fail
    other = train_controllers(base, labelled, cfg, progress=False)[0]
    assert any(not torch.equal(a, b) for a, b in zip(banks[0].parameters(), other.parameters(),
                                                     strict=True))


def test_cli_probe_plots_one_line_per_named_model(tiny, tmp_path, monkeypatch):
    import irl_agents.probe

    root, _, _ = tiny
    data, base = str(root / "data.safetensors"), str(root / "base")
    drawn = {}
    monkeypatch.setattr(irl_agents.probe, "plot_probe",
                        lambda results, path: drawn.update({k: len(v) for k, v in
                                                            results.items()}))
    argv = ["probe", "--dataset", data, "--episodes", "40", "--plot", str(tmp_path / "p.png"),
            "--model", f"early={base}", f"late={base}", f"late={base}", base]
    assert main(argv) == 0
    assert drawn == {"early": 1, "late": 2, "base model": 1}  # same name: seeds of one line


def test_cli_probe_controllers_discover_internal_rl(tiny, tmp_path):
    root, _, _ = tiny
    data, base = str(root / "data.safetensors"), str(root / "base")
    assert main(["probe", "--model", base, "--dataset", data, "--episodes", "40",
                 "--plot", str(tmp_path / "p.png"), "--json", str(tmp_path / "p.json")]) == 0
    assert len(json.loads((tmp_path / "p.json").read_text())["rows"]) == 3
    assert (tmp_path / "p.png").stat().st_size > 0
    assert main(["controllers", "--model", base, "--dataset", data, "--layers", "1",
                 "--steps", "2", "--eval-episodes", "4", "--rank", "2", "--no-progress",
                 "--plot", str(tmp_path / "c.png"), "--json", str(tmp_path / "c.json")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert [r["layer"] for r in rows] == ["none", 1]
    meta = tmp_path / "meta"
    assert main(["discover", "--base", base, "--dataset", data, "--out", str(meta),
                 "--steps", "2", "--batch-size", "8", "--rank", "2", "--n-z", "3",
                 "--no-progress", "--json", str(tmp_path / "d.json"),
                 "--plot", str(tmp_path / "rd.png"), "--traces", str(tmp_path / "b.png")]) == 0
    assert {"f1", "kl", "action_nll"} <= set(json.loads((tmp_path / "d.json").read_text())
                                             ["rows"][0])
    assert (tmp_path / "rd.png").stat().st_size > 1000
    assert (tmp_path / "b.png").stat().st_size > 1000
    assert main(["internal-rl", "--base", base, "--meta", str(meta), "--episodes", "8",
                 "--batch-episodes", "4", "--out", str(tmp_path / "rl"), "--no-progress",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "final_success_rate" in json.loads((tmp_path / "r.json").read_text())
