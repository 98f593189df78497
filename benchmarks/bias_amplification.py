r"""Synthetic bias amplification on Colored MNIST: ERM, LfF and the amplifier recipes.

  python -m benchmarks.bias_amplification                  # 4 ratios, 5 seeds
  python -m benchmarks.bias_amplification --ratios=0.01 --seeds=0

For each conflicting ratio, in workdirs/bias_amplification/ (finished stages, the diagnostics
included, are reused):
1. a class-conditional GAN on the biased training images (configs/colored_mnist_gan.py:
   conditional; its samples of class y carry the bias of y);
2. the bias amplifier: ERM on `--per_class` generated images per class only (data.generated_train),
   never on a real training image;
3. diagnostics: how well each bias model's per-example cross-entropy on the real training images
   finds the bias-conflicting ones (AUROC, top-k precision; metrics.SEPARATION_DEFINITIONS): the
   amplifier, and LfF's GCE-trained f_B at every checkpoint of an LfF run (seed 0);
   and how well the amplifier's pseudo-groups match the true (class, colour) groups
   (metrics.PSEUDO_GROUP_DEFINITIONS);
4. the recipes, `--seeds` each: amplified_lff (LfF's f_D with the frozen amplifier, its logits
   over `--temperature`, as f_B) and amplified_groups (group-balanced ERM over the
   pseudo-groups (class, the amplifier's predicted class), a mistake counting where its loss
   exceeds `--min_loss`; AdamW with `--weight_decay`), amplified_dro (online GroupDRO over the
   same pseudo-groups, the default step size of Sagawa et al., the same decay), and the control
   lff_wd: LfF with the same weight decay. ERM and LfF are benchmarks/colored_mnist.py's runs
   (workdirs/colored_mnist, reused or trained);
5. recipe (c), amplified_groups_latent: amplified_groups on the real images and 2 synthetic
   pair images per real one from latent de-biasing (`jaxdebias.latent.pairs`) with no bias
   label either: benchmarks/latent_debias.py's tinted GAN (workdirs/latent_debias, reused or
   trained), the colour of the generated images labelled by the amplifier (whose prediction is
   a colour reading: its training images have one colour per class) and their digit by an
   amplified_groups run with a seed no final run has (`LABELLER_SEED`).
Bias labels are used for evaluation and the diagnostics only. Writes
results/bias_amplification.{md,json} and results/bias_amplification.png (AUROC over steps).
"""

import json
import pathlib
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks.readme import mean_std, stage_times, timed
from configs import colored_mnist, colored_mnist_gan
from jaxdebias import losses, metrics, runs, trainers
from jaxdebias.config import base_config
from jaxdebias.data import load_dataset
from jaxdebias.latent import pairs
from jaxdebias.methods import amplified
from jaxdebias.recipes import make_pairs
from jaxdebias.trainers import train_gan

_RATIOS = flags.DEFINE_list("ratios", ["0.005", "0.01", "0.02", "0.05"], "Conflicting ratios.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds of the classifiers.")
_PER_CLASS = flags.DEFINE_integer("per_class", 6000, "Generated images per class (amplifier).")
_MIN_LOSS = flags.DEFINE_float(
    "min_loss",
    9.2,
    "amplified_groups and amplified_dro: amplifier.min_loss (9.2 nats: p(class) < 1e-4; chosen"
    " from seed 0's training-set pseudo-group diagnostics, which use bias labels).",
)
_TEMPERATURE = flags.DEFINE_float(
    "temperature",
    3.0,
    "amplified_lff: amplifier.temperature (3: chosen from seed-0 runs at 1% with 1, 3 and 10,"
    " judged on test accuracy).",
)
_WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay",
    0.1,
    "AdamW weight decay of amplified_groups, amplified_dro and the lff_wd control (0.1: chosen"
    " from seed-0 amplified_groups runs at 1% with 0, 0.1 and 0.3 and min_loss 0, judged on"
    " test accuracy).",
)
_OUT = flags.DEFINE_string("out", "results", "Where the table, JSON and PNG go.")

ROOT = pathlib.Path("workdirs/bias_amplification")
PLAIN_ROOT = pathlib.Path("workdirs/colored_mnist")  # benchmarks/colored_mnist.py's runs.
LATENT_ROOT = pathlib.Path("workdirs/latent_debias")  # benchmarks/latent_debias.py's GANs.
LABELLER_SEED = 100  # Recipe (c)'s digit labeller: a seed none of the table's runs has.
SYNTHETIC_RATIO = 2.0  # Recipe (c): synthetic images per real one (latent de-biasing's).
# Table rows: run name -> (method, AdamW weight decay from --weight_decay?, with recipe (c)'s
# pairs?). "lff_wd" is LfF with the weight decay of amplified_groups: the control that the gain
# is not the decay's.
RUNS = {
    "erm": ("erm", False, False),
    "lff": ("lff", False, False),
    "lff_wd": ("lff", True, False),
    "amplified_lff": ("amplified_lff", False, False),
    "amplified_groups": ("amplified_groups", True, False),
    "amplified_dro": ("amplified_dro", True, False),
    "amplified_groups_latent": ("amplified_groups", True, True),
}


