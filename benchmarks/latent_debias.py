r"""Latent de-biasing on Colored MNIST: ERM, latent augmentation, LfF, LfF + latent augmentation.

  python -m benchmarks.latent_debias                     # 0.5% and 1%, 3 seeds, binary at 1%
  python -m benchmarks.latent_debias --ratios=0.01 --seeds=0 --binary_ratio=0

For each conflicting ratio, in workdirs/latent_debias/ (finished stages are reused):
1. a GAN on the biased training images (configs/colored_mnist_gan.py), tinted by default
   (`--tinted`): its colour is set by a part t of the style alone (3 coordinates), the colour
   boundary is fitted on t and the digit boundary on the rest, and the pairwise edit (t has
   fewer coordinates than there are colours) moves the colour and keeps the shape;
2. the labellers: an ERM colour classifier (data.target=bias_label) and a digit classifier
   (`--target_labeller`; default LfF, whose labels follow the digit's shape rather than its
   colour; ERM is the paper's choice);
3. the pairs (`jaxdebias.latent.pairs`): `--num_pairs` pairs, with the report of how often an
   edit changed the colour as requested and kept the digit;
4. classifiers on real + synthetic images (`--synthetic_ratio` synthetic per real one), ERM and
   LfF (its f_B on the real images only, `lff.synthetic_in_biased=False`, and its f_D's weight
   of the generated images `lff.synthetic_weight`, default 1), the same with the same pairs'
   x(z) alone (the ablation: do the edited x(z') add anything?), and without them (shared with
   benchmarks/colored_mnist.py's runs).
5. a digit judge for diagnosis only: ERM on the real training images with the colour taken out
   (`grey`), i.e. using what we know of the bias, so it never labels training data; it
   estimates how often a pair's label is the digit x(z) and x(z') really show.
The binary variant (digits 0-4 vs 5-9, colours of each half; `data.binary`) runs the same
pipeline with a validation split (labeller thresholds, DEO threshold) and reports the fairness
metrics (AP, DEO, BA, KL: jaxdebias.metrics.FAIRNESS_DEFINITIONS; bootstrap over test examples).
Writes results/latent_debias.{md,json} and results/latent_debias_pairs.png (x(z) above x(z')).
"""

import json
import pathlib
import shutil
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks.readme import mean_std, stage_times, timed
from configs import colored_mnist, colored_mnist_gan
from jaxdebias import runs, trainers
from jaxdebias.config import base_config
from jaxdebias.data import load_dataset
from jaxdebias.data import added
from jaxdebias.latent import generator, pairs
from jaxdebias.recipes import make_pairs
from jaxdebias.recipes.latent_debiasing import fairness
from jaxdebias.trainers import train_gan

_RATIOS = flags.DEFINE_list("ratios", ["0.005", "0.01"], "Conflicting ratios (10 classes).")
_BINARY_RATIO = flags.DEFINE_float("binary_ratio", 0.01, "Ratio of the binary variant; 0: none.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of the classifiers.")
_TARGET_LABELLER = flags.DEFINE_enum("target_labeller", "lff", ["lff", "erm"], "Digit labeller.")
_SPACE = flags.DEFINE_enum(
    "latent_space", "w", generator.LATENT_SPACES, "Edit z or the generator's style w."
)
_TINTED = flags.DEFINE_bool(
    "tinted", True, "A tinted GAN (gan.tinted); untinted: both boundaries on the whole latent."
)
_NUM_PAIRS = flags.DEFINE_integer("num_pairs", 60_000, "Pairs per generator.")
_SYNTHETIC_RATIO = flags.DEFINE_float("synthetic_ratio", 2.0, "Synthetic images per real one.")
_SYNTHETIC_WEIGHT = flags.DEFINE_float(
    "synthetic_weight", 1.0, "LfF + latent: f_D's weight of generated images; <0: rel. difficulty."
)
_OUT = flags.DEFINE_string("out", "results", "Where the table, JSON and PNG go.")

ROOT = pathlib.Path("workdirs/latent_debias")
PLAIN_ROOT = pathlib.Path("workdirs/colored_mnist")  # benchmarks/colored_mnist.py's runs.
VALID_FRACTION = 0.1  # Binary variant: thresholds on the last 10% of the training split.


