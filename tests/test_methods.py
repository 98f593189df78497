"""The LfF step against an independent re-implementation, and the method registry."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdebias import methods, models, trainers
from jaxdebias.methods import optimizer
from jaxdebias.models import layers
from jaxdebias.config import base_config
from jaxdebias.errors import InputError

NUM_EXAMPLES, NUM_CLASSES, SHAPE, Q, ALPHA = 24, 3, (4, 4, 3), 0.7, 0.7


def _frozen_amplifier(images):
  """Stands in for a bias amplifier run's classifier: a fixed function of pixels."""
  return images.reshape(len(images), -1)[:, :NUM_CLASSES].astype(jnp.float32) / 255


def _train_set(labels, images=None, num_synthetic=0, bias_labels=None) -> methods.TrainSet:
  return methods.TrainSet(labels, NUM_CLASSES, SHAPE, num_synthetic, images, bias_labels)


def _setup(method_name: str):
  config = base_config()
  config.method = method_name
  config.model.hidden = (8,)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, NUM_CLASSES, NUM_EXAMPLES).astype(np.int32)
  images = rng.integers(0, 256, (NUM_EXAMPLES, *SHAPE), dtype=np.uint8)
  model = models.create(config.model, NUM_CLASSES)
  frozen = _frozen_amplifier if method_name in methods.FROZEN_RUNS else None
  bias_labels = rng.integers(0, NUM_CLASSES, NUM_EXAMPLES).astype(np.int32)
  if method_name not in methods.USES_BIAS_LABELS:
    bias_labels = None
  method = methods.build(config, model, _train_set(labels, images, 0, bias_labels), frozen)
  return config, model, method, images, labels


