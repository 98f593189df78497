"""End-to-end training: every method runs, resume is exact, bad input fails cleanly."""

import importlib.util
import json
import os
import pathlib
import re
import struct
import subprocess
import sys

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboardX.proto import event_pb2

from jaxdebias import data, methods, runs, trainers
from jaxdebias.errors import InputError, NonFiniteLossError
from jaxdebias.runs.tensorboard import member_name
from jaxdebias.trainers import loop, members
from jaxdebias.trainers.evaluator import Evaluator
from tests import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _final_checkpoint(workdir: pathlib.Path):
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  path = workdir / "checkpoints" / str(steps[-1]) / "default"
  return steps[-1], ocp.StandardCheckpointer().restore(path)


def _tensorboard_scalars(workdir: pathlib.Path) -> dict[str, dict[str, dict[int, float]]]:
  """{member: {tag: {step: value}}} as TensorBoard reads workdir/tensorboard: event files in
  the order they were started, a SessionLog START at step s hiding what came before at >= s."""
  scalars = {}
  for member in sorted((workdir / "tensorboard").iterdir()):
    files = [list(_events(path)) for path in member.iterdir()]
    seen = scalars.setdefault(member.name, {})
    for events in sorted(files, key=lambda events: events[0].wall_time):
      for event in events:
        if event.HasField("session_log") and event.session_log.status == event.session_log.START:
          for by_step in seen.values():
            for step in [s for s in by_step if s >= event.step]:
              del by_step[step]
        for value in event.summary.value:
          seen.setdefault(value.tag, {})[event.step] = value.simple_value
  return scalars


def _events(path: pathlib.Path):
  """The Event protos of a TFRecord event file (length, its CRC, data, its CRC)."""
  data, position = path.read_bytes(), 0
  while position < len(data):
    (length,) = struct.unpack("<Q", data[position : position + 8])
    yield event_pb2.Event.FromString(data[position + 12 : position + 12 + length])
    position += 12 + length + 4


def _snapshot(workdir: pathlib.Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()
  }


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_every_method_trains_end_to_end(method, tiny_config, tmp_path, monkeypatch, use_method):
  use_method(tiny_config, method)
  monkeypatch.chdir(tmp_path.parent)
  results = trainers.train_and_evaluate(tiny_config, tmp_path.name)  # A relative workdir.

  assert json.loads((tmp_path / "config.json").read_text())["method"] == method
  assert json.loads((tmp_path / "results.json").read_text())["step"] == 40
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [10, 20, 30, 40]
  expected_models = {
      "lff": {"classifier", "biased"},
      "amplified_lff": {"classifier", "biased"},
      "disent": {"classifier", "biased"},
  }.get(method, {"classifier"})
  assert set(results["test"]) == expected_models
  for summary in results["test"].values():
    for key in (
        "accuracy",
        "unbiased_accuracy",
        "aligned_accuracy",
        "conflicting_accuracy",
        "worst_group_accuracy",
    ):
      assert 0.0 <= summary[key] <= 1.0
  # The bar position is easy to learn: the classifier must beat chance (0.25) clearly.
  assert results["test"]["classifier"]["accuracy"] > 0.5
  assert np.isfinite(results["train"]["loss"])


@pytest.fixture
def overlapping(monkeypatch):
  """Evaluation overlapping the next chunk as on accelerators (loop.overlaps_evaluation)."""
  monkeypatch.setattr(loop, "overlaps_evaluation", lambda: True)


