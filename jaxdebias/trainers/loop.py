"""The training loop every trainer shares (classifiers and GANs).

A trainer hands the loop its initial state and two functions: `run_chunk`, the steps up to the
next evaluation, and `evaluate`, the records of one evaluation (one per member). The loop
resumes from the latest checkpoint, runs the chunks, stops on a non-finite loss, appends the
records to metrics.jsonl and to TensorBoard event files (runs/tensorboard.py), and saves a
checkpoint when one is due (and on SIGTERM, then stops). A rerun with the same workdir resumes
and ends exactly where an uninterrupted run would.

Evaluation does not stall training (on accelerators, `overlaps_evaluation`): both functions only
start their device work, and the host fetches, checks and logs a chunk and its evaluation while
the devices run the next chunk. A chunk that ends at a checkpoint is finished before the next
one starts, so every checkpoint holds checked steps (and its evaluation is logged before it is
written).
"""

from collections.abc import Callable
import contextlib
import dataclasses
import signal
import sys
import threading
import time
from typing import Any

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from jaxdebias import runs
from jaxdebias.errors import InputError, Interrupted, NonFiniteLossError, check_integer

# run_chunk(state, first step, number of steps) -> (state, {name: per-step values, shape
# ([member,] steps)}), the values on the device or the host; must report "loss". It should not
# wait for the device: the loop fetches the values while the next chunk runs.
RunChunk = Callable[[Any, int, int], tuple[Any, dict[str, Any]]]
# evaluate(state, step) starts the evaluation of `state` (on the device, without waiting) and
# returns records(chunk means {name: one value per member}) -> one record per member.
Evaluate = Callable[[Any, int], Callable[[dict[str, np.ndarray]], list[dict[str, Any]]]]

_POSITIVE = (
    "num_steps",
    "batch_size",
    "eval_every",
    "checkpoint_every",
    "eval_batch_size",
    "keep_checkpoints",
    "num_seeds",
)


def start(config: ml_collections.ConfigDict, workdir: str) -> tuple[epath.Path, dict | None]:
  """Checks the schedule, claims the workdir (refusing another config's run); returns the
  absolute workdir and the results of the run if it finished earlier (None otherwise).

  The run's num_steps may change in place (single runs and GANs; a recipe refuses it): a
  finished run asked for more steps trains on from its last checkpoint (`train` keeps its
  results.json as results_stepN.json once work starts), as a run planned that long would
  (batches depend on the seed and step only, the learning rate is constant; the same numbers
  bit for bit unless the length crosses 1,000 steps, where the scan's unrolling changes,
  `members.scan_unroll`); an unfinished one stops at the new num_steps if its latest checkpoint
  is not past it (`train`).
  """
  check_schedule(config)
  workdir = runs.absolute(workdir)
  runs.claim_workdir(workdir, config, resizable=True)
  results_path = workdir / "results.json"
  try:
    finished = runs.read_json(results_path)
  except FileNotFoundError:  # Not finished (or process 0 has just kept it aside: extending).
    return workdir, None
  step = finished.get("step", config.num_steps)
  if step > config.num_steps:
    raise InputError(
        f"{workdir} holds a run finished at step {step}, past num_steps {config.num_steps}: a "
        "finished run cannot be shortened; use a new --workdir, or num_steps="
        f"{step} to read it."
    )
  return workdir, finished if step == config.num_steps else None


def _keep_earlier_results(workdir: epath.Path, num_steps: int) -> None:
  """A finished run being extended (`start`): its results.json becomes results_stepN.json."""
  path = workdir / "results.json"
  if not runs.is_main_process() or not path.exists():
    return
  step = runs.read_json(path).get("step", num_steps)
  if step < num_steps:
    kept = workdir / f"results_step{step}.json"
    with runs.failed_writes_said(kept):
      path.replace(kept)
    logging.info("Extending from step %d to %d; the results so far: %s.", step, num_steps, kept)


