"""Every diagnostic script (``benchmarks/diagnostics/``) runs end to end at tiny size.

The diagnostics back entries of the results pages (docs/results.md and docs/results/); at full
size they take minutes to hours, so each is run here once on a tiny dataset and tiny untrained
models: the point is that every script still runs against the library, not what it prints.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from irl_agents.controllers import ControllerBank
from irl_agents.discovery import DiscoverConfig, discover
from irl_agents.internal_rl import InternalRLConfig, internal_rl
from irl_agents.metacontroller import codebook_metacontroller
from irl_agents.models import (
    ModelConfig,
    build_model,
    load_metacontroller,
    save_metacontroller,
    save_model,
)
from irl_envs.atomic import write_json
from irl_envs.datasets import generate_dataset

DIAGNOSTICS = Path(__file__).resolve().parents[1] / "benchmarks" / "diagnostics"


def run_script(name: str, argv: list[str]) -> None:
    """Import ``benchmarks/diagnostics/NAME.py`` as a module and call ``main(argv)``."""
    spec = importlib.util.spec_from_file_location(f"diagnostic_{name}", DIAGNOSTICS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, str]:
    """Paths of tiny artifacts: datasets, models, a discover run, logged runs."""
    root = tmp_path_factory.mktemp("diagnostics")
    torch.manual_seed(0)
    generate_dataset("grid", "pretrain", 40, seed=0, progress=False).save(root / "grid.safetensors")
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, obs_shape=[13, 7, 7],
                                   d_model=16, n_layers=2, n_heads=2, d_mlp=32))
    save_model(base, root / "base")
    discover(DiscoverConfig(base=str(root / "base"), dataset=str(root / "grid.safetensors"),
                            out_dir=str(root / "meta"), layer=1, n_z=4, rank=2, steps=2,
                            batch_size=8, eval_episodes=4, progress=False))
    save_model(base, root / "scale" / "milestones" / "step-00000001",  # as irl pretrain does
               extra={"step": 1, "tokens_seen": 1000, "train_seconds": 1.0,
                      "val_action_nll": 1.2, "pretrain": {"stream_relabel": False}})
    # 20 episodes: the 5% that irl pretrain holds out is one of them
    generate_dataset("ant", "pretrain", 20, seed=0, progress=False).save(root / "ant.safetensors")
    run_script("ant_oracle_target", ["make-data", "--dataset", str(root / "ant.safetensors"),
                                     "--out", str(root / "ant-oracle.safetensors")])
    run_script("ant_oracle_target", ["make-data", "--dataset", str(root / "ant.safetensors"),
                                     "--frame", "heading",
                                     "--out", str(root / "ant-oracle-heading.safetensors")])
    save_model(build_model(ModelConfig(obs_dim=43, action_dim=8, discrete=False, d_model=16,
                                       n_layers=1, n_heads=2, d_mlp=16)),
               root / "ant-base-heading")  # trained on heading-frame observations
    save_model(build_model(ModelConfig(obs_dim=45, action_dim=8, discrete=False, d_model=16,
                                       n_layers=1, n_heads=2, d_mlp=16,
                                       obs_likelihood="gaussian")), root / "ant-base")
    with open(root / "metrics.csv", "w", newline="") as f:  # a logged pretraining run
        csv.writer(f).writerows([["step", "wall_time", "tag", "value"],
                                 [1, 0.0, "losses/val_action_nll", 1.2],
                                 [2, 1.0, "losses/val_action_nll", 1.1]])
    meta = load_metacontroller(root / "meta")  # a codebook metacontroller of 4 controllers
    save_metacontroller(codebook_metacontroller(meta, ControllerBank(4, 16, rank=2)),
                        root / "codebook")
    for seed in range(2):  # finished RL runs
        run = root / "rl" / f"seed{seed}"
        run.mkdir(parents=True)
        with open(run / "curve.csv", "w", newline="") as f:
            csv.writer(f).writerows([["episodes", "success_rate"], [4, 0.0], [8, 0.25 * seed]])
        write_json(run / "summary.json", {"seconds": 1.0})
    internal_rl(InternalRLConfig(base=str(root / "base"), meta=str(root / "codebook"),
                                 task="0-1", episodes=4, batch_episodes=4, progress=False,
                                 out_dir=str(root / "irl")))  # a trained latent policy
    return {k: str(root / v) for k, v in {
        "root": "", "grid": "grid.safetensors", "base": "base", "meta": "meta",
        "ant": "ant.safetensors", "ant_oracle": "ant-oracle.safetensors",
        "ant_base": "ant-base", "codebook": "codebook",
        "ant_oracle_heading": "ant-oracle-heading.safetensors",
        "ant_base_heading": "ant-base-heading"}.items()}


CASES = {
    "ant_oracle_target make-data": ("ant_oracle_target", [
        "make-data", "--dataset", "{ant}", "--out", "{root}/again.safetensors"]),
    "ant_oracle_target rollout": ("ant_oracle_target", [
        "rollout", "--model", "{ant_base}", "--episodes", "1", "--greedy"]),
    "ant_oracle_target sensitivity": ("ant_oracle_target", [
        "sensitivity", "--model", "{ant_base}", "--dataset", "{ant_oracle}", "--episodes", "1"]),
    "ant_oracle_target markov": ("ant_oracle_target", [
        "markov", "--dataset", "{ant_oracle}", "--steps", "2", "--batch-size", "16",
        "--episodes", "1"]),
    "ant_oracle_target markov heading": ("ant_oracle_target", [
        "markov", "--dataset", "{ant_oracle_heading}", "--steps", "2", "--batch-size", "16",
        "--episodes", "1"]),
    "ant_oracle_target expert": ("ant_oracle_target", [
        "expert", "--dataset", "{ant}", "--episodes", "1"]),
    "base_rollout": ("base_rollout", ["--model", "{base}", "--env", "grid", "--episodes", "4"]),
    "base_rollout heading": ("base_rollout", [
        "--model", "{ant_base_heading}", "--frame", "heading", "--episodes", "2",
        "--env-workers", "1"]),
    "code_ablation": ("code_ablation", [
        "--meta", "{meta}", "--base", "{base}", "--dataset", "{grid}", "--episodes", "10"]),
    "code_injection": ("code_injection", [
        "--meta", "{meta}", "--base", "{base}", "--dataset", "{grid}", "--episodes", "2",
        "--codes", "1", "--prior-episodes", "4", "--fit-steps", "1", "--controller-steps", "1"]),
    "code_offset": ("code_offset", [
        "--meta", "{meta}", "--base", "{base}", "--dataset", "{grid}", "--train-episodes", "20",
        "--test-episodes", "10"]),
    "code_probe": ("code_probe", [
        "--meta", "{meta}", "--base", "{base}", "--dataset", "{grid}", "--train-episodes", "20",
        "--test-episodes", "10", "--label", "target_cell"]),
    "expert_floor": ("expert_floor", ["--episodes", "20"]),
    "gym_policy_eval": ("gym_policy_eval", ["--run", "{root}/irl", "--episodes", "3"]),
    "fatal_moves": ("fatal_moves", [
        "--model", "{base}", "--dataset", "{grid}", "--episodes", "5", "--controller-steps", "1"]),
    "model_diagnostics": ("model_diagnostics", [
        "--model", "{base}", "--dataset", "{grid}", "--episodes", "5"]),
    "oracle_codes": ("oracle_codes", [
        "--meta", "{meta}", "--base", "{base}", "--dataset", "{grid}", "--out", "{root}/oracle",
        "--steps", "1", "--episodes", "2"]),
    "oracle_codes split": ("oracle_codes", [
        "--meta", "{meta}", "--base", "{base}", "--dataset", "{grid}", "--out",
        "{root}/oracle-split", "--steps", "1", "--episodes", "2", "--layer", "0"]),
    "oracle_target": ("oracle_target", [
        "--dataset", "{grid}", "--steps", "1", "--eval-every", "1"]),
    "plot_pretrain": ("plot_pretrain", ["run={root}", "--out", "{root}/pretrain.png"]),
    "plot_runs": ("plot_runs", ["runs={root}/rl/seed*", "--out", "{root}/runs.png",
                                "--budgets", "4", "8", "--successes-by", "8"]),
    "rate_distortion": ("rate_distortion", [
        "--frozen", "{meta}", "--dataset", "{grid}", "--out", "{root}/rd.png"]),
    "scaling_grid eval": ("scaling_grid", [
        "eval", "{root}/scale", "--dataset", "{grid}", "--layers", "0", "--episodes", "2",
        "--controller-steps", "1"]),
    "scaling_grid plot": ("scaling_grid", [
        "plot", "{root}/scale", "--out", "{root}/scale.png"]),
    "scaling_grid table": ("scaling_grid", ["table", "{root}/scale"]),
    "scaling_grid ship": ("scaling_grid", ["ship", "{root}/scale:1", "--out", "{root}/ship"]),
    "subgoal_prior": ("subgoal_prior", ["--dataset", "{grid}", "--episodes", "10"]),
    "subgoal_prior mlp": ("subgoal_prior", ["--dataset", "{ant}", "--mlp-steps", "2"]),
    "switch_timing": ("switch_timing", [
        "--meta", "{codebook}", "--base", "{base}", "--episodes", "3"]),
    "switch_timing argmax": ("switch_timing", [
        "--meta", "{codebook}", "--base", "{base}", "--episodes", "3", "--greedy"]),
    "sb3_latent": ("sb3_latent", [
        "--base", "{base}", "--meta", "{meta}", "--episodes", "2", "--num-envs", "2"]),
}


def test_every_diagnostic_has_a_case_and_names_its_results_entry():
    scripts = {p.stem for p in DIAGNOSTICS.glob("*.py")}
    assert scripts == {name for name, _ in CASES.values()}
    root = DIAGNOSTICS.parents[1]
    for path in DIAGNOSTICS.glob("*.py"):
        pages = re.findall(r"docs/results(?:/\w+)?\.md", path.read_text().split('"""')[1])
        assert pages, path.name
        assert all((root / page).is_file() for page in pages), (path.name, pages)


