"""Synthetic bias amplification: generated training data and the amplifier recipes; and the
GroupDRO oracle, which shares amplified_dro's update."""

import json
import sys

import chex
import jax
import numpy as np
import pytest

from jaxdebias import losses, methods, runs, trainers
from jaxdebias.data import added, sampler
from jaxdebias.errors import InputError
from jaxdebias.methods import amplified
from jaxdebias.trainers import train_gan


@pytest.fixture
def amplifier_dirs(tiny_config, tmp_path):
  """(a class-conditional GAN run, a bias amplifier trained on its images only)."""
  gan_config = tiny_config.copy_and_resolve_references()
  gan_config.trainer = "gan"
  gan_config.gan.update(
      latent_dim=8, generator_widths=(16, 8), discriminator_widths=(8,), conditional=True
  )
  gan_config.update(batch_size=16, num_steps=4, eval_every=2, checkpoint_every=2)
  train_gan(gan_config, str(tmp_path / "cgan"))
  amplifier_config = tiny_config.copy_and_resolve_references()
  amplifier_config.method = "erm"
  amplifier_config.data.generated_train.update(generator=str(tmp_path / "cgan"), per_class=12)
  trainers.train_and_evaluate(amplifier_config, str(tmp_path / "amplifier"))
  return tmp_path / "cgan", tmp_path / "amplifier"


def test_generated_training_split_has_every_class_and_no_bias_labels(tiny_config, amplifier_dirs):
  real = runs.load_dataset(tiny_config.data)
  tiny_config.data.generated_train.update(generator=str(amplifier_dirs[0]), per_class=5)
  generated = runs.load_dataset(tiny_config.data)
  np.testing.assert_array_equal(generated.train.label, np.repeat(np.arange(4), 5))
  assert (generated.train.bias_label == -1).all()
  assert generated.train.images.shape[1:] == real.train.images.shape[1:]
  np.testing.assert_array_equal(generated.test.images, real.test.images)  # Evaluation: real.
  tiny_config.data.generated_train.generator = str(amplifier_dirs[1])  # A classifier, no generator.
  with pytest.raises(InputError, match="holds no trained generator"):
    runs.load_dataset(tiny_config.data)


def test_the_amplifier_labels_without_generating_its_training_split(amplifier_dirs, monkeypatch):
  """The pairs stage's bias labeller is sized by its results.json, not by regenerating the
  60,000 images it trained on."""
  load = sys.modules["jaxdebias.runs.load"]
  monkeypatch.setattr(load, "load_dataset", lambda *_: pytest.fail("it read its dataset"))
  labeller = runs.load_labeller(str(amplifier_dirs[1]))
  images = np.zeros((3, 8, 8, 3), np.uint8)
  assert labeller.num_classes == 4 and labeller.threshold is None
  np.testing.assert_array_equal(
      labeller(images), runs.load_classifier(str(amplifier_dirs[1]))(images).argmax(-1)
  )


def test_amplified_lff_uses_the_frozen_amplifier_as_its_biased_model(tiny_config, amplifier_dirs):
  tiny_config.method = "amplified_lff"
  with pytest.raises(InputError, match="needs a bias amplifier: .* set --config.amplifier.workdir"):
    trainers.train_and_evaluate(tiny_config, str(amplifier_dirs[0].parent / "refused"))
  tiny_config.amplifier.workdir = str(amplifier_dirs[1])
  results = trainers.train_and_evaluate(tiny_config, str(amplifier_dirs[0].parent / "amplified"))
  amplifier = json.loads((amplifier_dirs[1] / "results.json").read_text())
  # The run's biased model is the amplifier, untouched by 40 steps of training.
  assert results["test"]["biased"] == amplifier["test"]["classifier"]
  assert 0 <= results["test"]["classifier"]["unbiased_accuracy"] <= 1
  assert results["train"]["loss_biased"] == 0  # Nothing trains it.
  dataset = runs.load_dataset(tiny_config.data)
  images = dataset.train.images[:8]
  tiny_config.amplifier.temperature = 4.0
  method = runs.method_for(tiny_config, dataset)
  chex.assert_trees_all_close(
      method.biased_logits(None, images, None),
      runs.load_classifier(str(amplifier_dirs[1]))(images) / 4,
      rtol=1e-5,
  )
  tiny_config.amplifier.temperature = 0.0
  with pytest.raises(InputError, match="amplifier.temperature is 0.0; set it to a number > 0"):
    runs.method_for(tiny_config, dataset)


