r"""Latent de-biasing (Ramaswamy et al., CVPR 2021) as one command, on any dataset the loader reads.

  python -m jaxdebias.main --config=configs/latent_debiasing.py:data=colored_mnist,ratio=0.01 \
      --workdir=W

Stages, each a workdir under W (finished ones are reused, interrupted ones resume):
1. generator: `recipe.generator` (a finished GAN run, or a ported one: tools/port_pgan), or an
   unconditional GAN trained here on the training images (its size from the image shape;
   gan.tinted, a colour prior, is opt-in and recorded).
2. The protected labeller, which reads the bias in the generated images:
   `recipe.protected='amplifier'` (default, no bias label): class_generator, a class-conditional
   GAN, and amplifier, ERM on its images only (as in synthetic bias amplification);
   'bias_labels' (the paper's, opt-in: it trains on the bias labels, so results.json says so):
   protected, ERM with the bias label as its target.
3. baseline: the config's classifier on the real data; it (its first seed, with several) also
   reads the target of the generated images.
4. pairs: complementary pairs from the generator (`recipe.pairs`, the settings every recipe
   shares; num_pairs 0: `recipe.synthetic_ratio` synthetic images per real one).
5. augmented: the config's classifier on the real images and the pairs; skipped, and said so,
   where no pairs can be made.
6. evaluation (reads bias labels): both runs' test metrics and, for a binary target and a
   binary protected attribute with a validation split, the fairness metrics (AP, DEO, BA,
   KL; bootstrap; DEO and BA at the threshold calibrated on validation).
No knob is chosen: every one is fixed in advance (the paper's values). results.json: the
augmented classifier's results (`final`), the baseline's, the pairs' report, the evaluation and
every stage's time.
"""

from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdebias import metrics, runs
from jaxdebias.config import base_config
from jaxdebias.data import transforms
from jaxdebias.errors import InputError
from jaxdebias.latent import pairs
from jaxdebias.recipes import stages
from jaxdebias.recipes.graph import Recipe, say, stage_config
from jaxdebias.trainers import loop, train_and_evaluate

NAME = "latent_debiasing"
PROTECTED_LABELLERS = ("amplifier", "bias_labels")


def default_config() -> ml_collections.ConfigDict:
  """The recipe's fields: a run config (the classifier stages') with the `recipe` section."""
  config = base_config()
  config.trainer = NAME
  config.method = "erm"  # The paper's classifier.
  config.input_scaling = "lff_reference"  # The LfF protocol of every README number.
  config.gan.update(generator_widths=None, discriminator_widths=None)  # From the image shape.
  config.recipe = ml_collections.ConfigDict(
      {
          "generator": "",  # A finished generator's workdir; "": trained here.
          **stages.gan_fields(),
          "protected": "amplifier",  # Module doc, step 2.
          "per_class": 0,  # The amplifier's images per class; 0: the training split's mean.
          "synthetic_ratio": 2.0,  # Pair images per real one (the paper: about 2).
          "pairs": pairs.default_config(),  # num_pairs 0: as many as synthetic_ratio needs.
          "fairness_resamples": 500,
      }
  )
  config.recipe.pairs.num_pairs = 0
  return config


