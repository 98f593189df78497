"""One decoded cache for every source that decodes records (Colored MNIST, CelebA).

Decoding records one by one is slow (70,000 Colored MNIST records: ~4 s; 200,000 CelebA JPEGs:
minutes), so a source decodes once into named .npy arrays and reads them back in ~0.1 s. Arrays
whose name ends in `images` are memory-mapped: a process of a multi-host run then reads from
storage only the rows its devices hold (`sharding.shard_rows`). The cache is keyed by a
fingerprint of the source; it is rewritten when absent, stale or damaged, and written into a
fresh directory renamed into place, so concurrent runs never see half a cache. Beside a local
data dir; under ~/.cache/jaxdebias for a remote one (gs://...).
"""

from collections.abc import Callable
import json
import os
import pathlib
import shutil

from absl import logging
import numpy as np

from jaxdebias.errors import InputError

_MANIFEST = "manifest.json"  # Written last: its presence means the arrays are all there.


def location(local: str, remote_key: str) -> pathlib.Path:
  """The cache directory `local` (beside the data), or ~/.cache/jaxdebias/`remote_key` when the
  data are remote (a URL such as gs://...)."""
  if "://" in local:
    return pathlib.Path("~/.cache/jaxdebias").expanduser() / remote_key
  return pathlib.Path(local).expanduser()


def write_arrays(directory: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
  """Saves each array as directory/{name}.npy (a `decode` that holds its arrays in memory)."""
  for name, array in arrays.items():
    np.save(directory / f"{name}.npy", array, allow_pickle=False)


def _read(directory: pathlib.Path, fingerprint: str) -> dict[str, np.ndarray] | None:
  """The cached arrays, or None when absent, stale or damaged."""
  try:
    manifest = json.loads((directory / _MANIFEST).read_text())
    if manifest["fingerprint"] != fingerprint:
      return None
    arrays = {
        name: np.load(
            directory / f"{name}.npy",
            mmap_mode="r" if name.endswith("images") else None,
            allow_pickle=False,
        )
        for name in manifest["arrays"]
    }
    lengths = {}  # The arrays of one split ({split}_{field}) have one row per example.
    for name, array in arrays.items():
      if lengths.setdefault(name.split("_")[0], len(array)) != len(array):
        raise ValueError(f"{name} has {len(array)} rows, other arrays of its split do not")
    return arrays
  except FileNotFoundError:
    return None
  except (OSError, ValueError, EOFError, KeyError, TypeError) as error:
    logging.warning("Ignoring the damaged cache %s (%s); decoding again.", directory, error)
    return None


def cached(
    directory: pathlib.Path, fingerprint: str, decode: Callable[[pathlib.Path], None]
) -> dict[str, np.ndarray]:
  """{name: array} from the cache in `directory`, made first by decode(tmp_directory) (which
  writes {name}.npy files there) when absent, stale or damaged."""
  arrays = _read(directory, fingerprint)
  if arrays is not None:
    return arrays
  tmp = directory.with_name(f"{directory.name}.{os.getpid()}.tmp")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  decode(tmp)
  names = sorted(path.stem for path in tmp.glob("*.npy"))
  (tmp / _MANIFEST).write_text(json.dumps({"fingerprint": fingerprint, "arrays": names}))
  shutil.rmtree(directory, ignore_errors=True)  # A stale or damaged cache.
  try:
    tmp.rename(directory)
  except OSError:  # Another process renamed its identical cache into place first.
    shutil.rmtree(tmp, ignore_errors=True)
  arrays = _read(directory, fingerprint)
  if arrays is None:
    raise InputError(
        f"the decoded data written to {directory} cannot be read back; check that the disk is "
        "writable and not full, then rerun."
    )
  return arrays