@pytest.mark.parametrize(
    "num_seeds, checkpoint_every, overlap", [(1, 10, False), (2, 10, False), (1, 20, True)]
)
def test_resume_after_interruption_equals_uninterrupted_run(
    num_seeds, checkpoint_every, overlap, tiny_config, tmp_path, interrupt_after_metrics_of, request
):
  if overlap:  # Steps 21-30 run while 11-20 are logged; the interruption comes after 30.
    request.getfixturevalue("overlapping")
  tiny_config.num_seeds = num_seeds
  tiny_config.checkpoint_every = checkpoint_every
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  expected = trainers.train_and_evaluate(tiny_config, str(straight))
  seconds = expected["seconds_this_run"]  # Where the time went, each part once.
  assert list(seconds) == list(loop.SECONDS) and seconds["restore"] == 0
  parts = ("first_chunk", "training", "evaluation", "logs", "checkpoints")
  assert all(seconds[k] > 0 for k in parts) and seconds["data_read"] >= 0
  assert sum(seconds[k] for k in parts) <= seconds["all"] + 1e-9  # Disjoint parts of "all".
  saved_steps = sorted(
      int(p.name) for p in (straight / "checkpoints").iterdir() if p.name.isdigit()
  )
  assert saved_steps == ([30, 40] if checkpoint_every == 10 else [20, 40])  # keep_checkpoints=2

  # Interrupt after the metrics of step 30 are written but before any checkpoint of step 30:
  # the rerun must resume from step 20, drop the orphan metrics line and redo steps 21..40.
  interrupt_after_metrics_of(30, lambda: trainers.train_and_evaluate(tiny_config, str(resumed)))
  got = trainers.train_and_evaluate(tiny_config, str(resumed))

  results = lambda r: {k: v for k, v in r.items() if not k.endswith("seconds_this_run")}
  assert results(got) == results(expected)
  step_a, state_a = _final_checkpoint(straight)
  step_b, state_b = _final_checkpoint(resumed)
  assert step_a == step_b == 40
  chex.assert_trees_all_equal(state_a, state_b)
  assert (straight / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()
  # TensorBoard shows the same numbers, each member in its own directory, after the resume too:
  # the resumed process's event file hides what the first logged after step 20.
  scalars = _tensorboard_scalars(straight)
  assert _tensorboard_scalars(resumed) == scalars
  for member in (resumed / "tensorboard").iterdir():
    files = sorted((list(_events(p)) for p in member.iterdir()), key=lambda e: e[0].wall_time)
    assert len(files) == 2 and [e.step for e in files[1][:3]] == [0, 21, 21]
    assert files[1][2].session_log.status == event_pb2.SessionLog.START
  logged = runs.MetricsLog(straight / "metrics.jsonl").records
  assert len(scalars) == num_seeds and len(logged) == 4 * num_seeds
  for record in logged:
    member = scalars[member_name(record)]
    assert member_name(record).startswith(f"seed{record['seed']},q=0.7,")
    for tag in ("test/classifier/unbiased_accuracy", "train/loss"):
      assert member[tag][record["step"]] == np.float32(record[tag])


def test_rerunning_a_finished_run_changes_nothing(tiny_config, tmp_path):
  first = trainers.train_and_evaluate(tiny_config, str(tmp_path))
  before = _snapshot(tmp_path)
  assert trainers.train_and_evaluate(tiny_config, str(tmp_path)) == first
  assert _snapshot(tmp_path) == before

  (tmp_path / "results.json").unlink()  # Lost after the last checkpoint: re-evaluated.
  again = trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert again["test"] == first["test"] and again["step"] == 40


def test_workdir_of_another_config_is_refused_untouched(tiny_config, tmp_path):
  trainers.train_and_evaluate(tiny_config, str(tmp_path))
  before = _snapshot(tmp_path)
  tiny_config.lff.q = 0.5
  with pytest.raises(InputError, match=r"different config \(differs in lff/q\).*new --workdir"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert _snapshot(tmp_path) == before


def test_num_steps_changes_in_place_like_a_run_planned_that_long(
    tiny_config, tmp_path, interrupt_after_metrics_of
):
  results = lambda r: {k: v for k, v in r.items() if not k.endswith("seconds_this_run")}
  planned = {}
  for num_steps in (30, 40):
    tiny_config.num_steps = num_steps
    planned[num_steps] = tmp_path / f"planned{num_steps}"
    trainers.train_and_evaluate(tiny_config, str(planned[num_steps]))
  changed = tmp_path / "changed"

  def run(num_steps: int) -> dict:
    tiny_config.num_steps = num_steps
    return trainers.train_and_evaluate(tiny_config, str(changed))

  first = run(20)
  os.rename(tiny_config.data.path, tmp_path / "away.npz")  # Its data gone: stops, no change.
  with pytest.raises(InputError, match=re.escape(tiny_config.data.path)):
    run(40)
  assert json.loads((changed / "results.json").read_text()) == first
  os.rename(tmp_path / "away.npz", tiny_config.data.path)
  # Extended to 40, interrupted after step 30's metrics (its checkpoint of 20 the latest), then
  # shortened to 30 and extended to 40 again: each time the run planned that long.
  interrupt_after_metrics_of(30, lambda: run(40))
  assert json.loads((changed / "results_step20.json").read_text()) == first  # Kept.
  for num_steps in (30, 40):
    got = run(num_steps)
    expected = json.loads((planned[num_steps] / "results.json").read_text())
    assert results(got) == results(expected) and got["seconds_this_run"]["restore"] > 0
    assert (changed / "metrics.jsonl").read_text() == (
        planned[num_steps] / "metrics.jsonl"
    ).read_text()
    chex.assert_trees_all_equal(_final_checkpoint(changed), _final_checkpoint(planned[num_steps]))
    assert runs.read_config(changed).num_steps == num_steps
  assert sorted(p.name for p in changed.glob("results*.json")) == [
      "results.json", "results_step20.json", "results_step30.json"
  ]
  before = _snapshot(changed)
  with pytest.raises(InputError, match="finished at step 40, past num_steps 30: a finished run"):
    run(30)
  (changed / "results.json").unlink()  # Unfinished, its latest checkpoint past num_steps.
  with pytest.raises(InputError, match="cannot be shortened below its latest checkpoint"):
    run(30)
  assert _snapshot(changed) == {k: v for k, v in before.items() if k != "results.json"}


def test_corrupted_checkpoint_is_an_error_not_a_restart(tiny_config, tmp_path):
  tiny_config.num_steps = 20
  trainers.train_and_evaluate(tiny_config, str(tmp_path))
  (tmp_path / "results.json").unlink()  # As if stopped after the last checkpoint.
  for path in (tmp_path / "checkpoints" / "20").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  before = _snapshot(tmp_path)
  with pytest.raises(InputError, match=r"checkpoints/20 cannot be restored.*left untouched"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert _snapshot(tmp_path) == before


def test_checkpoint_of_another_architecture_is_refused(tiny_config, tmp_path):
  tiny_config.num_steps = 10
  trainers.train_and_evaluate(tiny_config, str(tmp_path))
  for name in ("config.json", "results.json"):  # Leave only the checkpoint to tell them apart.
    (tmp_path / name).unlink()
  tiny_config.model.hidden = (16, 16)
  with pytest.raises(InputError, match=r"does not fit this config|cannot be restored"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))


def test_the_host_finishes_a_chunk_while_the_next_one_runs(tiny_config, tmp_path, overlapping):
  """The loop starts chunk k + 1 and its evaluation before it fetches and logs chunk k, except
  at a checkpoint (every 20 steps here): there it finishes the chunk, then saves."""
  tiny_config.checkpoint_every = 20
  events = []

  def run_chunk(state, step, num_steps):
    events.append(("run", step + num_steps))
    return {"step": state["step"] + num_steps}, {"loss": np.zeros(num_steps)}

  def evaluate(state, step):
    events.append(("evaluate", step))
    return lambda means: events.append(("records", step)) or [{"step": step}]

  saved = []
  real_save = runs.Checkpointer.save
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(
        runs.Checkpointer,
        "save",
        lambda self, step, state: saved.append(step) or real_save(self, step, state),
    )
    loop.train(
        [loop.Part(tiny_config, runs.absolute(str(tmp_path)))],
        {"step": jax.numpy.zeros((), jax.numpy.int32)},
        run_chunk,
        evaluate,
        name="test",
        progress=lambda records: {},
        learning_rate_key="optimizer.learning_rate",
        data_read_seconds=0.0,
    )
  assert saved == [20, 40]
  assert events == [
      ("run", 10), ("evaluate", 10), ("run", 20), ("evaluate", 20), ("records", 10),
      ("records", 20), ("run", 30), ("evaluate", 30), ("run", 40), ("evaluate", 40),
      ("records", 30), ("records", 40),
  ]  # fmt: skip


def test_overlapping_evaluation_changes_no_number(tiny_config, tmp_path, overlapping):
  """Checkpoints every 20 steps (chunks 10 and 30 overlap their successor) against every 10
  (no overlap): the same metrics.jsonl and final state, bit for bit."""
  tiny_config.checkpoint_every = 20
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "overlapped"))
  tiny_config.checkpoint_every = 10
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "one_by_one"))
  metrics = lambda name: (tmp_path / name / "metrics.jsonl").read_text()
  assert metrics("overlapped") == metrics("one_by_one")
  chex.assert_trees_all_equal(
      _final_checkpoint(tmp_path / "overlapped"), _final_checkpoint(tmp_path / "one_by_one")
  )


