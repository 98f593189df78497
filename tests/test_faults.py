"""Faults a long run meets: signals (Ctrl-C, a preemption's SIGTERM), a kill in the middle of a
log write, a damaged log or a foreign checkpoint. Each stops with one line, or is repaired and
said so, and leaves a workdir the same command resumes exactly."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import npz as npz_config
from jaxdebias import trainers
from jaxdebias.errors import InputError, WriteError

REPO = pathlib.Path(__file__).resolve().parents[1]
# A run long enough to be caught in the middle: 100 evaluations of a tiny model.
OVERRIDES = {
    "num_steps": 5000,
    "eval_every": 50,
    "checkpoint_every": 2500,
    "batch_size": 32,
    "eval_batch_size": 64,
    "mesh.data": 1,
}


def _command(npz: str, workdir: pathlib.Path, extra=()) -> list[str]:
  return [
      sys.executable,
      "-m",
      "jaxdebias.main",
      f"--config=configs/npz.py:method=lff,path={npz}",
      f"--workdir={workdir}",
      "--config.model.hidden=(32,32)",
      *[f"--config.{k}={v}" for k, v in OVERRIDES.items()],
      *extra,
  ]


def _run(npz: str, workdir: pathlib.Path, stop_with: int | None = None, extra=(), after_lines=3):
  """The command in a subprocess; with `stop_with`, that signal once metrics.jsonl has
  `after_lines` lines. Returns (exit status, stderr)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
      _command(npz, workdir, extra), cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
  )
  if stop_with is not None:
    metrics = workdir / "metrics.jsonl"
    while proc.poll() is None and (
        not metrics.exists() or len(metrics.read_text().splitlines()) < after_lines
    ):
      time.sleep(0.02)
    proc.send_signal(stop_with)
  _, stderr = proc.communicate(timeout=300)
  return proc.returncode, stderr


def test_sigterm_saves_where_it_stopped_and_the_rerun_ends_as_one_uninterrupted_run(
    tiny_npz, tmp_path
):
  workdir = tmp_path / "run"
  code, stderr = _run(tiny_npz, workdir, stop_with=signal.SIGTERM)
  assert code == 143, stderr
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("stopped: SIGTERM at step ") and "Traceback" not in stderr, stderr
  step = int(last.split("step ")[1].split()[0])
  assert 0 < step < 5000 and step % 50 == 0
  assert (workdir / "checkpoints" / str(step)).is_dir()  # Saved where it stopped.
  code, stderr = _run(tiny_npz, workdir)  # Resumed from there, to the end.
  assert code == 0, stderr

  config = _config(tiny_npz)
  straight = trainers.train_and_evaluate(config, str(tmp_path / "straight"))
  resumed = trainers.train_and_evaluate(config, str(workdir))  # Finished: read back.
  assert _without_time(resumed) == _without_time(straight)
  metrics = lambda d: (d / "metrics.jsonl").read_text()
  assert metrics(workdir) == metrics(tmp_path / "straight")


def test_sigkills_at_random_moments_resume_to_the_uninterrupted_run(tiny_npz, tmp_path):
  """Kills (SIGKILL: no handler runs) after a random number of evaluations, some inside a
  checkpoint write (every 250 steps here), then the same command to the end."""
  workdir, rng = tmp_path / "run", np.random.default_rng(0)
  extra = ["--config.checkpoint_every=250"]
  for _ in range(4):
    lines = _lines(workdir)
    code, _ = _run(tiny_npz, workdir, stop_with=signal.SIGKILL, extra=extra,
                   after_lines=lines + int(rng.integers(1, 15)))
    if code == 0:
      break
    assert code == -signal.SIGKILL
  code, stderr = _run(tiny_npz, workdir, extra=extra)
  assert code == 0, stderr
  config = _config(tiny_npz)
  config.checkpoint_every = 250
  straight = trainers.train_and_evaluate(config, str(tmp_path / "straight"))
  assert _without_time(trainers.train_and_evaluate(config, str(workdir))) == _without_time(straight)
  metrics = lambda d: (d / "metrics.jsonl").read_text()
  assert metrics(workdir) == metrics(tmp_path / "straight")


def _lines(workdir: pathlib.Path) -> int:
  metrics = workdir / "metrics.jsonl"
  return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def _config(npz: str):
  """The config the command of `_command` runs."""
  config = npz_config.get_config(f"method=lff,path={npz}")
  config.model.hidden = (32, 32)
  config.update({k: v for k, v in OVERRIDES.items() if "." not in k})
  config.mesh.data = 1
  return config


def test_ctrl_c_stops_with_one_line_naming_the_step_and_the_checkpoint(tiny_npz, tmp_path):
  code, stderr = _run(tiny_npz, tmp_path / "run", stop_with=signal.SIGINT)
  assert code == 130, stderr
  assert "Traceback" not in stderr, stderr
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("stopped: Ctrl-C after step ") and "the same command resumes" in last


