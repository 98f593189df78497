"""Tests for the synthetic pairs of latent de-biasing: the record file, mixing, and generation."""

import json
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdebias import data, runs, trainers
from jaxdebias.data import added
from jaxdebias.errors import InputError
from jaxdebias.latent import generator, pairs
from jaxdebias.trainers import train_gan


def _pair_arrays(num_pairs=10, shape=(8, 8, 3), num_classes=4, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "z": rng.normal(size=(num_pairs, 5)).astype(np.float32),
      "z_pair": rng.normal(size=(num_pairs, 5)).astype(np.float32),
      "image": rng.integers(0, 256, (num_pairs, *shape), dtype=np.uint8),
      "image_pair": rng.integers(0, 256, (num_pairs, *shape), dtype=np.uint8),
      "label": rng.integers(0, num_classes, num_pairs).astype(np.int32),
      "protected": rng.integers(0, num_classes, num_pairs).astype(np.int32),
      "protected_pair": rng.integers(0, num_classes, num_pairs).astype(np.int32),
  }


def test_pairs_file_round_trips_and_bad_files_are_refused(tmp_path):
  arrays = _pair_arrays()
  added.save_pairs(str(tmp_path / "p.npz"), **arrays)
  got = added.load_pairs(str(tmp_path / "p.npz"))
  for k, v in arrays.items():
    np.testing.assert_array_equal(got[k], v)
  with pytest.raises(InputError, match="No synthetic pairs"):
    added.load_pairs(str(tmp_path / "missing.npz"))
  (tmp_path / "bad.npz").write_bytes(b"garbage")
  with pytest.raises(InputError, match="not a readable pairs file"):
    added.load_pairs(str(tmp_path / "bad.npz"))
  with pytest.raises(InputError, match="lacks the pair fields \\['label'\\]"):
    added.save_pairs(str(tmp_path / "q.npz"), **{k: v for k, v in arrays.items() if k != "label"})
  with pytest.raises(InputError, match="different lengths"):
    added.save_pairs(str(tmp_path / "q.npz"), **{**arrays, "label": arrays["label"][:3]})


def test_mix_appends_both_images_of_each_pair_with_the_target_label_of_the_first():
  arrays = _pair_arrays()
  images = np.zeros((8, 8, 8, 3), np.uint8)
  label, bias = np.arange(8) % 4, np.arange(8) % 4
  mixed_images, mixed_label, mixed_bias = added.mix(images, label, bias, arrays, ratio=1.0)
  assert len(mixed_label) == 16  # 4 pairs = 8 synthetic images for 8 real ones.
  np.testing.assert_array_equal(mixed_images[8:12], arrays["image"][:4])
  np.testing.assert_array_equal(mixed_images[12:], arrays["image_pair"][:4])
  np.testing.assert_array_equal(mixed_label[8:], np.tile(arrays["label"][:4], 2))
  np.testing.assert_array_equal(
      mixed_bias[8:], np.r_[arrays["protected"][:4], arrays["protected_pair"][:4]]
  )
  with pytest.raises(InputError, match="needs 12 pairs but the file has 10"):
    added.mix(images, label, bias, arrays, ratio=3.0)
  with pytest.raises(InputError, match="another dataset"):
    added.mix(np.zeros((8, 4, 4, 3), np.uint8), label, bias, arrays, ratio=1.0)


def test_mix_unedited_takes_x_of_z_alone_for_the_ablation():
  arrays = _pair_arrays()
  images = np.zeros((8, 8, 8, 3), np.uint8)
  label = bias = np.arange(8) % 4
  mixed_images, mixed_label, mixed_bias = added.mix(
      images, label, bias, arrays, ratio=1.0, use="unedited"
  )
  np.testing.assert_array_equal(mixed_images[8:], arrays["image"][:8])  # 8 pairs, x(z) each.
  np.testing.assert_array_equal(mixed_label[8:], arrays["label"][:8])
  np.testing.assert_array_equal(mixed_bias[8:], arrays["protected"][:8])
  with pytest.raises(InputError, match="needs 16 pairs but the file has 10"):
    added.mix(images, label, bias, arrays, ratio=2.0, use="unedited")
  with pytest.raises(InputError, match="Unknown data.added_pairs.use 'edited'"):
    added.mix(images, label, bias, arrays, ratio=1.0, use="edited")


