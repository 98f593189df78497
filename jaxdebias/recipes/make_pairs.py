r"""The pairs command of latent de-biasing: synthetic pairs from a finished generator run,
labelled by two finished classifier runs (`latent.pairs.make_pairs`).

  python -m jaxdebias.recipes.make_pairs --generator=GAN_WORKDIR \
      --target_classifier=WORKDIR --protected_classifier=WORKDIR --out=pairs.npz

Writes OUT (.npz), its report (.json) and example pairs (.png); train on them with
--config.data.added_pairs.path=OUT. Bad input: one line on stderr and exit status 2.
"""

import json
import pathlib

from absl import app
from absl import flags

from jaxdebias import runs
from jaxdebias.errors import InputError, exit_on_user_error
from jaxdebias.latent import edits, generator, pairs


def _define_flags() -> None:
  """The command's flags (defined only when run as a command, so importing this defines none)."""
  flags.DEFINE_string("generator", None, "Workdir of a finished GAN run.")
  flags.DEFINE_string("target_classifier", None, "Workdir of the target classifier.")
  flags.DEFINE_string("protected_classifier", None, "Workdir of the protected classifier.")
  flags.DEFINE_string("out", None, "The pairs file to write (.npz).")
  flags.DEFINE_integer("num_fit", 10_000, "Latents for fitting the boundaries.")
  flags.DEFINE_integer("num_pairs", 60_000, "Pairs to generate.")
  flags.DEFINE_integer("seed", 0, "Seed of the latents and the requested classes.")
  flags.DEFINE_enum("edit", "complementary", edits.EDITS, "The latent edit.")
  flags.DEFINE_enum(
      "latent_space", "z", generator.LATENT_SPACES, "Edit z, or the style w of a mapping network."
  )
  flags.DEFINE_float("min_sin", 0.1, "Refuse boundaries closer than this (sine).")
  flags.DEFINE_bool(
      "protected_on_tint", False, "Fit the protected boundary on a tinted generator's tint."
  )
  flags.DEFINE_bool("pairwise", False, "Constrain only the source and requested class.")
  flags.mark_flags_as_required(["generator", "target_classifier", "protected_classifier", "out"])


def main(argv) -> None:
  del argv
  f = flags.FLAGS
  runs.quiet_library_logs()
  with exit_on_user_error():
    gen = runs.load_generator(f.generator, f.latent_space)
    if f.protected_on_tint and gen.tint_dims is None:
      raise InputError(
          "--protected_on_tint needs a tinted generator (gan.tinted) and --latent_space=w."
      )
    arrays, report = pairs.make_pairs(
        gen,
        runs.load_labeller(f.target_classifier),
        runs.load_labeller(f.protected_classifier),
        num_fit=f.num_fit,
        num_pairs=f.num_pairs,
        seed=f.seed,
        edit=f.edit,
        min_sin=f.min_sin,
        protected_dims=gen.tint_dims if f.protected_on_tint else None,
        pairwise=f.pairwise,
    )
  pairs.save(pathlib.Path(f.out), arrays, report)
  print(json.dumps({k: v for k, v in report.items() if k != "definitions"}, indent=2))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
