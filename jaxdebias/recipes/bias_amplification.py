r"""Synthetic bias amplification as one command, on any dataset the loader reads.

  python -m jaxdebias.main --config=configs/bias_amplification.py:data=colored_mnist,ratio=0.01 \
      --workdir=W

Stages, each a workdir under W (finished ones are reused, interrupted ones resume):
1. generator: a class-conditional DCGAN on the training images less the held-out part of
   stage 3 (no stage before the selection sees it), its size and depth from the image shape.
   It assumes nothing about which factor is the bias (gan.tinted, a colour prior, is opt-in
   and recorded).
2. amplifier: ERM on generated images only, as many per class as the training split has on
   average; it never sees a real bias-conflicting example, so it reads the bias.
3. candidates/NAME: final-classifier candidates trained on the training split less a held-out
   part (`recipe.holdout_fraction` drawn at random with `recipe.holdout_seed`, or the dataset's
   own validation split where it has one), `num_seeds` seeds side by side: the fallbacks
   (`recipe.fallbacks`: ERM and LfF) and amplified_groups over `recipe.weight_decay` x
   `recipe.min_loss`. A min_loss under which the amplifier flags the same training examples
   as under an earlier one would train the same run again: it is skipped, and stage flagged
   (before the candidates, no bias label) says so and how many each flags.
4. selection: each candidate's members scored on the held-out part by their pseudo-group
   accuracy (`SELECTION_CRITERION`), no bias label read, and one chosen by `SELECTION_RULE`.
   A held-out part of the training split is as biased as the rest, so its scores rest on the
   few examples the amplifier reads as conflicting (about 6 of 6,000 on Biased MNIST at rho
   0.999, 19 at 0.997), and the highest of several such noisy scores overfits them: the
   one-standard-error rule takes the most regularised candidate the held-out part cannot tell
   apart from the best.
5. Pairs that break the bias, and the chosen amplified_groups candidate trained again with
   `recipe.synthetic_ratio` pair images per real one (unless it is 0):
   - by default, group_generator: a GAN conditioned on (class, the amplifier's pseudo bias at
     that candidate's min_loss), the pseudo-conflicting examples 30% of its batches
     (gan.pseudo_bias, gan.pseudo_conflicting_share); pairs G(z, y, b), G(z, y, b') for every
     group (`latent.pairs.conditioned_pairs`): the groups the data lacks, knowing only what the
     amplifier reads;
   - with the opt-in colour prior gan.tinted, latent_generator: a tinted unconditional GAN, and
     latent de-biasing's pairs from it (`recipe.pairs`), their target read by that candidate
     and their protected class by the amplifier.
   Then pairs, candidates/NAME_pairs (that candidate's min_loss, every `recipe.weight_decay`
   side by side), and selection_with_pairs scores them too: the pairs are kept unless the
   held-out part shows them worse by more than one standard error (a held-out score cannot see
   much of what pairs add at tiny ratios: at Colored MNIST 0.5% it ranked them level, 1 point
   below, while on the test they added 10), then the rule picks the weight decay among that
   side's candidates, since the pairs change which decay fits best. Pairs that cannot be made
   (a generator that never shows some class) are skipped, and said so.
6. The rule's amplified_groups candidate is chosen, unless a fallback scores above every
   amplified_groups candidate: then that fallback is, and the output says so. The output also
   says how many held-out examples the amplifier reads as conflicting and the best score's
   standard error: how far the choice can be trusted. final: the chosen candidate retrained
   on the whole training split, `num_seeds` seeds.
7. diagnostics, for evaluation only (they read bias labels): how well the amplifier's loss
   finds the conflicting training examples, how its pseudo-groups match the true groups, and
   every candidate's test metrics.
results.json: the final classifier's results (`final`), the selection, the diagnostics and
every stage's time.
"""

from collections.abc import Callable
import functools
from typing import Any

import ml_collections
import numpy as np

