"""Synthetic bias amplification (Ciranni et al., NeurIPS 2025): methods steered by a frozen bias
amplifier, a classifier trained only on a class-conditional generator's images
(`data.generated_train`), handed in as a function (uint8 images -> logits) by the caller, who
loads it from `amplifier.workdir`.

End-to-end recipe, amplified_lff: LfF with the amplifier in place of the GCE-trained f_B.

Two-step recipe, amplified_groups and amplified_dro: pseudo-groups of the real training
examples from the amplifier, then group-balanced ERM or GroupDRO over them.
Step 1 (when the method is built): the amplifier labels every real training image.
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

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdebias import losses, models
from jaxdebias.errors import InputError
from jaxdebias.methods.erm import ERM
from jaxdebias.methods.interface import TrainSet
from jaxdebias.methods.lff import LfF
from jaxdebias.metrics import batch_accuracy

Amplifier = Callable[[jax.Array], jax.Array]  # uint8 images (B, H, W, C) -> logits (B, classes)


def default_config() -> ml_collections.ConfigDict:
  """config.amplifier: where the amplifier run is and how each method reads it."""
  return ml_collections.ConfigDict(
      {
          # A finished classifier run on generated images (data.generated_train).
          "workdir": ml_collections.config_dict.placeholder(str),
          # amplified_groups, amplified_dro (module doc): pseudo-group = (class, "prediction":
          # the amplifier's predicted class | "correctness": whether it is wrong); a mistake
          # counts only where its cross-entropy on the class exceeds min_loss (nats).
          "groups": "prediction",
          "min_loss": 0.0,
          # Example weight |pseudo-group|^-power (normalised): 1 balances the groups, 0 is ERM.
          "power": 1.0,
          # amplified_dro: GroupDRO's step size eta of the group weights (Sagawa et al.: 0.01).
          "dro_step_size": 0.01,
          # amplified_lff: the amplifier's logits are divided by this before its cross-entropy
          # enters W; > 1 softens a confident amplifier, whose near-zero loss on the aligned
          # examples would leave them no weight.
          "temperature": 1.0,
      }
  )


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
      train: TrainSet,
      amplifier: Amplifier,
      batch_size: int = 1000,
  ):
    super().__init__(config, model, train)
    labels = np.asarray(train.labels)
    if train.images is None:  # Built to predict only: every example in its class's group.
      bias = labels
    else:
      logits = models.on_host(amplifier, batch_size)(train.images)
      options = config.amplifier
      bias = pseudo_bias(logits, labels, options.groups, options.min_loss)
    self.pseudo_groups = np.stack([labels, bias], axis=1)


class AmplifiedGroups(PseudoGrouped):
  """Group-balanced ERM over the amplifier's pseudo-groups (module doc)."""

  def __init__(self, config: ml_collections.ConfigDict, *args):
    if not config.amplifier.power >= 0:
      raise InputError(
          f"amplifier.power is {config.amplifier.power}; set it to a number >= 0 (1: balanced "
          "pseudo-groups, 0: plain ERM)."
      )
    super().__init__(config, *args)
    self.example_weights = group_balanced_weights(self.pseudo_groups, config.amplifier.power)


@flax.struct.dataclass
class GroupDROState:
  step: jax.Array
  params: Any
  opt_state: Any
  group_weights: jax.Array  # (G,) q, on the simplex: the adversary's weight of each group.


class AmplifiedGroupDRO(PseudoGrouped):
  """Online GroupDRO over the amplifier's pseudo-groups (module doc), on uniform batches."""

  sized_by_images = True  # Its state holds a weight per non-empty pseudo-group.

  def __init__(self, config: ml_collections.ConfigDict, *args):
    self.step_size = config.amplifier.dro_step_size
    if not self.step_size >= 0:
      raise InputError(
          f"amplifier.dro_step_size is {self.step_size}; set it to a number >= 0 (0: the "
          "group weights stay uniform)."
      )
    super().__init__(config, *args)
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
        "accuracy": batch_accuracy(logits, labels),
        "max_group_weight": q.max(),
    }
    return state, metrics


class AmplifiedLfF(LfF):
  """Synthetic bias amplification, end-to-end recipe (Ciranni et al., NeurIPS 2025): LfF's f_D,
  with a frozen bias amplifier in place of the GCE-trained f_B.

  The amplifier carries the dataset's bias without having seen a real bias-conflicting example
  (module doc). W, the per-example EMAs and their class-wise normalisation are LfF's, with the
  amplifier's logits divided by `amplifier.temperature`; `lff.q` is unused.
  """

  def __init__(
      self, config: ml_collections.ConfigDict, model, train: TrainSet, amplifier: Amplifier
  ):
    super().__init__(config, model, train)
    self.temperature = config.amplifier.temperature
    if not self.temperature > 0:
      raise InputError(
          f"amplifier.temperature is {self.temperature}; set it to a number > 0 (1: the "
          "amplifier's own logits)."
      )
    self.amplifier = amplifier
    del self.hparam_grid["q"]

  def init_params(self, rng: jax.Array) -> dict[str, Any]:
    return {"debiased": models.init_params(self.model, rng, self.image_shape)}

  def biased_logits(self, params, raw_images, images):
    """The frozen amplifier's logits over the temperature (it scales its inputs as it was
    trained)."""
    return jax.lax.stop_gradient(self.amplifier(raw_images)) / self.temperature
