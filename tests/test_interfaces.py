"""The interfaces layers share: the latent controller protocol, settings' dict round trip, the
worker pool, observation reading, file helpers, and the direction of imports."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.compile import CompILE, CompILEModelConfig, load_compile, save_compile
from irl_agents.latent_env import LatentController, LatentCore
from irl_agents.metacontroller import Metacontroller, MetacontrollerConfig, codebook_metacontroller
from irl_agents.models import (
    ControllerBank,
    LinearController,
    ModelConfig,
    build_model,
    load_metacontroller,
    save_metacontroller,
)
from irl_agents.pretrain import PretrainConfig
from irl_agents.raw_batch import GridRawBatch
from irl_agents.rl import PPOConfig
from irl_envs import grid_logic
from irl_envs.colour_sequence import ColourSequenceVectorEnv
from irl_envs.worker_pool import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
D, N_Z, N_H = 16, 4, 8


def _controllers() -> dict[str, LatentController]:
    cfg = MetacontrollerConfig(d_model=D, layer=1, n_z=N_Z, n_h=N_H, rank=2)
    meta = Metacontroller(cfg)
    return {
        "metacontroller": meta,
        "codebook decoder": Metacontroller(dataclasses.replace(cfg, codebook=3)),
        "codebook_metacontroller": codebook_metacontroller(meta, ControllerBank(3, D, 2)),
        "CompILE": CompILE(CompILEModelConfig(obs_dim=637, d_model=D, layer=1, n_z=N_Z, n_h=N_H,
                                              rank=2)),
    }


@pytest.mark.parametrize("name", list(_controllers()))
def test_every_latent_controller_satisfies_the_protocol(name):
    ctrl = _controllers()[name]
    assert isinstance(ctrl, LatentController)
    h = ctrl.initial_history(3)  # the codebook decoder has no hypernetwork to read a device from
    assert h.shape == (3, N_H) and not h.any()
    e, z = torch.randn(3, D), torch.randn(3, N_Z)
    assert isinstance(ctrl.decode(z), LinearController)
    beta = ctrl.switch_prob(e, h, z)
    assert beta.shape == (3,) and ((beta >= 0) & (beta <= 1)).all()
    assert ctrl.history_step(e, h).shape == (3, N_H)
    base = build_model(ModelConfig(obs_dim=637, action_dim=4, d_model=D, n_layers=2, n_heads=2,
                                   d_mlp=32))
    core = LatentCore(base, ctrl, GridRawBatch(3))  # the latent env runs on any of them
    core.reset(np.arange(3), [0, 1, 2])
    core.begin(np.arange(3), np.zeros((3, N_Z), np.float32))
    core.raw_step()
    assert core.observation().shape == (3, D + N_H)


def test_metacontroller_and_compile_files_round_trip(tmp_path):
    ctrl = _controllers()
    save_metacontroller(ctrl["codebook decoder"], tmp_path / "m", extra={"note": 1})
    loaded = load_metacontroller(tmp_path / "m")
    assert loaded.cfg == ctrl["codebook decoder"].cfg
    for k, v in ctrl["codebook decoder"].state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    save_compile(ctrl["CompILE"], tmp_path / "c")
    assert load_compile(tmp_path / "c").cfg == ctrl["CompILE"].cfg
    with pytest.raises(ValueError, match="not a readable metacontroller"):
        load_metacontroller(tmp_path / "c")
    from irl_agents import discovery  # the old home of the metacontroller's files

    assert discovery.load_metacontroller is load_metacontroller


def test_settings_round_trip_through_dicts():
    cfg = PretrainConfig(dataset="d", model=ModelConfig(d_model=32, n_heads=2), milestones=[3])
    again = PretrainConfig.from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again.model, ModelConfig)
    with pytest.raises(ValueError, match="PretrainConfig: unknown field"):
        PretrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="MetacontrollerConfig"):
        MetacontrollerConfig.from_dict({"codebook": 1, "extra": 2})


def test_defaults_that_should_agree_do():
    from baselines.raw_action import RawActionConfig
    from irl_agents.internal_rl import InternalRLConfig

    assert RawActionConfig.lr == PPOConfig.lr == 3e-5  # the paper's
    assert RawActionConfig.clip == InternalRLConfig.clip == PPOConfig.clip
    # internal RL trains a small policy from the prior: 10x, documented on the field
    assert InternalRLConfig.lr == pytest.approx(10 * PPOConfig.lr)


class _Echo:
    def twice(self, x: int) -> int:
        return 2 * x

    def fail(self) -> None:
        raise KeyError("nope")


def test_worker_pool_answers_in_parallel_and_reports_errors():
    pool = WorkerPool([_Echo, _Echo], "test pool")
    try:
        assert pool.request({0: ("twice", (1,), {}), 1: ("twice", (5,), {})}) == {0: 2, 1: 10}
        with pytest.raises(RuntimeError, match="test pool: worker 1 failed:\nKeyError"):
            pool.request({0: ("twice", (2,), {}), 1: ("fail", (), {})})
        assert pool.call_all("twice", 3) == [6, 6]  # still serving, pipes still in step
    finally:
        pool.close()


def test_reading_the_layout_back_from_observations():
    venv = ColourSequenceVectorEnv(16)
    obs, _ = venv.reset(seed=0)
    cells, agent = grid_logic.layout_from_obs(obs, venv.core.g)
    np.testing.assert_array_equal(cells, venv.core.cells)
    np.testing.assert_array_equal(agent, venv.core.agent)
    colours = np.arange(16) % venv.core.o  # any colour per row may be the target
    fatal = grid_logic.fatal_moves(cells, agent, colours, venv.core.g, venv.core.o)
    nxt = grid_logic.move_table(venv.core.g)[agent]
    entered = np.take_along_axis(cells, nxt, 1)
    expected = (entered >= 0) & (entered < venv.core.o) & (entered != colours[:, None])
    np.testing.assert_array_equal(fatal, expected & (nxt != agent[:, None]))
    where = grid_logic.colour_cell(cells, colours)
    assert (cells[np.arange(16), where] == colours).all()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_imports_flow_one_way():
    """irl_envs <- irl_agents <- baselines; only the CLI (irl_agents/cli.py and
    irl_agents/commands/) sits on top and may import the baselines."""
    for path in (ROOT / "irl_envs").rglob("*.py"):
        assert not _imports(path) & {"irl_agents", "baselines"}, path
    for path in (ROOT / "irl_agents").rglob("*.py"):
        cli = path.name == "cli.py" or "commands" in path.parts
        assert cli or "baselines" not in _imports(path), path
