"""Stages that more than one recipe runs: a generator, the bias amplifier, latent de-biasing's
pairs. Each takes the recipe (`graph.Recipe`), its config and the stage's inputs, and returns the
stage's workdir or report; the recipe config's `recipe` section holds the knobs named here."""

import math
import pathlib
from typing import Any

from etils import epath
import ml_collections

from jaxdebias import data, runs
from jaxdebias.latent import pairs as latent_pairs
from jaxdebias.recipes.graph import Recipe, say, stage_config
from jaxdebias.trainers import train_and_evaluate, train_gan


def gan_fields() -> dict[str, Any]:
  """The recipe knobs of a generator stage: its schedule and seed (the amplifier's seed too)."""
  return {"gan_steps": 6000, "gan_batch_size": 64, "gan_eval_every": 500, "generator_seed": 0}


def generator(recipe: Recipe, name: str, conditional: bool, **changes) -> epath.Path:
  """A GAN stage on the training images: class-conditional (the amplifier's: its samples of a
  class carry that class's bias; `changes` may condition it on the pseudo bias too) or not
  (latent de-biasing's; it takes the opt-in tint prior, gan.tinted). Returns its workdir."""
  config, options = recipe.config, recipe.config.recipe
  gan_config = stage_config(
      config,
      trainer="gan",
      seed=options.generator_seed,
      num_seeds=1,
      batch_size=options.gan_batch_size,
      num_steps=options.gan_steps,
      eval_every=options.gan_eval_every,
      checkpoint_every=options.gan_eval_every,
      keep_checkpoints=1,
      **{"gan.conditional": conditional, "gan.tinted": bool(config.gan.tinted and not conditional)},
      **changes,
  )
  recipe.train(name, train_gan, gan_config)
  return recipe.directory(name)


def amplifier(
    recipe: Recipe, dataset: data.BiasedDataset, generator_dir: epath.Path
) -> tuple[epath.Path, dict[str, Any]]:
  """The bias amplifier stage: ERM on images of the class-conditional generator only
  (`recipe.per_class` per class; 0: the training split's mean), never on a real one, so it
  reads whatever the classes' images share: the bias. Returns (its workdir, its results)."""
  config, options = recipe.config, recipe.config.recipe
  per_class = amplifier_per_class(config, dataset)
  amplifier_config = stage_config(
      config,
      method="erm",
      seed=options.generator_seed,
      num_seeds=1,
      **{
          "optimizer.weight_decay": 0.0,
          "data.generated_train.generator": str(generator_dir),
          "data.generated_train.per_class": per_class,
      },
  )
  results = recipe.train("amplifier", train_and_evaluate, amplifier_config)
  return recipe.directory("amplifier"), results


def amplifier_per_class(config: ml_collections.ConfigDict, dataset: data.BiasedDataset) -> int:
  """Generated images per class the amplifier trains on: `recipe.per_class`, or with 0 the
  training split's mean."""
  num_train = len(dataset.train.label)
  return config.recipe.per_class or max(1, round(num_train / dataset.num_classes))


def pairs_options(config: ml_collections.ConfigDict, num_train: int) -> ml_collections.ConfigDict:
  """`recipe.pairs` with num_pairs 0 resolved: as many pairs as `recipe.synthetic_ratio`
  synthetic images per real one of the `num_train` training examples need."""
  options = config.recipe.pairs.copy_and_resolve_references()
  needed = math.ceil(config.recipe.synthetic_ratio * num_train / 2)
  options.num_pairs = options.num_pairs or needed
  return options


def pairs(
    recipe: Recipe,
    generator_dir: epath.Path,
    target_dir: epath.Path,
    protected_dir: epath.Path,
    options: ml_collections.ConfigDict,
    target_member: int | None = None,
) -> dict[str, Any]:
  """The pairs stage: latent de-biasing's pairs (`options`: `latent.pairs.default_config`'s
  fields) from the generator, their target read by one classifier run (`target_member` of it)
  and their protected class by another. Returns the report, or {'skipped': why} where no pairs
  can be made (a generator that never shows some protected class), said so; the pairs are in
  pairs/pairs.npz."""
  path = recipe.directory("pairs") / "pairs.npz"

  def write() -> dict[str, Any]:
    try:
      return write_pairs(
          str(generator_dir), str(target_dir), str(protected_dir), path, options, target_member
      )
    except latent_pairs.UnreachableClasses as e:
      return {"skipped": str(e)}

  report = recipe.computed("pairs", write)
  if "skipped" in report:
    say(f"no pairs: {report['skipped']} Continuing without them.")
  return report


def with_pairs(recipe: Recipe) -> dict[str, Any]:
  """Config changes that add the pairs stage's pairs, `recipe.synthetic_ratio` per real image."""
  return {
      "data.added_pairs.path": str(recipe.directory("pairs") / "pairs.npz"),
      "data.added_pairs.ratio": recipe.config.recipe.synthetic_ratio,
  }


def write_pairs(
    generator_dir: str,
    target_dir: str,
    protected_dir: str,
    out: pathlib.Path,
    options: ml_collections.ConfigDict,
    target_member: int | None = None,
) -> dict[str, Any]:
  """Makes the pairs (`options`: `pairs.default_config` fields) and writes them to `out`;
  returns the report. target_member: which member of the target run labels (if several)."""
  gen = runs.load_generator(generator_dir, options.latent_space)
  target = runs.load_labeller(target_dir, target_member)
  protected = runs.load_labeller(protected_dir)
  arrays, report = latent_pairs.make_pairs_with(gen, target, protected, options)
  latent_pairs.save(pathlib.Path(out), arrays, report)
  return report
