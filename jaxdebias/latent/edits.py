"""Latent edits that break a bias: move z so the protected attribute flips, the target does not.

Pure functions on linear attribute scores (class logits z @ w.T + b, or a binary hyperplane
w.z + b; from `hyperplanes.py`). The paper's closed form (Ramaswamy et al., CVPR 2021) for a
binary target t and a binary protected attribute g, both hyperplanes normalised (||w|| = 1):

    z' = z - 2 (w_g.z + b_g) / (1 - (w_g.w_t)^2) * (w_g - (w_g.w_t) w_t)

keeps w_t.z' = w_t.z and negates w_g.z + b_g. It is the smallest move (minimum norm) that
meets those two linear constraints, which is how it generalises here: for K protected classes,
moving z from class c to c' means swapping the logits of c and c' and keeping the others; only
logit differences matter, so the constraints are the K - 1 differences l_k - l_c, plus every
target constraint (the hyperplane w_t, or for a K_t-class target its K_t - 1 logit differences).
The minimum-norm move is a pseudo-inverse per source class c. For K = 2 the single protected
constraint is the binary one, and the move is the closed form above (tested).

Keeping the other K - 2 protected logits needs K - 1 free directions. Where the protected
attribute lives in fewer (a tinted generator's colour: 3 coordinates, 10 colours), the
`pairwise` edit constrains only l_c' - l_c: it is the paper's closed form with the boundary
between c and c' as the protected hyperplane, and for K = 2 it is the same edit.

The move grows as 1 / sin of the angle between a protected constraint and the span of the
others, so `edit_directions` refuses boundaries that are nearly parallel.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias.errors import InputError

EDITS = ("complementary", "on_hyperplane", "perpendicular")


class EditDirections(NamedTuple):
  """Protected class scores (K, d), (K,), and per source class c the pseudo-inverses (K, d, n)
  of the constraint rows [target rows; w - w_c], with and without the target rows; pairwise,
  per source c and requested c' those (K, K, d, n) of [target rows; w_c' - w_c].

  A binary protected hyperplane (w_g, b_g) is held as two classes with scores (0, w_g.z + b_g).
  """

  w: jax.Array
  b: jax.Array
  keep_pinv: jax.Array  # (K, d, num_target_rows + K) or pairwise (K, K, d, num_target_rows + 1)
  free_pinv: jax.Array  # Without the target rows (the perpendicular ablation): (K, d, K) or
  # pairwise (K, K, d, 1)


def normalize(w: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(w, b) / ||w|| along the last axis: w.z + b becomes a signed distance."""
  norm = jnp.linalg.norm(w, axis=-1)
  return w / norm[..., None], b / norm


def _target_rows(keep: np.ndarray) -> np.ndarray:
  """A binary hyperplane (1, d) as it is; K_t class weights as their K_t - 1 differences."""
  return keep if len(keep) == 1 else keep[1:] - keep[:1]


def _sine(rows: np.ndarray, i: int) -> float:
  """Sine of the angle between rows[i] and the span of the other rows."""
  others = np.delete(rows, i, axis=0)
  residual = rows[i] - others.T @ np.linalg.lstsq(others.T, rows[i], rcond=None)[0]
  return np.linalg.norm(residual) / np.linalg.norm(rows[i])


def edit_directions(
    keep: np.ndarray, w: np.ndarray, b: np.ndarray, min_sin: float = 0.1, pairwise: bool = False
) -> EditDirections:
  """Precomputes the edits that keep the target scores `keep` (a hyperplane (1, d) or class
  weights (K_t, d)) and move the protected scores (w, b) (a hyperplane or K class weights);
  pairwise: constrain only the score difference of the source and requested class (module doc).

  Raises InputError when some protected constraint lies within angle asin(min_sin) of the span
  of the other constraints: the edit would need a step of 1 / sin times the score change.
  """
  keep, w, b = (np.asarray(a, np.float64) for a in (keep, w, b))
  if len(w) == 1:  # A binary hyperplane: class scores (0, w.z + b).
    w, b = np.concatenate([np.zeros_like(w), w]), np.concatenate([np.zeros_like(b), b])
  target = _target_rows(keep)
  num_classes, worst = len(w), 1.0
  keep_pinv, free_pinv = [], []
  for c in range(num_classes):
    if pairwise:  # One protected row per requested class k: w_k - w_c (k = c: no move).
      protected_rows = [(w[k] - w[c])[None] for k in range(num_classes)]
    else:  # Row c is zero: its constraint (0 = 0) is idle.
      protected_rows = [w - w[c]]
    for protected in protected_rows:
      rows = np.concatenate([target, protected])
      for i in range(len(target), len(rows)):
        if rows[i].any():
          worst = min(worst, _sine(rows, i))
      keep_pinv.append(np.linalg.pinv(rows))
      free_pinv.append(np.linalg.pinv(protected))
  if worst < min_sin:
    raise InputError(
        f"the protected and target boundaries are nearly parallel (sine of the angle "
        f"{worst:.3g} < min_sin {min_sin}): an edit cannot flip one and keep the other; "
        "check the attribute labels of the generated images or lower min_sin."
    )
  grid = (num_classes, num_classes) if pairwise else (num_classes,)
  keep_pinv, free_pinv = (np.reshape(a, grid + a[0].shape) for a in (keep_pinv, free_pinv))
  return EditDirections(*(jnp.asarray(a, jnp.float32) for a in (w, b, keep_pinv, free_pinv)))


def edit(z: jax.Array, directions: EditDirections, source: jax.Array, target: jax.Array, kind: str):
  """Edited latents z (B, d) moving the protected class `source` -> `target` (ints (B,)).

  kind: 'complementary' swaps the two class scores (binary: negates the score; the paper's z');
  'on_hyperplane' stops halfway, where they tie (score 0); 'perpendicular' makes the same
  protected move but ignores the target (the ablation; binary: the mirror image along w).
  For a binary hyperplane the classes are 0 (score < 0) and 1.
  """
  if kind not in EDITS:
    raise InputError(f"Unknown latent edit {kind!r}; use one of {EDITS}.")
  w, b, keep_pinv, free_pinv = directions
  logits = z @ w.T + b
  rows = jnp.arange(len(z))
  gap = logits[rows, source] - logits[rows, target]
  if keep_pinv.ndim == 4:  # Pairwise: l_c' - l_c goes from -gap to gap.
    change = 2 * gap[:, None]
    keep_pinv, free_pinv = keep_pinv[source, target], free_pinv[source, target]
  else:  # Change of l_k - l_c for every k: 2 gap for the requested class, gap for the others.
    change = gap[:, None] * (1.0 + jax.nn.one_hot(target, len(w)))
    change *= 1.0 - jax.nn.one_hot(source, len(w))
    keep_pinv, free_pinv = keep_pinv[source], free_pinv[source]
  if kind == "on_hyperplane":
    change /= 2
  if kind == "perpendicular":
    pinv = free_pinv
  else:
    pinv = keep_pinv
    num_target_rows = keep_pinv.shape[-1] - change.shape[-1]
    change = jnp.concatenate([jnp.zeros((len(z), num_target_rows)), change], axis=1)
  return z + jnp.einsum("bdn,bn->bd", pinv, change)


def complementary_latent(z, w_t, b_t, w_g, b_g):
  """The paper's closed form for normalised binary hyperplanes (the reference for tests)."""
  del b_t  # The target offset does not enter: z' keeps w_t.z' = w_t.z.
  cos = jnp.dot(w_g, w_t)
  return z - 2 * (z @ w_g + b_g)[..., None] / (1 - cos**2) * (w_g - cos * w_t)
