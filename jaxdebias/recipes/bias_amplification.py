r"""Synthetic bias amplification as one command, on any dataset the loader reads.

  python -m jaxdebias.main --config=configs/bias_amplification.py:data=colored_mnist,ratio=0.01 \
      --workdir=W

Stages, each a workdir under W (finished ones are reused, interrupted ones resume):
1. generator: a class-conditional DCGAN on the training images, its size and depth from the
   image shape. It assumes nothing about which factor is the bias (gan.tinted, a colour prior,
   is opt-in and recorded).
2. amplifier: ERM on generated images only, as many per class as the training split has on
   average; it never sees a real bias-conflicting example, so it reads the bias.
3. candidates/NAME: final-classifier candidates trained on the training split less a held-out
   part (`recipe.holdout_fraction` drawn at random with `recipe.holdout_seed`, or the dataset's
   own validation split where it has one), `num_seeds` seeds side by side: the fallbacks
   (`recipe.fallbacks`: ERM and LfF) and amplified_groups over `recipe.weight_decay` x
   `recipe.min_loss`.
4. selection: each candidate's members scored on the held-out part by their pseudo-group
   accuracy (`SELECTION_CRITERION`), no bias label read.
5. latent_generator, pairs, candidates/NAME_pairs (unless `recipe.synthetic_ratio` is 0): an
   unconditional GAN (gan.tinted, the opt-in colour prior, applies to it), latent de-biasing's
   pairs from it (`recipe.pairs`), their target read by the best amplified_groups candidate and
   their protected class by the amplifier (no bias label), and that candidate trained again
   with `recipe.synthetic_ratio` pair images per real one; selection_with_pairs scores it too.
   Pairs that cannot be made (a generator that never shows some class) are skipped, and said so.
6. The best amplified_groups candidate (mean over seeds) is chosen, unless a fallback scores
   higher: then that fallback is, and the output says so. final: the chosen candidate retrained
   on the whole training split, `num_seeds` seeds.
7. diagnostics, for evaluation only (they read bias labels): how well the amplifier's loss
   finds the conflicting training examples, how its pseudo-groups match the true groups, and
   every candidate's test metrics.
results.json: the final classifier's results (`final`), the selection, the diagnostics and
every stage's time.
"""

import math
from typing import Any

import ml_collections
import numpy as np

from jaxdebias import data, losses, metrics, models, runs
from jaxdebias.config import base_config
from jaxdebias.errors import InputError
from jaxdebias.latent import pairs
from jaxdebias.methods import amplified
from jaxdebias.recipes import make_pairs
from jaxdebias.recipes.graph import Recipe, say, stage_config
from jaxdebias.trainers import train_and_evaluate, train_gan

NAME = "bias_amplification"
SELECTION_CRITERION = (
    "pseudo-group accuracy on the held-out part of the training split: the mean accuracy over"
    " the non-empty groups (class, the amplifier's predicted class) of its examples, i.e. the"
    " unbiased accuracy with the amplifier's reading in place of the bias label; averaged over"
    " seeds"
)


def default_config() -> ml_collections.ConfigDict:
  """The recipe's fields: a run config (its data, model, optimizer, schedule are every
  classifier stage's) with the `recipe` section."""
  config = base_config()
  config.trainer = NAME
  config.method = "amplified_groups"
  config.input_scaling = "lff_reference"  # The LfF protocol every README number was made with.
  config.gan.update(generator_widths=None, discriminator_widths=None)  # From the image shape.
  config.recipe = ml_collections.ConfigDict(
      {
          # The held-out part of the training split that scores the candidates.
          "holdout_fraction": 0.1,
          "holdout_seed": 0,
          # The generator stage's schedule and seed (also the amplifier's seed).
          "gan_steps": 6000,
          "gan_batch_size": 64,
          "gan_eval_every": 500,
          "generator_seed": 0,
          # Generated images per class for the amplifier; 0: the training split's mean.
          "per_class": 0,
          # Latent de-biasing's pairs for the best amplified_groups candidate, this many
          # synthetic images per real one (the paper's about 2; 0: none), made as `pairs` says.
          "synthetic_ratio": 2.0,
          "pairs": pairs.default_config(),  # num_pairs 0: as many as synthetic_ratio needs.
          # The candidates: the fallbacks, and amplified_groups over this grid.
          "fallbacks": ("erm", "lff"),
          "weight_decay": (0.0, 0.1),
          "min_loss": (0.0, 9.2),
      }
  )
  config.recipe.pairs.num_pairs = 0
  return config


