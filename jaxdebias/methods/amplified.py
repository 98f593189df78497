"""Synthetic bias amplification, two-step recipe (Ciranni et al., NeurIPS 2025): pseudo-groups
of the real training examples from a frozen bias amplifier, then group-balanced ERM
(amplified_groups) or GroupDRO (amplified_dro) over them.

Step 1 (when the method is built): the amplifier (`amplifier.workdir`, a classifier trained only
on a class-conditional generator's images, `data.generated`) labels every real training image.
It learned from generated, (almost) always bias-aligned images, where class and bias attribute
coincide, so its predicted class is a pseudo bias label. Pseudo-group (`amplifier.groups`):
- "prediction" (default): (class, the amplifier's predicted class), the analogue of the
  (class, bias attribute) groups; on Colored MNIST it puts 73-78% of the conflicting training
  examples in their true (class, colour) group ("right group" in
  results/bias_amplification.md);
- "correctness": (class, whether the amplifier is wrong), two groups per class.
A mistake counts only where the amplifier's cross-entropy on the class exceeds
`amplifier.min_loss` (nats; 0: every mistake): unsure mistakes are more often aligned examples
that the generator's images did not cover than conflicting ones.
Step 2, amplified_groups: cross-entropy with each example weighted by |its pseudo-group|^-power,
scaled to mean 1 (`amplifier.power`; 1: every non-empty pseudo-group weighs the same).
Step 2, amplified_dro: online GroupDRO over the pseudo-groups (Sagawa et al., ICLR 2020,
Algorithm 1): group weights q on the simplex, q_g <- q_g exp(eta L_g), and the loss
sum_g q_g L_g (`amplifier.dro_step_size` = eta). Batches are uniform, not group-balanced as in
Algorithm 1 (balanced sampling repeats the few conflicting examples until they are memorised),
so L_g is the importance-weighted estimate of group g's mean loss, sum over its batch examples
of loss N / (B |g|) (unbiased; 0 where the batch has none of it). With q uniform and eta 0 the
expected loss is amplified_groups' at power 1. No bias labels.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdebias import losses
from jaxdebias.errors import InputError
from jaxdebias.methods import common
from jaxdebias.methods.erm import ERM


def amplifier_fn(config: ml_collections.ConfigDict):
  """The frozen bias amplifier of `amplifier.workdir` (uint8 images -> logits, pure JAX)."""
  if not config.amplifier.workdir:
    raise InputError(
        f"method {config.method} needs a bias amplifier: set --config.amplifier.workdir to a "
        "finished classifier run trained on generated images (data.generated)."
    )
  from jaxdebias import train  # pylint: disable=g-import-not-at-top (train imports methods)

  return train.classifier_fn(config.amplifier.workdir)


def group_balanced_weights(groups: np.ndarray, power: float = 1.0) -> np.ndarray:
  """|group of i|^-power for every example i, scaled to mean 1; power 1: each non-empty group
  weighs the same, 0: every example alike."""
  _, inverse, counts = np.unique(groups, return_inverse=True, axis=0, return_counts=True)
  weights = counts[inverse.reshape(-1)].astype(np.float64) ** -power
  return (weights / weights.mean()).astype(np.float32)


def pseudo_bias(
    logits: np.ndarray, labels: np.ndarray, groups: str = "prediction", min_loss: float = 0.0
) -> np.ndarray:
  """The second coordinate of each example's pseudo-group from the amplifier's logits (N, C)
  (module doc): its predicted class where its mistake counts, else the class ("prediction");
  or whether its mistake counts ("correctness")."""
  if groups not in ("prediction", "correctness"):
    raise InputError(f"amplifier.groups is {groups!r}; set it to 'prediction' or 'correctness'.")
  if not min_loss >= 0:
    raise InputError(
        f"amplifier.min_loss is {min_loss}; set it to a loss >= 0 (0: every mistake of the "
        "amplifier counts)."
    )
  labels = np.asarray(labels)
  predicted = logits.argmax(-1)
  mistaken = (predicted != labels) & (np.asarray(losses.cross_entropy(logits, labels)) > min_loss)
  return np.where(mistaken, predicted, labels) if groups == "prediction" else mistaken


class PseudoGrouped(ERM):
  """ERM's model and optimizer, with the amplifier's pseudo-group of every training example
  (module doc, step 1) in `pseudo_groups` (N, 2); the subclasses weigh them (step 2)."""

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      model,
      train_labels: np.ndarray,
      num_classes: int,
      image_shape: tuple[int, ...],
      num_synthetic: int = 0,
      train_images: np.ndarray | None = None,
      batch_size: int = 1000,
  ):
    super().__init__(config, model, train_labels, num_classes, image_shape, num_synthetic)
    if train_images is None:
      raise InputError(f"method {config.method} scores the training images; none were given.")
    from jaxdebias import train  # pylint: disable=g-import-not-at-top (train imports methods)

    amplifier = config.amplifier
    logits = train.on_host(amplifier_fn(config), batch_size)(train_images)
    bias = pseudo_bias(logits, train_labels, amplifier.groups, amplifier.min_loss)
    self.pseudo_groups = np.stack([np.asarray(train_labels), bias], axis=1)


class AmplifiedGroups(PseudoGrouped):
  """Group-balanced ERM over the amplifier's pseudo-groups (module doc)."""

  def __init__(self, config: ml_collections.ConfigDict, *args, **kwargs):
    if not config.amplifier.power >= 0:
      raise InputError(
          f"amplifier.power is {config.amplifier.power}; set it to a number >= 0 (1: balanced "
          "pseudo-groups, 0: plain ERM)."
      )
    super().__init__(config, *args, **kwargs)
    self.example_weights = group_balanced_weights(self.pseudo_groups, config.amplifier.power)