def test_load_dataset_mixes_pairs_into_train_and_swaps_the_target(tiny_config, tmp_path):
  plain = data.load_dataset(tiny_config.data)
  added.save_pairs(str(tmp_path / "p.npz"), **_pair_arrays(num_pairs=300))
  tiny_config.data.added_pairs.update(path=str(tmp_path / "p.npz"), ratio=0.5)
  mixed = data.load_dataset(tiny_config.data)
  assert len(mixed.train.label) == len(plain.train.label) + 256  # 128 pairs for 512 real.
  np.testing.assert_array_equal(mixed.train.index, np.arange(len(mixed.train.label)))
  np.testing.assert_array_equal(mixed.test.images, plain.test.images)
  tiny_config.data.target = "bias_label"
  swapped = data.load_dataset(tiny_config.data)
  np.testing.assert_array_equal(swapped.train.label, mixed.train.bias_label)
  np.testing.assert_array_equal(swapped.test.bias_label, plain.test.label)
  tiny_config.data.target = "colour"
  with pytest.raises(InputError, match="Unknown data.target"):
    data.load_dataset(tiny_config.data)
  tiny_config.data.target = "label"
  # A protected label outside the bias classes (a pseudo bias, in class space) is unknown: -1.
  arrays = _pair_arrays(num_pairs=300)
  arrays["protected"][:3] = plain.num_bias_classes
  added.save_pairs(str(tmp_path / "p.npz"), **arrays)
  synthetic_bias = data.load_dataset(tiny_config.data).train.bias_label[512:]
  np.testing.assert_array_equal(synthetic_bias[:3], -1)
  np.testing.assert_array_equal(synthetic_bias[3:128], arrays["protected"][3:128])
  added.save_pairs(str(tmp_path / "p.npz"), **_pair_arrays(num_pairs=300, num_classes=9))
  with pytest.raises(InputError, match="outside 0..3"):
    data.load_dataset(tiny_config.data)


class _Toy(nn.Module):
  """A nearly linear toy generator: tanh of a small linear map of z."""

  @nn.compact
  def __call__(self, z):
    return jnp.tanh(0.3 * nn.Dense(8 * 8 * 3)(z)).reshape(-1, 8, 8, 3)


def test_make_pairs_keeps_each_record_consistent_and_mostly_moves_the_protected_class():
  module = _Toy()
  toy = generator.ImageGenerator(
      module, module.init(jax.random.key(0), jnp.zeros((1, 16))), 16, (8, 8, 3)
  )
  with pytest.raises(InputError, match="no mapping network"):
    generator.ImageGenerator(module, toy.params, 16, (8, 8, 3), latent_space="w")
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(192, 4)), rng.normal(size=(192, 3))
  centred = lambda images: images.reshape(len(images), -1).astype(np.float32) - 127.5
  target = pairs.Labeller(lambda images: centred(images) @ a, 4)
  protected = pairs.Labeller(lambda images: centred(images) @ b, 3)
  arrays, report = pairs.make_pairs(toy, target, protected, num_fit=3000, num_pairs=500)
  np.testing.assert_array_equal(arrays["label"], target.logits(arrays["image"]).argmax(-1))
  np.testing.assert_array_equal(arrays["protected"], protected.logits(arrays["image"]).argmax(-1))
  np.testing.assert_array_equal(arrays["image_pair"], toy.images(arrays["z_pair"]))
  assert set(np.unique(arrays["protected_pair"])) <= {0, 1, 2}
  assert report["target_boundary_accuracy"] > 0.8 and report["protected_boundary_accuracy"] > 0.8
  assert report["moved_and_kept"] > 0.6, report
  with pytest.raises(InputError, match="use the pairwise edit"):  # 1 coordinate, 3 classes.
    pairs.make_pairs(
        toy, target, protected, num_fit=300, num_pairs=10, protected_dims=slice(-1, None)
    )
  # Protected boundary on the last 4 coordinates, the target's on the others: only those move.
  arrays, report = pairs.make_pairs(
      toy, target, protected, num_fit=3000, num_pairs=100, protected_dims=slice(-4, None)
  )
  np.testing.assert_array_equal(arrays["z_pair"][:, :-4], arrays["z"][:, :-4])
  assert np.abs(arrays["z_pair"][:, -4:] - arrays["z"][:, -4:]).max() > 0.1
  assert report["protected_dims"] == "slice(-4, None, None)"


