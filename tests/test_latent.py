"""Tests for jaxdebias.latent: hyperplanes and the latent edits."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdebias.errors import InputError
from jaxdebias.latent import edits, hyperplanes

D = 32


def _unit(rng, *shape):
  w = rng.normal(size=(*shape, D))
  return w / np.linalg.norm(w, axis=-1, keepdims=True)


def _binary_case(seed=0):
  rng = np.random.default_rng(seed)
  w_t, w_g = _unit(rng), _unit(rng)
  b_t, b_g = rng.normal(), rng.normal()
  return rng.normal(size=(100, D)), w_t, b_t, w_g, b_g


def test_closed_form_keeps_the_target_score_and_negates_the_protected_one():
  with jax.enable_x64():  # Float64 throughout: exact up to rounding.
    z, w_t, b_t, w_g, b_g = (jnp.asarray(a, jnp.float64) for a in _binary_case())
    z2 = edits.complementary_latent(z, w_t, b_t, w_g, b_g)
    chex.assert_trees_all_close(z2 @ w_t + b_t, z @ w_t + b_t, atol=1e-12)
    chex.assert_trees_all_close(z2 @ w_g + b_g, -(z @ w_g + b_g), atol=1e-12)


def test_orthogonal_hyperplanes_give_the_mirror_reflection():
  z, w_t, b_t, w_g, b_g = _binary_case()
  w_g = w_g - (w_g @ w_t) * w_t
  w_g /= np.linalg.norm(w_g)
  mirror = z - 2 * (z @ w_g + b_g)[:, None] * w_g
  np.testing.assert_allclose(edits.complementary_latent(z, w_t, b_t, w_g, b_g), mirror, atol=1e-5)


def test_general_edit_with_one_kept_direction_is_the_closed_form():
  z, w_t, b_t, w_g, b_g = _binary_case()
  directions = edits.edit_directions(w_t[None], w_g[None], np.array([b_g]))
  side = (z @ w_g + b_g > 0).astype(np.int32)  # Class 1 on the positive side.
  got = edits.edit(z, directions, side, 1 - side, "complementary")
  want = edits.complementary_latent(z, w_t, b_t, w_g, b_g)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_two_class_protected_attribute_reduces_to_the_binary_formula():
  z, w_t, b_t, w_g, b_g = _binary_case()
  # Class scores (0, w_g.z + b_g): class 1 where the binary score is positive.
  directions = edits.edit_directions(w_t[None], np.stack([np.zeros(D), w_g]), np.array([0, b_g]))
  source = (z @ w_g + b_g > 0).astype(np.int32)
  got = edits.edit(z, directions, source, 1 - source, "complementary")
  np.testing.assert_allclose(got, edits.complementary_latent(z, w_t, b_t, w_g, b_g), atol=1e-5)


def test_multiclass_edit_keeps_the_target_and_swaps_two_protected_logits():
  rng = np.random.default_rng(1)
  w_t, _ = rng.normal(size=(10, D)), rng.normal(size=10)  # (A target offset plays no part.)
  w_g, b_g = rng.normal(size=(10, D)), rng.normal(size=10)
  z = rng.normal(size=(200, D))
  source = np.argmax(z @ w_g.T + b_g, -1)
  target = (source + rng.integers(1, 10, size=len(z))) % 10
  directions = edits.edit_directions(w_t, w_g, b_g)  # Float32: logits of size ~10 to ~1e-4.
  z2 = np.asarray(edits.edit(z, directions, source, target, "complementary"), np.float64)
  differences = lambda x: (x @ w_t.T)[:, 1:] - (x @ w_t.T)[:, :1]  # What softmax sees.
  np.testing.assert_allclose(differences(z2), differences(z), atol=1e-4)
  rows = np.arange(len(z))
  before, after = z @ w_g.T + b_g, z2 @ w_g.T + b_g
  after -= (after[rows, target] - before[rows, source])[:, None]  # Up to a common shift:
  swapped = before.copy()
  swapped[rows, source], swapped[rows, target] = before[rows, target], before[rows, source]
  np.testing.assert_allclose(after, swapped, atol=1e-4)
  assert np.all(np.argmax(after, -1) == target)  # c' now wins; c had won.


def test_pairwise_edit_is_the_closed_form_for_two_classes():
  z, w_t, b_t, w_g, b_g = _binary_case()
  directions = edits.edit_directions(w_t[None], w_g[None], np.array([b_g]), pairwise=True)
  side = (z @ w_g + b_g > 0).astype(np.int32)
  got = edits.edit(z, directions, side, 1 - side, "complementary")
  np.testing.assert_allclose(got, edits.complementary_latent(z, w_t, b_t, w_g, b_g), atol=1e-5)


def test_pairwise_edit_swaps_the_pair_in_fewer_dimensions_than_classes():
  """10 protected classes set by 3 coordinates, the target by the others (a tinted generator)."""
  rng = np.random.default_rng(5)
  w_t = np.concatenate([rng.normal(size=(10, D - 3)), np.zeros((10, 3))], axis=1)
  w_g = np.concatenate([np.zeros((10, D - 3)), rng.normal(size=(10, 3))], axis=1)
  b_g = rng.normal(size=10)
  z = rng.normal(size=(200, D))
  source = np.argmax(z @ w_g.T + b_g, -1)
  target = (source + rng.integers(1, 10, size=len(z))) % 10
  directions = edits.edit_directions(w_t, w_g, b_g, pairwise=True)
  z2 = np.asarray(edits.edit(z, directions, source, target, "complementary"), np.float64)
  np.testing.assert_allclose(z2[:, : D - 3], z[:, : D - 3], atol=1e-5)  # The target's part.
  rows = np.arange(len(z))
  pair_gap = lambda x: (x @ w_g.T + b_g)[rows, target] - (x @ w_g.T + b_g)[rows, source]
  np.testing.assert_allclose(pair_gap(z2), -pair_gap(z), atol=1e-4)
  with pytest.raises(InputError, match="nearly parallel"):  # Exact swaps need 9 directions.
    edits.edit_directions(w_t, w_g, b_g)


@pytest.mark.parametrize("kind", ["on_hyperplane", "perpendicular"])
def test_ablations(kind):
  z, w_t, b_t, w_g, b_g = _binary_case()
  directions = edits.edit_directions(w_t[None], w_g[None], np.array([b_g]))
  side = (z @ w_g + b_g > 0).astype(np.int32)
  z2 = np.asarray(edits.edit(z, directions, side, 1 - side, kind))
  if kind == "on_hyperplane":  # Onto the protected boundary, target score kept.
    np.testing.assert_allclose(z2 @ w_g + b_g, 0, atol=1e-4)
    np.testing.assert_allclose(z2 @ w_t, z @ w_t, atol=1e-4)
  else:  # The mirror image across the protected hyperplane.
    np.testing.assert_allclose(z2, z - 2 * (z @ w_g + b_g)[:, None] * w_g, atol=1e-5)


def test_nearly_parallel_hyperplanes_are_refused():
  _, w_t, _, w_g, b_g = _binary_case()
  nearly = w_t + 0.01 * w_g
  with pytest.raises(InputError, match="nearly parallel"):
    edits.edit_directions(w_t[None], (nearly / np.linalg.norm(nearly))[None], np.array([b_g]))
  with pytest.raises(InputError, match="Unknown latent edit"):
    directions = edits.edit_directions(w_t[None], w_g[None], np.array([b_g]))
    edits.edit(np.zeros((1, D)), directions, 0, 0, "rotate")


def test_fit_recovers_a_binary_hyperplane_as_a_signed_distance():
  rng = np.random.default_rng(2)
  w = _unit(rng)
  z = rng.normal(size=(2000, D)).astype(np.float32)
  labels = (z @ w + 0.3 > 0).astype(np.int32)
  plane = hyperplanes.fit(z, labels, num_classes=2)
  assert plane.w.shape == (1, D) and plane.b.shape == (1,)
  np.testing.assert_allclose(np.linalg.norm(plane.w), 1, atol=1e-5)
  assert float(plane.w[0] @ w) > 0.98
  assert abs(float(plane.b[0]) - 0.3) < 0.1
  assert np.mean(np.asarray(plane.predict(z)) == labels) > 0.98


def test_fit_separates_ten_classes():
  rng = np.random.default_rng(3)
  centers = 3 * _unit(rng, 10)
  labels = rng.integers(0, 10, size=3000)
  z = (centers[labels] + rng.normal(size=(3000, D))).astype(np.float32)
  model = hyperplanes.fit(z, labels, num_classes=10)
  assert model.w.shape == (10, D)
  # As accurate as the Bayes rule (nearest centre, ~92% here) up to a point.
  bayes = np.argmin(((z[:, None] - centers) ** 2).sum(-1), -1)
  accuracy = np.mean(np.asarray(model.predict(z)) == labels)
  assert accuracy >= np.mean(bayes == labels) - 0.01


def test_fit_on_part_of_the_latent_is_the_fit_there_with_zero_weight_elsewhere():
  rng = np.random.default_rng(4)
  z = rng.normal(size=(500, D)).astype(np.float32)
  labels = (z[:, 0] + z[:, -1] > 0).astype(np.int32)
  dims = np.arange(D) >= D - 3
  plane = hyperplanes.fit_on(z, labels, 2, dims)
  np.testing.assert_array_equal(np.asarray(plane.w)[:, ~dims], 0)
  alone = hyperplanes.fit(z[:, dims], labels, 2)
  chex.assert_trees_all_close(plane.w[:, dims], alone.w, atol=1e-6)
  chex.assert_trees_all_close(plane.b, alone.b, atol=1e-6)