@pytest.mark.parametrize("checkpoint_every", [10, 40])  # Chunks finished one by one; overlapped.
def test_non_finite_loss_stops_with_a_clear_error(
    checkpoint_every, tiny_config, tmp_path, overlapping
):
  tiny_config.checkpoint_every = checkpoint_every
  tiny_config.optimizer.learning_rate = 1e38
  with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf).*learning_rate"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert not list((tmp_path / "checkpoints").glob("[0-9]*"))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("method", "dro", r"Unknown method 'dro'.*--config.method"),
        ("num_steps", 0, r"num_steps must be a positive integer"),
        ("batch_size", 10_000, r"batch_size 10000 exceeds the 512 training examples"),
        ("eval_every", -1, r"eval_every must be a positive integer"),
        ("checkpoint_every", 0, r"checkpoint_every must be a positive integer"),
        ("seed", -1, r"seed must be an integer >= 0"),
    ],
)
def test_bad_config_values_fail_before_writing(tiny_config, tmp_path, key, value, message):
  tiny_config[key] = value
  workdir = tmp_path / "run"
  with pytest.raises(InputError, match=message):
    trainers.train_and_evaluate(tiny_config, str(workdir))
  assert not (workdir / "config.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.method=dro"], r"^error: Unknown method 'dro'.*--config.method"),
        (["--config.trainer=gans"], r"^error: Unknown trainer 'gans'.*--config.trainer"),
        (["--config.nope=1"], r"^error: the config has no field 'nope'"),
        (["--config.seed=abc"], r"^error: flag --config.seed=abc: invalid literal"),
        (["--config=configs/colored_mnist.py:foo=1"], r"^error: Unknown config argument 'foo'"),
        (["--config=configs/missing.py"], r"^error: .*No such file.*configs/missing.py"),
        (["stray"], r"^error: unexpected arguments \['stray'\]"),
        (["--coordinator_address=localhost:1"], r"^error: --coordinator_address needs"),
    ],
)
def test_command_line_reports_bad_input_in_one_line(tmp_path, args, message):
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "jaxdebias.main",
          "--config=configs/colored_mnist.py",
          f"--workdir={workdir}",
          *args,
      ],
      cwd=REPO,
      env=dict(os.environ, JAX_PLATFORMS="cpu"),
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert re.match(message, last), last
  assert "Traceback" not in proc.stderr
  assert not workdir.exists()