def test_pipeline_from_gan_and_classifiers_to_mixed_training(tiny_config, tmp_path):
  """Tinted GAN, binary target and protected classifiers (thresholds from a validation split),
  the pairs command (colour boundary on the tint), then training on the mix."""
  gan_config = tiny_config.copy_and_resolve_references()
  gan_config.trainer = "gan"
  gan_config.gan.update(
      latent_dim=8, generator_widths=(16, 8), discriminator_widths=(8,), tinted=True
  )
  gan_config.update(batch_size=32, num_steps=300, eval_every=150, checkpoint_every=300)
  train_gan(gan_config, str(tmp_path / "gan"))
  tiny_config.update(method="erm", num_steps=200, eval_every=100, checkpoint_every=200)
  tiny_config.data.update(binary=True, valid_fraction=0.2)
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "target"))
  tiny_config.data.target = "bias_label"
  trainers.train_and_evaluate(tiny_config, str(tmp_path / "protected"))
  labeller = runs.load_labeller(str(tmp_path / "protected"))
  assert labeller.num_classes == 2 and 0 < labeller.threshold < 1
  out = tmp_path / "pairs.npz"
  command = [
      sys.executable,
      "-m",
      "jaxdebias.recipes.make_pairs",
      f"--generator={tmp_path / 'gan'}",
      f"--target_classifier={tmp_path / 'target'}",
      f"--protected_classifier={tmp_path / 'protected'}",
      f"--out={out}",
      "--num_fit=500",
      "--num_pairs=300",
      "--latent_space=w",  # The tinted GAN's tint is edited alone, pairwise.
  ]
  repo = pathlib.Path(__file__).resolve().parents[1]
  run = lambda command: subprocess.run(
      command, cwd=repo, capture_output=True, text=True, timeout=300
  )
  refused = run(command + [f"--generator={tmp_path / 'target'}"])  # A classifier run.
  assert refused.returncode == 2 and "holds no trained generator" in refused.stderr
  assert not out.exists()
  done = run(command)
  assert done.returncode == 0, done.stderr[-3000:]
  report = json.loads(out.with_suffix(".json").read_text())
  assert report["num_pairs"] == 300 and "moved_and_kept" in report["definitions"]
  assert report["pairwise"] and report["protected_dims"] == "slice(-3, None, None)"
  arrays = added.load_pairs(str(out))
  np.testing.assert_array_equal(arrays["z_pair"][:, :-3], arrays["z"][:, :-3])  # Tint alone.
  assert set(np.unique(arrays["label"])) <= {0, 1}
  assert out.with_suffix(".png").exists()
  tiny_config.data.target = "label"
  tiny_config.data.added_pairs.update(path=str(out), ratio=1.0)
  results = trainers.train_and_evaluate(tiny_config, str(tmp_path / "mixed"))
  assert results["test"]["classifier"]["num_examples"] == 200  # Evaluated on real test only.
  predict = runs.load_classifier(str(tmp_path / "mixed"))
  test = data.load_dataset(tiny_config.data).test
  accuracy = np.mean(predict(test.images).argmax(-1) == test.label)
  assert accuracy == pytest.approx(results["test"]["classifier"]["accuracy"])
