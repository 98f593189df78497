r"""The pairs of latent de-biasing from finished runs: a generator run, and two classifier runs
that label its images (`latent.pairs.make_pairs`, settings `latent.pairs.default_config`).

  python -m jaxdebias.recipes.make_pairs --generator=GAN_WORKDIR \
      --target_classifier=WORKDIR --protected_classifier=WORKDIR --out=pairs.npz

Writes OUT (.npz), its report (.json) and example pairs (.png); train on them with
--config.data.added_pairs.path=OUT. A tinted generator (gan.tinted, an opt-in colour prior) has
its protected boundary fitted on its tint alone and edited pairwise. Bad input: one line on
stderr and exit status 2.
"""

import json

from absl import app
from absl import flags

from jaxdebias import runs
from jaxdebias.errors import exit_on_user_error
from jaxdebias.latent import edits, generator, pairs
from jaxdebias.recipes import stages


def _define_flags() -> None:
  """The command's flags (defined only when run as a command, so importing this defines none)."""
  defaults = pairs.default_config()
  flags.DEFINE_string("generator", None, "Workdir of a finished GAN run.")
  flags.DEFINE_string("target_classifier", None, "Workdir of the target classifier.")
  flags.DEFINE_string("protected_classifier", None, "Workdir of the protected classifier.")
  flags.DEFINE_string("out", None, "The pairs file to write (.npz).")
  flags.DEFINE_integer("num_fit", defaults.num_fit, "Latents for fitting the boundaries.")
  flags.DEFINE_integer("num_pairs", defaults.num_pairs, "Pairs to generate.")
  flags.DEFINE_integer("seed", defaults.seed, "Seed of the latents and the requested classes.")
  flags.DEFINE_enum("edit", defaults.edit, edits.EDITS, "The latent edit.")
  flags.DEFINE_enum(
      "latent_space",
      defaults.latent_space,
      generator.LATENT_SPACES,
      "Edit z, or the style w of a mapping network.",
  )
  flags.DEFINE_float("min_sin", defaults.min_sin, "Refuse boundaries closer than this (sine).")
  flags.mark_flags_as_required(["generator", "target_classifier", "protected_classifier", "out"])


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  runs.quiet_library_logs()
  options = pairs.default_config()
  options.update({k: f[k].value for k in options})
  with exit_on_user_error():
    report = stages.write_pairs(
        f.generator, f.target_classifier, f.protected_classifier, f.out, options
    )
  print(json.dumps({k: v for k, v in report.items() if k != "definitions"}, indent=2))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
