"""Shared fixtures: a tiny biased .npz dataset and a fast config that trains on it."""

import jax
import pytest

# Eight simulated CPU devices for the sharding tests (before any JAX backend starts); other
# tests pin a one-device mesh.
jax.config.update("jax_num_cpu_devices", 8)

from jaxdebias.config import base_config  # pylint: disable=g-import-not-at-top
from tests import synthetic


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
