"""Latent edits that break a bias: move z so the protected attribute flips, the target does not.

Pure functions on linear attribute scores s(z) = w.z + b (hyperplanes from `hyperplanes.py`).
The paper's closed form (Ramaswamy et al., CVPR 2021) for a binary target t and a binary
protected attribute g, both hyperplanes normalised (||w|| = 1):

    z' = z - 2 (w_g.z + b_g) / (1 - (w_g.w_t)^2) * (w_g - (w_g.w_t) w_t)

keeps w_t.z' + b_t = w_t.z + b_t and negates w_g.z + b_g. Written as a move along the edit
direction u = w_g - P(w_g), where P projects onto the span of the directions to keep, it
extends to any number of kept directions (all 10 digit logits of a multinomial target) and to a
multi-class protected attribute (negate the score difference between the current class c and a
chosen class c', w = w_c - w_c'): z' = z - 2 s(z) / (w.u) u. With one kept direction w_t this is
exactly the closed form. The step grows as 1 / sin^2 of the angle between w and the kept span,
so `edit_directions` refuses hyperplanes that are nearly parallel.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias.errors import InputError

EDITS = ("complementary", "on_hyperplane", "perpendicular")


class EditDirections(NamedTuple):
  """Protected hyperplanes (K, d), (K,) with their directions u (K, d) orthogonal to the kept span.

  Binary protected attribute: K = 1 (the hyperplane w_g, b_g). Multi-class: K classes' logit
  weights; the score of a change c -> c' is the difference of rows c and c'.
  """

  w: jax.Array
  b: jax.Array
  u: jax.Array


def normalize(w: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(w, b) / ||w|| along the last axis: w.z + b becomes a signed distance."""
  norm = jnp.linalg.norm(w, axis=-1)
  return w / norm[..., None], b / norm


def edit_directions(
    keep: np.ndarray, w: np.ndarray, b: np.ndarray, min_sin: float = 0.1
) -> EditDirections:
  """Removes from each protected direction its component in the span of `keep` (k, d).

  Raises InputError when some protected score change (a row of `w`, or for K > 1 a difference of
  two rows) lies within angle asin(min_sin) of the kept span: the edit would need a step of
  1 / sin^2 times the score, far outside the latent distribution.
  """
  keep, w, b = (np.asarray(a, np.float64) for a in (keep, w, b))
  basis, _ = np.linalg.qr(keep.T)  # (d, k): orthonormal basis of the kept span.
  u = w - (w @ basis) @ basis.T
  if len(w) == 1:
    pairs_w, pairs_u = w, u
  else:  # Every change c -> c' (c != c').
    i, j = np.nonzero(~np.eye(len(w), dtype=bool))
    pairs_w, pairs_u = w[i] - w[j], u[i] - u[j]
  sin = np.linalg.norm(pairs_u, axis=-1) / np.linalg.norm(pairs_w, axis=-1)
  if sin.min() < min_sin:
    raise InputError(
        f"the protected and target hyperplanes are nearly parallel (sine of the angle "
        f"{sin.min():.3g} < min_sin {min_sin}): an edit cannot flip one and keep the other; "
        "check the attribute labels of the generated images or lower latent.min_sin."
    )
  return EditDirections(*(jnp.asarray(a, jnp.float32) for a in (w, b, u)))


def edit(z: jax.Array, directions: EditDirections, source: jax.Array, target: jax.Array, kind: str):
  """Edited latents z (..., d) moving the protected class `source` -> `target` (ints, (...)).

  kind: 'complementary' negates the score (the paper's z'), 'on_hyperplane' stops at score 0,
  'perpendicular' reflects along w itself (ignores the target: the ablation). For a binary
  protected attribute (one row), source and target are ignored.
  """
  if kind not in EDITS:
    raise InputError(f"Unknown latent edit {kind!r}; set latent.edit to one of {EDITS}.")
  w, b, u = directions
  if len(w) == 1:
    w, b, u = w[0], b[0], u[0]
  else:
    w, b, u = w[source] - w[target], b[source] - b[target], u[source] - u[target]
  score = jnp.sum(w * z, -1) + b
  if kind == "perpendicular":
    u = w
  step = (2.0 if kind != "on_hyperplane" else 1.0) * score / jnp.sum(w * u, -1)
  return z - step[..., None] * u


def complementary_latent(z, w_t, b_t, w_g, b_g):
  """The paper's closed form for normalised binary hyperplanes (the reference for tests)."""
  del b_t  # The target offset does not enter: z' keeps w_t.z' = w_t.z.
  cos = jnp.dot(w_g, w_t)
  return z - 2 * (z @ w_g + b_g)[..., None] / (1 - cos**2) * (w_g - cos * w_t)