def _ce(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def test_lff_step_equals_two_models_trained_separately_with_numpy_ema():
  config, model, method, images, labels = _setup("lff")
  state = method.init(jax.random.key(0), {k: v[0] for k, v in method.hparam_grid.items()})
  step = jax.jit(method.train_step)
  # Reference: two independent Adams, NumPy EMA with a per-example loop, W from class maxima.
  params = dict(state.params)
  adam = optax.adam(config.optimizer.learning_rate)
  opt = {name: adam.init(p) for name, p in params.items()}
  ema = {name: np.zeros(NUM_EXAMPLES) for name in params}
  seen = {name: np.zeros(NUM_EXAMPLES, bool) for name in params}
  batches = [np.array([0, 5, 5, 7, 11, 23]), np.array([1, 2, 3, 5, 7, 7]), np.arange(6) * 4]
  for index in batches:
    x, y = images[index].astype(np.float32) / 255, labels[index]
    normalized = {}
    for name in params:
      ce = np.asarray(_ce(model.apply(params[name], x), y))
      for i, loss in zip(index, ce):  # One example at a time, in batch order.
        ema[name][i] = ALPHA * ema[name][i] + (1 - ALPHA) * loss if seen[name][i] else loss
        seen[name][i] = True
      class_max = np.array([ema[name][labels == c].max() for c in range(NUM_CLASSES)])
      normalized[name] = ema[name][index] / class_max[y]
    weight = normalized["biased"] / (normalized["biased"] + normalized["debiased"] + 1e-8)

    def gce_b(p):
      logits = model.apply(p, x)
      p_y = jax.nn.softmax(logits)[jnp.arange(len(y)), y]
      return jnp.mean(_ce(logits, y) * jax.lax.stop_gradient(p_y**Q) * Q)

    def weighted_ce_d(p):
      return jnp.mean(weight * _ce(model.apply(p, x), y))

    for name, loss_fn in (("biased", gce_b), ("debiased", weighted_ce_d)):
      updates, opt[name] = adam.update(jax.grad(loss_fn)(params[name]), opt[name], params[name])
      params[name] = optax.apply_updates(params[name], updates)

    batch = {"image": images[index], "label": labels[index], "index": index.astype(np.int32)}
    state, metrics = step(state, batch)
    np.testing.assert_allclose(metrics["weight_mean"], weight.mean(), rtol=1e-5)
    chex.assert_trees_all_close(state.params, params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.ema.value[:, 0], ema["biased"], rtol=1e-5)
    np.testing.assert_allclose(state.ema.value[:, 1], ema["debiased"], rtol=1e-5)
  assert int(state.step) == len(batches)


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_every_method_follows_the_interface(name):
  chex.clear_trace_counter()  # AmplifiedLfF shares LfF's train_step function.
  _, _, method, images, labels = _setup(name)
  state = method.init(jax.random.key(1), {k: v[0] for k, v in method.hparam_grid.items()})
  batch = {"image": images[:6], "label": labels[:6], "index": np.arange(6, dtype=np.int32)}
  step = jax.jit(chex.assert_max_traces(method.train_step, n=1))  # Traced once, not per step.
  for _ in range(3):
    state, metrics = step(state, batch)
  assert int(state.step) == 3 and np.isfinite(metrics["loss"])
  predictions = method.predict(state, images)
  assert next(iter(predictions)) == "classifier"
  for logits in predictions.values():
    chex.assert_shape(logits, (NUM_EXAMPLES, NUM_CLASSES))
  if name == "amplified_lff":  # Its biased model is the frozen amplifier.
    np.testing.assert_allclose(predictions["biased"], _frozen_amplifier(images))


def test_jtt_upsamples_the_identification_models_errors_by_lambda():
  """JTT (Liu et al.): the error set is what the identification model (here the frozen
  function of `_setup`) misclassifies; each of its examples is drawn lambda times as often as
  the others; a step's loss is the batch's mean cross-entropy, as ERM's."""
  config, model, method, images, labels = _setup("jtt")
  errors = np.asarray(_frozen_amplifier(images)).argmax(-1) != labels
  assert 0 < errors.sum() < len(errors)
  np.testing.assert_array_equal(method.error_set, errors)
  np.testing.assert_array_equal(method.sampling_weights, np.where(errors, config.jtt.upweight, 1))
  assert method.example_weights is None
  state = method.init(jax.random.key(0), {})
  batch = {"image": images[:6], "label": labels[:6], "index": np.arange(6, dtype=np.int32)}
  logits = model.apply(state.params, method.to_float(batch["image"]))
  expected = np.mean(np.asarray(_ce(logits, batch["label"])))
  _, metrics = method.train_step(state, batch)
  np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
  config.jtt.upweight = 0.5
  with pytest.raises(InputError, match=r"jtt.upweight is 0.5; set it to a number >= 1"):
    methods.build(config, model, _train_set(labels, images), _frozen_amplifier)
  with pytest.raises(InputError, match=r"needs the identification model: .*config.jtt.identifier"):
    methods.build(config, model, _train_set(labels, images))


def test_disent_step_equals_the_papers_equations_on_two_models_with_numpy_ema():
  """DisEnt (Lee et al., Eqs. 1-4) against a re-implementation with one model per branch, each
  with its own Adam on its own loss: the intrinsic model takes W CE on [z_i, z_b] and, after
  the warm-up, on [z_i, z_b[perm]], with z_b a constant; the bias model takes lambda-weighted
  GCE on [z_i, z_b] and [z_i, z_b[perm]] (labels permuted), with z_i a constant. EMAs per
  example in NumPy; the learning rate halves every 2 steps from the swap on (step 1)."""
  config = base_config()
  config.method = "disent"
  config.model.hidden = (8,)
  config.disent.update(
      feature_dim=4, swap_after=1, lambda_dis_align=3.0, lambda_swap_align=5.0, lambda_swap=2.0
  )
  config.optimizer.update(learning_rate=0.01, decay_every=2, decay_factor=0.5, decay_begin=1)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, NUM_CLASSES, NUM_EXAMPLES).astype(np.int32)
  images = rng.integers(0, 256, (NUM_EXAMPLES, *SHAPE), dtype=np.uint8)
  model = models.create(config.model, NUM_CLASSES)
  method = methods.build(config, model, _train_set(labels, images))
  state = method.init(jax.random.key(0), {k: v[0] for k, v in method.hparam_grid.items()})
  step = jax.jit(method.train_step)
  encoder = models.create(config.model, 4)  # The paper's E: the network, 4 outputs, ReLU.
  features = lambda p, x: jax.nn.relu(encoder.apply(p["encoder"], x))
  head = lambda p, z: z @ p["head"]["params"]["weight"].T + p["head"]["params"]["bias"]

  def gce(logits, y):  # The LfF reference form: CE * p_y^q * q, p_y^q held constant.
    p_y = jax.nn.softmax(logits)[jnp.arange(len(y)), y]
    return _ce(logits, y) * jax.lax.stop_gradient(p_y**Q) * Q

  params = dict(state.params)
  opt = {name: optax.adam(0.01).init(p) for name, p in params.items()}
  ema = {name: np.zeros(NUM_EXAMPLES) for name in params}
  seen = {name: np.zeros(NUM_EXAMPLES, bool) for name in params}
  batches = [np.array([0, 5, 5, 7, 11, 23]), np.array([1, 2, 3, 5, 7, 7]), np.arange(6) * 4,
             np.arange(6) + 9]
  permutations = []
  for t, index in enumerate(batches):
    x, y = images[index].astype(np.float32) / 255, labels[index]
    z_i, z_b = features(params["intrinsic"], x), features(params["bias"], x)
    ce = {"intrinsic": _ce(head(params["intrinsic"], jnp.concatenate([z_i, z_b], 1)), y),
          "bias": _ce(head(params["bias"], jnp.concatenate([z_i, z_b], 1)), y)}
    normalized = {}
    for name in params:
      for i, loss in zip(index, np.asarray(ce[name])):  # One example at a time, in batch order.
        ema[name][i] = ALPHA * ema[name][i] + (1 - ALPHA) * loss if seen[name][i] else loss
        seen[name][i] = True
      class_max = np.array([ema[name][labels == c].max() for c in range(NUM_CLASSES)])
      normalized[name] = ema[name][index] / class_max[y]
    weight = normalized["bias"] / (normalized["bias"] + normalized["intrinsic"] + 1e-8)
    perm = np.asarray(method.swap_permutation(state, len(index)))
    assert sorted(perm) == list(range(len(index)))
    permutations.append(tuple(perm))
    swap = 2.0 if t > 1 else 0.0  # Eq. 4's lambda_swap after `swap_after` steps, 0 before.

    def intrinsic_loss(p):
      z = features(p, x)
      dis = jnp.mean(weight * _ce(head(p, jnp.concatenate([z, z_b], 1)), y))
      return dis + swap * jnp.mean(weight * _ce(head(p, jnp.concatenate([z, z_b[perm]], 1)), y))

    def bias_loss(p):
      z = features(p, x)
      dis = 3.0 * jnp.mean(gce(head(p, jnp.concatenate([z_i, z], 1)), y))
      return dis + swap * 5.0 * jnp.mean(gce(head(p, jnp.concatenate([z_i, z[perm]], 1)), y[perm]))

    expected_loss = intrinsic_loss(params["intrinsic"]) + bias_loss(params["bias"])
    learning_rate = 0.01 * 0.5 ** (max(0, t - 1) // 2)
    for name, loss_fn in (("intrinsic", intrinsic_loss), ("bias", bias_loss)):
      updates, opt[name] = optax.adam(learning_rate).update(
          jax.grad(loss_fn)(params[name]), opt[name], params[name]
      )
      params[name] = optax.apply_updates(params[name], updates)

    batch = {"image": images[index], "label": labels[index], "index": index.astype(np.int32)}
    state, metrics = step(state, batch)
    np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["weight_mean"], weight.mean(), rtol=1e-5)
    chex.assert_trees_all_close(state.params, params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.ema.value[:, 0], ema["bias"], rtol=1e-5)
    np.testing.assert_allclose(state.ema.value[:, 1], ema["intrinsic"], rtol=1e-5)
  assert len(set(permutations)) > 1  # A new swap each step.
  x = images.astype(np.float32) / 255
  z = jnp.concatenate([features(params["intrinsic"], x), features(params["bias"], x)], 1)
  predicted = method.predict(state, images)["classifier"]
  np.testing.assert_allclose(predicted, head(params["intrinsic"], z), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("q", 0.0, r"lff.q must be a number in \(0, 1\]"),
        ("q", (0.5, 1.5), r"lff.q must be a number in \(0, 1\] or a tuple"),
        ("q", (0.5, 0.5), r"lff.q must list distinct values"),
        ("q", "high", r"lff.q must be a number"),
        ("ema_alpha", 1.0, r"lff.ema_alpha must be a number in \[0, 1\)"),
        ("synthetic_weight", -1.0, r"lff.synthetic_weight is -1.0; set it to a weight >= 0"),
    ],
)
def test_lff_rejects_bad_hyperparameters(field, value, message):
  config = base_config()
  config.lff[field] = value
  model = models.create(config.model, NUM_CLASSES)
  with pytest.raises(InputError, match=message):
    methods.build(config, model, _train_set(np.zeros(4, np.int32)))