def _classifier_config(method: str, ratio: float, seed: int, binary: bool):
  config = colored_mnist.get_config(f"method={method},ratio={ratio}")
  config.seed = seed
  if binary:
    config.data.update(binary=True, valid_fraction=VALID_FRACTION)
  return config


def pipeline(ratio: float, seeds, binary: bool, times: dict) -> dict:
  """Every stage for one ratio (10-class or binary); returns its results."""
  tag = f"{'binary_' if binary else ''}r{ratio}"
  tint = "tinted_" if _TINTED.value else ""
  # The binary variant has the same images: same generator.
  gan_dir = ROOT / f"gan_{tint}r{ratio}"
  gan_config = colored_mnist_gan.get_config(f"ratio={ratio},tinted={_TINTED.value}")
  timed(times, "gan", lambda: train_gan(gan_config, str(gan_dir)))
  labellers = {}
  for role, method in (("protected", "erm"), ("target", _TARGET_LABELLER.value)):
    config = _classifier_config(method, ratio, 0, binary)
    if role == "protected":
      config.data.target = "bias_label"
    workdir = ROOT / f"{role}_{method}_{tag}"
    timed(times, "labellers", lambda: trainers.train_and_evaluate(config, str(workdir)))
    labellers[role] = str(workdir)
  pairs_path = ROOT / f"pairs_{tint}{_SPACE.value}_{tag}.npz"
  if not pairs_path.exists():
    options = pairs.default_config()
    options.update(latent_space=_SPACE.value, num_pairs=_NUM_PAIRS.value)
    write = lambda: make_pairs.write(
        gan_dir, labellers["target"], labellers["protected"], pairs_path, options
    )
    timed(times, "pairs", write)
  report = json.loads(pairs_path.with_suffix(".json").read_text())
  runs = {}
  for method in ("erm", "lff"):
    for use in (None, "pairs", "unedited"):
      name = method + {None: "", "pairs": " + latent", "unedited": " + x(z)"}[use]
      for seed in seeds:
        config = _classifier_config(method, ratio, seed, binary)
        if use:
          # The ablation takes the same pairs' x(z) alone: half as many synthetic images.
          synthetic_ratio = _SYNTHETIC_RATIO.value / (1 if use == "pairs" else 2)
          config.data.added_pairs.update(path=str(pairs_path), ratio=synthetic_ratio, use=use)
          kind = "latent" if use == "pairs" else use
          if method == "lff":
            config.lff.synthetic_in_biased = False  # f_B learns the real data's bias only.
            if _SYNTHETIC_WEIGHT.value >= 0:
              config.lff.synthetic_weight = _SYNTHETIC_WEIGHT.value
              kind += f"_sw{_SYNTHETIC_WEIGHT.value:g}"
          workdir = ROOT / f"{method}_{kind}_{tint}{_SPACE.value}_{tag}_seed{seed}"
        elif binary:
          workdir = ROOT / f"{method}_{tag}_seed{seed}"
        else:
          workdir = PLAIN_ROOT / f"{method}_ratio{ratio}_severity4_seed{seed}"
        results = timed(
            times, "classifiers", lambda: trainers.train_and_evaluate(config, str(workdir))
        )
        if binary:
          results["fairness"] = fairness(config, str(workdir))
        runs.setdefault(name, []).append(results)
  judge = timed(times, "judge", lambda: _judge_report(ratio, binary, pairs_path))
  return {
      "pairs": report,
      "judge": judge,
      "runs": runs,
      "pairs_png": str(pairs_path.with_suffix(".png")),
  }


def grey(images: np.ndarray) -> np.ndarray:
  """Colour taken out: each pixel's brightest channel, scaled so the image's maximum is 255."""
  brightest = images.max(-1, keepdims=True).astype(np.float32)
  peak = brightest.max(axis=(1, 2, 3), keepdims=True)
  return np.round(255 * brightest / np.maximum(peak, 1)).astype(np.uint8)


