"""The latent de-biasing pairs both benchmarks train on, made one way in one place."""

import pathlib

from jaxdebias import runs
from jaxdebias.latent import pairs


def write(
    gan_dir: str | pathlib.Path,
    space: str,
    target_dir: str | pathlib.Path,
    protected_dir: str | pathlib.Path,
    path: pathlib.Path,
    num_pairs: int = 60_000,
) -> None:
  """Pairs from the GAN in `gan_dir`, labelled by the two classifier runs, saved to `path`
  (+ .json report). A tinted generator's colour is edited on its tint alone, pairwise (10
  colours in 3 coordinates); near-parallel boundaries are measured and reported, not refused."""
  gen = runs.load_generator(str(gan_dir), space)
  arrays, report = pairs.make_pairs(
      gen,
      runs.load_labeller(str(target_dir)),
      runs.load_labeller(str(protected_dir)),
      num_fit=10_000,
      num_pairs=num_pairs,
      min_sin=0.0,
      protected_dims=gen.tint_dims,
      pairwise=gen.tint_dims is not None,
  )
  pairs.save(path, arrays, report)