def candidates(config: ml_collections.ConfigDict) -> dict[str, dict[str, Any]]:
  """Candidate run name -> the changes to the recipe config that make it. The weight decay
  values of amplified_groups train side by side as members of one run per min_loss."""
  options = config.recipe
  found = {name: {"method": name} for name in options.fallbacks}
  for min_loss in options.min_loss:
    found[f"amplified_groups_ml{min_loss:g}"] = {
        "method": "amplified_groups",
        "optimizer.weight_decay": tuple(float(v) for v in options.weight_decay),
        "amplifier.min_loss": float(min_loss),
    }
  return found


# A swept hyperparameter of a member -> its config field.
HPARAM_FIELDS = {
    "weight_decay": "optimizer.weight_decay",
    "q": "lff.q",
    "ema_alpha": "lff.ema_alpha",
}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every stage (module doc) in `workdir`; returns the recipe's results.json."""
  _check(config)
  recipe = Recipe(config, workdir, default_config())
  if recipe.finished is not None:
    runs.print_results(recipe.finished["final"])
    return recipe.finished
  options = config.recipe
  dataset = runs.load_dataset(config.data)
  gan_dir = recipe.directory("generator")
  recipe.stage("generator", lambda d: train_gan(_gan_config(config, conditional=True), d))
  per_class = options.per_class or max(1, round(len(dataset.train.label) / dataset.num_classes))
  amplifier_dir = recipe.directory("amplifier")
  amplifier_results = recipe.stage(
      "amplifier",
      lambda d: train_and_evaluate(
          stage_config(
              config,
              method="erm",
              seed=options.generator_seed,
              num_seeds=1,
              **{
                  "optimizer.weight_decay": 0.0,
                  "data.generated_train.generator": str(gan_dir),
                  "data.generated_train.per_class": per_class,
              },
          ),
          d,
      ),
  )
  fit = {}
  if dataset.valid is None:  # Else the dataset's own validation split is held out.
    fit = {
        "data.valid_fraction": options.holdout_fraction,
        "data.valid_seed": options.holdout_seed,
    }
  shared = {**fit, "amplifier.workdir": str(amplifier_dir)}
  changes = candidates(config)
  train = lambda name: recipe.stage(
      f"candidates/{name}",
      lambda d: train_and_evaluate(stage_config(config, **shared, **changes[name]), d),
  )
  trained = {name: train(name) for name in changes}
  fit_data = stage_config(config, **fit).data
  select = lambda: _select(config, recipe, fit_data, amplifier_dir, trained)
  selection = recipe.computed("selection", select)
  best = selection["scores"][selection["best_recipe_candidate"]]
  pairs_report = {}
  if options.synthetic_ratio:
    needed = math.ceil(options.synthetic_ratio * len(dataset.train.label) / 2)
    pairs_options = config.recipe.pairs.copy_and_resolve_references()
    pairs_options.num_pairs = pairs_options.num_pairs or needed
    pairs_report = _pairs(config, recipe, amplifier_dir, best, trained, pairs_options)
  if pairs_report and "skipped" not in pairs_report:
    changes[f"{best['run']}_pairs"] = {
        **changes[best["run"]],
        **_hparam_changes(best["hparams"]),
        "data.added_pairs.path": str(recipe.directory("pairs") / "pairs.npz"),
        "data.added_pairs.ratio": options.synthetic_ratio,
    }
    trained[f"{best['run']}_pairs"] = train(f"{best['run']}_pairs")
    selection = recipe.computed("selection_with_pairs", select)
  _say_selection(selection)
  chosen = selection["chosen"]
  final_changes = {**changes[chosen["run"]], **_hparam_changes(chosen["hparams"])}
  final = recipe.stage(
      "final",
      lambda d: train_and_evaluate(
          stage_config(config, **{"amplifier.workdir": str(amplifier_dir)}, **final_changes), d
      ),
  )
  diagnostics = recipe.computed(
      "diagnostics", lambda: _diagnostics(config, dataset, amplifier_dir, trained)
  )
  results = recipe.finish(
      {
          "final": final,
          "selection": selection,
          "diagnostics": {
              "amplifier_test": amplifier_results["test"],
              "pairs": pairs_report,
              **diagnostics,
          },
          "priors": {"gan.tinted": bool(config.gan.tinted)},
      }
  )
  runs.print_results(final)
  return results