def read_dataset(data_config: ml_collections.ConfigDict):
  """`runs.load_dataset` and the seconds it took (`train`'s data_read_seconds)."""
  started = time.perf_counter()
  dataset = runs.load_dataset(data_config)
  return dataset, time.perf_counter() - started


def check_schedule(config: ml_collections.ConfigDict) -> None:
  """Step counts, sizes and seeds: positive integers (the seed >= 0)."""
  for key in _POSITIVE:
    check_integer(key, config[key], 1)
  check_integer("seed", config.seed, 0)


@dataclasses.dataclass(frozen=True)
class Part:
  """One run of what trains: its config and workdir, and where its members sit in the trained
  state. A single run is one part holding the whole state; a pack of runs (`pack.py`) trains
  several runs' members side by side, each part a slice of the member axis."""

  config: ml_collections.ConfigDict
  workdir: epath.Path
  members: slice | None = None  # None: the whole state; else its members' positions.
  stacked: bool = True  # Whether the run's own state has a member axis (several members).

  def state(self, state):
    """This run's state, as its own (unpacked) run would hold it."""
    if self.members is None:
      return state
    index = self.members if self.stacked else self.members.start
    return jax.tree.map(lambda x: x[index], state)

  def rows(self, per_member):
    """This run's rows of a per-member sequence (records, a chunk's losses)."""
    return per_member if self.members is None else per_member[self.members]


def join(parts: list[Part], states: list[Any], shardings: Any = None) -> Any:
  """The packed state of the parts' own `states` (laid out as `shardings`, if given)."""
  if len(parts) == 1 and parts[0].members is None:
    return states[0]

  def concatenate(*xs):
    return jnp.concatenate([x if p.stacked else x[None] for p, x in zip(parts, xs)])

  layout = {} if shardings is None else {"out_shardings": shardings}
  return jax.jit(lambda states: jax.tree.map(concatenate, *states), **layout)(states)