from jaxdebias import data, losses, metrics, models, runs
from jaxdebias.config import base_config
from jaxdebias.errors import InputError
from jaxdebias.latent import pairs
from jaxdebias.methods import amplified
from jaxdebias.recipes import stages
from jaxdebias.recipes.graph import Recipe, say, stage_config
from jaxdebias.trainers import loop, train_and_evaluate

NAME = "bias_amplification"
SELECTION_CRITERION = (
    "pseudo-group accuracy on the held-out part of the training split: the mean accuracy over"
    " the non-empty groups (class, the amplifier's predicted class) of its examples, i.e. the"
    " unbiased accuracy with the amplifier's reading in place of the bias label; averaged over"
    " seeds"
)
NUM_RESAMPLES = 1000
SELECTION_RULE = (
    "where pairs were made, first whether to keep them: they are kept unless the best"
    " candidate without them scores more than one standard error above the best with them"
    " (pairs, data that breaks the bias, count as the more regularised); then, among that"
    " side's amplified_groups candidates, the most regularised one (the largest weight decay;"
    " ties: the higher score) whose score is within one standard error of that side's best"
    " (the one-standard-error rule; a standard error is that of a candidate's score over"
    f" {NUM_RESAMPLES} bootstrap resamples of the held-out part); a fallback instead when it"
    " scores above every amplified_groups candidate"
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
          # The generator stages' schedule and seed (also the amplifier's seed).
          **stages.gan_fields(),
          # Generated images per class for the amplifier; 0: the training split's mean.
          "per_class": 0,
          # Latent de-biasing's pairs for the chosen amplified_groups candidate, this many
          # synthetic images per real one (the paper's about 2; 0: none), made as `pairs` says.
          "synthetic_ratio": 2.0,
          "pairs": pairs.default_config(),  # num_pairs 0: as many as synthetic_ratio needs.
          # The candidates: the fallbacks, and amplified_groups over this grid.
          "fallbacks": ("erm", "lff"),
          "weight_decay": (0.0, 0.1, 0.3),
          # Every mistake of the amplifier. Earlier grids also had 9.2, a value first picked by
          # looking at test accuracy; no measured cell chose it, so it is no longer a default.
          "min_loss": (0.0,),
      }
  )
  config.recipe.pairs.num_pairs = 0
  return config


def candidates(config: ml_collections.ConfigDict, min_losses) -> dict[str, dict[str, Any]]:
  """Candidate run name -> the changes to the recipe config that make it. The weight decay
  values of amplified_groups train side by side as members of one run per min_loss (of
  `min_losses`)."""
  options = config.recipe
  found = {name: {"method": name} for name in options.fallbacks}
  for min_loss in min_losses:
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


