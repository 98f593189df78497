"""Workdirs written before the layout change: their config.json is read in today's field names
(and claimed by the same run), or refused in one sentence when no version of the names fits."""

import json
import pathlib
import shutil

import pytest

from configs import colored_mnist, colored_mnist_gan
from jaxdebias import runs
from jaxdebias.errors import InputError

# config.json files as the version before the layout change wrote them (data.synthetic,
# data.generated, method=gan).
SAVED = pathlib.Path(__file__).resolve().parent / "data"


def _workdir(tmp_path: pathlib.Path, name: str) -> pathlib.Path:
  shutil.copy(SAVED / f"config_v0_{name}.json", tmp_path / "config.json")
  return tmp_path


def test_old_pairs_fields_are_read_as_added_pairs(tmp_path):
  workdir = _workdir(tmp_path, "lff_pairs")
  config = runs.read_config(workdir)
  assert (config.data.added_pairs.path, config.data.added_pairs.ratio) == ("pairs.npz", 2.0)
  assert (config.trainer, config.method, config.lff.synthetic_weight) == ("classifier", "lff", 1.0)
  same = colored_mnist.get_config("method=lff,ratio=0.01")
  same.data.added_pairs.update(path="pairs.npz", ratio=2.0)
  same.lff.synthetic_weight = 1.0
  runs.claim_workdir(workdir, same)  # The same run: resumed, not refused.
  same.data.added_pairs.ratio = 1.0
  with pytest.raises(InputError, match=r"differs in data/added_pairs/ratio"):
    runs.claim_workdir(workdir, same)


def test_old_generated_fields_are_read_as_generated_train(tmp_path):
  config = runs.read_config(_workdir(tmp_path, "amplifier"))
  assert config.data.generated_train.generator == "cgan"
  assert config.data.generated_train.per_class == 300 and config.method == "erm"


def test_old_method_gan_is_read_as_the_gan_trainer(tmp_path):
  workdir = _workdir(tmp_path, "gan")
  config = runs.read_config(workdir)
  assert config.trainer == "gan" and config.gan.conditional and not config.gan.tinted
  runs.claim_workdir(workdir, colored_mnist_gan.get_config("ratio=0.01,conditional"))
  with pytest.raises(InputError, match=r"differs in batch_size, .*gan/conditional"):
    runs.claim_workdir(workdir, colored_mnist.get_config("method=lff,ratio=0.01"))


def test_config_of_an_unknown_version_is_refused_in_one_sentence(tmp_path):
  saved = json.loads((SAVED / "config_v0_lff_pairs.json").read_text())
  saved["data"]["augment"] = True  # A field no version of jaxdebias here has written.
  (tmp_path / "config.json").write_text(json.dumps(saved))
  message = r"config.json has fields this version of jaxdebias does not know \(data/augment\)"
  with pytest.raises(InputError, match=message):
    runs.read_config(tmp_path)
  with pytest.raises(InputError, match=message):
    runs.claim_workdir(tmp_path, colored_mnist.get_config("method=lff"))