def test_unknown_model_is_rejected():
  config = base_config()
  config.model.name = "resnet1000"
  with pytest.raises(InputError, match=r"Unknown model 'resnet1000'.*--config.model.name"):
    models.create(config.model, NUM_CLASSES)


@pytest.mark.parametrize("bottleneck", [False, True])
def test_resnet_classifies_images_and_refuses_unknown_fields(bottleneck):
  fields = {"name": "resnet", "stage_sizes": (1, 1), "width": 4, "bottleneck": bottleneck}
  model = models.create(ml_collections.ConfigDict({**fields, "hidden": (9,)}), NUM_CLASSES)
  images = np.random.default_rng(0).random((3, 8, 8, 3), np.float32)
  params = model.init(jax.random.key(0), images)
  logits = model.apply(params, images)  # On CPU: convolutions as patch matmuls.
  chex.assert_shape(logits, (3, NUM_CLASSES))
  with_lax = models.create(ml_collections.ConfigDict({**fields, "patch_conv": False}), NUM_CLASSES)
  np.testing.assert_allclose(with_lax.apply(params, images), logits, rtol=1e-4, atol=1e-5)
  with pytest.raises(InputError, match=r"Unknown model field\(s\) \['widht'\].*'width'"):
    models.create(ml_collections.ConfigDict({**fields, "widht": 4}), NUM_CLASSES)