JUDGE_DEFINITIONS = {
    "judge_test_accuracy": "the judge's accuracy on the grey test images (its credibility)",
    "label_is_digit_of_x": "pair label == the judge's digit of x(z)",
    "label_is_digit_of_x_pair": "pair label == the judge's digit of x(z')",
    "digit_kept": "the judge gives x(z) and x(z') the same digit",
    "x_conflicting": "the judge's digit of x(z) != its colour (by the colour labeller)",
    "useful_pairs": (
        "x(z') shows the pair's label as its digit (judge) in another colour (colour labeller):"
        " a correctly labelled bias-conflicting image"
    ),
}


def _judge_report(ratio: float, binary: bool, pairs_path: pathlib.Path) -> dict:
  """How often the pairs' labels are the digits shown, by the grey-image judge (module doc, 5)."""
  config = _classifier_config("erm", ratio, 0, binary)
  dataset = load_dataset(config.data)
  grey_path = ROOT / f"grey_{'binary_' if binary else ''}r{ratio}.npz"
  if not grey_path.exists():
    np.savez(
        grey_path,
        **{
            f"{split}_{field}": (
                grey(getattr(dataset, split).images)
                if field == "images"
                else getattr(getattr(dataset, split), field)
            )
            for split in ("train", "test")
            for field in ("images", "label", "bias_label")
        },
    )
  judge_config = base_config()
  judge_config.update(method="erm", num_steps=5000, eval_every=500, checkpoint_every=5000)
  judge_config.data.update(name="npz", path=str(grey_path))
  workdir = ROOT / f"judge_{grey_path.stem}"
  results = trainers.train_and_evaluate(judge_config, str(workdir))
  logits = runs.load_classifier(str(workdir))
  digit = lambda images: np.concatenate(
      [
          np.asarray(logits(grey(images[i : i + 10_000]))).argmax(-1)
          for i in range(0, len(images), 10_000)
      ]
  )
  arrays = added.load_pairs(str(pairs_path))
  label, shown, shown_pair = arrays["label"], digit(arrays["image"]), digit(arrays["image_pair"])
  colour_pair = arrays["labelled_protected_pair"]
  return {
      "judge_test_accuracy": results["test"]["classifier"]["accuracy"],
      "label_is_digit_of_x": float(np.mean(label == shown)),
      "label_is_digit_of_x_pair": float(np.mean(label == shown_pair)),
      "digit_kept": float(np.mean(shown == shown_pair)),
      "x_conflicting": float(np.mean(shown != arrays["protected"])),
      "useful_pairs": float(np.mean((shown_pair == label) & (colour_pair != label))),
      "definitions": JUDGE_DEFINITIONS,
  }


NAMES = ("erm", "erm + latent", "erm + x(z)", "lff", "lff + latent", "lff + x(z)")


def _weight_text() -> str:
  weight = _SYNTHETIC_WEIGHT.value
  return "by relative difficulty" if weight < 0 else f"{weight:g} each"