@runs.locked
def run(
    config: ml_collections.ConfigDict, workdir: str, reuse_stages_from: str | None = None
) -> dict[str, Any]:
  """Every stage (module doc) in `workdir`, copying the finished stages of the same config from
  `reuse_stages_from` (`graph.Recipe`); returns the recipe's results.json."""
  _check(config)
  dataset = runs.load_dataset(config.data)  # Bad data stops the recipe before it writes.
  _check_data(config, dataset)
  recipe = Recipe(config, workdir, default_config(), reuse_stages_from)
  if recipe.finished is not None:
    runs.print_results(recipe.finished["final"])
    return recipe.finished
  options = config.recipe
  fit = {}
  if dataset.valid is None:  # Else the dataset's own validation split is held out.
    fit = {
        "data.valid_fraction": options.holdout_fraction,
        "data.valid_seed": options.holdout_seed,
    }
  # No stage before the selection sees a held-out example, the generators included: the
  # held-out scores rest on the few it reads as conflicting.
  gan_dir = stages.generator(recipe, "generator", conditional=True, **fit)
  amplifier_dir, amplifier_results = stages.amplifier(recipe, dataset, gan_dir)
  shared = {**fit, "amplifier.workdir": str(amplifier_dir)}
  fit_data = stage_config(config, **fit).data
  flagged = recipe.computed("flagged", lambda: _flagged(config, fit_data, amplifier_dir))
  _say_flagged(flagged)
  changes = candidates(config, flagged["distinct_min_loss"])
  train = lambda name: recipe.train(
      f"candidates/{name}", train_and_evaluate, stage_config(config, **shared, **changes[name])
  )
  trained = {name: train(name) for name in changes}
  select = lambda pairs_run=None: _select(
      config, recipe, fit_data, amplifier_dir, trained, pairs_run
  )
  selection = _checked(recipe.computed("selection", select))
  best = selection["scores"][selection["recipe_choice"]]
  pairs_report = {}
  if options.synthetic_ratio:
    min_loss = changes[best["run"]].get("amplifier.min_loss", 0.0)
    pairs_report = _pairs(
        recipe, amplifier_dir, best, trained, min_loss, len(dataset.train.label), fit
    )
  if pairs_report and "skipped" not in pairs_report:
    # Its min_loss, every weight decay side by side: the pairs change which decay fits best.
    pairs_run = f"{best['run']}_pairs"
    changes[pairs_run] = {**changes[best["run"]], **stages.with_pairs(recipe)}
    trained[pairs_run] = train(pairs_run)
    selection = _checked(recipe.computed("selection_with_pairs", lambda: select(pairs_run)))
  _say_selection(selection)
  chosen = selection["chosen"]
  final_changes = {**changes[chosen["run"]], **_hparam_changes(chosen["hparams"])}
  final = recipe.train(
      "final",
      train_and_evaluate,
      stage_config(config, **{"amplifier.workdir": str(amplifier_dir)}, **final_changes),
  )
  diagnostics = recipe.computed(
      "diagnostics", lambda: _diagnostics(config, dataset, amplifier_dir, trained)
  )
  results = recipe.finish(
      {
          "final": final,
          "selection": selection,
          "flagged": flagged,
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


def candidate_name(run_name: str, hparams: dict[str, float]) -> str:
  """A candidate's name in the selection: its run, then its member's swept values."""
  return run_name + "".join(f", {k}={v:g}" for k, v in sorted(hparams.items()))


def _hparam_changes(hparams: dict[str, float]) -> dict[str, float]:
  """A member's swept values as config changes (a run of that member alone)."""
  return {HPARAM_FIELDS[k]: v for k, v in hparams.items()}


def _pairs(
    recipe: Recipe, amplifier_dir, best, trained, min_loss: float, num_train: int, fit: dict
) -> dict[str, Any]:
  """The pairs stages (module doc, 5), their labellers the chosen amplified_groups candidate
  (the member of its hyperparameters) for the class and the amplifier for the bias: no bias
  label; the generator, like every stage before the selection, trains without the held-out
  part (`fit`: its config changes). Returns their report (`stages.pairs`)."""
  if recipe.config.gan.tinted:
    generator_dir = stages.generator(recipe, "latent_generator", conditional=False, **fit)
  else:
    pseudo_bias = {
        "gan.pseudo_bias": True,
        "amplifier.workdir": str(amplifier_dir),
        "amplifier.min_loss": min_loss,
    }
    generator_dir = stages.generator(
        recipe, "group_generator", conditional=True, **pseudo_bias, **fit
    )
  members = trained[best["run"]].get("members")
  member = None
  if members:
    member = next(i for i, m in enumerate(members) if m["hparams"] == best["hparams"])
  return stages.pairs(
      recipe,
      generator_dir,
      recipe.directory(f"candidates/{best['run']}"),
      amplifier_dir,
      stages.pairs_options(recipe.config, num_train),
      target_member=member,
  )


def _check(config: ml_collections.ConfigDict) -> None:
  loop.check_schedule(config)
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


def _check_data(config: ml_collections.ConfigDict, dataset: data.BiasedDataset) -> None:
  """Refuses, before any stage trains, data the stages cannot run on: a held-out part of no
  example, a class of no training example outside it (the generator would learn nothing for
  it, and the amplifier and the pairs would read and make images of a class that is not
  there), or fewer examples than a batch of the GANs or the classifiers (the amplifier's too)."""
  options, fit_labels = config.recipe, dataset.train.label
  if dataset.valid is None:
    held = data.transforms.split_off_rows(
        len(fit_labels), options.holdout_fraction, options.holdout_seed
    )
    if not held.any():
      raise InputError(
          f"recipe.holdout_fraction {options.holdout_fraction} of {dataset.name}'s"
          f" {len(fit_labels)} training examples holds out none; raise"
          " --config.recipe.holdout_fraction."
      )
    fit_labels = fit_labels[~held]
  missing = np.setdiff1d(np.arange(dataset.num_classes), fit_labels)
  if missing.size:
    raise InputError(
        f"{dataset.name}'s training split, less its held-out part, has no example of"
        f" {missing.size} of its {dataset.num_classes} classes (0..{dataset.num_classes - 1};"
        f" first missing: {missing[0]}); number the classes with no gap (np.unique(labels,"
        " return_inverse=True)) and give each a few training examples."
    )
  outside = "training examples outside the held-out part"
  batches = [  # (examples a stage trains on, what they are, its batch size, the fix)
      (len(fit_labels), outside, config.batch_size, "lower --config.batch_size"),
      (len(fit_labels), outside, options.gan_batch_size, "lower --config.recipe.gan_batch_size"),
      (
          stages.amplifier_per_class(config, dataset) * dataset.num_classes,
          "generated images for the amplifier",
          config.batch_size,
          "raise --config.recipe.per_class or lower --config.batch_size",
      ),
  ]
  for num_examples, what, size, fix in batches:
    if size > num_examples:
      raise InputError(
          f"{dataset.name} gives {num_examples} {what}, fewer than a batch of {size}; {fix}."
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


def _flagged(config, fit_data, amplifier_dir) -> dict[str, Any]:
  """How many of the candidates' training examples the amplifier flags as conflicting under
  each `recipe.min_loss`, and the values that flag the same examples as an earlier one (their
  amplified_groups run would be that one's again). No bias label."""
  train = runs.load_dataset(fit_data).train
  logits = runs.load_classifier(str(amplifier_dir))(train.images)
  counts, same_as, distinct = {}, {}, {}
  for min_loss in config.recipe.min_loss:  # The same flags make the same pseudo-groups.
    flags = np.asarray(amplified.pseudo_bias(logits, train.label, "correctness", min_loss))
    counts[f"{min_loss:g}"] = int(flags.sum())
    twin = next((m for m, f in distinct.items() if np.array_equal(f, flags)), None)
    if twin is None:
      distinct[min_loss] = flags
    else:
      same_as[f"{min_loss:g}"] = f"{twin:g}"
  return {
      "training_examples": len(train.label),
      "by_min_loss": counts,
      "same_as": same_as,
      "distinct_min_loss": [float(m) for m in distinct],
  }


def _say_flagged(flagged: dict[str, Any]) -> None:
  counts = ", ".join(f"min_loss {m}: {n}" for m, n in flagged["by_min_loss"].items())
  say(
      f"training examples the amplifier reads as conflicting, of {flagged['training_examples']}:"
      f" {counts}"
  )
  for min_loss, twin in flagged["same_as"].items():
    say(f"min_loss {min_loss} flags the same examples as min_loss {twin}: trained once, as {twin}")


def _select(
    config, recipe: Recipe, fit_data, amplifier_dir, trained, pairs_run: str | None
) -> dict[str, Any]:
  """Scores every candidate on the held-out split (SELECTION_CRITERION) and chooses one
  (SELECTION_RULE), the candidates of `pairs_run` (if any) those trained with pairs.

  A candidate is a run and its swept hyperparameter values; its score the mean over seeds.
  """
  held = runs.load_dataset(fit_data).valid
  amplifier_logits = runs.load_classifier(str(amplifier_dir))(held.images)
  pseudo = np.asarray(amplified.pseudo_bias(amplifier_logits, held.label))  # No bias label.
  num_classes = amplifier_logits.shape[-1]
  scores, hits = {}, {}
  for run_name, results in trained.items():
    directory = str(recipe.directory(f"candidates/{run_name}"))
    for hparams, predicted in _member_predictions(directory, results, held.images):
      total, correct = metrics.group_counts(
          predicted, held.label, pseudo, num_classes, num_classes
      )
      name = candidate_name(run_name, hparams)
      entry = scores.setdefault(name, {"run": run_name, "hparams": hparams, "members": []})
      entry["members"].append(metrics.summarize(total, correct)["unbiased_accuracy"])
      hits.setdefault(name, []).append(np.asarray(predicted) == held.label)
  for entry in scores.values():
    entry["mean"] = float(np.mean(entry["members"]))
  fallbacks = [n for n, e in scores.items() if e["run"] in config.recipe.fallbacks]

  def standard_error(name: str) -> float:
    """Of the candidate's mean-over-seeds score, over resamples of the held-out part (its
    models fixed: the held-out part's sampling error, not the seeds')."""
    resampled = metrics.bootstrap_unbiased_accuracy(
        hits[name],
        held.label,
        pseudo,
        num_classes,
        num_classes,
        num_resamples=NUM_RESAMPLES,
        seed=config.recipe.holdout_seed,
    )
    return float(np.std(resampled.mean(0)))

  with_pairs = [n for n, e in scores.items() if e["run"] == pairs_run]
  rule = choose(scores, fallbacks, standard_error, with_pairs)
  chosen = rule["chosen"]
  return {
      "criterion": SELECTION_CRITERION,
      "rule": SELECTION_RULE,
      "held_out_examples": len(held.label),
      "held_out_flagged": int((pseudo != np.asarray(held.label)).sum()),
      "scores": scores,
      **rule,
      "chosen": {"name": chosen, **{k: scores[chosen][k] for k in ("run", "hparams")}},
  }


def choose(
    scores: dict[str, dict],
    fallbacks: list[str],
    standard_error: Callable[[str], float],
    with_pairs: list[str] = (),
) -> dict:
  """SELECTION_RULE over `scores` (candidate -> {'hparams', 'mean'}; `fallbacks` and
  `with_pairs`, the candidates trained with pairs, name some), standard_error(candidate) that
  of its score: the rule's record."""
  best = lambda names: max(names, key=lambda n: scores[n]["mean"])
  standard_error = functools.cache(standard_error)  # A bootstrap: asked once per candidate.
  recipe = [n for n in scores if n not in fallbacks]
  side, record = recipe, {}
  if with_pairs:
    without = [n for n in recipe if n not in with_pairs]
    overall = best(recipe)
    error = standard_error(overall)
    kept = scores[best(with_pairs)]["mean"] >= scores[overall]["mean"] - error
    side = list(with_pairs) if kept else without
    record = {
        "pairs": {
            "best_with": best(with_pairs),
            "best_without": best(without),
            "standard_error": error,
            "kept": bool(kept),
        }
    }
  side_best = best(side)
  error = standard_error(side_best)
  floor = scores[side_best]["mean"] - error
  within = [n for n in side if scores[n]["mean"] >= floor]
  # A run of one weight decay has no swept one: its candidates tie, and the score decides.
  recipe_choice = max(
      within, key=lambda n: (scores[n]["hparams"].get("weight_decay", 0.0), scores[n]["mean"])
  )
  chosen, fell_back = recipe_choice, False
  if fallbacks and scores[best(fallbacks)]["mean"] > scores[best(recipe)]["mean"]:
    chosen, fell_back = best(fallbacks), True
  return {
      **record,
      "best_recipe_candidate": side_best,
      "standard_error": error,
      "within_one_standard_error": within,
      "recipe_choice": recipe_choice,
      "chosen": chosen,
      "fell_back": fell_back,
  }


def _checked(selection: dict[str, Any]) -> dict[str, Any]:
  """A selection stage's record, refused if an earlier rule made it (a workdir from before)."""
  if selection.get("rule") != SELECTION_RULE:
    raise InputError(
        "This recipe workdir's selection was made by an earlier selection rule; rerun the recipe"
        " in a new --workdir with --reuse_stages_from naming this one, which reuses its trained"
        " stages."
    )
  return selection


def _say_selection(selection: dict[str, Any]) -> None:
  scores = selection["scores"]
  ranked = "; ".join(f"{n}: {100 * s['mean']:.2f}%" for n, s in scores.items())
  chosen = selection["chosen"]["name"]
  say(f"held-out pseudo-group accuracy: {ranked}")
  say(
      f"{selection['held_out_flagged']} of {selection['held_out_examples']} held-out examples"
      " read as bias-conflicting by the amplifier"
  )
  if "pairs" in selection:
    decision = selection["pairs"]
    say(
        f"pairs {'kept' if decision['kept'] else 'dropped'}: the best with them,"
        f" {decision['best_with']}, against the best without, {decision['best_without']}, and"
        f" the better one's standard error {100 * decision['standard_error']:.2f} points"
    )
  say(
      f"{selection['best_recipe_candidate']}'s standard error"
      f" {100 * selection['standard_error']:.2f} points; within one standard error of it:"
      f" {', '.join(selection['within_one_standard_error'])}"
  )
  if selection["fell_back"]:
    say(
        f"the recipe is unlikely to help here: {selection['best_recipe_candidate']} scores"
        f" below {chosen} on the held-out part; falling back to {chosen}."
    )
  else:
    say(f"chosen: {chosen}")


def _diagnostics(config, dataset: data.BiasedDataset, amplifier_dir, trained) -> dict[str, Any]:
  """Evaluation only (bias labels): the amplifier on the real training examples whose bias
  label is known, and every candidate's test metrics (metrics.SEPARATION_DEFINITIONS,
  PSEUDO_GROUP_DEFINITIONS). The amplifier's are skipped, with the reason, where bias value k
  cannot be read as aligned with class k (as many bias values as classes)."""
  known = dataset.train.bias_label >= 0
  label, bias = dataset.train.label[known], dataset.train.bias_label[known]
  found = {"candidates_test": {n: r.get("test") or r.get("members") for n, r in trained.items()}}
  if not known.any():
    return found  # No bias label: nothing to measure.
  if dataset.num_bias_classes != dataset.num_classes:
    found["amplifier_skipped"] = (
        f"{dataset.num_bias_classes} bias values for {dataset.num_classes} classes: which"
        " examples conflict with the bias (bias value != class) is undefined"
    )
    return found
  if len(np.unique(label != bias)) < 2:
    return found  # No conflicting example, or no aligned one: nothing to measure.
  logits = runs.load_classifier(str(amplifier_dir))(dataset.train.images[known])
  ce = np.asarray(losses.cross_entropy(logits, label))
  found["amplifier_finds_conflicting"] = metrics.separation(ce, label, bias)
  found["pseudo_groups"] = {
      f"min_loss {m:g}": metrics.pseudo_group_quality(
          amplified.pseudo_bias(logits, label, min_loss=m), label, bias
      )
      for m in config.recipe.min_loss
  }
  found["examples_with_bias_label"] = int(known.sum())
  found["definitions"] = {**metrics.SEPARATION_DEFINITIONS, **metrics.PSEUDO_GROUP_DEFINITIONS}
  return found
