"""Recipes: stage graphs of runs (`graph.Recipe`), chosen by `config.trainer` like a trainer;
and a command made of finished runs (`make_pairs`, not imported here)."""

from collections.abc import Callable
from typing import Any

import ml_collections

from jaxdebias import trainers
from jaxdebias.errors import InputError
from jaxdebias.recipes import bias_amplification, latent_debiasing

RECIPES: dict[str, Callable[[ml_collections.ConfigDict, str, str | None], dict[str, Any]]] = {
    bias_amplification.NAME: bias_amplification.run,
    latent_debiasing.NAME: latent_debiasing.run,
}


def run(
    config: ml_collections.ConfigDict, workdir: str, reuse_stages_from: str | None = None
) -> dict[str, Any]:
  """Runs what `config.trainer` names into `workdir`, a recipe or a single run's trainer;
  returns its results.json. reuse_stages_from: a recipe copies the finished stages of the same
  config from this other recipe workdir (`graph.Recipe`)."""
  if config.trainer in RECIPES:
    return RECIPES[config.trainer](config, workdir, reuse_stages_from)
  if config.trainer not in trainers.TRAINERS:
    known = sorted([*trainers.TRAINERS, *RECIPES])
    raise InputError(f"Unknown trainer {config.trainer!r}; set --config.trainer to one of {known}.")
  if reuse_stages_from:
    raise InputError(
        f"--reuse_stages_from is for recipes, and trainer {config.trainer!r} is a single run;"
        " leave the flag out."
    )
  return trainers.run(config, workdir)
