r"""The latent de-biasing pipeline for a binary target and protected attribute, as one command.

  python -m jaxdebias.recipes.latent_pipeline \
      --config=configs/celeba.py:target=Smiling,protected=Male \
      --generator=GENERATOR_DIR --workdir=DIR

Stages, each in DIR and reused once finished (rerun the command to resume):
1. DIR/protected: the protected-attribute classifier (data.target=bias_label, ERM);
2. DIR/baseline: the target classifier on the real data, ERM: the paper's baseline, and the
   labeller of the generated images;
3. DIR/pairs.npz (+ .json report, .png examples): `--num_pairs` complementary pairs from the
   generator (a GAN run or a ported PGAN), labels at the F1-optimal thresholds on validation;
4. DIR/augmented: the target classifier on the real images and `--synthetic_ratio` synthetic ones
   per real one, otherwise the config's method;
5. DIR/report.json: test accuracy and the fairness metrics (AP, DEO, BA, KL; bootstrap median and
   std; DEO and BA at the threshold calibrated on validation) of the baseline and augmented runs.
Bad input: one line on stderr and exit status 2.
"""

import copy
import json
import pathlib

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from jaxdebias import metrics, runs
from jaxdebias.errors import InputError, exit_on_user_error
from jaxdebias.latent import generator, pairs
from jaxdebias.trainers import train_and_evaluate


def fairness(config: ml_collections.ConfigDict, workdir: str, num_resamples: int = 500) -> dict:
  """Bootstrap AP / DEO / BA / KL of a finished binary run on its test split, the threshold
  calibrated on its validation split."""
  dataset = runs.load_dataset(config.data)
  if dataset.num_classes != 2 or dataset.valid is None:
    raise InputError("fairness metrics need a binary target and a validation split.")
  predict = runs.load_classifier(workdir)
  score = lambda split: np.asarray(jax.nn.softmax(predict(split.images))[:, 1])
  threshold = metrics.calibrated_threshold(score(dataset.valid), dataset.valid.label)
  test = dataset.test
  return metrics.bootstrap_fairness(
      score(test), test.label, test.bias_label, threshold, num_resamples=num_resamples
  )


def run(
    config: ml_collections.ConfigDict,
    generator_dir: str,
    workdir: str,
    *,
    num_pairs: int,
    num_fit: int,
    synthetic_ratio: float,
    latent_space: str = "z",
    num_resamples: int = 500,
) -> dict:
  """Every stage (module doc); returns the report it writes to DIR/report.json."""
  root = pathlib.Path(workdir).absolute()
  root.mkdir(parents=True, exist_ok=True)
  protected_config, baseline_config, augmented_config = (copy.deepcopy(config) for _ in range(3))
  protected_config.method = baseline_config.method = "erm"
  protected_config.data.target = "bias_label"
  train_and_evaluate(protected_config, str(root / "protected"))
  baseline = train_and_evaluate(baseline_config, str(root / "baseline"))
  pairs_path = root / "pairs.npz"
  if not pairs_path.exists():
    arrays, pairs_report = pairs.make_pairs(
        runs.load_generator(generator_dir, latent_space),
        runs.load_labeller(str(root / "baseline")),
        runs.load_labeller(str(root / "protected")),
        num_fit=num_fit,
        num_pairs=num_pairs,
    )
    pairs.save(pairs_path, arrays, pairs_report)
  augmented_config.data.added_pairs.update(path=str(pairs_path), ratio=synthetic_ratio)
  augmented = train_and_evaluate(augmented_config, str(root / "augmented"))
  report = {
      "pairs": json.loads(pairs_path.with_suffix(".json").read_text()),
      "runs": {
          name: {
              "test_accuracy": results["test"]["classifier"]["accuracy"],
              "fairness": fairness(run_config, str(root / name), num_resamples),
          }
          for name, results, run_config in (
              ("baseline", baseline, baseline_config),
              ("augmented", augmented, augmented_config),
          )
      },
      "definitions": metrics.FAIRNESS_DEFINITIONS,
  }
  runs.write_json(root / "report.json", report)
  return report


def _define_flags() -> None:
  """The command's flags (defined only when run as a command, so importing this defines none)."""
  config_flags.DEFINE_config_file("config", None, "Classifier config (configs/celeba.py:...).")
  flags.DEFINE_string("generator", None, "A GAN run or a ported generator (tools/port_pgan).")
  flags.DEFINE_string("workdir", None, "Directory of every stage.")
  flags.DEFINE_integer("num_pairs", 160_000, "Pairs to generate (the paper: 160,000).")
  flags.DEFINE_integer("num_fit", 10_000, "Latents for fitting the hyperplanes (the paper).")
  flags.DEFINE_float("synthetic_ratio", 2.0, "Synthetic images per real one (the paper: ~2).")
  flags.DEFINE_enum("latent_space", "z", generator.LATENT_SPACES, "Where the edits happen.")
  flags.mark_flags_as_required(["config", "generator", "workdir"])


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  runs.quiet_library_logs()
  with exit_on_user_error():
    report = run(
        f.config,
        f.generator,
        f.workdir,
        num_pairs=f.num_pairs,
        num_fit=f.num_fit,
        synthetic_ratio=f.synthetic_ratio,
        latent_space=f.latent_space,
    )
  print(json.dumps(report["runs"], indent=2))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
