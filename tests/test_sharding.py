"""Data-parallel training on 8 simulated CPU devices equals training on one (conftest sets 8)."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxdebias import methods, models, runs, sharding, trainers
from jaxdebias.errors import InputError
from jaxdebias.runs import lock
from jaxdebias.trainers import members
from tests import cli, synthetic

NUM_DEVICES = 8


def _final_checkpoint(workdir: pathlib.Path, like=None):
  """The last checkpoint, onto this process's default device (or laid out like `like`)."""
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  target = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  path = workdir / "checkpoints" / str(steps[-1]) / "default"
  return ocp.StandardCheckpointer().restore(path, target)


def _drop_timing(results):
  return {k: v for k, v in results.items() if not k.endswith("seconds_this_run")}


def test_eight_devices_are_simulated():
  assert jax.device_count() == NUM_DEVICES


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_data_parallel_run_equals_one_device_run(method, tiny_config, tmp_path, use_method):
  use_method(tiny_config, method)
  tiny_config.eval_batch_size = 30  # Rounded up to 32 on 8 devices; the 200 test examples pad.
  one = trainers.train_and_evaluate(tiny_config, str(tmp_path / "one"))
  tiny_config.mesh.data = NUM_DEVICES
  eight = trainers.train_and_evaluate(tiny_config, str(tmp_path / "eight"))
  # Sums over a split batch are reduced in another order: equal up to float rounding.
  chex.assert_trees_all_close(
      _final_checkpoint(tmp_path / "eight"), _final_checkpoint(tmp_path / "one"), atol=1e-5
  )
  chex.assert_trees_all_close(eight["test"], one["test"], atol=1e-6)
  assert (
      eight["test"]["classifier"]["num_examples"]
      == one["test"]["classifier"]["num_examples"]
      == 200
  )


