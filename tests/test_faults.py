"""Faults a long run meets: signals (Ctrl-C, a preemption's SIGTERM), a kill in the middle of a
log write, a damaged log or a foreign checkpoint. Each stops with one line, or is repaired and
said so, and leaves a workdir the same command resumes exactly."""

import json
import pathlib
import shutil
import signal
import time
from unittest import mock

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxdebias import trainers
from jaxdebias.errors import InputError, WriteError
from tests import kills, synthetic

# A run long enough to be caught in the middle (75 evaluations of a tiny model); its command's
# arguments (run by tests/cli.py: `python -m jaxdebias.main ARGS`).
OVERRIDES = {
    "num_steps": 1500,
    "eval_every": 20,
    "checkpoint_every": 100,
    "batch_size": 32,
    "eval_batch_size": 64,
    "mesh.data": 1,
}


def _args(npz: str, workdir: pathlib.Path, extra=()) -> list[str]:
  return [
      f"--config=configs/npz.py:method=lff,path={npz}",
      f"--workdir={workdir}",
      "--config.model.hidden=(32,32)",
      *[f"--config.{k}={v}" for k, v in OVERRIDES.items()],
      *extra,
  ]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, commands):
  """The uninterrupted run: (its .npz, its workdir)."""
  root = tmp_path_factory.mktemp("straight")
  npz = synthetic.write_npz(root / "tiny.npz")
  commands.run_to_the_end(_args(npz, root / "run"))
  return npz, root / "run"


def _same_as(workdir: pathlib.Path, straight_workdir: pathlib.Path) -> None:
  """The same results (but for timing) and a byte-identical metrics.jsonl."""
  results = lambda d: _without_time(json.loads((d / "results.json").read_text()))
  assert results(workdir) == results(straight_workdir)
  metrics = lambda d: (d / "metrics.jsonl").read_text()
  assert metrics(workdir) == metrics(straight_workdir)


@pytest.mark.parametrize(
    "signum, code, said",
    [
        (signal.SIGTERM, 143, "stopped: SIGTERM at step "),
        (signal.SIGINT, 130, "stopped: Ctrl-C after step "),
    ],
)
def test_a_signal_stops_in_one_line_and_the_rerun_ends_as_one_uninterrupted_run(
    commands, straight, tmp_path, signum, code, said
):
  """SIGTERM (a preemption) saves a checkpoint where it stopped; Ctrl-C keeps the last one."""
  npz, straight_workdir = straight
  workdir = tmp_path / "run"
  stop = f"from tests import kills; kills.during_training(3, 0.01, {int(signum)})"
  got, stdout, stderr = commands.run(_args(npz, workdir), before=stop)
  assert (got, stdout) == (code, ""), stderr
  assert "Traceback" not in stderr, stderr  # The run's logs, then one line:
  last = stderr.splitlines()[-1]
  assert last.startswith(said) and "the same command resumes" in last, last
  step = int(last.split("step ")[1].split()[0])
  assert 0 < step < OVERRIDES["num_steps"] and step % OVERRIDES["eval_every"] == 0
  if signum == signal.SIGTERM:  # Saved where it stopped.
    assert (workdir / "checkpoints" / str(step)).is_dir()
  commands.run_to_the_end(_args(npz, workdir))  # Resumed, to the end.
  _same_as(workdir, straight_workdir)


# The kills of `test_twenty_sigkills_...` (tests/kills.py): 15 at random moments (5 in the first
# second: reading data, compiling, restoring), 5 inside writes.
KILLS = ["start"] * 5 + ["training"] * 10 + ["checkpoint_write"] * 2 + ["log_line"] * 2 + [
    "log_rewrite"
]


def test_twenty_sigkills_resume_to_the_uninterrupted_run(commands, straight, tmp_path):
  """SIGKILLs (no handler runs) in a random order: at random moments, and inside a checkpoint
  write, a metrics line and the log's rewrite on resume; then the same command to the end gives
  the uninterrupted run's results and a byte-identical metrics.jsonl. Each kill leaves at most
  a few hundred steps done, so that the run is still going at the twentieth."""
  npz, straight_workdir = straight
  workdir, rng = tmp_path / "run", np.random.default_rng(0)
  checkpoints = str(workdir / "checkpoints")
  for kind in rng.permutation(KILLS):
    before = {
        "start": f"kills.after({rng.uniform(0.0, 1.0):.3f})",
        "training": f"kills.during_training({rng.integers(1, 8)}, {rng.uniform(0, 0.05):.3f})",
        "checkpoint_write": f"kills.inside_checkpoint_write({checkpoints!r})",
        "log_line": f"kills.inside_log_line({rng.integers(1, 6)})",
        "log_rewrite": "kills.inside_log_rewrite()",
    }[kind]
    if kind == "log_rewrite":  # First a log with lines past the checkpoint (resume drops them).
      before_that = "from tests import kills; kills.inside_log_line(3)"
      assert commands.run(_args(npz, workdir), before=before_that)[0] == -signal.SIGKILL
    left = kills.temporary_checkpoints(checkpoints)
    code, _, stderr = commands.run(_args(npz, workdir), before="from tests import kills; " + before)
    assert code == -signal.SIGKILL, (kind, code, stderr)
    if kind == "checkpoint_write":  # Killed with a save of its own half done.
      assert kills.temporary_checkpoints(checkpoints) - left
  commands.run_to_the_end(_args(npz, workdir))
  _same_as(workdir, straight_workdir)


def _without_time(results: dict) -> dict:
  return {k: v for k, v in results.items() if not k.endswith("seconds_this_run")}


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


def test_a_full_disk_fails_fast_in_one_sentence_keeping_the_last_checkpoint(
    commands, straight, tmpfs
):
  small_disk = tmpfs("size=400k")
  start = time.perf_counter()
  code, _, stderr = commands.run(_args(straight[0], small_disk / "run"))
  assert code == 2 and time.perf_counter() - start < 20, stderr  # Start, train, fail: no hang.
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