def report_text(results: dict, seeds, times: dict) -> str:
  seeds_text = ",".join(map(str, seeds))
  lines = [
      "# Latent de-biasing on Colored MNIST",
      "",
      f"Regenerate with `python -m benchmarks.latent_debias --seeds={seeds_text}`. Unbiased test"
      " accuracy (%, mean over the (digit, colour) groups), mean ± sample std over seeds"
      f" {seeds_text}; final models, no model selection. `+ latent`: trained on the real images"
      f" and {_SYNTHETIC_RATIO.value:g} synthetic pair images per real one; `+ x(z)`: the x(z) of"
      " the same pairs alone, without their edited x(z') (the ablation). Digit labeller of the"
      f" generated images: {_TARGET_LABELLER.value}; edits in latent space {_SPACE.value}"
      + (
          " of a tinted GAN (colour boundary on its 3 tint coordinates, the digit's on the"
          " others; pairwise edits)"
          if _TINTED.value
          else " of an untinted GAN (both boundaries on every coordinate)"
      )
      + f"; LfF's f_D weighs the generated images {_weight_text()}.",
      "",
      "| variant | ratio | " + " | ".join(NAMES) + " |",
      "|---|---|" + "---|" * len(NAMES),
  ]
  for (variant, ratio), result in results.items():
    runs = result["runs"]
    cells = [
        mean_std([r["test"]["classifier"]["unbiased_accuracy"] for r in runs[name]])
        for name in NAMES
    ]
    lines.append(f"| {variant} | {100 * ratio:g}% | {' | '.join(cells)} |")
  lines += [
      "",
      "## The pairs: did the edit change the colour and keep the digit?",
      "",
      "Judged by the labellers on x(z'), for pairs not used to fit the boundaries"
      " (definitions in the JSON).",
      "",
      "| variant | ratio | digit boundary acc. | colour boundary acc. | generated aligned |"
      " colour moved as asked | digit kept | both | latent norm | edit norm |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for (variant, ratio), result in results.items():
    p = result["pairs"]
    lines.append(
        f"| {variant} | {100 * ratio:g}% | "
        + " | ".join(
            f"{100 * p[k]:.1f}%"
            for k in (
                "target_boundary_accuracy",
                "protected_boundary_accuracy",
                "generated_aligned_fraction",
                "protected_moved_as_requested",
                "target_kept",
                "moved_and_kept",
            )
        )
        + f" | {p['median_latent_norm']:.1f} | {p['median_edit_norm']:.1f} |"
    )
  lines += [
      "",
      "## The pairs by a digit judge that sees no colour",
      "",
      "The judge (module doc, 5) is ERM on the grey real training images; it uses the"
      " knowledge that colour is the bias and is for diagnosis only. Fractions of all pairs.",
      "",
      "| variant | ratio | " + " | ".join(k.replace("_", " ") for k in JUDGE_DEFINITIONS) + " |",
      "|---|---|" + "---|" * len(JUDGE_DEFINITIONS),
  ]
  for (variant, ratio), result in results.items():
    cells = [f"{100 * result['judge'][k]:.1f}%" for k in JUDGE_DEFINITIONS]
    lines.append(f"| {variant} | {100 * ratio:g}% | {' | '.join(cells)} |")
  lines += [""] + [f"- {k.replace('_', ' ')}: {v}" for k, v in JUDGE_DEFINITIONS.items()]
  binary = [(k, v) for k, v in results.items() if k[0] == "binary"]
  if binary:
    lines += [
        "",
        "## Binary variant: fairness metrics",
        "",
        "Digits 0-4 vs 5-9, colours of each half. Bootstrap median ± std over 500 resamples of"
        " the test set, seed 0; DEO and BA at the threshold calibrated on the validation split"
        f" (last {100 * VALID_FRACTION:g}% of training). AP higher is better; DEO, BA, KL lower.",
        "",
        "| ratio | method | AP | DEO | BA | KL |",
        "|---|---|---|---|---|---|",
    ]
    for (_, ratio), result in binary:
      for name, runs in result["runs"].items():
        f = runs[0]["fairness"]
        cells = [f"{f[m]['median']:.3f} ± {f[m]['std']:.3f}" for m in ("ap", "deo", "ba", "kl")]
        lines.append(f"| {100 * ratio:g}% | {name} | {' | '.join(cells)} |")
  lines += stage_times(times)
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  runs.quiet_library_logs()
  seeds = [int(s) for s in _SEEDS.value]
  times, results = {}, {}
  start = time.perf_counter()
  for ratio in map(float, _RATIOS.value):
    results["10-class", ratio] = pipeline(ratio, seeds, binary=False, times=times)
  if _BINARY_RATIO.value:
    ratio = _BINARY_RATIO.value
    results["binary", ratio] = pipeline(ratio, seeds, binary=True, times=times)
  times["total"] = time.perf_counter() - start
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  text = report_text(results, seeds, times)
  (out / "latent_debias.md").write_text(text)
  (out / "latent_debias.json").write_text(
      json.dumps({f"{v}/{r}": x for (v, r), x in results.items()}, indent=1, default=float)
  )
  shutil.copy(next(iter(results.values()))["pairs_png"], out / "latent_debias_pairs.png")
  print(text)


if __name__ == "__main__":
  app.run(main)
