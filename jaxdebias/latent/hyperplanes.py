"""Linear attribute boundaries in latent space, fitted to (latent, attribute label) pairs.

L2-regularised logistic regression (multinomial for K > 2 classes) solved with optax's L-BFGS,
in JAX: no extra dependency, it runs where the generator runs, and one model covers the binary
hyperplanes of the paper and the 10-class digit and colour boundaries of Colored MNIST. The
paper fits a linear SVM (C = 1); the two losses give nearly the same separating direction on
separable data, and only the direction (and offset) is used by the edits. The regulariser
matches C: mean loss + ||W||^2 / (2 C n), as scikit-learn scales it.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdebias.latent import edits


class Linear(NamedTuple):
  """Class scores z @ w.T + b: w (K, d), b (K,). Binary: K = 1, a normalised hyperplane."""

  w: jax.Array
  b: jax.Array

  def scores(self, z: jax.Array) -> jax.Array:
    return z @ self.w.T + self.b

  def predict(self, z: jax.Array) -> jax.Array:
    """Class indices: argmax of the scores, or score > 0 for a binary hyperplane."""
    s = self.scores(z)
    return (s[..., 0] > 0).astype(jnp.int32) if s.shape[-1] == 1 else jnp.argmax(s, -1)


@functools.partial(jax.jit, static_argnames=("num_classes", "iterations"))
def fit(
    z: jax.Array, labels: jax.Array, num_classes: int, c: float = 1.0, iterations: int = 100
) -> Linear:
  """Logistic regression of `labels` (n,) in [0, num_classes) on latents `z` (n, d).

  Binary (num_classes = 2): the hyperplane w = w_1 - w_0, b = b_1 - b_0, normalised so that
  w.z + b is the signed distance to it (positive on the side of class 1).
  """
  n, d = z.shape
  params = (jnp.zeros((num_classes, d)), jnp.zeros(num_classes))

  def loss(params):
    w, b = params
    logits = z @ w.T + b
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return nll + jnp.sum(w**2) / (2 * c * n)

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(_, carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return optax.apply_updates(params, updates), state

  w, b = jax.lax.fori_loop(0, iterations, step, (params, solver.init(params)))[0]
  if num_classes == 2:
    return Linear(*edits.normalize(w[1:] - w[:1], b[1:] - b[:1]))
  return Linear(w, b)


def fit_on(
    z: jax.Array, labels: jax.Array, num_classes: int, dims: np.ndarray, c: float = 1.0
) -> Linear:
  """`fit` on the latent coordinates where the boolean mask `dims` (d,) is true, with zero
  weight on the others: a boundary of an attribute that only part of the latent sets."""
  plane = fit(z[:, dims], labels, num_classes, c)
  w = jnp.zeros((plane.w.shape[0], z.shape[1]), plane.w.dtype).at[:, dims].set(plane.w)
  return Linear(w, plane.b)