def train(
    parts: list[Part],
    state: Any,
    run_chunk: RunChunk,
    evaluate: Evaluate,
    *,
    name: str,
    progress: Callable[[list[dict[str, Any]]], dict[str, str]],
    learning_rate_key: str,
    data_read_seconds: float,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
  """Trains from the latest checkpoint to num_steps; returns the last evaluation (every
  member's record) and where this process's time went (`SECONDS`).

  parts: the runs that train (one, or a pack of runs with the same schedule), each writing its
  own workdir as if it trained alone; name: what trains, on the progress bar;
  progress(records) -> the few numbers shown live; learning_rate_key: the config field to
  lower when the loss is not finite; data_read_seconds: how long the trainer took to read the
  dataset, reported with the rest. With no step left (finished, but results.json was lost), the
  last evaluation is read back from metrics.jsonl.
  """
  config = parts[0].config  # The schedule, the same in every part.
  where = str(parts[0].workdir) if len(parts) == 1 else f"the {len(parts)} packed runs"
  keep = config.keep_checkpoints
  ckpts = [runs.Checkpointer(p.workdir / "checkpoints", keep=keep) for p in parts]
  started = time.perf_counter()
  step, tensorboards = 0, []
  spent = dict.fromkeys(SECONDS, 0.0) | {"data_read": data_read_seconds}
  clock = _Clock(spent)
  try:  # Also on errors and interruptions: finish writing the checkpoints already started.
    steps = [ckpt.latest_step() or 0 for ckpt in ckpts]
    if len(set(steps)) > 1:
      raise InputError(
          f"the packed runs have their latest checkpoints at different steps ({steps}, in "
          f"{[str(p.workdir) for p in parts]}); train them one by one (launch.run without --pack)."
      )
    step = steps[0]
    if step > config.num_steps:
      raise InputError(
          f"{ckpts[0].directory} holds a checkpoint at step {step}, past num_steps "
          f"{config.num_steps}: a run cannot be shortened below its latest checkpoint; set "
          f"num_steps to {step} or more, or use a new --workdir."
      )
    logs = [runs.MetricsLog(p.workdir / "metrics.jsonl") for p in parts]
    for log in logs:
      if step and not log.records_at(step):  # Each checkpoint is saved after its evaluation.
        raise InputError(
            f"{log.path} has no evaluation at step {step}, where the latest checkpoint is: the "
            "log was cut or replaced; restore it, or use a new --workdir."
        )
    if step:
      with clock("restore"):
        own = [ckpt.restore(step, p.state(state)) for p, ckpt in zip(parts, ckpts)]
        state = join(parts, own, jax.tree.map(lambda x: x.sharding, state))
      logging.info("Resuming from the checkpoint at step %d.", step)
    for part, log in zip(parts, logs):
      log.keep_up_to(step)
      tensorboards.append(runs.TensorBoardLog(part.workdir / "tensorboard", first_step=step))
    runs.work_starts()
    for part in parts:
      runs.write_json(part.workdir / "config.json", part.config.to_dict())
      _keep_earlier_results(part.workdir, config.num_steps)
    records = None
    bar = tqdm.tqdm(
        total=config.num_steps,
        initial=step,
        desc=name,
        unit="step",
        file=sys.stdout,
        dynamic_ncols=True,
        disable=None if runs.is_main_process() else True,
    )
    with bar, _sigterm_requests_stop() as terminate:
      first_step, pending = step, None  # Pending: a chunk's first and last step, metrics and
      # evaluation, finished while the next chunk runs.

      def finish(previous: int, end: int, chunk: dict[str, Any], records_of) -> list[dict]:
        """Waits for a chunk and its evaluation; checks, logs and shows them."""
        with clock("first_chunk" if previous == first_step else "training"):
          chunk = jax.device_get(chunk)
        for part, ckpt in zip(parts, ckpts):
          check_finite(part.rows(chunk["loss"]), previous, ckpt.directory, learning_rate_key)
        with clock("evaluation"):
          records = records_of({k: np.mean(v, -1).reshape(-1) for k, v in chunk.items()})
        with clock("logs"):
          for part, log, tensorboard in zip(parts, logs, tensorboards):
            for record in part.rows(records):
              log.write(record)
              tensorboard.write(record)
            tensorboard.flush()
        live = progress(records)
        bar.update(end - previous)
        bar.set_postfix(live)
        if bar.disable and runs.is_main_process():  # No terminal: one log line per evaluation.
          seconds = time.perf_counter() - started
          logging.info("step %d/%d (%.0f s): %s", end, config.num_steps, seconds, live)
        return records

      while step < config.num_steps:
        num_steps = steps_to_next_evaluation(config, step)
        with clock("first_chunk" if step == first_step else "training"):
          state, chunk = run_chunk(state, step, num_steps)
        previous, step = step, step + num_steps
        with clock("evaluation"):
          records_of = evaluate(state, step)
        # While the devices run this chunk and its evaluation, the host finishes the previous.
        if pending is not None:
          records = finish(*pending)
        pending = previous, step, chunk, records_of
        stop = _in_any_process(terminate.is_set())
        due = checkpoint_due(config, previous, step)
        if due or stop or not overlaps_evaluation():  # Saved once its chunk is checked.
          records, pending = finish(*pending), None
        if due or stop:
          with clock("checkpoints"):
            for part, ckpt in zip(parts, ckpts):
              ckpt.save(step, part.state(state))
        if stop:
          raise Interrupted(
              f"SIGTERM at step {step} of {config.num_steps} of {where}, saved there; the "
              "same command resumes it.",
              exit_code=128 + signal.SIGTERM,
          )
    if records is None:  # Finished before, but results.json was lost: the logged evaluation.
      records = [record for log in logs for record in log.records_at(step)]
  except KeyboardInterrupt as e:
    if isinstance(e, Interrupted):
      raise
    raise Interrupted(
        f"Ctrl-C after step {step} of {config.num_steps} of {where}; the same command resumes "
        f"it from its last checkpoint (step {ckpts[0].latest_step() or 0}).",
        exit_code=128 + signal.SIGINT,
    ) from None
  finally:
    for ckpt in ckpts:
      ckpt.wait_until_finished()
      ckpt.close()
    for tensorboard in tensorboards:
      tensorboard.close()
  spent["all"] = time.perf_counter() - started
  return records, spent  # Unrounded: a part of a fast run can take under 0.01 s.


def overlaps_evaluation() -> bool:
  """Whether the host finishes a chunk while the next one runs (module doc): on accelerators,
  whose programs run in order. XLA's CPU runtime may run a chunk beside the previous
  evaluation on the same cores instead: nothing gained (4,700 LfF steps on 2 cores, 49-52 s
  either way), and the time of the training would be booked as evaluation's."""
  return jax.default_backend() != "cpu"


# Where a training process's time went (results.json `seconds_this_run`), in seconds.
SECONDS = {
    "data_read": "reading the dataset (by the trainer, before the loop)",
    "restore": "reading the checkpoint it resumed from",
    "first_chunk": "the first chunk of steps, with compiling it",
    "training": "the other chunks of steps",
    "evaluation": "evaluations (the first one compiles the evaluator)",
    "logs": "metrics.jsonl and TensorBoard writes",
    "checkpoints": "checkpoint writes",
    "all": "the whole loop, from before reading the checkpoint to its end",
}


class _Clock:
  """`with clock(name):` adds the block's wall time to seconds[name]."""

  def __init__(self, seconds: dict[str, float]):
    self.seconds = seconds

  @contextlib.contextmanager
  def __call__(self, name: str):
    start = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] += time.perf_counter() - start