def test_own_npz_data_runs_from_its_config(tiny_npz, tmp_path):
  from configs import npz as npz_config  # pylint: disable=g-import-not-at-top

  config = npz_config.get_config(f"method=erm,path={tiny_npz}")
  config.num_steps, config.eval_every, config.batch_size = 10, 10, 32
  results = trainers.train_and_evaluate(config, str(tmp_path))
  assert results["dataset"] == "npz/tiny" and results["step"] == 10


def test_unreadable_config_json_is_reported_not_overwritten(tiny_config, tmp_path):
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(InputError, match=r"config.json is not valid JSON.*new --workdir"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert (tmp_path / "config.json").read_text() == "{not json"


def test_seeds_trained_together_equal_seeds_trained_one_by_one(tiny_config, tmp_path):
  tiny_config.num_seeds = 3
  together = trainers.train_and_evaluate(tiny_config, str(tmp_path / "together"))
  assert [m["seed"] for m in together["members"]] == [0, 1, 2]
  _, batched = _final_checkpoint(tmp_path / "together")
  tiny_config.num_seeds = 1
  for k in range(3):
    tiny_config.seed = k
    alone = trainers.train_and_evaluate(tiny_config, str(tmp_path / f"seed{k}"))
    _, single = _final_checkpoint(tmp_path / f"seed{k}")
    # vmap batches the matmuls, which may round differently in the last bits.
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[k], batched), single, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(together["members"][k]["test"], alone["test"], atol=1e-3)
    assert alone["seed"] == k
  first = jax.tree.leaves(batched["params"])[0]
  assert not np.allclose(first[0], first[1])  # The seeds really differ.