def test_simple_convnet_is_the_rebias_network_with_he_fan_out_kernels():
  model = models.create(ml_collections.ConfigDict({"name": "simple_convnet"}), 10)
  params = models.init_params(model, jax.random.key(0), (28, 28, 3))["params"]
  kernels = [params[f"Conv_{i}"]["kernel"] for i in range(4)]
  chex.assert_shape(kernels, [(7, 7, 3, 16), (7, 7, 16, 32), (7, 7, 32, 64), (7, 7, 64, 128)])
  for kernel in kernels[1:]:  # N(0, 2 / fan_out), fan_out = 7 * 7 * out channels.
    np.testing.assert_allclose(kernel.std(), (2 / (49 * kernel.shape[-1])) ** 0.5, rtol=0.05)
  chex.assert_shape(params["Dense_0"]["kernel"], (128, 10))
  images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 3)), jnp.float32)
  logits = model.apply({"params": params}, images)  # On CPU: convolutions as patch matmuls.
  chex.assert_shape(logits, (2, 10))
  lax_config = ml_collections.ConfigDict({"name": "simple_convnet", "patch_conv": False})
  with_lax = models.create(lax_config, 10).apply({"params": params}, images)
  np.testing.assert_allclose(with_lax, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size, stride", [(3, 1), (4, 1), (7, 1), (4, 2), (3, 2)])
def test_patch_convolution_equals_flax_convolution_with_its_gradients(size, stride):
  """layers.Conv as matmuls over patches and as lax.conv: nn.Conv's parameters and outputs
  (SimpleConvNet takes the patches on CPU)."""
  rng = np.random.default_rng(size)
  x = jnp.asarray(rng.normal(size=(2, 9, 8, 5)), jnp.float32)
  flax_conv = nn.Conv(6, (size, size), (stride, stride), kernel_init=layers.lecun_normal)
  params = flax_conv.init(jax.random.key(0), x)
  params["params"]["bias"] = jnp.asarray(rng.normal(size=6), jnp.float32)
  outputs, grads = {}, {}
  for patches in (False, True):
    module = layers.Conv(6, (size, size), stride, patches=patches)  # An int stride, as ResNet's.
    chex.assert_trees_all_equal_shapes(module.init(jax.random.key(0), x), params)
    loss = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
    outputs[patches] = module.apply(params, x)
    grads[patches] = jax.grad(loss, argnums=(0, 1))(params, x)
  flax_outputs = flax_conv.apply(params, x)
  np.testing.assert_allclose(outputs[True], flax_outputs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(outputs[False], flax_outputs, rtol=1e-6, atol=1e-6)
  chex.assert_trees_all_close(grads[True], grads[False], rtol=1e-4, atol=1e-5)


def test_optimizer_steps_the_learning_rate_down_and_adds_the_l2_gradient():
  """ReBias's schedule: PyTorch Adam with weight_decay (an L2 term in the gradient) and StepLR
  (the rate times 0.1 every `decay_every` steps), against Adam on g + l2 * params."""
  config = base_config()
  config.optimizer.update(l2=0.5, decay_every=2, decay_factor=0.1)
  tx = optimizer.create(config)
  params = {"w": jnp.array([1.0, -2.0])}
  state, reference = tx.init(params), optax.adam(1e-3)
  reference_state = reference.init(params)
  for step in range(5):
    grads = {"w": jnp.array([0.3, 0.1]) * (step + 1)}
    updates, state = tx.update(grads, state, params)
    expected, reference_state = reference.update(
        {"w": grads["w"] + 0.5 * params["w"]}, reference_state
    )
    np.testing.assert_allclose(updates["w"], expected["w"] * 0.1 ** (step // 2), rtol=1e-5)
    params = optax.apply_updates(params, updates)
  for field, value, message in [
      ("l2", -1.0, r"optimizer.l2 must be >= 0"),
      ("decay_every", -1, r"optimizer.decay_every must be an integer >= 0"),
      ("decay_factor", 0.0, r"optimizer.decay_factor must lie in \(0, 1\]"),
  ]:
    bad = config.copy_and_resolve_references()
    bad.optimizer[field] = value
    with pytest.raises(InputError, match=message):
      optimizer.create(bad)


def test_input_scaling_choices():
  config, model, _, images, _ = _setup("erm")
  config.input_scaling = "lff_reference"  # The LfF code's accidental double division by 255.
  method = methods.build(config, model, _train_set(np.zeros(4, np.int32)))
  np.testing.assert_allclose(method.to_float(images), images / 255.0**2, rtol=1e-6)
  config.input_scaling = "signed"  # ReBias's Normalize(0.5, 0.5) after ToTensor.
  method = methods.build(config, model, _train_set(np.zeros(4, np.int32)))
  np.testing.assert_allclose(method.to_float(images), (images / 255.0 - 0.5) / 0.5, atol=1e-6)
  config.input_scaling = "percent"
  with pytest.raises(InputError, match=r"Unknown input_scaling 'percent'.*lff_reference"):
    methods.build(config, model, _train_set(np.zeros(4, np.int32)))


@pytest.mark.parametrize("synthetic_in_biased", [True, False])
def test_lff_can_keep_synthetic_examples_out_of_the_biased_model(synthetic_in_biased):
  config, model, _, images, labels = _setup("lff")
  config.lff.synthetic_in_biased = synthetic_in_biased
  method = methods.build(config, model, _train_set(labels, images, num_synthetic=8))
  state = method.init(jax.random.key(1), {"q": Q, "ema_alpha": ALPHA})
  synthetic = np.arange(16, 24, dtype=np.int32)  # The last 8 examples.
  batch = {"image": images[synthetic], "label": labels[synthetic], "index": synthetic}
  new, _ = jax.jit(method.train_step)(state, batch)
  biased_moved = not all(
      np.array_equal(a, b)
      for a, b in zip(
          jax.tree.leaves(new.params["biased"]), jax.tree.leaves(state.params["biased"])
      )
  )
  assert biased_moved == synthetic_in_biased  # f_D learns from them either way:
  assert not np.array_equal(
      jax.tree.leaves(new.params["debiased"])[0], jax.tree.leaves(state.params["debiased"])[0]
  )


def test_lff_synthetic_weight_replaces_relative_difficulty_on_generated_examples_only():
  config, model, _, images, labels = _setup("lff")
  config.lff.synthetic_weight = 0.25
  method = methods.build(config, model, _train_set(labels, images, num_synthetic=8))
  state = method.init(jax.random.key(1), {"q": Q, "ema_alpha": ALPHA})
  step = jax.jit(method.train_step)
  weight_of = lambda index: float(
      step(state, {"image": images[index], "label": labels[index], "index": index})[1][
          "weight_mean"
      ]
  )
  assert weight_of(np.arange(16, 24, dtype=np.int32)) == pytest.approx(0.25, abs=1e-7)
  assert weight_of(np.arange(0, 8, dtype=np.int32)) != pytest.approx(0.25, abs=1e-3)


def test_jtt_trains_end_to_end_from_an_identification_run(tiny_config, tmp_path):
  identifier = tiny_config.copy_and_resolve_references()
  identifier.update(method="erm", num_steps=10)
  trainers.train_and_evaluate(identifier, str(tmp_path / "identifier"))
  tiny_config.method = "jtt"
  tiny_config.jtt.identifier = str(tmp_path / "identifier")
  results = trainers.train_and_evaluate(tiny_config, str(tmp_path / "jtt"))
  assert results["uses_training_bias_labels"] is False
  assert 0 <= results["test"]["classifier"]["unbiased_accuracy"] <= 1


@pytest.mark.parametrize("name", ["mlp", "simple_convnet"])
def test_bfloat16_compute_keeps_float32_parameters_outputs_and_gradients(name):
  fields = {"name": name, "hidden": (16,)} if name == "mlp" else {"name": name, "widths": (4, 8)}
  model_config = ml_collections.ConfigDict(fields)
  full, mixed = (models.create(model_config, 10, dtype) for dtype in ("float32", "bfloat16"))
  images = jax.random.uniform(jax.random.key(1), (6, 8, 8, 3))
  params = models.init_params(mixed, jax.random.key(0), (8, 8, 3))
  chex.assert_trees_all_equal(params, models.init_params(full, jax.random.key(0), (8, 8, 3)))
  assert "bf16[" in str(jax.make_jaxpr(mixed.apply)(params, images))  # Computes in bfloat16.
  logits = jax.jit(mixed.apply)(params, images)
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, jax.jit(full.apply)(params, images), rtol=0.05, atol=0.05)
  grads = jax.jit(jax.grad(lambda p: mixed.apply(p, images).sum()))(params)
  chex.assert_trees_all_equal_dtypes(grads, params)  # float32, for optax and the EMAs.
  encoder = mixed.clone(num_classes=4)  # DisEnt's encoder: the same network, other outputs.
  encoder_params = models.init_params(encoder, jax.random.key(0), (8, 8, 3))
  assert jax.eval_shape(encoder.apply, encoder_params, images).shape == (6, 4)
