"""The comparison runner (``irl compare``) and the baselines it drives."""

import csv
import json

import numpy as np
import pytest

from baselines.compare import (
    CompareConfig,
    compare,
    default_budgets,
    markdown_table,
    success_at,
    update_docs,
)
from baselines.flat_ppo import FlatPPOConfig, flat_ppo
from baselines.methods import METHODS
from baselines.raw_action import RawActionConfig, raw_action_rl
from irl_agents.curves import episodes_to
from irl_agents.shipped import shipped

BASE = str(shipped("grid", "base"))


def _run(method, seed, rates, seconds=1.0, batch=100):
    curve = {"episodes": [batch * (i + 1) for i in range(len(rates))], "success_rate": rates}
    return {"method": method, "seed": seed, **curve, "final_success_rate": rates[-1],
            "episodes_to_0.5": episodes_to(curve, 0.5),
            "episodes_to_0.9": episodes_to(curve, 0.9), "seconds": seconds}


def test_budgets_and_success_at():
    assert default_budgets(20_480, 256) == [256, 1024, 4096, 16384, 20480]
    assert default_budgets(256, 256) == [256]
    run = _run("a", 0, [0.0, 0.2, 0.6])
    assert success_at(run, 100, window=1) == 0.0 and success_at(run, 250, window=1) == 0.2
    assert success_at(run, 10_000, window=1) == 0.6
    assert success_at(run, 10, window=1) == 0.0  # before the first point: the first point
    assert success_at(run, 300, window=2) == pytest.approx(0.4)  # mean of the last two
    assert success_at(run, 250, window=4) == pytest.approx(0.1)  # as many as there are


def test_markdown_table_medians_and_never():
    runs = [_run("a", s, r) for s, r in enumerate([[0.1, 0.95], [0.5, 0.6], [0.0, 0.0]])]
    table = markdown_table(runs, ["a", "missing"], [100, 200]).splitlines()
    assert len(table) == 3  # header, rule, one method (no runs: no row)
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:2] == ["a", "3"]
    assert cells[2].startswith("0.100") and cells[3].startswith("0.525")  # window means
    # to 0.5: 200, 100, never -> median 200; to 0.9: 200, never, never -> never
    assert cells[4] == "200 (2/3)" and cells[5] == "never (1/3)"


def test_update_docs_replaces_between_markers(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nintro\n")
    update_docs(doc, "compare:grid:x", "table one")
    update_docs(doc, "compare:grid:x", "table two")
    update_docs(doc, "compare:grid:y", "other")
    text = doc.read_text()
    assert text.startswith("# Results\n\nintro\n")
    assert "table two" in text and "table one" not in text and "other" in text
    assert text.count("<!-- compare:grid:x begin -->") == 1


@pytest.mark.parametrize("field, value, match", [
    ("methods", ("internal-rl", "nope"), "methods"), ("seeds", 0, "seeds"),
    ("episodes", 10, "episodes"), ("segment_layer", -1, "segment_layer"),
])
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        CompareConfig(**{field: value}).validate()


def test_every_method_has_a_train_step():
    assert list(METHODS)[:2] == ["internal-rl", "prior"]
    assert {"raw-action", "no-temporal-abstraction", "cotrained", "compile",
            "flat-ppo"} <= set(METHODS)


def test_raw_action_rl_writes_a_resumable_curve(tmp_path):
    cfg = RawActionConfig(base=BASE, task="0-1", episodes=32, batch_episodes=16, seed=3,
                          out_dir=str(tmp_path / "ra"), progress=False)
    first = raw_action_rl(cfg)
    with open(tmp_path / "ra" / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["episodes"]) for r in rows] == [16, 32]
    assert 0.0 <= first["final_success_rate"] <= 1.0
    # extending the budget continues from the checkpoint instead of starting again
    more = raw_action_rl(RawActionConfig(**{**cfg.__dict__, "episodes": 48}))
    with open(tmp_path / "ra" / "curve.csv") as f:
        assert [int(r["episodes"]) for r in csv.DictReader(f)] == [16, 32, 48]
    assert more["final_success_rate"] is not None


def test_flat_ppo_stops_at_the_episode_budget(tmp_path):
    summary = flat_ppo(FlatPPOConfig(task="0-1", episodes=64, batch_episodes=32, num_envs=4,
                                     n_steps=32, out_dir=str(tmp_path / "fp"), progress=False))
    with open(tmp_path / "fp" / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["episodes"]) for r in rows] == [32, 64]
    assert isinstance(summary["final_success_rate"], float)