def test_hyperparameter_grid_trained_together_equals_runs_one_by_one(tiny_config, tmp_path):
  tiny_config.num_seeds = 2
  tiny_config.lff.q = (0.5, 0.9)
  tiny_config.lff.ema_alpha = (0.3, 0.7)
  together = trainers.train_and_evaluate(tiny_config, str(tmp_path / "together"))
  members = [(m["seed"], m["hparams"]["q"], m["hparams"]["ema_alpha"]) for m in together["members"]]
  assert members == [(s, q, a) for s in (0, 1) for q in (0.5, 0.9) for a in (0.3, 0.7)]
  _, batched = _final_checkpoint(tmp_path / "together")
  tiny_config.num_seeds = 1
  for k in (1, 6):  # (seed 0, q 0.5, alpha 0.7) and (seed 1, q 0.9, alpha 0.3).
    tiny_config.seed, tiny_config.lff.q, tiny_config.lff.ema_alpha = members[k]
    alone = trainers.train_and_evaluate(tiny_config, str(tmp_path / f"member{k}"))
    _, single = _final_checkpoint(tmp_path / f"member{k}")
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[k], batched), single, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(together["members"][k]["test"], alone["test"], atol=1e-3)
  # Same seed, other q: same start, different training.
  params = batched["params"]["biased"]["params"]["dense0"]["weight"]
  assert not np.allclose(params[0], params[2])