def test_group_balanced_weights_give_every_pseudo_group_the_same_total():
  groups = np.array([[0, 1], [0, 1], [0, 1], [0, 0], [1, 1]])
  weights = amplified.group_balanced_weights(groups)
  np.testing.assert_allclose(weights, [5 / 9, 5 / 9, 5 / 9, 5 / 3, 5 / 3], rtol=1e-6)
  totals = [weights[(groups == g).all(1)].sum() for g in np.unique(groups, axis=0)]
  np.testing.assert_allclose(totals, 5 / 3, rtol=1e-6)
  np.testing.assert_allclose(amplified.group_balanced_weights(groups, power=0), 1)
  # power 1/2: |group|^-1/2 = 3^-1/2, 1, 1, scaled to mean 1.
  half = amplified.group_balanced_weights(groups, power=0.5)
  np.testing.assert_allclose(half / half[-1], [3**-0.5] * 3 + [1, 1], rtol=1e-6)
  np.testing.assert_allclose(half.mean(), 1, rtol=1e-6)


def test_amplified_groups_weighs_by_the_amplifiers_pseudo_groups(tiny_config, amplifier_dirs):
  tiny_config.method = "amplified_groups"
  tiny_config.amplifier.workdir = str(amplifier_dirs[1])
  dataset = runs.load_dataset(tiny_config.data)
  predicted = runs.load_classifier(str(amplifier_dirs[1]))(dataset.train.images).argmax(-1)
  method = runs.method_for(tiny_config, dataset)
  np.testing.assert_array_equal(method.pseudo_groups, np.stack([dataset.train.label, predicted], 1))
  tiny_config.amplifier.groups = "correctness"
  method = runs.method_for(tiny_config, dataset)
  np.testing.assert_array_equal(method.pseudo_groups[:, 1], predicted != dataset.train.label)
  np.testing.assert_array_equal(method.pseudo_groups[:, 0], dataset.train.label)
  tiny_config.amplifier.update(groups="prediction", min_loss=1e9)
  method = runs.method_for(tiny_config, dataset)
  np.testing.assert_array_equal(method.pseudo_groups[:, 1], dataset.train.label)  # None counts.
  np.testing.assert_allclose(  # Then only the classes are balanced.
      method.example_weights, amplified.group_balanced_weights(dataset.train.label[:, None])
  )
  tiny_config.amplifier.min_loss = -1.0
  with pytest.raises(InputError, match="amplifier.min_loss is -1.0; set it to a loss >= 0"):
    runs.method_for(tiny_config, dataset)
  tiny_config.amplifier.update(min_loss=0.0, groups="loss")
  with pytest.raises(InputError, match="set it to 'prediction' or 'correctness'"):
    runs.method_for(tiny_config, dataset)
  tiny_config.amplifier.groups = "prediction"
  results = trainers.train_and_evaluate(tiny_config, str(amplifier_dirs[0].parent / "groups"))
  assert 0 <= results["test"]["classifier"]["unbiased_accuracy"] <= 1


def test_amplified_dro_moves_weight_to_the_groups_with_the_highest_loss(
    tiny_config, amplifier_dirs
):
  tiny_config.method = "amplified_dro"
  tiny_config.amplifier.update(workdir=str(amplifier_dirs[1]), dro_step_size=0.5)
  dataset = runs.load_dataset(tiny_config.data)
  method = runs.method_for(tiny_config, dataset)
  one_dro_step_is_the_hand_computed_one(method, method.pseudo_groups, dataset, 0.5)
  tiny_config.amplifier.dro_step_size = -1.0
  with pytest.raises(InputError, match="amplifier.dro_step_size is -1.0; set it to a number >= 0"):
    runs.method_for(tiny_config, dataset)


def test_group_dro_oracle_weighs_the_true_groups_and_alone_reads_bias_labels(
    tiny_config, tmp_path, monkeypatch
):
  """GroupDRO (Sagawa et al.) over (class, bias label): the oracle baseline; every other method
  is built without the training bias labels."""
  tiny_config.method = "group_dro_oracle"
  tiny_config.group_dro.step_size = 0.5
  dataset = runs.load_dataset(tiny_config.data)
  method = runs.method_for(tiny_config, dataset)
  groups = np.stack([dataset.train.label, dataset.train.bias_label], axis=1)
  one_dro_step_is_the_hand_computed_one(method, groups, dataset, 0.5)
  handed, build = {}, methods.build

  def build_and_record(config, model, train, *rest):
    handed[config.method] = train
    return build(config, model, train, *rest)

  monkeypatch.setattr(methods, "build", build_and_record)
  for name in ("erm", "lff", "group_dro_oracle"):
    tiny_config.method = name
    runs.method_for(tiny_config, dataset)
  assert handed["erm"].bias_labels is None and handed["lff"].bias_labels is None
  np.testing.assert_array_equal(handed["group_dro_oracle"].bias_labels, dataset.train.bias_label)
  drawn_with, batch_indices = [], sampler.batch_indices

  def record_weights(*args):
    drawn_with.append(args[-1])
    return batch_indices(*args)

  monkeypatch.setattr(sampler, "batch_indices", record_weights)
  results = trainers.train_and_evaluate(tiny_config, str(tmp_path / "oracle"))
  assert results["uses_training_bias_labels"] is True
  assert drawn_with and all(w is not None for w in drawn_with)  # The trainer drew balanced.
  np.testing.assert_allclose(drawn_with[0], method.sampling_weights)
  tiny_config.group_dro.step_size = -1.0
  with pytest.raises(InputError, match="group_dro.step_size is -1.0; set it to a number >= 0"):
    runs.method_for(tiny_config, dataset)