def test_split_batch_with_repeated_indices_updates_the_ema_like_one_device(tiny_config):
  split = synthetic.biased_arrays(num_train=64, num_test=8)
  tiny_config.batch_size = 16
  model = models.create(tiny_config.model, 4)
  train = methods.TrainSet(split["train_label"], 4, (8, 8, 3), images=split["train_images"])
  method = methods.build(tiny_config, model, train)
  labels = split["train_label"].astype(np.int32)
  # Every batch repeats indices, some across the devices' shards, some inside one shard.
  indices = np.array(
      [[3, 3, 5, 9, 3, 11, 5, 40, 41, 3, 0, 1, 2, 63, 63, 5]] * 2 + [list(range(16))]
  )
  states = []
  for num_devices in (1, NUM_DEVICES):
    tiny_config.mesh.data = num_devices
    mesh = sharding.make_mesh(tiny_config.mesh)
    _, state = members.init_members(tiny_config, method, mesh)
    placed = {
        "image": sharding.shard_rows(split["train_images"], mesh),
        "label": sharding.global_array(labels, sharding.replicated(mesh)),
    }
    assert placed["image"].addressable_shards[0].data.shape[0] == 64 // num_devices
    run = members.chunk_runner(method, 1, mesh, state, tiny_config.num_steps)
    placed_indices = members.place_indices(indices.astype(np.int32), mesh)
    assert len(placed_indices.addressable_shards) == num_devices
    assert placed_indices.addressable_shards[0].data.shape == (3, 16 // num_devices)
    state, _ = run(state, placed, placed_indices)
    states.append(jax.device_get(state))
  chex.assert_trees_all_close(states[1], states[0], atol=1e-6)
  assert states[1].ema.seen.sum() == len(set(indices.reshape(-1)))


@pytest.mark.parametrize("first, then", [(NUM_DEVICES, 1), (1, NUM_DEVICES)])
def test_checkpoint_resumes_on_another_device_count(
    first, then, tiny_config, tmp_path, monkeypatch
):
  straight = trainers.train_and_evaluate(tiny_config, str(tmp_path / "straight"))
  real_write = runs.MetricsLog.write

  def write_then_die(self, record):
    real_write(self, record)
    if record["step"] == 20:
      raise KeyboardInterrupt

  tiny_config.mesh.data = first
  monkeypatch.setattr(runs.MetricsLog, "write", write_then_die)
  with pytest.raises(KeyboardInterrupt):
    trainers.train_and_evaluate(tiny_config, str(tmp_path / "moved"))
  monkeypatch.setattr(runs.MetricsLog, "write", real_write)
  tiny_config.mesh.data = then
  moved = trainers.train_and_evaluate(tiny_config, str(tmp_path / "moved"))
  chex.assert_trees_all_close(
      _final_checkpoint(tmp_path / "moved"), _final_checkpoint(tmp_path / "straight"), atol=1e-5
  )
  chex.assert_trees_all_close(_drop_timing(moved)["test"], straight["test"], atol=1e-6)


@pytest.mark.parametrize(
    "data, model, batch_size, message",
    [
        (3, 1, 32, r"batch_size 32 is not divisible by the 3 data-parallel devices"),
        (16, 1, 32, r"does not fit the 8 devices"),
        (-1, -1, 32, r"at most one -1"),
        (0, 1, 32, r"mesh.data must be a positive integer or -1"),
    ],
)
def test_bad_meshes_are_refused(data, model, batch_size, message, tiny_config, tmp_path):
  tiny_config.mesh.data, tiny_config.mesh.model, tiny_config.batch_size = data, model, batch_size
  with pytest.raises(InputError, match=message):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert not (tmp_path / "config.json").exists()


def test_model_axis_splits_parameters_and_trains_the_same(tiny_config, tmp_path):
  one = trainers.train_and_evaluate(tiny_config, str(tmp_path / "one"))
  tiny_config.mesh.data, tiny_config.mesh.model = 4, 2
  model = models.create(tiny_config.model, 4)
  train = methods.TrainSet(np.zeros(8, np.int32), 4, (8, 8, 3))
  method = methods.build(tiny_config, model, train)
  _, state = members.init_members(tiny_config, method, sharding.make_mesh(tiny_config.mesh))
  weight = state.params["biased"]["params"]["dense0"]["weight"]  # (32, 192): split on 192.
  assert weight.sharding.spec == jax.sharding.PartitionSpec(None, sharding.MODEL)
  assert state.ema.value.sharding.is_fully_replicated
  split = trainers.train_and_evaluate(tiny_config, str(tmp_path / "split"))
  chex.assert_trees_all_close(
      _final_checkpoint(tmp_path / "split"), _final_checkpoint(tmp_path / "one"), atol=1e-5
  )
  chex.assert_trees_all_close(split["test"], one["test"], atol=1e-6)


def _two_processes(
    config, workdir: pathlib.Path, extra=(), while_running=None
) -> tuple[list[int], list[str]]:
  """The command of `config` (the tiny one, then `extra` arguments) as two processes on
  localhost, 4 CPU devices each: (exit statuses, outputs). while_running(processes): called
  once both are started."""
  with socket.socket() as s:  # A free port for the coordinator.
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  command = [sys.executable, "-m", "jaxdebias.main", *cli.tiny_args(config.data.path, workdir)]
  command += [f"--coordinator_address=localhost:{port}", "--num_processes=2", *extra]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  processes = [
      subprocess.Popen(
          [*command, f"--process_id={i}"],
          cwd=cli.REPO,
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
      )
      for i in range(2)
  ]
  if while_running is not None:
    while_running(processes)
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  return [p.returncode for p in processes], outputs


def test_two_processes_on_localhost_agree_with_one_process(tiny_config, tmp_path):
  one = trainers.train_and_evaluate(tiny_config, str(tmp_path / "one"))
  codes, outputs = _two_processes(tiny_config, tmp_path / "two")
  assert codes == [0, 0], outputs
  assert "Process 1 of 2; 4 local of 8 devices" in outputs[1]
  num_train = len(np.load(tiny_config.data.path, allow_pickle=False)["train_label"])
  # Each process reads half the rows:
  assert f"Process 1 reads rows {num_train // 2}-{num_train} of {num_train}." in outputs[1]
  two = json.loads((tmp_path / "two" / "results.json").read_text())
  chex.assert_trees_all_close(two["test"], one["test"], atol=1e-6)
  single = _final_checkpoint(tmp_path / "one")  # Written by 2 processes, read by 1:
  chex.assert_trees_all_close(_final_checkpoint(tmp_path / "two", like=single), single, atol=1e-5)
  table_row = re.compile(r"^classifier +\d", re.MULTILINE)  # The results table's row.
  assert table_row.search(outputs[0]) and not table_row.search(outputs[1])  # Process 0 reports.


def test_two_processes_in_a_held_workdir_both_stop_in_one_line(tiny_config, tmp_path):
  with lock.workdir_lock(tmp_path / "held"):  # Another run holds it.
    codes, outputs = _two_processes(tiny_config, tmp_path / "held")
  assert codes == [2, 2], outputs
  # One error line each (Gloo's C++ may print its connection line after it, at exit).
  errors = [[l for l in output.splitlines() if l.startswith("error: ")] for output in outputs]
  assert [len(e) for e in errors] == [1, 1], outputs
  assert errors[0][0].startswith("error: the workdir") and "in use by another run" in errors[0][0]
  assert errors[1][0].startswith("error: process 0 could not lock the workdir")
  assert not (tmp_path / "held").exists()  # Nothing written; the holder removed what it made.


def test_row_sharded_table_pads_and_gathers_like_numpy():
  mesh = sharding.make_mesh(sharding.default_mesh_config())  # All 8 devices on `data`.
  rows = np.arange(21 * 3, dtype=np.uint8).reshape(21, 3)  # 21 rows: padded to 24.
  table = sharding.shard_rows(rows, mesh)
  assert table.shape == (24, 3) and [s.data.shape for s in table.addressable_shards] == [(3, 3)] * 8
  np.testing.assert_array_equal(np.asarray(table)[21:], 0)
  index = np.array([20, 0, 0, 7, 13, 20, 1, 2, 3, 4, 5, 6, 19, 18, 17, 16], np.int32)
  gathered = jax.jit(lambda t, i: sharding.gather_rows(t, i, mesh))(table, index)
  np.testing.assert_array_equal(np.asarray(gathered), rows[index])
  assert gathered.sharding.spec == jax.sharding.PartitionSpec(sharding.DATA)


def test_sigterm_to_one_of_two_processes_saves_and_stops_both(tiny_config, tmp_path):
  """A preemption signal reaching one process: both save the same step and stop (exit 143)
  with one line, instead of one stopping and the other waiting at the next collective."""
  metrics = tmp_path / "run" / "metrics.jsonl"

  def terminate_process_1(processes):
    while processes[1].poll() is None and (
        not metrics.exists() or len(metrics.read_text().splitlines()) < 2
    ):
      time.sleep(0.02)
    processes[1].send_signal(signal.SIGTERM)

  codes, outputs = _two_processes(
      tiny_config, tmp_path / "run", ["--config.num_steps=400"], terminate_process_1
  )
  assert codes == [143, 143], outputs
  said = [
      [l for l in output.splitlines() if l.startswith("stopped: SIGTERM at step ")]
      for output in outputs
  ]
  assert [len(s) for s in said] == [1, 1] and said[0] == said[1], outputs
  step = int(said[0][0].split("step ")[1].split()[0])
  assert 0 < step < 400 and (tmp_path / "run" / "checkpoints" / str(step)).is_dir()