@runs.locked
def run(
    config: ml_collections.ConfigDict, workdir: str, reuse_stages_from: str | None = None
) -> dict[str, Any]:
  """Every stage (module doc) in `workdir`, copying the finished stages of the same config from
  `reuse_stages_from` (`graph.Recipe`); returns the recipe's results.json."""
  options = config.recipe
  if options.protected not in PROTECTED_LABELLERS:
    raise InputError(
        f"recipe.protected is {options.protected!r}; set it to one of {PROTECTED_LABELLERS}."
    )
  if not options.synthetic_ratio > 0:
    raise InputError(
        f"recipe.synthetic_ratio must be > 0, got {options.synthetic_ratio}; set "
        "--config.recipe.synthetic_ratio."
    )
  loop.check_schedule(config)
  dataset = runs.load_dataset(config.data)  # Bad data stops the recipe before it writes.
  if options.protected == "bias_labels":
    transforms.check_bias_labels_known(dataset)
  recipe = Recipe(config, workdir, default_config(), reuse_stages_from)
  if recipe.finished is not None:
    runs.print_results(recipe.finished["final"])
    return recipe.finished
  if options.generator:
    generator_dir = runs.absolute(options.generator)
    runs.load_generator(str(generator_dir), options.pairs.latent_space)  # Fails before training.
  else:
    generator_dir = stages.generator(recipe, "generator", conditional=False)
  if options.protected == "amplifier":
    protected_dir, _ = stages.amplifier(
        recipe, dataset, stages.generator(recipe, "class_generator", conditional=True)
    )
  else:
    protected_config = stage_config(config, method="erm", **{"data.target": "bias_label"})
    recipe.train("protected", train_and_evaluate, protected_config)
    protected_dir = recipe.directory("protected")
  baseline = recipe.train("baseline", train_and_evaluate, stage_config(config))
  report = stages.pairs(
      recipe,
      generator_dir,
      recipe.directory("baseline"),
      protected_dir,
      stages.pairs_options(config, len(dataset.train.label)),
      target_member=0 if "members" in baseline else None,  # Its first seed.
  )
  trained = {"baseline": baseline}
  if "skipped" not in report:
    augmented_config = stage_config(config, **stages.with_pairs(recipe))
    trained["augmented"] = recipe.train("augmented", train_and_evaluate, augmented_config)
  else:
    say("the final classifier is the baseline: there are no pairs to add.")
  evaluation = recipe.computed(
      "evaluation", lambda: _evaluate(recipe, dataset, list(trained), options.fairness_resamples)
  )
  results = recipe.finish(
      {
          "final": trained.get("augmented", baseline),
          "baseline": baseline,
          "pairs": report,
          "evaluation": evaluation,
          "priors": {
              "gan.tinted": bool(config.gan.tinted),
              "trained_on_bias_labels": options.protected == "bias_labels",
          },
      }
  )
  runs.print_results(results["final"])
  return results


def fairness(
    config: ml_collections.ConfigDict,
    workdir: str,
    num_resamples: int = 500,
    member: int | None = None,
) -> dict:
  """Bootstrap AP / DEO / BA / KL of a finished binary run (`member` of a run of several) on its
  test split, the threshold calibrated on its validation split (metrics.FAIRNESS_DEFINITIONS);
  they compare the two values of a binary protected attribute."""
  dataset = runs.load_dataset(config.data)
  if not _has_fairness_metrics(dataset):
    raise InputError(
        "fairness metrics need a binary target, a binary protected attribute and a validation"
        " split."
    )
  predict = runs.load_classifier(workdir, member=member)
  score = lambda split: np.asarray(jax.nn.softmax(predict(split.images))[:, 1])
  threshold = metrics.calibrated_threshold(score(dataset.valid), dataset.valid.label)
  test = dataset.test
  return metrics.bootstrap_fairness(
      score(test), test.label, test.bias_label, threshold, num_resamples=num_resamples
  )


def _has_fairness_metrics(dataset) -> bool:
  """Whether the fairness metrics apply: a binary target, a binary protected attribute (they
  compare its two values) and a validation split (for the threshold)."""
  binary = dataset.num_classes == 2 and dataset.num_bias_classes == 2
  return binary and dataset.valid is not None


def _evaluate(recipe: Recipe, dataset, names: list[str], num_resamples: int) -> dict[str, Any]:
  """Evaluation only (bias labels): each run's test metrics (`test`, or per seed `members`), and
  where the target and the protected attribute are binary (the fairness metrics compare two
  groups), there is a validation split and every test example has its bias label, its
  fairness metrics (a list: one entry per seed)."""
  found = {}
  test_labelled = (dataset.test.bias_label >= 0).all()
  binary_and_labelled = _has_fairness_metrics(dataset) and test_labelled
  for name in names:
    directory = recipe.directory(name)
    results = runs.read_json(directory / "results.json")
    found[name] = {k: results[k] for k in ("test", "members") if k in results}
    if binary_and_labelled:
      config = runs.read_config(directory)
      members = [None] if "test" in results else range(len(results["members"]))
      found[name]["fairness"] = [
          fairness(config, str(directory), num_resamples, member) for member in members
      ]
  if any("fairness" in run for run in found.values()):
    found["definitions"] = metrics.FAIRNESS_DEFINITIONS
  return found