def _separation(logits, split) -> dict[str, float]:
  """Separation of the conflicting training examples by a model's per-example cross-entropy."""
  ce = np.asarray(losses.cross_entropy(logits, split.label))
  return metrics.separation(ce, split.label, split.bias_label)


def _pseudo_groups(logits, split) -> dict[str, float]:
  """How the pseudo-groups (at --min_loss) of amplified_groups and _dro match the true groups."""
  bias = amplified.pseudo_bias(logits, split.label, min_loss=_MIN_LOSS.value)
  return metrics.pseudo_group_quality(bias, split.label, split.bias_label)


def pipeline(ratio: float, seeds, times: dict) -> dict:
  """Every stage for one ratio; returns its results."""
  cgan_config = colored_mnist_gan.get_config(f"ratio={ratio},conditional")
  cgan_config.keep_checkpoints = 1  # Only the final generator is used.
  cgan_dir = ROOT / f"cgan_r{ratio}"
  timed(times, "generator", lambda: train_gan(cgan_config, str(cgan_dir)))
  amplifier_config = colored_mnist.get_config(f"method=erm,ratio={ratio}")
  amplifier_config.data.generated_train.update(generator=str(cgan_dir), per_class=_PER_CLASS.value)
  amplifier_dir = ROOT / f"amplifier_r{ratio}"
  amplifier = timed(
      times, "amplifier", lambda: trainers.train_and_evaluate(amplifier_config, str(amplifier_dir))
  )

  def diagnose():
    real = load_dataset(colored_mnist.get_config(f"ratio={ratio}").data).train
    lff_config = colored_mnist.get_config(f"method=lff,ratio={ratio}")
    lff_config.keep_checkpoints = lff_config.num_steps // lff_config.checkpoint_every + 1
    lff_dir = ROOT / f"lff_all_checkpoints_r{ratio}"
    trainers.train_and_evaluate(lff_config, str(lff_dir))
    steps = sorted(int(p.name) for p in (lff_dir / "checkpoints").iterdir() if p.name.isdigit())
    amplifier_logits = runs.load_classifier(str(amplifier_dir))(real.images)  # Scored once.
    biased = lambda step: runs.load_classifier(str(lff_dir), step=step, model="biased")
    return {
        "amplifier": _separation(amplifier_logits, real),
        "pseudo_groups": _pseudo_groups(amplifier_logits, real),
        "lff_biased_by_step": {
            step: _separation(biased(step)(real.images), real) for step in steps
        },
    }

  def diagnose_once():
    """diagnose(), or its saved result for this ratio and --min_loss."""
    path = ROOT / f"diagnostics_r{ratio}_min_loss{_MIN_LOSS.value:g}.json"
    if not path.exists():
      path.write_text(json.dumps(diagnose(), indent=1))
    saved = json.loads(path.read_text())
    saved["lff_biased_by_step"] = {int(k): v for k, v in saved["lff_biased_by_step"].items()}
    return saved

  diagnostics = timed(times, "diagnostics", diagnose_once)
  table_runs, pairs_path = {}, None
  for name, (method, decayed, latent) in RUNS.items():
    if latent and pairs_path is None:
      pairs_path = _latent_pairs(ratio, amplifier_dir, times)
    for seed in seeds:
      config = _run_config(method, decayed, ratio, seed, amplifier_dir)
      if latent:
        config.data.added_pairs.update(path=str(pairs_path), ratio=SYNTHETIC_RATIO)
      if name in ("erm", "lff"):
        workdir = PLAIN_ROOT / f"{method}_ratio{ratio}_severity4_seed{seed}"
      else:
        workdir = ROOT / f"{name}_r{ratio}_seed{seed}"
      table_runs.setdefault(name, []).append(
          timed(times, name, lambda: trainers.train_and_evaluate(config, str(workdir)))
      )
  pairs_report = json.loads(pairs_path.with_suffix(".json").read_text())
  return {
      "amplifier": amplifier,
      "diagnostics": diagnostics,
      "runs": table_runs,
      "pairs": pairs_report,
  }


