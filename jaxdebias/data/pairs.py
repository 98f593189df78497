"""Synthetic image pairs of latent de-biasing, stored as one .npz, and their mixing into training.

A pair is one record: the latents z and z', the images x(z) and x(z'), the target label of x(z)
(both images carry it), and the protected labels g(z) and the one z' was moved to. Keeping them
in one record (one row of every array) makes the reference code's pitfall, a label file shifted
against the latents, impossible. `jaxdebias.latent.pairs` writes these files.
"""

import pathlib
import zipfile

import numpy as np

from jaxdebias.errors import InputError

# Field -> (dtype kind, rank): one row per pair.
FIELDS = {
    "z": ("f", 2),
    "z_pair": ("f", 2),
    "image": ("u", 4),
    "image_pair": ("u", 4),
    "label": ("i", 1),  # Target label of x(z), given to both images.
    "protected": ("i", 1),  # Protected label of x(z).
    "protected_pair": ("i", 1),  # The protected class z' was moved to.
}


def save(path: str, **arrays: np.ndarray) -> None:
  """Writes the pair arrays (FIELDS, plus any extra per-pair diagnostics) atomically."""
  _check(arrays, path)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez(tmp, **arrays)
  tmp.replace(path)


def load(path: str) -> dict[str, np.ndarray]:
  """The pair arrays of `path`, checked; InputError saying what to do otherwise."""
  try:
    with np.load(path) as data:
      arrays = {k: data[k] for k in data.files}
  except FileNotFoundError as e:
    raise InputError(
        f"No synthetic pairs at {path}; generate them with python -m jaxdebias.latent.pairs "
        "or fix --config.data.synthetic.path."
    ) from e
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(
        f"{path} is not a readable pairs file ({e}); generate it again with "
        "python -m jaxdebias.latent.pairs."
    ) from e
  _check(arrays, path)
  return arrays


def _check(arrays: dict[str, np.ndarray], path) -> None:
  missing = sorted(set(FIELDS) - set(arrays))
  if missing:
    raise InputError(f"{path} lacks the pair fields {missing}; generate it again.")
  sizes = {len(a) for a in arrays.values()}
  for name, (kind, rank) in FIELDS.items():
    if arrays[name].dtype.kind != kind or arrays[name].ndim != rank:
      raise InputError(
          f"{path}: `{name}` must be rank {rank} of kind {kind!r}, got "
          f"{arrays[name].dtype}{arrays[name].shape}; generate it again."
      )
  if len(sizes) != 1:
    raise InputError(f"{path}: the pair arrays have different lengths {sorted(sizes)}.")


USES = ("pairs", "unedited")  # data.synthetic.use: x(z) and x(z'), or x(z) alone (ablation).


def mix(images, label, bias_label, pairs: dict[str, np.ndarray], ratio: float, use: str = "pairs"):
  """The real training arrays followed by round(ratio * N) synthetic images.

  use "pairs": the first round(ratio * N / 2) pairs' 2 images each, x(z) and x(z'), both with the
  target label of x(z); "unedited": x(z) of the first round(ratio * N) pairs (the ablation
  without edits). Their bias labels are the protected labels (evaluation only, never training).
  """
  if use not in USES:
    raise InputError(f"Unknown data.synthetic.use {use!r}; set it to one of {USES}.")
  if not ratio >= 0:
    raise InputError(
        f"data.synthetic.ratio must be >= 0 (synthetic images per real one), got {ratio}."
    )
  num_pairs = round(ratio * len(label) / (2 if use == "pairs" else 1))
  if num_pairs > len(pairs["label"]):
    raise InputError(
        f"data.synthetic.ratio {ratio} needs {num_pairs} pairs but the file has "
        f"{len(pairs['label'])}; generate more pairs or lower the ratio."
    )
  if pairs["image"].shape[1:] != images.shape[1:]:
    raise InputError(
        f"the synthetic images are {pairs['image'].shape[1:]}, the real ones "
        f"{images.shape[1:]}: the pairs come from a generator of another dataset."
    )
  if use == "pairs":
    fields = (("image", "image_pair"), ("label", "label"), ("protected", "protected_pair"))
  else:
    fields = (("image",), ("label",), ("protected",))
  take = lambda names: np.concatenate([pairs[n][:num_pairs] for n in names])
  real = (images, label, bias_label)
  return tuple(np.concatenate([r, take(names)]) for r, names in zip(real, fields))