def _gan_config(config: ml_collections.ConfigDict, conditional: bool):
  """A generator stage's run config: class-conditional (the amplifier's) or not (the pairs'; it
  takes the opt-in tint prior, gan.tinted)."""
  options = config.recipe
  return stage_config(
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
  )


def _hparam_changes(hparams: dict[str, float]) -> dict[str, float]:
  """A member's swept values as config changes (a run of that member alone)."""
  return {HPARAM_FIELDS[k]: v for k, v in hparams.items()}


def _pairs(config, recipe: Recipe, amplifier_dir, best, trained, options) -> dict[str, Any]:
  """The pairs stages: an unconditional GAN, and pairs from it whose target is read by the best
  amplified_groups candidate (its first seed) and whose protected class by the amplifier (the
  bias as it reads it): no bias label. Returns their report ({'skipped': why} where none could
  be made); the pairs are in pairs/pairs.npz."""
  latent_dir = recipe.directory("latent_generator")
  recipe.stage("latent_generator", lambda d: train_gan(_gan_config(config, conditional=False), d))
  members = trained[best["run"]].get("members")
  member = None
  if members:
    member = next(i for i, m in enumerate(members) if m["hparams"] == best["hparams"])
  path = recipe.directory("pairs") / "pairs.npz"

  def write() -> dict[str, Any]:
    try:
      return make_pairs.write(
          str(latent_dir),
          str(recipe.directory(f"candidates/{best['run']}")),
          str(amplifier_dir),
          path,
          options,
          target_member=member,
      )
    except InputError as e:
      return {"skipped": str(e)}

  report = recipe.computed("pairs", write)
  if "skipped" in report:
    say(f"no pairs: {report['skipped']} Continuing without them.")
  return report


def _check(config: ml_collections.ConfigDict) -> None:
  options = config.recipe
  if not 0 < options.holdout_fraction < 1:
    raise InputError(
        f"recipe.holdout_fraction must lie in (0, 1), got {options.holdout_fraction}; set "
        "--config.recipe.holdout_fraction."
    )
  for name in options.fallbacks:
    if name not in ("erm", "lff"):
      raise InputError(
          f"recipe.fallbacks lists {name!r}; use methods that need no amplifier: erm, lff."
      )
  if not options.weight_decay or not options.min_loss:
    raise InputError(
        "recipe.weight_decay and recipe.min_loss must each list at least one value; set "
        "--config.recipe.weight_decay / --config.recipe.min_loss."
    )


def _member_predictions(workdir: str, results: dict, images: np.ndarray):
  """(member's hyperparameters, its predicted classes of `images`) for every member."""
  members = results.get("members")
  if not members:
    fn = runs.classifier_fn(workdir)
    return [({}, models.on_host(fn)(images).argmax(-1))]
  return [
      (m["hparams"], models.on_host(runs.classifier_fn(workdir, member=i))(images).argmax(-1))
      for i, m in enumerate(members)
  ]