def test_sweep_runs_resumes_and_reports(tmp_path):
    """Two cheap methods, two seeds, a process pool: results, plots, table; a rerun skips."""
    cfg = CompareConfig(task="0-1", methods=("prior", "raw-action"), seeds=2, episodes=32,
                        batch_episodes=16, workers=2, out_dir=str(tmp_path / "cmp"),
                        docs=str(tmp_path / "results.md"), progress=False, data_episodes=20)
    result = compare(cfg)
    out = tmp_path / "cmp" / "0-1"
    assert {(r["method"], r["seed"]) for r in result["runs"]} == {
        (m, s) for m in ("prior", "raw-action") for s in (0, 1)}
    for name in ("results.json", "results.csv", "table.md", "success.png", "success_log.png",
                 "compare.json"):
        assert (out / name).is_file(), name
    assert "| prior | 2 |" in (tmp_path / "results.md").read_text()
    stamp = (out / "runs" / "prior" / "seed0" / "summary.json").stat().st_mtime_ns
    compare(cfg)  # everything finished: nothing reruns
    assert (out / "runs" / "prior" / "seed0" / "summary.json").stat().st_mtime_ns == stamp
    prior = [r for r in json.loads((out / "results.json").read_text())["runs"]
             if r["method"] == "prior"]
    assert all(np.isfinite(r["final_success_rate"]) for r in prior)


def test_quick_sweep_over_every_method(tmp_path):
    """``irl compare --quick``: every method's prepare and train step runs."""
    from baselines.compare import QUICK

    cfg = CompareConfig(**{**QUICK, "out_dir": str(tmp_path / "q"), "progress": False})
    result = compare(cfg)
    assert {r["method"] for r in result["runs"]} == set(METHODS)


def test_argmax_sweep_and_segment_codes_written_below_the_gate(tmp_path):
    """``--greedy`` reaches the latent methods' runs and gets its own docs section;
    ``--segment-layer`` sets where the segment codes' controllers write."""
    from irl_agents.models import load_metacontroller

    cfg = CompareConfig(task="0-1", methods=("segment-codes",), seeds=1, episodes=16,
                        batch_episodes=16, workers=1, greedy=True, segment_layer=0,
                        prepare_steps=10, eval_episodes=16, data_episodes=200,
                        out_dir=str(tmp_path / "g"), docs=str(tmp_path / "results.md"),
                        progress=False)
    compare(cfg)
    out = tmp_path / "g" / "0-1"
    run = json.loads((out / "runs" / "segment-codes" / "seed0" / "run.json").read_text())
    assert run["config"]["greedy"] is True
    meta = load_metacontroller(tmp_path / "g" / "prepared" / "segment-codes")
    assert (meta.cfg.layer, meta.cfg.write_boundary) == (1, 0)
    text = (tmp_path / "results.md").read_text()
    assert "<!-- compare:grid:0-1:argmax begin -->" in text and "argmax raw actions" in text


def test_ray_backend_gives_the_same_runs(tmp_path):
    ray = pytest.importorskip("ray")
    cfg = CompareConfig(task="0-1", methods=("prior",), seeds=1, episodes=16, batch_episodes=16,
                        out_dir=str(tmp_path / "ray"), ray_address="local", progress=False,
                        data_episodes=20)
    try:
        ray_runs = compare(cfg)["runs"]
    finally:
        ray.shutdown()
    pool = compare(CompareConfig(**{**cfg.__dict__, "ray_address": None,
                                    "out_dir": str(tmp_path / "pool")}))["runs"]
    assert ray_runs[0]["success_rate"] == pool[0]["success_rate"]


def test_sweeps_and_runs_recorded_before_a_new_option_resume(tmp_path):
    """A sweep (and its internal-RL runs) recorded before ``greedy`` existed: the missing
    setting matches its default, so the sweep resumes instead of refusing the folder."""
    cfg = CompareConfig(task="0-1", methods=("prior",), seeds=1, episodes=16, batch_episodes=16,
                        workers=1, out_dir=str(tmp_path / "old"), progress=False,
                        data_episodes=20)
    compare(cfg)
    run = tmp_path / "old" / "0-1" / "runs" / "prior" / "seed0"
    for record in (tmp_path / "old" / "run.json", run / "run.json"):
        saved = json.loads(record.read_text())
        del saved["config"]["greedy"]
        record.write_text(json.dumps(saved))
    stamp = (run / "summary.json").stat().st_mtime_ns
    compare(cfg)
    assert (run / "summary.json").stat().st_mtime_ns == stamp
    with pytest.raises(Exception, match="greedy"):  # a real change of setting still refuses
        compare(CompareConfig(**{**cfg.to_dict(), "greedy": True}))


def _children(pid: int) -> set[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return {int(c) for c in f.read().split()}
    except OSError:
        return set()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_killing_a_sweep_stops_its_workers(tmp_path):
    """SIGTERM to ``irl compare`` ends the job it was running in its worker, rather than
    leaving an orphan that writes into the run folder a resumed sweep also writes."""
    import signal
    import subprocess
    import sys
    import time

    argv = ["compare", "--task", "0-1", "--methods", "raw-action", "--seeds", "1",
            "--episodes", "10000000", "--batch-episodes", "16", "--workers", "1",
            "--no-progress", "--out", str(tmp_path / "cmp")]
    proc = subprocess.Popen([sys.executable, "-c",
                             f"from irl_agents.cli import main; main({argv!r})"])
    curve = tmp_path / "cmp" / "0-1" / "runs" / "raw-action" / "seed0" / "curve.csv"
    deadline = time.monotonic() + 120
    while not (curve.is_file() and curve.read_text().count("\n") >= 2):  # the job is running
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [w for w in workers if _alive(w)]
