"""Synthetic pairs that break the bias: x(z) and x(z'), same target, protected attribute moved.

`python -m jaxdebias.recipes.make_pairs` runs `make_pairs` on finished runs. The steps of the paper
(Ramaswamy et al., CVPR 2021):
1. sample `num_fit` latents, generate their images and label them with the target and the
   protected classifiers (trained on the real data; argmax of their logits, or for a binary
   attribute the F1-optimal threshold on validation data);
2. fit a linear boundary per attribute in latent space (`hyperplanes.fit`); with
   `protected_dims` (for a tinted generator, its tint coordinates: the protected attribute is
   the colour), the protected boundary on those coordinates and the target's on the others, so
   the two are orthogonal and the edit moves the tint alone;
3. sample `num_pairs` new latents, label their images likewise, and move each z to z' along
   the protected direction orthogonal to the target's (`edits.edit`): from the protected class
   the latent boundary gives z to another one drawn uniformly (for a binary attribute: the
   other one);
4. generate x(z'), and store each pair as one record (`data.added`).
A report (OUT.json) says how well the boundaries fit and how often the classifiers agree that
the edit worked: the protected class became the requested one while the target stayed.
OUT.png shows example pairs, x(z) above x(z').
"""

import json
import pathlib
from typing import Any, Callable, NamedTuple

import jax
import ml_collections
import numpy as np

from jaxdebias import previews
from jaxdebias.data import added
from jaxdebias.errors import InputError
from jaxdebias.latent import edits, generator, hyperplanes



class UnreachableClasses(InputError):
  """The generator shows no image of some protected class: no edit can reach it, no pairs."""

def default_config() -> ml_collections.ConfigDict:
  """How pairs are made, in one place: the make_pairs command's defaults, the recipes' and the
  benchmarks'. min_sin 0: nearly parallel boundaries are reported (`*_boundary_accuracy`,
  `median_edit_norm`), not refused."""
  return ml_collections.ConfigDict(
      {
          "num_fit": 10_000,  # Latents for fitting the boundaries (the paper's).
          "num_pairs": 60_000,
          "seed": 0,
          "edit": "complementary",
          "latent_space": "w",  # The generator's style w, where global attributes are closer to
          # linear (the DCGAN here; "z" for generators without a mapping network).
          "min_sin": 0.0,
      }
  )