def _without_time(results: dict) -> dict:
  return {k: v for k, v in results.items() if k != "train_seconds_this_run"}


def test_a_torn_last_log_line_is_dropped_and_the_run_resumes_exactly(
    tiny_config, tmp_path, interrupt_after_metrics_of, caplog
):
  straight = trainers.train_and_evaluate(tiny_config, str(tmp_path / "straight"))
  workdir = tmp_path / "resumed"
  interrupt_after_metrics_of(30, lambda: trainers.train_and_evaluate(tiny_config, str(workdir)))
  with (workdir / "metrics.jsonl").open("a") as f:
    f.write('{"step": 40, "test/classifier/acc')  # A kill in the middle of a line.
  assert _without_time(trainers.train_and_evaluate(tiny_config, str(workdir))) == _without_time(
      straight
  )
  assert "Dropped the torn last line" in caplog.text
  log = lambda d: (d / "metrics.jsonl").read_text()
  assert log(workdir) == log(tmp_path / "straight")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda log: log.write_text("garbage\n" + log.read_text()), "line 1 of .* is damaged"),
        (lambda log: log.write_text('[1]\n' + log.read_text()), "line 1 of .* is damaged"),
        (lambda log: (log.unlink(), log.mkdir()), "is a directory, not the metrics log"),
        (  # Cut: the latest checkpoint's evaluation is gone.
            lambda log: log.write_text("".join(log.read_text().splitlines(True)[:2])),
            "has no evaluation at step 40, where the latest checkpoint is",
        ),
        (  # A checkpoint of a longer run.
            lambda log: shutil.copytree(*(log.parent / f"checkpoints/{s}" for s in (40, 80))),
            "checkpoint at step 80, past num_steps 40",
        ),
    ],
)
def test_a_damaged_log_or_foreign_checkpoint_is_one_sentence_and_changes_nothing(
    tiny_config, tmp_path, damage, message
):
  trainers.train_and_evaluate(tiny_config, str(tmp_path))
  (tmp_path / "results.json").unlink()  # So that the rerun resumes.
  damage(tmp_path / "metrics.jsonl")
  before = _snapshot(tmp_path)
  with pytest.raises(InputError, match=message):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert _snapshot(tmp_path) == before


def test_results_rebuilt_from_the_last_checkpoint_carry_every_block(tiny_config, tmp_path):
  first = trainers.train_and_evaluate(tiny_config, str(tmp_path))
  (tmp_path / "results.json").unlink()  # A kill between the last checkpoint and this write.
  assert _without_time(trainers.train_and_evaluate(tiny_config, str(tmp_path))) == _without_time(
      first
  )


def _snapshot(workdir: pathlib.Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(workdir)): p.read_bytes() if p.is_file() else b"<dir>"
      for p in sorted(workdir.rglob("*"))
  }


@pytest.fixture
def small_disk(tmp_path):
  """A directory on a 400 KB tmpfs (where this machine lets us mount one), unmounted after."""
  disk = tmp_path / "disk"
  disk.mkdir()
  mount = subprocess.run(
      ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True
  )
  if mount.returncode:
    pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.decode().strip()})")
  yield disk
  subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_fails_fast_in_one_sentence_keeping_the_last_checkpoint(tiny_npz, small_disk):
  start = time.perf_counter()
  code, stderr = _run(tiny_npz, small_disk / "run", extra=["--config.checkpoint_every=50"])
  assert code == 2 and time.perf_counter() - start < 60, stderr
  assert "Traceback" not in stderr, stderr
  last = stderr.strip().splitlines()[-1]
  assert "failed (No space left on device)" in last and "is kept" in last, last
  kept = int(last.split("last complete one (step ")[1].split(")")[0])
  assert kept > 0 and (small_disk / "run" / "checkpoints" / str(kept)).is_dir()


def test_checkpoint_write_failures_injected_are_one_sentence_too(
    tiny_config, tmp_path
):
  """The same path as a full disk (where no tmpfs can be mounted), injected: tensorstore names the
  OS error (os_error_code)."""
  error = ValueError("RESOURCE_EXHAUSTED: Failed to write 380 bytes [os_error_code='28']")
  with mock.patch.object(ocp.CheckpointManager, "save", side_effect=error):
    with pytest.raises(WriteError, match=r"step 10 .* failed \(No space left on device\).*step 0"):
      trainers.train_and_evaluate(tiny_config, str(tmp_path))
  (tmp_path / "checkpoints").rmdir()
  (tmp_path / "checkpoints").write_text("a file")
  with pytest.raises(InputError, match="is a file, where the checkpoints go"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
