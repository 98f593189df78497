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
Step 2, amplified_dro: online GroupDRO over the pseudo-groups (methods/group_dro.py:
group-balanced batches; `amplifier.dro_step_size` = its eta). With eta 0 every pseudo-group
weighs the same, as in amplified_groups at power 1 (there by loss weights on uniform batches).
No bias labels.
"""

from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdebias import losses, models
from jaxdebias.errors import InputError
from jaxdebias.methods.erm import ERM
from jaxdebias.methods.group_dro import GroupDRO
from jaxdebias.methods.interface import TrainSet
from jaxdebias.methods.lff import LfF

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


def pseudo_groups(config: ml_collections.ConfigDict, train: TrainSet, amplifier: Amplifier):
  """(N, 2): every training example's pseudo-group (class, `pseudo_bias`) from the amplifier
  (module doc, step 1); built to predict only (no images), every example in its class's group."""
  labels = np.asarray(train.labels)
  if train.images is None:
    bias = labels
  else:
    logits = models.on_host(amplifier)(train.images)
    bias = pseudo_bias(logits, labels, config.amplifier.groups, config.amplifier.min_loss)
  return np.stack([labels, bias], axis=1)


class AmplifiedGroups(ERM):
  """Group-balanced ERM over the amplifier's pseudo-groups (module doc)."""

  packable = False  # Its example weights are its training split's.

  def __init__(
      self, config: ml_collections.ConfigDict, model, train: TrainSet, amplifier: Amplifier
  ):
    if not config.amplifier.power >= 0:
      raise InputError(
          f"amplifier.power is {config.amplifier.power}; set it to a number >= 0 (1: balanced "
          "pseudo-groups, 0: plain ERM)."
      )
    super().__init__(config, model, train)
    self.pseudo_groups = pseudo_groups(config, train, amplifier)
    self.example_weights = group_balanced_weights(self.pseudo_groups, config.amplifier.power)


class AmplifiedGroupDRO(GroupDRO):
  """Online GroupDRO (methods/group_dro.py) over the amplifier's pseudo-groups (module doc)."""

  def __init__(
      self, config: ml_collections.ConfigDict, model, train: TrainSet, amplifier: Amplifier
  ):
    self.pseudo_groups = pseudo_groups(config, train, amplifier)
    step_size = config.amplifier.dro_step_size
    super().__init__(
        config, model, train, self.pseudo_groups, step_size, "amplifier.dro_step_size"
    )


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
