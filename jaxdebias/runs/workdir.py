"""A run's workdir and its config.json: where it is, which run it holds, and its config.

The config.json of a run written by an older jaxdebias is read through `_RENAMED` (fields that
were renamed since); one holding fields this version does not know is refused with one sentence.
"""

import json
import os

from etils import epath
import ml_collections

from jaxdebias.config import base_config
from jaxdebias.errors import InputError
from jaxdebias.runs.files import flatten, read_json, unflatten

# Flattened config.json field prefixes renamed since runs were first written: old -> new.
_RENAMED = {
    "data/synthetic/": "data/added_pairs/",  # Latent de-biasing's pairs, added to the train split.
    "data/generated/": "data/generated_train/",  # A generator's images replacing the train split.
}


def absolute(workdir: str) -> epath.Path:
  """Orbax needs absolute paths; URLs (gs://...) are left as they are. An empty path (it would
  be the current directory) is refused."""
  if not str(workdir).strip():
    raise InputError("the workdir is empty; give --workdir the directory the run writes to.")
  return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir))


def _saved_config(workdir: epath.Path, defaults: ml_collections.ConfigDict) -> dict:
  """The flattened config.json of `workdir`, in today's field names (see `_RENAMED`), checked
  against the fields of `defaults`."""
  path = workdir / "config.json"
  saved = {}
  for key, value in flatten(read_json(path)).items():
    for old, new in _RENAMED.items():
      if key.startswith(old):
        key = new + key[len(old) :]
    saved[key] = value
  if saved.get("method") == "gan":  # The GAN trainer was chosen by method=gan.
    saved["trainer"] = "gan"
    del saved["method"]
  # config.model is free-form (each registered model has its own fields; models.create checks).
  known = _flat(defaults)
  unknown = sorted(k for k in saved if k not in known and not k.startswith("model/"))
  if unknown:
    raise InputError(
        f"{path} has fields this version of jaxdebias does not know ({', '.join(unknown[:5])}): "
        "it was written by another version; use a new --workdir, or that version to read it."
    )
  return saved


def _flat(config: ml_collections.ConfigDict) -> dict:
  return flatten(json.loads(json.dumps(config.to_dict())))


def read_config(
    workdir: epath.Path, defaults: ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
  """The config.json of a run over today's defaults (fields added since keep their defaults);
  `defaults`: a recipe's, for a recipe workdir (default: `base_config()`)."""
  config = base_config() if defaults is None else defaults.copy_and_resolve_references()
  config.update(unflatten(_saved_config(workdir, config)))
  return config


def claim_workdir(
    workdir: epath.Path,
    config: ml_collections.ConfigDict,
    defaults: ml_collections.ConfigDict | None = None,
    resizable: bool = False,
) -> None:
  """Refuses a workdir that holds a run of a different config (it would be overwritten).

  `defaults`: the config's defaults (a recipe's; default: `base_config()`). `resizable`: a
  different num_steps is no difference (a single run extended or shortened in place; the loop
  checks its checkpoints allow it). Only reads: the workdir is created once the data and method
  are known to be good.
  """
  keys = config_differences(workdir, config, defaults, resizable)
  if keys:
    raise InputError(
        f"{workdir} holds a run with a different config (differs in {', '.join(keys[:5])}); "
        "use a new --workdir, or rerun with the same config to resume it."
    )


def config_differences(
    workdir: epath.Path,
    config: ml_collections.ConfigDict,
    defaults: ml_collections.ConfigDict | None = None,
    resizable: bool = False,
) -> list[str]:
  """The flattened fields in which `config` differs from the run in `workdir` (none where it
  holds no config.json), by `claim_workdir`'s rules."""
  if not (workdir / "config.json").exists():
    return []
  defaults = base_config() if defaults is None else defaults
  saved, current, defaults = _saved_config(workdir, defaults), _flat(config), _flat(defaults)
  # A field added to jaxdebias after the run was written, left at its default, is no difference:
  # new fields default to the old behaviour. The mesh is where a run trains, not what it
  # computes: a run may resume on other devices.
  return sorted(
      k
      for k in saved.keys() | current.keys()
      if saved.get(k) != current.get(k)
      and not (k not in saved and k in defaults and current.get(k) == defaults[k])
      and not k.startswith("mesh/")
      and not (resizable and k == "num_steps")
  )