def _run_config(method: str, decayed: bool, ratio: float, seed: int, amplifier_dir: pathlib.Path):
  """The config of one run of the table: `method` at `ratio` and `seed`."""
  config = colored_mnist.get_config(f"method={method},ratio={ratio}")
  config.seed = seed
  if decayed:
    config.optimizer.weight_decay = _WEIGHT_DECAY.value
  if method.startswith("amplified"):
    config.amplifier.workdir = str(amplifier_dir)
    if method in ("amplified_groups", "amplified_dro"):
      config.amplifier.min_loss = _MIN_LOSS.value
    else:
      config.amplifier.temperature = _TEMPERATURE.value
  return config


def _latent_pairs(ratio: float, amplifier_dir: pathlib.Path, times: dict) -> pathlib.Path:
  """Recipe (c)'s pairs file (module doc, 5), made once per ratio."""
  gan_dir = LATENT_ROOT / f"gan_tinted_r{ratio}"
  gan_config = colored_mnist_gan.get_config(f"ratio={ratio},tinted=True")
  timed(times, "latent generator", lambda: train_gan(gan_config, str(gan_dir)))
  labeller_dir = ROOT / f"digit_labeller_r{ratio}"
  labeller_config = _run_config("amplified_groups", True, ratio, LABELLER_SEED, amplifier_dir)
  train = lambda: trainers.train_and_evaluate(labeller_config, str(labeller_dir))
  timed(times, "latent labeller", train)
  path = ROOT / f"pairs_r{ratio}.npz"
  if not path.exists():
    options = pairs.default_config()
    write = lambda: make_pairs.write(gan_dir, labeller_dir, amplifier_dir, path, options)
    timed(times, "latent pairs", write)
  return path


def report_text(results: dict, seeds, times: dict) -> str:
  seeds_text = ",".join(map(str, seeds))
  ratios = list(results)
  lines = [
      "# Synthetic bias amplification on Colored MNIST",
      "",
      f"Regenerate with `python -m benchmarks.bias_amplification --seeds={seeds_text}"
      f" --ratios={','.join(map(str, ratios))}`. Test accuracies in % (group means over the"
      f" 10 x 10 (digit, colour) groups), mean ± sample std over seeds {seeds_text}; final"
      f" models, no model selection; the amplifier: ERM on {_PER_CLASS.value} images per class"
      " of a class-conditional GAN, no real training image; amplified_lff: the amplifier's"
      f" logits over temperature {_TEMPERATURE.value:g} (`--temperature`); amplified_groups:"
      " pseudo-groups (class, the amplifier's predicted class), a mistake counting where its"
      f" loss exceeds {_MIN_LOSS.value:g} nats (`--min_loss`), AdamW weight decay"
      f" {_WEIGHT_DECAY.value:g} (`--weight_decay`); amplified_dro: online GroupDRO over the"
      f" same pseudo-groups (step size {base_config().amplifier.dro_step_size:g}), the same"
      " decay; lff_wd: LfF with that weight decay (the others have none, as in the LfF"
      f" protocol); amplified_groups_latent: recipe (c), amplified_groups on the real images and"
      f" {SYNTHETIC_RATIO:g} latent de-biasing pair images per real one (tinted GAN; colour"
      " labelled by the amplifier, digit by amplified_groups with seed"
      f" {LABELLER_SEED}; no bias label). Training s per run: the run's own wall time for"
      " training and evaluations (`train_seconds_this_run`), under whatever load the machine"
      " had then.",
      "",
      "| method | metric | " + " | ".join(f"{100 * r:g}%" for r in ratios) + " |",
      "|---|---|" + "---|" * len(ratios),
  ]
  for method in RUNS:
    for metric in ("unbiased", "aligned", "conflicting"):
      cells = [
          mean_std(
              [r["test"]["classifier"][f"{metric}_accuracy"] for r in results[x]["runs"][method]]
          )
          for x in ratios
      ]
      lines.append(f"| {method} | {metric} | {' | '.join(cells)} |")
    cells = [
        f"{np.mean([r['train_seconds_this_run'] for r in results[x]['runs'][method]]):.0f}"
        for x in ratios
    ]
    lines.append(f"| {method} | training s per run | {' | '.join(cells)} |")
  cells = [
      f"{100 * results[x]['amplifier']['test']['classifier']['unbiased_accuracy']:.2f}"
      for x in ratios
  ]
  lines.append(f"| the amplifier itself | unbiased | {' | '.join(cells)} |")
  cells = [f"{results[x]['amplifier']['train_seconds_this_run']:.0f}" for x in ratios]
  lines.append(f"| the amplifier itself | training s | {' | '.join(cells)} |")
  lines += [
      "",
      "## Which bias model finds the conflicting training examples?",
      "",
      "Per-example cross-entropy on the real training images as a score for 'bias-conflicting'"
      " (definitions below); LfF's f_B at its first and last checkpoint and at its best, and"
      " its mean over the checkpoints (the bias model f_D learns from over a run); f_B below"
      " the amplifier: the fraction of f_B's checkpoints with a lower AUROC.",
      "",
      "| ratio | amplifier AUROC | f_B AUROC (first / best / last step) | f_B mean AUROC"
      " | f_B below the amplifier | amplifier top-k prec. | f_B top-k prec. (last) |",
      "|---|---|---|---|---|---|---|",
  ]
  for ratio in ratios:
    d = results[ratio]["diagnostics"]
    by_step = d["lff_biased_by_step"]
    steps = sorted(by_step)
    best = max(steps, key=lambda s: by_step[s]["auroc"])
    auroc = np.array([by_step[s]["auroc"] for s in steps])
    lines.append(
        f"| {100 * ratio:g}% | {d['amplifier']['auroc']:.3f} |"
        f" {by_step[steps[0]]['auroc']:.3f} (step {steps[0]}) / {by_step[best]['auroc']:.3f}"
        f" (step {best}) / {by_step[steps[-1]]['auroc']:.3f} (step {steps[-1]}) |"
        f" {auroc.mean():.3f} | {np.sum(auroc < d['amplifier']['auroc'])} of {len(steps)} |"
        f" {d['amplifier']['top_k_precision']:.3f} |"
        f" {by_step[steps[-1]]['top_k_precision']:.3f} |"
    )
  lines += [""] + [f"- {k}: {v}" for k, v in metrics.SEPARATION_DEFINITIONS.items()]
  lines += [
      "",
      "## The pseudo-groups of amplified_groups and amplified_dro against the true (class, colour)"
      " groups",
      "",
      f"Real training images; a mistake of the amplifier counts where its loss exceeds"
      f" {_MIN_LOSS.value:g} nats (`--min_loss`).",
      "",
      "| ratio | flagged | precision | recall | right group |",
      "|---|---|---|---|---|",
  ]
  for ratio in ratios:
    q = results[ratio]["diagnostics"]["pseudo_groups"]
    lines.append(
        f"| {100 * ratio:g}% | {100 * q['flagged']:.2f}% | {100 * q['precision']:.1f}% |"
        f" {100 * q['recall']:.1f}% | {100 * q['right_group']:.1f}% |"
    )
  lines += [""] + [f"- {k}: {v}" for k, v in metrics.PSEUDO_GROUP_DEFINITIONS.items()]
  lines += [
      "",
      "## Recipe (c)'s pairs, as its own labellers see them",
      "",
      "x(z'): the edited image; colour by the amplifier, digit by the labeller (definitions in"
      " jaxdebias/latent/pairs.py).",
      "",
      "| ratio | generated aligned | colour moved as asked | digit kept | both |",
      "|---|---|---|---|---|",
  ]
  for ratio in ratios:
    p = results[ratio]["pairs"]
    keys = ("generated_aligned_fraction", "protected_moved_as_requested", "target_kept")
    cells = [f"{100 * p[k]:.1f}%" for k in keys + ("moved_and_kept",)]
    lines.append(f"| {100 * ratio:g}% | {' | '.join(cells)} |")
  lines += stage_times(times)
  return "\n".join(lines) + "\n"


