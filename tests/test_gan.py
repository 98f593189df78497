"""Tests for the latent de-biasing generator: GAN training, resume, samples, loading."""

import json

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from jaxdebias import runs, trainers
from jaxdebias.errors import InputError, NonFiniteLossError
from jaxdebias.latent import generator, pairs
from jaxdebias.methods import amplified
from jaxdebias.models import dcgan
from jaxdebias.trainers import gan as gan_trainer
from jaxdebias.trainers import train_gan


@pytest.fixture
def gan_config(tiny_config):
  tiny_config.trainer = "gan"
  tiny_config.gan.update(latent_dim=8, generator_widths=(16, 8), discriminator_widths=(8,))
  tiny_config.batch_size = 16
  tiny_config.num_steps = 6
  tiny_config.eval_every = 2
  tiny_config.checkpoint_every = 2
  return tiny_config


def _generator_params(workdir):
  return runs.load_generator(str(workdir)).params


def test_gan_trains_writes_samples_and_loads_as_a_generator(gan_config, tmp_path):
  last = train_gan(gan_config, str(tmp_path))
  assert last["step"] == 6 and np.isfinite(last["loss"])
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 6]
  assert Image.open(tmp_path / "samples" / "step_6.png").size == (80, 80)  # 10 x 10 of 8x8.
  g = runs.load_generator(str(tmp_path))
  assert (g.latent_dim, g.image_shape) == (8, (8, 8, 3))
  images = g.images(np.random.default_rng(0).normal(size=(7, 8)).astype(np.float32), batch_size=3)
  assert images.shape == (7, 8, 8, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(images[:3], g.images(np.random.default_rng(0).normal(size=(3, 8))))
  # Latent space w: the styles of the same z decode to the same images.
  g_w = runs.load_generator(str(tmp_path), latent_space="w")
  w = g_w.sample(np.random.default_rng(1), 5)
  z_images = g.images(g.sample(np.random.default_rng(1), 5)).astype(int)
  assert np.abs(g_w.images(w).astype(int) - z_images).max() <= 1  # Rounding to uint8.


def test_conditional_gan_generates_the_class_it_is_given(gan_config, tmp_path):
  gan_config.gan.conditional = True
  train_gan(gan_config, str(tmp_path))
  g = runs.load_generator(str(tmp_path))
  assert g.num_classes == 4  # The tiny dataset's.
  rng = np.random.default_rng(0)
  labels = np.arange(6) % 4
  latents = g.sample(rng, 6, labels=labels)
  chex.assert_shape(latents, (6, 8 + 4))
  np.testing.assert_array_equal(latents[:, 8:].argmax(-1), labels)
  # The class is an input: the same z with another class gives another image.
  other = latents.copy()
  other[:, 8:] = np.roll(other[:, 8:], 1, axis=-1)
  assert np.abs(g.images(latents).astype(int) - g.images(other).astype(int)).max() > 0
  g_w = runs.load_generator(str(tmp_path), latent_space="w")
  z_images = g.images(latents).astype(int)
  w_images = g_w.images(g_w.sample(np.random.default_rng(0), 6, labels=labels)).astype(int)
  assert np.abs(w_images - z_images).max() <= 1
  unconditional = generator.ImageGenerator(g.module, g.params, 8, (8, 8, 3))
  with pytest.raises(InputError, match="not conditional"):
    unconditional.sample(rng, 2, labels=np.zeros(2, int))


def test_tinted_gan_sets_the_colour_by_its_tint_alone(gan_config, tmp_path):
  gan_config.gan.tinted = True
  train_gan(gan_config, str(tmp_path))
  assert runs.load_generator(str(tmp_path)).tint_dims is None  # z sets everything.
  g = runs.load_generator(str(tmp_path), latent_space="w")
  s = g.sample(np.random.default_rng(0), 6)
  assert s.shape == (6, 8 + 8 + 3) and g.tint_dims == slice(-3, None)
  swapped = s.copy()
  swapped[:, g.tint_dims] = s[::-1, g.tint_dims]  # Other images' tints, same shapes.
  colour = lambda s: jax.nn.sigmoid(s[:, -3:])
  # Every image is 2 m c - 1: the grey mask m times the colour c = sigmoid(tint).
  mask = lambda s: (g(s) + 1) / 2 / colour(s)[:, None, None]
  chex.assert_trees_all_close(mask(swapped), mask(s), atol=1e-5)
  np.testing.assert_allclose(np.ptp(mask(s), axis=-1), 0, atol=1e-5)  # One grey per pixel.
  assert np.abs(g(swapped) - g(s)).max() > 1e-3


def test_gan_resumed_or_extended_equals_the_run_trained_straight(
    gan_config, tmp_path, interrupt_after_metrics_of
):
  train_gan(gan_config, str(tmp_path / "straight"))
  # Killed before the checkpoint of step 4: resumes from step 2.
  interrupt_after_metrics_of(4, lambda: train_gan(gan_config, str(tmp_path / "resumed")))
  train_gan(gan_config, str(tmp_path / "resumed"))
  chex.assert_trees_all_close(
      _generator_params(tmp_path / "resumed"), _generator_params(tmp_path / "straight"), atol=1e-6
  )
  lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [2, 4, 6]
  gan_config.num_steps = 8  # Extended in place: as the run planned that long.
  train_gan(gan_config, str(tmp_path / "resumed"))
  train_gan(gan_config, str(tmp_path / "planned"))
  chex.assert_trees_all_close(
      _generator_params(tmp_path / "resumed"), _generator_params(tmp_path / "planned"), atol=1e-6
  )
  assert json.loads((tmp_path / "resumed" / "results_step6.json").read_text())["step"] == 6


def test_missing_unfinished_or_different_gan_runs_are_refused(
    gan_config, tmp_path, interrupt_after_metrics_of
):
  with pytest.raises(InputError, match="no trained generator"):
    runs.load_generator(str(tmp_path))
  interrupt_after_metrics_of(4, lambda: train_gan(gan_config, str(tmp_path)))
  with pytest.raises(InputError, match="at step 2 of 6; rerun its training command"):
    runs.load_generator(str(tmp_path))
  gan_config.gan.learning_rate = 1e-3
  with pytest.raises(InputError, match="differs in gan/learning_rate"):
    train_gan(gan_config, str(tmp_path))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("learning_rate", -1.0, "gan.learning_rate must be > 0"),
        (
            "generator_widths",
            (16, 8, 4, 2, 1),
            r"4 doublings would start images of shape \(8, 8, 3\) from a seed under",
        ),
        ("latent_dim", 0, "gan.latent_dim must be a positive integer"),
    ],
)
def test_bad_gan_configs_are_refused_before_anything_is_written(
    key, value, message, gan_config, tmp_path
):
  gan_config.gan[key] = value
  with pytest.raises(InputError, match=message):
    train_gan(gan_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_non_finite_gan_loss_stops_with_the_gan_learning_rate_hint(gan_config, tmp_path):
  gan_config.gan.learning_rate = 1e30
  with pytest.raises(NonFiniteLossError, match="gan.learning_rate"):
    train_gan(gan_config, str(tmp_path))


@pytest.mark.parametrize(
    "shape, doublings",
    [((8, 8, 3), 1), ((12, 16, 1), 1), ((7, 9, 3), 0), ((30, 30, 3), 2), ((31, 29, 1), 2)],
)
def test_generator_widths_follow_any_image_shape(shape, doublings, gan_config, tmp_path):
  assert len(dcgan.widths_for(shape)[0]) == doublings + 1  # Odd sides: generated larger, cropped.
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in (("train", 64), ("test", 16)):
    arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    arrays[f"{split}_label"] = rng.integers(0, 4, n)
    arrays[f"{split}_bias_label"] = rng.integers(0, 4, n)
  np.savez(tmp_path / "shaped.npz", **arrays)
  gan_config.data.path = str(tmp_path / "shaped.npz")
  gan_config.gan.update(generator_widths=None, discriminator_widths=None, conditional=True)
  gan_config.update(num_steps=2, eval_every=2, checkpoint_every=2)
  train_gan(gan_config, str(tmp_path / "run"))
  g = runs.load_generator(str(tmp_path / "run"))
  images = g.images(g.sample(np.random.default_rng(1), 3, labels=np.arange(3)))
  assert images.shape == (3, *shape) and images.dtype == np.uint8


def test_gan_conditioned_on_pseudo_bias_oversamples_conflicting_and_pairs_keep_the_class(
    gan_config, tiny_config, tmp_path
):
  amplifier_config = tiny_config.copy_and_resolve_references()  # The same object as gan_config.
  amplifier_config.update(trainer="classifier", method="erm", num_steps=60, batch_size=32)
  amplifier_config.update(eval_every=60, checkpoint_every=60)
  trainers.train_and_evaluate(amplifier_config, str(tmp_path / "amplifier"))
  gan_config.gan.update(conditional=True, pseudo_bias=True)
  gan_config.amplifier.workdir = str(tmp_path / "amplifier")
  dataset = runs.load_dataset(gan_config.data)
  factors, conditions, rows = gan_trainer._conditions(gan_config, dataset)
  assert factors == [4, 4]
  np.testing.assert_array_equal(conditions[:, 0], dataset.train.label)
  logits = runs.load_classifier(str(tmp_path / "amplifier"))(dataset.train.images)
  bias = amplified.pseudo_bias(logits, dataset.train.label)
  np.testing.assert_array_equal(conditions[:, 1], 4 + bias)
  conflicting = bias[rows] != dataset.train.label[rows]
  assert 0 < (bias != dataset.train.label).mean() < 0.4  # Rare in the data, ...
  assert abs(conflicting.mean() - 0.3) < 0.02  # ... 30% of the rows the GAN draws from.
  train_gan(gan_config, str(tmp_path / "gan"))
  g = runs.load_generator(str(tmp_path / "gan"), latent_space="z")
  assert (g.num_classes, g.factors) == (8, (4, 4))
  target = pairs.Labeller(lambda images: np.eye(4)[images[:, 0, 0, 0] % 4], 4)
  protected = pairs.Labeller(lambda images: np.eye(4)[images[:, 0, 0, 1] % 4], 4)
  options = pairs.default_config()
  options.update(num_pairs=64, latent_space="z")
  arrays, report = pairs.make_pairs_with(g, target, protected, options)  # By the conditioning.
  assert report["edit"] == "condition" and report["num_pairs"] == 64
  np.testing.assert_array_equal(arrays["z"][:, :8], arrays["z_pair"][:, :8])  # Same noise,
  np.testing.assert_array_equal(arrays["z"][:, 8:12].argmax(-1), arrays["label"])  # same class,
  np.testing.assert_array_equal(arrays["z"][:, 12:].argmax(-1), arrays["protected"])
  np.testing.assert_array_equal(arrays["z_pair"][:, 12:].argmax(-1), arrays["protected_pair"])
  assert (arrays["protected"] != arrays["protected_pair"]).all()  # another pseudo bias.
  np.testing.assert_array_equal(arrays["image"], g.images(arrays["z"]))
  np.testing.assert_array_equal(
      arrays["labelled_protected_pair"], protected(arrays["image_pair"])
  )
  assert report["protected_moved_as_requested"] == np.mean(
      arrays["labelled_protected_pair"] == arrays["protected_pair"]
  )


def test_gan_conditioned_on_pseudo_bias_needs_a_conditional_gan_and_an_amplifier(
    gan_config, tmp_path
):
  gan_config.gan.pseudo_bias = True
  with pytest.raises(InputError, match="set --config.gan.conditional and --config.amplifier"):
    train_gan(gan_config, str(tmp_path / "run"))
  gan_config.gan.conditional = True
  with pytest.raises(InputError, match="--config.amplifier.workdir"):
    train_gan(gan_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_pseudo_conflicting_share_outside_0_1_is_refused(gan_config, tmp_path):
  gan_config.gan.update(conditional=True, pseudo_bias=True, pseudo_conflicting_share=1.0)
  gan_config.amplifier.workdir = str(tmp_path / "amplifier")
  with pytest.raises(InputError, match="gan.pseudo_conflicting_share must lie in"):
    train_gan(gan_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_gan_draws_its_batches_from_the_rows_its_conditioning_gives(
    gan_config, tmp_path, monkeypatch
):
  conditions = gan_trainer._conditions
  monkeypatch.setattr(
      gan_trainer, "_conditions", lambda c, d: (*conditions(c, d)[:2], np.array([5, 7]))
  )
  seen, place = [], gan_trainer.members.place_indices
  monkeypatch.setattr(
      gan_trainer.members, "place_indices", lambda i, mesh: seen.append(i) or place(i, mesh)
  )
  train_gan(gan_config, str(tmp_path))
  assert len(seen) == 6 and set(np.concatenate(seen).tolist()) == {5, 7}


def test_bfloat16_gan_keeps_float32_parameters_and_samples_near_float32(gan_config, tmp_path):
  """Compute in bfloat16, parameters in float32: after a few steps the two runs' generators
  are nearly the same, and so are their samples."""
  train_gan(gan_config, str(tmp_path / "f32"))
  gan_config.compute_dtype = "bfloat16"
  last = train_gan(gan_config, str(tmp_path / "bf16"))
  assert np.isfinite(last["loss"])
  full, mixed = (runs.load_generator(str(tmp_path / name)) for name in ("f32", "bf16"))
  assert {x.dtype for x in jax.tree.leaves(mixed.params)} == {np.dtype(np.float32)}
  chex.assert_trees_all_close(mixed.params, full.params, atol=0.02)
  z = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
  assert np.abs(mixed.images(z).astype(int) - full.images(z).astype(int)).mean() < 8  # Of 255.