def make_pairs_with(
    gen: generator.ImageGenerator,
    target: "Labeller",
    protected: "Labeller",
    options: ml_collections.ConfigDict,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """`make_pairs` with `options` (`default_config`'s fields). A tinted generator (an opt-in
  colour prior) has its protected boundary fitted on its tint alone and edited pairwise; a
  generator conditioned on (class, pseudo bias) makes its pairs by its conditioning
  (`conditioned_pairs`)."""
  if len(gen.factors) == 2:
    return conditioned_pairs(gen, target, protected, options.num_pairs, options.seed)
  return make_pairs(
      gen,
      target,
      protected,
      num_fit=options.num_fit,
      num_pairs=options.num_pairs,
      seed=options.seed,
      edit=options.edit,
      min_sin=options.min_sin,
      protected_dims=gen.tint_dims,
      pairwise=gen.tint_dims is not None,
  )


class Labeller(NamedTuple):
  """Hard labels of images from a classifier's logits: argmax, or for two classes
  p(class 1) >= threshold (chosen on validation data, as the paper does)."""

  logits: Callable[[np.ndarray], np.ndarray]  # uint8 images -> logits (N, num_classes)
  num_classes: int
  threshold: float | None = None

  def __call__(self, images: np.ndarray) -> np.ndarray:
    logits = self.logits(images)
    if self.threshold is None:
      return logits.argmax(-1)
    return (np.asarray(jax.nn.softmax(logits))[:, 1] >= self.threshold).astype(np.int64)


def make_pairs(
    gen: generator.ImageGenerator,
    target: Labeller,
    protected: Labeller,
    *,
    num_fit: int,
    num_pairs: int,
    seed: int = 0,
    edit: str = "complementary",
    min_sin: float = 0.1,
    protected_dims: slice | None = None,
    pairwise: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """The pair arrays (`data.added.FIELDS` plus the labels the classifiers give x(z')) and a
  report of the fit and of how often the edits did what they were meant to.

  protected_dims: latent coordinates that alone set the protected attribute (module doc, 2);
  None: both boundaries on every coordinate, as in the paper. pairwise: the edit constrains only
  the scores of the source and requested protected class (`edits`), as it must where fewer
  coordinates than protected classes set the attribute.
  """
  rng = np.random.default_rng(seed)
  latents = lambda n: gen.sample(rng, n)

  def labelled(z):
    images = gen.images(z)
    return images, target(images), protected(images)

  z_fit = latents(num_fit)
  _, t_fit, g_fit = labelled(z_fit)
  num_protected = protected.num_classes
  missing = np.setdiff1d(np.arange(num_protected), g_fit)
  if missing.size:
    raise UnreachableClasses(
        f"none of the {num_fit} generated images has protected class {missing.tolist()}: the "
        "generator cannot show them, so no edit can reach them; train the generator longer "
        "or raise num_fit."
    )
  if protected_dims is None:
    target_plane = hyperplanes.fit(z_fit, t_fit, target.num_classes)
    protected_plane = hyperplanes.fit(z_fit, g_fit, num_protected)
  else:
    protected_mask = np.zeros(z_fit.shape[1], bool)
    protected_mask[protected_dims] = True
    if not pairwise and protected_mask.sum() < num_protected - 1:
      raise InputError(
          f"{protected_mask.sum()} protected coordinates cannot keep the other protected classes"
          f" of {num_protected} while moving one (that needs {num_protected - 1}); use the"
          " pairwise edit (--pairwise)."
      )
    target_plane = hyperplanes.fit_on(z_fit, t_fit, target.num_classes, ~protected_mask)
    protected_plane = hyperplanes.fit_on(z_fit, g_fit, num_protected, protected_mask)
  directions = edits.edit_directions(
      target_plane.w, protected_plane.w, protected_plane.b, min_sin=min_sin, pairwise=pairwise
  )

  z = latents(num_pairs)
  image, label, g = labelled(z)
  source = np.asarray(protected_plane.predict(z))
  moved_to = (source + rng.integers(1, num_protected, num_pairs)) % num_protected
  edit_fn = jax.jit(edits.edit, static_argnums=4)
  z_pair = np.concatenate(
      [  # In chunks: each example gathers its (d, n) pseudo-inverse.
          np.asarray(
              edit_fn(
                  z[i : i + 4096], directions, source[i : i + 4096], moved_to[i : i + 4096], edit
              )
          )
          for i in range(0, num_pairs, 4096)
      ]
  )
  image_pair, label_pair, g_pair = labelled(z_pair)
  arrays, quality = _records(
      z, z_pair, image, image_pair, label, g, moved_to, g, label_pair, g_pair
  )
  report = {
      "num_fit": num_fit,
      "num_pairs": num_pairs,
      "edit": edit,
      "latent_space": gen.latent_space,
      "protected_dims": None if protected_dims is None else str(protected_dims),
      "pairwise": pairwise,
      "target_boundary_accuracy": float(np.mean(np.asarray(target_plane.predict(z)) == label)),
      "protected_boundary_accuracy": float(np.mean(source == g)),
      "generated_aligned_fraction": float(np.mean(g == label)),
      **quality,
      "median_latent_norm": float(np.median(np.linalg.norm(z, axis=-1))),
      "median_edit_norm": float(np.median(np.linalg.norm(z_pair - z, axis=-1))),
      "definitions": REPORT_DEFINITIONS,
  }
  return arrays, report


def conditioned_pairs(
    gen: generator.ImageGenerator,
    target: Labeller,
    protected: Labeller,
    num_pairs: int,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Pairs from a generator conditioned on (class, pseudo bias) (`gen.factors` (K, K'); the
  GAN of gan.pseudo_bias): x(z) = G(z, y, b) and x(z') = G(z, y, b'), y, b and b' != b drawn
  uniformly, z' = z with the pseudo bias moved: the class is kept by the conditioning, no
  boundary is fitted. The arrays and report are `make_pairs`'s; `label` and the protected
  fields are the conditioning's y, b and b', the labellers' readings of x(z') are kept beside
  them and measured in the report."""
  num_classes, num_bias = gen.factors
  rng = np.random.default_rng(seed)
  label = rng.integers(0, num_classes, num_pairs)
  bias = rng.integers(0, num_bias, num_pairs)
  bias_pair = (bias + rng.integers(1, num_bias, num_pairs)) % num_bias
  noise = rng.standard_normal((num_pairs, gen.latent_dim)).astype(np.float32)
  z = gen.latents(noise, np.stack([label, bias], axis=1))
  z_pair = gen.latents(noise, np.stack([label, bias_pair], axis=1))
  image, image_pair = gen.images(z), gen.images(z_pair)
  label_read, g = target(image), protected(image)
  label_pair, g_pair = target(image_pair), protected(image_pair)
  arrays, quality = _records(
      z, z_pair, image, image_pair, label, bias, bias_pair, g, label_pair, g_pair
  )
  report = {
      "num_pairs": num_pairs,
      "edit": "condition",
      "latent_space": gen.latent_space,
      "target_as_conditioned": float(np.mean(label_read == label)),
      "protected_as_conditioned": float(np.mean(g == bias)),
      **quality,
      "definitions": {
          "*_as_conditioned": "x(z) given the label it was generated for (class y, pseudo bias b)",
          "protected_moved_as_requested": REPORT_DEFINITIONS["protected_moved_as_requested"],
          "protected_changed": "x(z') given another protected label than x(z)",
          "target_kept": "x(z') given the class y both images were generated for",
          "moved_and_kept": REPORT_DEFINITIONS["moved_and_kept"],
      },
  }
  return arrays, report


def _records(z, z_pair, image, image_pair, label, protected, protected_pair, g, label_pair, g_pair):
  """The pair arrays (`data.added.FIELDS` and the labellers' readings of x(z')) and how often
  the pairs did what they were meant to: g, label_pair, g_pair are the labellers' readings of
  x(z)'s protected class and of x(z')'s target and protected class."""
  arrays = {
      "z": z,
      "z_pair": z_pair,
      "image": image,
      "image_pair": image_pair,
      "label": label.astype(np.int32),
      "protected": protected.astype(np.int32),
      "protected_pair": protected_pair.astype(np.int32),
      "labelled_label_pair": label_pair.astype(np.int32),
      "labelled_protected_pair": g_pair.astype(np.int32),
  }
  flipped, kept = g_pair == protected_pair, label_pair == label
  quality = {
      "protected_moved_as_requested": float(np.mean(flipped)),
      "protected_changed": float(np.mean(g_pair != g)),
      "target_kept": float(np.mean(kept)),
      "moved_and_kept": float(np.mean(flipped & kept)),
  }
  return arrays, quality


REPORT_DEFINITIONS = {
    "*_boundary_accuracy": (
        "agreement of the latent boundary's class with the classifier's label"
        " of x(z), on the pair latents (not used for fitting)"
    ),
    "generated_aligned_fraction": (
        "x(z) whose protected label equals its target label (the"
        " bias-aligned group, for datasets where class k's bias is k)"
    ),
    "protected_moved_as_requested": "x(z') labelled with the protected class z' was moved to",
    "target_kept": "x(z') given the same target label as x(z)",
    "moved_and_kept": "both: the pair breaks the correlation as intended",
}


def save(out: pathlib.Path, arrays: dict[str, np.ndarray], report: dict[str, Any]) -> None:
  """The pairs file `out` (.npz), its report (.json) and example pairs (.png) beside it."""
  added.save_pairs(str(out), **arrays)
  out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
  write_examples(out.with_suffix(".png"), arrays)


def write_examples(path: pathlib.Path, arrays: dict[str, np.ndarray], count: int = 16) -> None:
  """A PNG of `count` pairs: x(z) in the top row, x(z') below."""
  top, bottom = (np.concatenate(list(arrays[k][:count]), axis=1) for k in ("image", "image_pair"))
  grid = np.concatenate([top, bottom], axis=0)
  previews.write_png(path, grid, scale=2)
