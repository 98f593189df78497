"""Streamed training and test images (trainers/streaming.py): the same run as with the images on
the devices, on one device and on a mesh, through a resume, chunks split into pieces."""

import json
import pathlib

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxdebias import runs, sharding, trainers
from jaxdebias.trainers import evaluator, members, streaming


def _final_checkpoint(workdir: pathlib.Path):
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(steps[-1]) / "default")


def _metrics(workdir: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _without_timing(results: dict) -> dict:
  return {
      k: v
      for k, v in results.items()
      if not k.endswith("seconds_this_run") and k not in ("train_images", "test_images")
  }


@pytest.fixture
def five_step_pieces(monkeypatch):
  """f(num_members): pieces of 5 steps, so that the tiny runs' 10-step chunks come in two and
  the read-ahead crosses chunks (a step: members x 32 images of 8 x 8 x 3 bytes)."""
  return lambda num_members=1: monkeypatch.setattr(
      streaming, "PIECE_BYTES", 5 * num_members * 32 * 8 * 8 * 3
  )


def _same_run(streamed: pathlib.Path, on_device: pathlib.Path) -> None:
  """Bit-identical metrics, results and final checkpoint."""
  assert _metrics(streamed) == _metrics(on_device)
  chex.assert_trees_all_equal(_final_checkpoint(streamed), _final_checkpoint(on_device))


@pytest.mark.parametrize(
    "method, num_seeds", [("lff", 2), ("group_dro_oracle", 1)]  # Members; weighted draws.
)
def test_streamed_run_equals_device_run(method, num_seeds, tiny_config, tmp_path, five_step_pieces):
  tiny_config.method, tiny_config.num_seeds = method, num_seeds
  five_step_pieces(num_seeds)
  tiny_config.train_images = "device"
  on_device = trainers.train_and_evaluate(tiny_config, str(tmp_path / "device"))
  tiny_config.train_images = "auto"
  tiny_config.device_images_budget_gib = 1e-6  # The 512 tiny images (0.1 MiB) exceed it.
  streamed = trainers.train_and_evaluate(tiny_config, str(tmp_path / "streamed"))
  assert (on_device["train_images"], streamed["train_images"]) == ("device", "streamed")
  assert (on_device["test_images"], streamed["test_images"]) == ("device", "streamed")
  assert _without_timing(streamed) == _without_timing(on_device)
  _same_run(tmp_path / "streamed", tmp_path / "device")


def test_streamed_batches_on_a_mesh_are_read_per_device(tiny_config, tmp_path, five_step_pieces):
  """On 4 x 2 devices each device takes a quarter of every batch (the model axis the same
  rows); the run equals the on-device one on the same mesh."""
  five_step_pieces()
  tiny_config.num_steps = 20
  tiny_config.mesh.data, tiny_config.mesh.model = 4, 2
  tiny_config.train_images = "device"
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "device"))
  tiny_config.train_images = "stream"
  placed = []
  real_place = streaming.HostBatches._place

  def place(self, *host):
    placed.append(real_place(self, *host))
    return placed[-1]

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(streaming.HostBatches, "_place", place)
    trainers.train_and_evaluate(tiny_config, str(tmp_path / "streamed"))
  training = [(i, x) for i, x in placed if x.shape[1] == 32]  # Not the test batches (64).
  assert len(training) == 4  # 20 steps in pieces of 5.
  assert len(placed) == 4 + 2 * 2  # Two evaluations, each 4 test batches in pieces of 2.
  indices, images = training[0]
  assert images.shape == (5, 32, 8, 8, 3) and len(images.addressable_shards) == 8
  for shard in images.addressable_shards:
    rows = np.asarray(indices)[shard.index[:2]]
    images_npz = np.load(tiny_config.data.path)["train_images"]
    np.testing.assert_array_equal(np.asarray(shard.data), images_npz[rows])
    assert shard.data.shape[1] == 32 // 4
  chex.assert_trees_all_close(
      _final_checkpoint(tmp_path / "streamed"), _final_checkpoint(tmp_path / "device"), atol=1e-6
  )


def test_streamed_run_resumes_exactly(
    tiny_config, tmp_path, five_step_pieces, interrupt_after_metrics_of
):
  five_step_pieces()
  tiny_config.train_images = "stream"
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "straight"))
  resumed = str(tmp_path / "resumed")
  interrupt_after_metrics_of(20, lambda: trainers.train_and_evaluate(tiny_config, resumed))
  trainers.train_and_evaluate(tiny_config, resumed)
  _same_run(tmp_path / "resumed", tmp_path / "straight")


def test_auto_keeps_images_that_fit_on_the_device(tiny_config):
  images = np.zeros((512, 8, 8, 3), np.uint8)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
  assert not streaming.streams(tiny_config, images, mesh)  # Default budget: 1/4 of memory.
  tiny_config.device_images_budget_gib = 1e-6
  assert streaming.streams(tiny_config, images, mesh)
  tiny_config.train_images = "device"
  assert not streaming.streams(tiny_config, images, mesh)


def test_streamed_gan_equals_device_gan(tiny_config, tmp_path, five_step_pieces):
  """The GAN trainer streams the same way (its steps taken one by one from the pieces)."""
  five_step_pieces()
  tiny_config.trainer = "gan"
  tiny_config.gan.update(latent_dim=8, generator_widths=(16, 8), discriminator_widths=(8,))
  tiny_config.batch_size, tiny_config.num_steps, tiny_config.eval_every = 32, 20, 10
  placed = {}
  for mode in ("device", "stream"):
    tiny_config.train_images = mode
    placed[mode] = trainers.train_gan(tiny_config, str(tmp_path / mode))["train_images"]
  assert placed == {"device": "device", "stream": "streamed"}
  _same_run(tmp_path / "stream", tmp_path / "device")


@pytest.mark.parametrize("mesh_shape", [(1, 1), (4, 2)])
def test_streamed_evaluation_equals_evaluation_on_the_device(mesh_shape, tiny_config, monkeypatch):
  """The test split read from the host in pieces (of 2 batches here) predicts what the split
  held on the devices does, every member and model, the padding dropped alike."""
  monkeypatch.setattr(streaming, "PIECE_BYTES", 2 * 64 * 8 * 8 * 3)
  tiny_config.num_seeds = 2
  tiny_config.mesh.data, tiny_config.mesh.model = mesh_shape
  dataset = runs.load_dataset(tiny_config.data)
  method = runs.method_for(tiny_config, dataset)
  mesh = sharding.make_mesh(tiny_config.mesh)
  _, state = members.init_members(tiny_config, method, mesh)
  evaluate = {
      stream: evaluator.Evaluator(method, dataset.test, 4, 4, 64, mesh, 2, stream)
      for stream in (False, True)
  }
  assert evaluate[True].num_batches == 4  # 200 examples in 4 batches of 64, padded.
  assert evaluate[True](state)() == evaluate[False](state)()
