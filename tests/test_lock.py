"""The workdir lock: a second run in a held workdir stops at once naming the holder; a lock left
by a killed run is taken over; a refused command leaves no trace."""

import json
import subprocess
import sys

import pytest

from jaxdebias import runs, trainers
from jaxdebias.errors import InputError
from jaxdebias.runs import lock
from tests import cli

HOLD = """
import sys, time
from etils import epath
from jaxdebias.runs.lock import workdir_lock
with workdir_lock(epath.Path(sys.argv[1])):
  print("held", flush=True)
  time.sleep(60)
"""


def test_a_second_run_in_a_held_workdir_stops_at_once_naming_the_holder(tiny_config, tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
  )
  try:
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(InputError, match=rf"in use by another run \(host .*, pid {holder.pid}, "):
      trainers.train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert [p.name for p in (tmp_path / "run").iterdir()] == [lock.LOCK_FILE]  # Untouched.
  finally:
    holder.kill()
    holder.wait()
  # The killed holder's lock file is left behind; its flock died with it: the run takes over.
  assert (tmp_path / "run" / lock.LOCK_FILE).exists()
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "run"))
  assert (tmp_path / "run" / "results.json").exists()
  assert not (tmp_path / "run" / lock.LOCK_FILE).exists()  # Released.


def test_the_lock_names_its_holder_and_is_released(tmp_path):
  with lock.workdir_lock(tmp_path / "w"):
    holder = json.loads((tmp_path / "w" / lock.LOCK_FILE).read_text())
    assert set(holder) == {"host", "pid", "since"}
    with pytest.raises(InputError, match="in use by another run"):  # Even by this process.
      with lock.workdir_lock(tmp_path / "w"):
        pass
  assert not (tmp_path / "w").exists()  # Created for nothing: removed with the lock.


def test_refused_workdirs_leave_no_trace(tiny_config, tmp_path):
  tiny_config.method = "nope"
  with pytest.raises(InputError, match="Unknown method"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path / "new"))
  assert not (tmp_path / "new").exists()
  (tmp_path / "file").write_text("x")
  with pytest.raises(InputError, match="is a file, not a directory"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path / "file"))
  with pytest.raises(InputError, match="the workdir is empty"):
    trainers.train_and_evaluate(tiny_config, "")
  with pytest.raises(InputError, match="the workdir is empty"):
    runs.absolute("  ")


def test_two_runs_started_together_one_trains_the_other_stops_in_one_line(tiny_config, tmp_path):
  """The same command twice at once (a sweep launched twice): one run trains to the end, the
  other stops at once with one line; the workdir ends as one run's."""
  command = [sys.executable, "-m", "jaxdebias.main"]
  command += [*cli.tiny_args(tiny_config.data.path, tmp_path / "run"), "--config.mesh.data=1"]
  both = [
      subprocess.Popen(command, cwd=cli.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
      for _ in range(2)
  ]
  outputs = [run.communicate(timeout=300) for run in both]
  codes = sorted(run.returncode for run in both)
  assert codes == [0, 2], outputs
  refused = [stderr for run, (_, stderr) in zip(both, outputs) if run.returncode == 2][0]
  assert len(refused.splitlines()) == 1 and "in use by another run" in refused, refused
  straight = trainers.train_and_evaluate(tiny_config, str(tmp_path / "straight"))
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["test"] == straight["test"]
  log = lambda d: (tmp_path / d / "metrics.jsonl").read_text()
  assert log("run") == log("straight")
