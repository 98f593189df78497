"""The README's loss-reuse snippet runs as written and gives the LfF loss."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias import losses

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_loss_snippet_runs():
  snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
  rng = np.random.default_rng(0)
  labels = jnp.asarray(rng.integers(0, 10, 8))
  namespace = {
      "train_labels": jnp.asarray(rng.integers(0, 10, 100)),
      "labels": labels,
      "index": jnp.asarray([3, 5, 5, 7, 9, 11, 13, 99]),
      "logits_b": jnp.asarray(rng.normal(size=(8, 10)), jnp.float32),
      "logits_d": jnp.asarray(rng.normal(size=(8, 10)), jnp.float32),
  }
  # The snippet elides f_D's twin lines ("same for f_D"); supply l_d as they would compute it.
  namespace["l_d"] = jnp.full((8,), 0.5)
  exec(snippet, namespace)  # pylint: disable=exec-used
  loss = namespace["loss"]
  assert loss.shape == () and np.isfinite(loss)
  w = namespace["w"]
  expected = (
      losses.generalized_cross_entropy_reference(namespace["logits_b"], labels).mean()
      + (w * losses.cross_entropy(namespace["logits_d"], labels)).mean()
  )
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert jax.tree.leaves(namespace["buffer_b"])[0].shape == (100,)
