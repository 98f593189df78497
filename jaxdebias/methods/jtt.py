"""Just Train Twice (Liu et al., ICML 2021): ERM once for T steps (the identification model),
then ERM again with the first model's training errors upweighted by lambda.

The identification model is a finished classifier run (`jtt.identifier`: its workdir; train it
with method=erm and num_steps=T), handed in as a function (uint8 images -> logits) by the
caller. The error set is every training example it misclassifies. The paper upsamples the error
set lambda times; here batches are drawn with replacement, an error-set example lambda times as
likely as any other (data/sampler.py): the upsampled dataset's batches, up to drawing with
replacement. The paper's image settings: CelebA T = 1 epoch, lambda = 50; Waterbirds T = 60
epochs, lambda = 100. No bias labels.
"""

from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from jaxdebias import models
from jaxdebias.errors import InputError
from jaxdebias.methods.erm import ERM
from jaxdebias.methods.interface import TrainSet


def default_config() -> ml_collections.ConfigDict:
  """config.jtt: the identification run and the error set's weight lambda."""
  return ml_collections.ConfigDict(
      {"identifier": ml_collections.config_dict.placeholder(str), "upweight": 50.0}
  )


class JTT(ERM):
  """ERM with the identification model's training errors upsampled (module doc)."""

  packable = False  # Its draws follow its training split's errors.

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      model,
      train: TrainSet,
      identifier: Callable[[jax.Array], jax.Array],
  ):
    if not config.jtt.upweight >= 1:
      raise InputError(
          f"jtt.upweight is {config.jtt.upweight}; set it to a number >= 1 (the weight of the "
          "identification model's errors; 1 is plain ERM)."
      )
    super().__init__(config, model, train)
    if train.images is None:  # Built to predict only.
      self.error_set = np.zeros(len(train.labels), bool)
    else:
      logits = models.on_host(identifier)(train.images)
      self.error_set = logits.argmax(-1) != np.asarray(train.labels)
    self.sampling_weights = np.where(self.error_set, config.jtt.upweight, 1.0)