def test_swept_weight_decay_trains_members_like_runs_one_by_one(tiny_config, tmp_path):
  tiny_config.method = "erm"
  tiny_config.optimizer.weight_decay = (0.0, 0.3)
  together = trainers.train_and_evaluate(tiny_config, str(tmp_path / "together"))
  assert [m["hparams"] for m in together["members"]] == [
      {"weight_decay": 0.0},
      {"weight_decay": 0.3},
  ]
  _, batched = _final_checkpoint(tmp_path / "together")
  test = data.load_dataset(tiny_config.data).test
  for k, decay in enumerate((0.0, 0.3)):
    tiny_config.optimizer.weight_decay = decay  # Adam, then AdamW: no injected hyperparameter.
    alone = trainers.train_and_evaluate(tiny_config, str(tmp_path / f"decay{decay}"))
    _, single = _final_checkpoint(tmp_path / f"decay{decay}")
    member = jax.tree.map(lambda x: x[k], batched["params"])
    chex.assert_trees_all_close(member, single["params"], rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(together["members"][k]["test"], alone["test"], atol=1e-3)
    # A member of the run, loaded as a function, predicts as the run of its own does.
    predict = runs.load_classifier(str(tmp_path / "together"), member=k)
    alone_predict = runs.load_classifier(str(tmp_path / f"decay{decay}"))
    np.testing.assert_allclose(predict(test.images), alone_predict(test.images), atol=1e-4)
  with pytest.raises(InputError, match=r"trained 2 members; name one"):
    runs.classifier_fn(str(tmp_path / "together"))
  weight = batched["params"]["params"]["dense0"]["weight"]
  assert not np.allclose(weight[0], weight[1])  # The decay made a difference.


def test_training_compiles_once_and_evaluation_once(tiny_config, tmp_path, monkeypatch):
  # 40 steps in chunks of 10: one trace of the chunk and of the evaluation, none after.
  monkeypatch.setattr(
      members, "_train_chunk", chex.assert_max_traces(members._train_chunk, n=1)
  )
  real_evaluator_init = Evaluator.__init__

  def traced_once(self, *args, **kwargs):
    real_evaluator_init(self, *args, **kwargs)
    self.predict_all = jax.jit(chex.assert_max_traces(self.predict_all.__wrapped__, n=1))

  monkeypatch.setattr(Evaluator, "__init__", traced_once)
  results = trainers.train_and_evaluate(tiny_config, str(tmp_path))
  assert results["step"] == 40


def test_run_written_before_a_new_config_field_still_resumes(tiny_config, tmp_path):
  first = trainers.train_and_evaluate(tiny_config, str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["num_seeds"]  # As written by a version without that field.
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert trainers.train_and_evaluate(tiny_config, str(tmp_path)) == first
  tiny_config.num_seeds = 2  # Not the default: a different run.
  with pytest.raises(InputError, match=r"differs in num_seeds"):
    trainers.train_and_evaluate(tiny_config, str(tmp_path))


def test_a_second_run_loads_its_programs_from_the_compilation_cache(commands, tiny_npz, tmp_path):
  """`--compilation_cache`: the first run writes its compiled programs there, a second run of the
  same shapes reads them (JAX stamps each read entry's -atime file) and adds none."""
  cache = tmp_path / "cache"
  every_program = "import jax; jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)"

  def run(name: str) -> dict:
    args = cli.tiny_args(tiny_npz, tmp_path / name) + [f"--compilation_cache={cache}"]
    code, _, stderr = commands.run(args, before=every_program)
    assert code == 0, stderr
    results = json.loads((tmp_path / name / "results.json").read_text())
    return {k: v for k, v in results.items() if not k.endswith("seconds_this_run")}

  first = run("first")
  entries = sorted(cache.glob("*-cache"))
  stamps = {p.name: p.read_bytes() for p in cache.glob("*-atime")}
  assert entries and len(stamps) == len(entries)
  assert run("second") == first
  assert sorted(cache.glob("*-cache")) == entries
  read_again = [p for p in cache.glob("*-atime") if p.read_bytes() != stamps[p.name]]
  assert len(read_again) == len(entries)


def test_start_up_does_not_import_torch():
  """tensorboardX imports PyTorch whenever it is installed (3 s of every run's start-up on a
  2-core CPU); jaxdebias imports it without (runs/tensorboard.py). Torch is installed here
  (the test extras), so this would catch the import coming back."""
  assert importlib.util.find_spec("torch") is not None
  code = "import sys, jaxdebias.main, tensorboardX; print('torch' in sys.modules)"
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert proc.stdout.strip() == "False"


def test_bfloat16_compute_trains_like_float32_with_float32_state(tiny_config, tmp_path):
  full = trainers.train_and_evaluate(tiny_config, str(tmp_path / "f32"))
  tiny_config.compute_dtype = "bfloat16"
  mixed = trainers.train_and_evaluate(tiny_config, str(tmp_path / "bf16"))
  _, state = _final_checkpoint(tmp_path / "bf16")
  floats = {x.dtype for x in jax.tree.leaves(state) if np.issubdtype(x.dtype, np.floating)}
  assert floats == {np.dtype(np.float32)}  # Parameters, Adam moments, EMAs.
  accuracy = lambda r: r["test"]["classifier"]["unbiased_accuracy"]
  assert abs(accuracy(mixed) - accuracy(full)) < 0.05
  assert json.loads((tmp_path / "bf16" / "config.json").read_text())["compute_dtype"] == "bfloat16"