@flax.struct.dataclass
class GroupDROState:
  step: jax.Array
  params: Any
  opt_state: Any
  group_weights: jax.Array  # (G,) q, on the simplex: the adversary's weight of each group.


class AmplifiedGroupDRO(PseudoGrouped):
  """Online GroupDRO over the amplifier's pseudo-groups (module doc), on uniform batches."""

  def __init__(self, config: ml_collections.ConfigDict, *args, **kwargs):
    self.step_size = config.amplifier.dro_step_size
    if not self.step_size >= 0:
      raise InputError(
          f"amplifier.dro_step_size is {self.step_size}; set it to a number >= 0 (0: the "
          "group weights stay uniform)."
      )
    super().__init__(config, *args, **kwargs)
    _, group_index, counts = np.unique(
        self.pseudo_groups, return_inverse=True, return_counts=True, axis=0
    )
    self.group_index = group_index.reshape(-1).astype(np.int32)
    self.num_groups = len(counts)
    # N / |group of i|: batch mean of loss * this over group g's examples estimates its mean loss.
    self.group_scale = (len(self.group_index) / counts[self.group_index]).astype(np.float32)

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]) -> GroupDROState:
    state = super().init(rng, hparams)
    return GroupDROState(
        step=state.step,
        params=state.params,
        opt_state=state.opt_state,
        group_weights=jnp.full((self.num_groups,), 1 / self.num_groups, jnp.float32),
    )

  def train_step(self, state: GroupDROState, batch):
    images, labels = self.to_float(batch["image"]), batch["label"]
    index = batch["index"]
    in_group = jax.nn.one_hot(jnp.asarray(self.group_index)[index], self.num_groups)
    scale = jnp.asarray(self.group_scale)[index] / len(index)

    def loss_fn(params):
      logits = self.model.apply(params, images)
      ce = losses.cross_entropy(logits, labels)
      group_loss = (ce * scale) @ in_group  # Module doc; 0 for groups absent from the batch.
      q = state.group_weights * jnp.exp(self.step_size * jax.lax.stop_gradient(group_loss))
      q = q / q.sum()
      return group_loss @ q, (logits, q)

    (loss, (logits, q)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        group_weights=q,
    )
    metrics = {
        "loss": loss,
        "accuracy": common.batch_accuracy(logits, labels),
        "max_group_weight": q.max(),
    }
    return state, metrics