@contextlib.contextmanager
def _sigterm_requests_stop():
  """Inside, SIGTERM (what preemptions and `scancel` send) sets the returned event instead of
  killing the process: the loop saves a checkpoint after the chunk in flight and stops (in the
  main thread; elsewhere Python cannot handle signals). A save is collective: in a multi-process
  run the processes agree after every chunk whether any was signalled (`_in_any_process`), and
  all save that step and stop together."""
  requested = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield requested
    return
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: requested.set())
  try:
    yield requested
  finally:
    signal.signal(signal.SIGTERM, previous)


def _in_any_process(flag: bool) -> bool:
  """Whether `flag` is set in any process; every process calls it at the same point."""
  if jax.process_count() == 1:
    return flag
  return bool(multihost_utils.process_allgather(np.int32(flag)).any())


def steps_to_next_evaluation(config: ml_collections.ConfigDict, step: int) -> int:
  """Steps from `step` to the next multiple of eval_every (or to the end)."""
  return min(config.eval_every - step % config.eval_every, config.num_steps - step)


def checkpoint_due(config: ml_collections.ConfigDict, previous: int, step: int) -> bool:
  """A checkpoint at the first evaluation at or after each multiple of checkpoint_every, and at
  the end."""
  every = config.checkpoint_every
  return step // every > previous // every or step == config.num_steps


def check_finite(
    losses: np.ndarray, start_step: int, workdir: epath.Path, learning_rate_key: str
) -> None:
  """NonFiniteLossError naming the first step whose loss (of any member) is NaN or Inf.

  losses: ([member,] steps) of the chunk that began after `start_step`.
  """
  per_step = np.asarray(losses).reshape(-1, np.shape(losses)[-1])
  bad = np.flatnonzero(~np.isfinite(per_step).all(axis=0))
  if bad.size:
    value = per_step[:, bad[0]][~np.isfinite(per_step[:, bad[0]])][0]
    raise NonFiniteLossError(
        f"The training loss became {value} at step {start_step + bad[0] + 1}; nothing "
        f"of that chunk was saved and the last good checkpoint in {workdir} is kept: lower "
        f"--config.{learning_rate_key} or check the data for NaN/Inf."
    )
