"""Packs of runs (trainers/pack.py, launch.pack): packed runs write what unpacked runs write."""

import json
import pathlib
import subprocess
import sys

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxdebias import runs, trainers
from jaxdebias.trainers import loop, pack
from launch import sweep
from tests import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]


def _final_checkpoint(workdir: pathlib.Path):
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  last = workdir / "checkpoints" / str(steps[-1]) / "default"
  return steps, ocp.StandardCheckpointer().restore(last)


def _assert_close(a, b, atol: float) -> None:
  """Equal trees: equal text, numbers within atol (vmapped members round in their last bits)."""

  def close(x, y):
    if isinstance(x, str) or isinstance(y, str):
      assert x == y
    else:
      np.testing.assert_allclose(x, y, atol=atol)

  jax.tree.map(close, a, b)


def _metrics(workdir: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def three_runs(tiny_config, tmp_path):
  """LfF on two datasets of one shape: A (seed 0), B (seed 0), B (seeds 1 and 2: two members)."""
  other = synthetic.write_npz(tmp_path / "other.npz", conflicting=0.2, seed=1)
  configs = [tiny_config.copy_and_resolve_references() for _ in range(3)]
  configs[1].data.path = configs[2].data.path = other
  configs[2].seed, configs[2].num_seeds = 1, 2
  return configs


def test_packed_runs_write_what_runs_alone_write_and_resume(
    three_runs, tmp_path, interrupt_after_metrics_of
):
  packed = [str(tmp_path / f"packed{k}") for k in range(3)]
  interrupt_after_metrics_of(30, lambda: trainers.train_packed(three_runs, packed))  # Saved at 20.
  first = trainers.train_and_evaluate(three_runs[0], packed[0])  # Resumes alone from step 20.
  together = trainers.train_packed(three_runs, packed)  # The other two resume packed.
  assert together[0] == first and "packed_with" not in first  # Finished: kept as it was.
  assert together[1]["packed_with"] == [packed[2]] and together[2]["packed_with"] == [packed[1]]
  for k, config in enumerate(three_runs):
    alone_dir = tmp_path / f"alone{k}"
    alone = trainers.train_and_evaluate(config, str(alone_dir))
    packed_dir = pathlib.Path(packed[k])
    config_json = lambda workdir: (workdir / "config.json").read_text()
    assert config_json(packed_dir) == config_json(alone_dir)
    strip = lambda r: {k: v for k, v in r.items() if "seconds" not in k and k != "packed_with"}
    _assert_close(strip(together[k]), strip(alone), atol=1e-3)
    logged, logged_alone = _metrics(packed_dir), _metrics(alone_dir)
    assert [r["step"] for r in logged] == [r["step"] for r in logged_alone]  # One line each.
    _assert_close(logged, logged_alone, atol=1e-3)
    (steps, state), (steps_alone, state_alone) = map(_final_checkpoint, (packed_dir, alone_dir))
    assert steps == steps_alone
    chex.assert_trees_all_close(state, state_alone, rtol=1e-4, atol=1e-5)
  # A and B really are other data: each member was evaluated on its own run's test split.
  assert together[0]["dataset"] != together[1]["dataset"]
  assert together[0]["test"] != together[1]["test"]
  assert trainers.train_packed(three_runs, packed) == together  # Finished: kept as they are.


def test_packed_runs_on_a_mesh_equal_runs_alone_on_it(three_runs, tmp_path):
  """4 x 2 devices: each member's batches and test split gathered from its own run's rows."""
  configs = three_runs[:2]
  for config in configs:
    config.mesh.data, config.mesh.model, config.num_steps = 4, 2, 10
  packed = [str(tmp_path / f"packed{k}") for k in range(2)]
  together = trainers.train_packed(configs, packed)
  for k, config in enumerate(configs):
    alone = trainers.train_and_evaluate(config, str(tmp_path / f"alone{k}"))
    _assert_close(together[k]["test"], alone["test"], atol=1e-3)
    _assert_close(_metrics(pathlib.Path(packed[k])), _metrics(tmp_path / f"alone{k}"), atol=1e-3)


def test_plan_packs_equal_configs_at_one_step_within_the_budget(three_runs, tiny_config, tmp_path):
  small = synthetic.write_npz(tmp_path / "small.npz", num_train=256)
  erm, smaller, oracle, later_run = (tiny_config.copy_and_resolve_references() for _ in range(4))
  erm.method, smaller.data.path = "erm", small
  oracle.method = "group_dro_oracle"  # Not packable: its groups are its own split's.
  configs = [*three_runs, erm, smaller, oracle, later_run]
  configs[-1].seed = 5
  workdirs = [runs.absolute(str(tmp_path / f"run{k}")) for k in range(len(configs))]
  later = runs.Checkpointer(workdirs[-1] / "checkpoints", keep=1)
  later.save(10, {"x": np.zeros(1)})  # Run 6 stands at step 10, the others at 0.
  later.close()
  parts = [loop.Part(c, w) for c, w in zip(configs, workdirs)]
  named = lambda packs: [[p.workdir.name for p in one.parts] for one in packs]
  assert named(pack.plan(parts)) == [
      ["run0", "run1", "run2"], ["run3"], ["run4"], ["run5"], ["run6"]
  ]
  first = pack.plan(parts)[0]
  assert [d.name for d in first.datasets] == ["npz/tiny", "npz/other", "npz/other"]
  assert first.datasets[1] is first.datasets[2]  # One read for one data config.
  one_dataset = synthetic.biased_arrays()["train_images"].nbytes / 2**30
  for config in three_runs:  # Room for one dataset: A alone, then B's two runs.
    config.device_images_budget_gib = 1.5 * one_dataset
  assert named(pack.plan(parts[:3])) == [["run0"], ["run1", "run2"]]
  for config in three_runs:
    config.device_images_budget_gib = None
  assert named(pack.plan(parts[:3], max_runs=2)) == [["run0", "run1"], ["run2"]]


def test_launch_run_pack_trains_a_sweep_as_one_process(tmp_path):
  npz = synthetic.write_npz(tmp_path / "tiny.npz")
  other = synthetic.write_npz(tmp_path / "other.npz", conflicting=0.2, seed=1)
  path = tmp_path / "sweep.py"
  path.write_text(
      "from launch.sweep import product, values\n"
      f"CONFIG = 'configs/npz.py:method=lff,path={npz}'\n"
      "def runs():\n"
      f"  return product(values('data.path', [{npz!r}, {other!r}]), values('seed', [0, 1]),"
      " [{'model.hidden': (32, 32), 'batch_size': 32, 'num_steps': 20, 'eval_every': 10,"
      " 'eval_batch_size': 64}])"
      f" + [{{'data.path': {npz!r}, 'num_steps': 'many'}}, {{'data.path': {npz!r},"
      " 'method': 'nope'}]\n"  # Each fails alone: one does not parse, one is refused.
  )
  root = tmp_path / "root"
  command = [sys.executable, "-m", "launch.run", str(path), f"--root={root}", "--pack"]
  command.append("--pack_size=4")  # On CPU the default is 3.
  proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 1, proc.stdout + proc.stderr
  *every, bad, unknown = sweep.load(str(path))
  assert proc.stdout.splitlines()[-1] == "4 finished, 2 failed, 0 skipped."
  assert f"failed {bad.name}: error: its config does not parse" in proc.stdout
  assert f"failed {unknown.name}: error: Unknown method 'nope'" in proc.stdout
  (log,) = root.glob("pack-*.log")
  assert "Training 4 run(s) as one program" in log.read_text()
  for one in every:
    results = json.loads((root / one.name / "results.json").read_text())
    assert len(results["packed_with"]) == 3 and results["step"] == 20
  rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert rerun.stdout.splitlines()[-1] == "0 finished, 2 failed, 4 skipped."
