"""Trainers, chosen by `config.trainer`: the classifier trainer and the GAN trainer, both on the
one shared loop (`loop.py`)."""

from collections.abc import Callable
from typing import Any

import ml_collections

from jaxdebias.errors import InputError
from jaxdebias.trainers.classifier import train_and_evaluate
from jaxdebias.trainers.gan import train_gan
from jaxdebias.trainers.pack import train_packed

TRAINERS: dict[str, Callable[[ml_collections.ConfigDict, str], dict[str, Any]]] = {
    "classifier": train_and_evaluate,
    "gan": train_gan,
}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains what `config.trainer` names into `workdir`; returns its results.json."""
  if config.trainer not in TRAINERS:
    raise InputError(
        f"Unknown trainer {config.trainer!r}; set --config.trainer to one of {sorted(TRAINERS)}."
    )
  return TRAINERS[config.trainer](config, workdir)