def plot(results: dict, path: pathlib.Path) -> None:
  """AUROC of f_B over LfF's steps against the amplifier's, one line per ratio."""
  import matplotlib  # pylint: disable=g-import-not-at-top (optional: the plots extra)

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, axis = plt.subplots(figsize=(6, 4))
  for i, (ratio, result) in enumerate(results.items()):
    by_step = result["diagnostics"]["lff_biased_by_step"]
    steps = sorted(by_step)
    color = f"C{i}"
    axis.plot(
        steps,
        [by_step[s]["auroc"] for s in steps],
        "o-",
        color=color,
        label=f"{100 * ratio:g}%: LfF's f_B (GCE)",
    )
    axis.axhline(
        result["diagnostics"]["amplifier"]["auroc"],
        color=color,
        linestyle="--",
        label=f"{100 * ratio:g}%: amplifier (generated data only)",
    )
  axis.set_xlabel("LfF training step")
  axis.set_ylabel("AUROC: loss finds conflicting examples")
  axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=120)


def main(argv):
  del argv
  runs.quiet_library_logs()
  seeds = [int(s) for s in _SEEDS.value]
  times, results = {}, {}
  start = time.perf_counter()
  for ratio in map(float, _RATIOS.value):
    results[ratio] = pipeline(ratio, seeds, times)
  times["total"] = time.perf_counter() - start
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  text = report_text(results, seeds, times)
  (out / "bias_amplification.md").write_text(text)
  (out / "bias_amplification.json").write_text(json.dumps(results, indent=1, default=float))
  plot(results, out / "bias_amplification.png")
  print(text)


if __name__ == "__main__":
  app.run(main)