def one_dro_step_is_the_hand_computed_one(method, groups, dataset, step_size):
  """GroupDRO's batches are group-balanced and its weights start uniform over the distinct rows
  of `groups`; after one step they and the loss are Sagawa et al.'s update with each group's
  mean batch loss (the authors' loss.py), computed here in NumPy."""
  distinct, index, size = np.unique(groups, return_inverse=True, return_counts=True, axis=0)
  index = index.reshape(-1)
  np.testing.assert_array_equal(method.group_index, index)
  np.testing.assert_allclose(method.sampling_weights, 1 / size[index])
  state = method.init(jax.random.key(0), {})
  chex.assert_trees_all_close(state.group_weights, np.full(len(distinct), 1 / len(distinct)))
  batch = {
      "image": dataset.train.images[:16],
      "label": dataset.train.label[:16],
      "index": np.arange(16, dtype=np.int32),
  }
  logits = method.model.apply(state.params, method.to_float(batch["image"]))
  ce = np.asarray(losses.cross_entropy(logits, batch["label"]))
  # Each group's mean loss over its batch examples (0 if absent), then q ~ exp(step_size L_g).
  group_loss = np.array(
      [ce[index[:16] == g].mean() if g in index[:16] else 0.0 for g in range(len(distinct))]
  )
  assert 0.0 in group_loss and np.all(group_loss[np.isin(np.arange(len(distinct)), index[:16])])
  q = np.exp(step_size * group_loss) / np.exp(step_size * group_loss).sum()
  new_state, metrics = method.train_step(state, batch)
  chex.assert_trees_all_close(new_state.group_weights, q, rtol=1e-5)
  chex.assert_trees_all_close(metrics["loss"], group_loss @ q, rtol=1e-5)


def test_amplified_groups_with_latent_pairs_scores_the_pairs_too(tiny_config, amplifier_dirs):
  """Recipe (c): latent de-biasing's pairs join the training split and get pseudo-groups from
  the amplifier like the real images."""
  real = runs.load_dataset(tiny_config.data).train
  rng = np.random.default_rng(0)
  num_pairs, shape = 64, real.images.shape[1:]
  labels = lambda: rng.integers(0, 4, num_pairs).astype(np.int32)
  added.save_pairs(
      str(amplifier_dirs[0].parent / "pairs.npz"),
      z=rng.normal(size=(num_pairs, 5)).astype(np.float32),
      z_pair=rng.normal(size=(num_pairs, 5)).astype(np.float32),
      image=rng.integers(0, 256, (num_pairs, *shape), dtype=np.uint8),
      image_pair=rng.integers(0, 256, (num_pairs, *shape), dtype=np.uint8),
      label=labels(),
      protected=labels(),
      protected_pair=labels(),
  )
  tiny_config.method = "amplified_groups"
  tiny_config.amplifier.workdir = str(amplifier_dirs[1])
  tiny_config.data.added_pairs.update(path=str(amplifier_dirs[0].parent / "pairs.npz"), ratio=0.25)
  mixed = runs.load_dataset(tiny_config.data)
  assert mixed.num_synthetic == len(mixed.train.label) - len(real.label) > 0
  method = runs.method_for(tiny_config, mixed)
  predicted = runs.load_classifier(str(amplifier_dirs[1]))(mixed.train.images).argmax(-1)
  np.testing.assert_array_equal(method.pseudo_groups, np.stack([mixed.train.label, predicted], 1))
  results = trainers.train_and_evaluate(tiny_config, str(amplifier_dirs[0].parent / "groups_pairs"))
  assert 0 <= results["test"]["classifier"]["unbiased_accuracy"] <= 1