@pytest.mark.parametrize("case", list(CASES))
def test_diagnostic_runs_at_tiny_size(case, tiny, capsys):
    name, argv = CASES[case]
    run_script(name, [arg.format(**tiny) for arg in argv])
    out = capsys.readouterr().out
    assert out or name.startswith("plot")  # every other one prints
    if case == "scaling_grid ship":
        index = json.loads((Path(tiny["root"]) / "ship" / "index.json").read_text())
        assert [c["folder"] for c in index["checkpoints"]] == ["expert-000M"]
        assert (Path(tiny["root"]) / "ship" / "expert-000M" / "model.safetensors").is_file()
    if case == "plot_runs":  # seed 1 succeeded in 0.25 of its second batch of 4 episodes
        assert '"successes_per_run": [0, 1], "runs_reaching_it": 2' in out
    if name == "subgoal_prior":
        scores = json.loads(out)
        assert 0 <= scores["chance"] <= 1 and 0 <= scores["prefix_bayes"] <= 1
        assert set(scores.get("mlp", {})) == ({"obs", "prefix", "obs+prefix"} if "mlp" in case
                                              else set())
    if case == "gym_policy_eval":
        assert '"episodes": 3, "success"' in out
    if case.endswith("heading"):  # the frame travels from the data file to the rollouts
        assert out.count('"frame": "heading"') == (3 if name == "ant_oracle_target" else 1)
    if case == "oracle_codes":
        assert json.loads((Path(tiny["root"]) / "oracle" / "metacontroller.json").read_text())
    if case == "oracle_codes split":  # the tiny gate reads boundary 1, the controllers write 0
        saved = json.loads((Path(tiny["root"]) / "oracle-split" / "metacontroller.json")
                           .read_text())
        assert saved["config"]["layer"] == 1 and saved["config"]["write_layer"] == 0


def test_subgoal_prior_reads_the_colours_visited_before_each_step():
    spec = importlib.util.spec_from_file_location("subgoal_prior", DIAGNOSTICS / "subgoal_prior.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # targets 2, 2, 0, 0, 0, 3: colour 2 is visited at step 2, colour 0 at step 5
    assert module.prefixes([2, 2, 0, 0, 0, 3]) == [(), (), (2,), (2,), (2,), (2, 0)]


def test_plot_runs_takes_unfinished_runs_only_when_asked(tmp_path, capsys):
    """A run still going (curve.csv, no summary.json) is left out unless ``--unfinished``."""
    run = tmp_path / "live" / "seed0"
    run.mkdir(parents=True)
    (run / "curve.csv").write_text("episodes,success_rate,seconds\n4,0.0,1.0\n8,0.5,2.0\n")
    argv = [f"live={tmp_path}/live/seed*", "--out", str(tmp_path / "p.png"), "--budgets", "8"]
    with pytest.raises(ValueError, match="no finished runs"):
        run_script("plot_runs", argv)
    run_script("plot_runs", [*argv, "--unfinished", "--log-x"])
    assert "| live | 1 | 0.250 |" in capsys.readouterr().out
    assert (tmp_path / "p.png").stat().st_size > 1000