def _select(config, recipe: Recipe, fit_data, amplifier_dir, trained) -> dict[str, Any]:
  """Scores every candidate on the held-out split (SELECTION_CRITERION) and chooses one.

  A candidate is a run and its swept hyperparameter values; its score the mean over seeds.
  """
  held = runs.load_dataset(fit_data).valid
  amplifier_logits = runs.load_classifier(str(amplifier_dir))(held.images)
  pseudo = amplified.pseudo_bias(amplifier_logits, held.label)  # No bias label here.
  num_classes = amplifier_logits.shape[-1]
  scores = {}
  for run_name, results in trained.items():
    directory = str(recipe.directory(f"candidates/{run_name}"))
    for hparams, predicted in _member_predictions(directory, results, held.images):
      total, correct = metrics.group_counts(
          predicted, held.label, pseudo, num_classes, num_classes
      )
      name = run_name + "".join(f", {k}={v:g}" for k, v in sorted(hparams.items()))
      entry = scores.setdefault(name, {"run": run_name, "hparams": hparams, "members": []})
      entry["members"].append(metrics.summarize(total, correct)["unbiased_accuracy"])
  for entry in scores.values():
    entry["mean"] = float(np.mean(entry["members"]))
  fallbacks = [n for n, e in scores.items() if e["run"] in config.recipe.fallbacks]
  best = lambda names: max(names, key=lambda n: scores[n]["mean"])
  recipe_best = best([n for n in scores if n not in fallbacks])
  chosen, fell_back = recipe_best, False
  if fallbacks and scores[best(fallbacks)]["mean"] > scores[recipe_best]["mean"]:
    chosen, fell_back = best(fallbacks), True
  return {
      "criterion": SELECTION_CRITERION,
      "held_out_examples": len(held.label),
      "scores": scores,
      "best_recipe_candidate": recipe_best,
      "chosen": {"name": chosen, **{k: scores[chosen][k] for k in ("run", "hparams")}},
      "fell_back": fell_back,
  }


def _say_selection(selection: dict[str, Any]) -> None:
  scores = selection["scores"]
  ranked = "; ".join(f"{n}: {100 * s['mean']:.2f}%" for n, s in scores.items())
  chosen = selection["chosen"]["name"]
  say(f"held-out pseudo-group accuracy: {ranked}")
  if selection["fell_back"]:
    say(
        f"the recipe is unlikely to help here: {selection['best_recipe_candidate']} scores"
        f" below {chosen} on the held-out part; falling back to {chosen}."
    )
  else:
    say(f"chosen: {chosen}")


def _diagnostics(config, dataset: data.BiasedDataset, amplifier_dir, trained) -> dict[str, Any]:
  """Evaluation only (bias labels): the amplifier on the real training split, and every
  candidate's test metrics (metrics.SEPARATION_DEFINITIONS, PSEUDO_GROUP_DEFINITIONS)."""
  train = dataset.train
  found = {"candidates_test": {n: r.get("test") or r.get("members") for n, r in trained.items()}}
  if (train.bias_label < 0).any() or len(np.unique(train.label != train.bias_label)) < 2:
    return found  # Unknown bias labels, or no conflicting example: nothing to measure.
  logits = runs.load_classifier(str(amplifier_dir))(train.images)
  ce = np.asarray(losses.cross_entropy(logits, train.label))
  found["amplifier_finds_conflicting"] = metrics.separation(ce, train.label, train.bias_label)
  found["pseudo_groups"] = {
      f"min_loss {m:g}": metrics.pseudo_group_quality(
          amplified.pseudo_bias(logits, train.label, min_loss=m), train.label, train.bias_label
      )
      for m in config.recipe.min_loss
  }
  found["definitions"] = {**metrics.SEPARATION_DEFINITIONS, **metrics.PSEUDO_GROUP_DEFINITIONS}
  return found
