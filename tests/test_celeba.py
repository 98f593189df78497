"""CelebA loading and the latent de-biasing recipe on tiny synthetic CelebA-shaped data
(TFDS's mock of celeb_a: 218x178 images and attributes) with a tiny ported PGAN."""

import json
import pathlib
import subprocess
import sys

import chex
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds
import torch

from configs import celeba as celeba_config
from configs import latent_debiasing as latent_debiasing_config
from jaxdebias import data, recipes
from jaxdebias.data import celeba
from jaxdebias.errors import InputError
from jaxdebias.tools import port_pgan
from tests.pgan_reference import ReferenceGenerator, zoo_config

NUM_EXAMPLES = 48  # Per split.
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def mock_celeba():
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE):
    yield


def _tiny_config(tmp_path, method="erm"):
  config = celeba_config.get_config(f"method={method},size=16")
  config.data.data_dir = str(tmp_path / "tfds")
  config.model.update(stage_sizes=(1,), width=4)
  config.update(num_steps=20, eval_every=10, checkpoint_every=20, batch_size=16)
  config.eval_batch_size = 16
  return config


def test_crop_and_resize_takes_the_central_square():
  image = np.zeros((218, 178, 3), np.uint8)
  image[20:198] = 255  # The central 178x178 square is white, the rest black.
  out = celeba.crop_and_resize(image, 16)
  chex.assert_shape(out, (16, 16, 3))
  assert out.min() == 255


def test_celeba_loads_attributes_by_name_and_caches_decoded_images(tmp_path, mock_celeba):
  config = _tiny_config(tmp_path).data
  dataset = data.load_dataset(config)
  assert dataset.name == "celeb_a/Smiling-Male" and dataset.num_classes == 2
  for split in (dataset.train, dataset.valid, dataset.test):
    chex.assert_shape(split.images, (NUM_EXAMPLES, 16, 16, 3))
    assert set(np.unique(split.label)) <= {0, 1} and set(np.unique(split.bias_label)) <= {0, 1}
  cache = tmp_path / "tfds" / "celeb_a" / "decoded_16"
  names = np.load(cache / "attribute_names.npy", allow_pickle=False).tolist()
  attributes = np.load(cache / "train_attributes.npy", allow_pickle=False)
  np.testing.assert_array_equal(dataset.train.label, attributes[:, names.index("Smiling")])
  np.testing.assert_array_equal(dataset.train.bias_label, attributes[:, names.index("Male")])
  config.target_attribute = "Smiles"
  with pytest.raises(InputError, match="CelebA has no attribute 'Smiles'.*target_attribute"):
    data.load_dataset(config)


def test_celeba_not_prepared_says_how_to_prepare_it(tmp_path):
  with pytest.raises(InputError, match="CelebA is not prepared in .*download_and_prepare"):
    data.load_dataset(_tiny_config(tmp_path).data)


def test_recipe_command_exits_with_status_2_and_one_line_on_bad_input(tmp_path):
  command = [
      sys.executable,
      "-m",
      "jaxdebias.main",
      f"--config=configs/latent_debiasing.py:data=celeb_a,generator={tmp_path / 'pgan'}",
      f"--config.data.data_dir={tmp_path / 'tfds'}",
      f"--workdir={tmp_path / 'run'}",
  ]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 2, done.stderr[-2000:]
  assert done.stderr.strip().splitlines()[-1].startswith("error: CelebA is not prepared")


def _celeba_from(reference: ReferenceGenerator, num_examples: int):
  """CelebA-shaped splits drawn from the generator itself: images G(z) (upscaled to 178x178 in
  a 218x178 frame), Male = z_0 > 0, Smiling = z_0 + z_1 > 0 (correlated with Male)."""
  splits = {}
  for seed, split in enumerate(("train", "validation", "test")):
    z = np.random.default_rng(seed).standard_normal((num_examples, 8)).astype(np.float32)
    with torch.no_grad():
      images = reference(torch.from_numpy(z))[0].numpy().transpose(0, 2, 3, 1)
    pixels = np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)
    framed = np.zeros((num_examples, 218, 178, 3), np.uint8)
    for i, image in enumerate(pixels):
      framed[i, 20:198] = np.asarray(Image.fromarray(image).resize((178, 178), Image.NEAREST))
    splits[split] = [
        {"image": framed[i], "attributes": {"Male": z[i, 0] > 0, "Smiling": z[i, 0] + z[i, 1] > 0}}
        for i in range(num_examples)
    ]
  return lambda self, split, **kwargs: splits[split]


def test_latent_debiasing_recipe_on_tiny_celeba_with_a_ported_pgan(tmp_path):
  torch.manual_seed(0)
  reference = ReferenceGenerator(8, (8, 4, 4)).eval()  # 16x16 images.
  torch.save({"config": zoo_config(alpha=0.0), "avgG": reference.state_dict()}, tmp_path / "g.pth")
  port_pgan.port(str(tmp_path / "g.pth"), str(tmp_path / "pgan"))
  # The paper's protocol: a ported generator, edits in z, the protected labeller on the labels.
  config = latent_debiasing_config.get_config(
      f"data=celeb_a,size=16,generator={tmp_path / 'pgan'},bias_labels"
  )
  tiny = _tiny_config(tmp_path)
  for key in ("data", "model", "batch_size", "eval_batch_size"):
    config[key] = tiny[key]
  config.update(num_steps=100, eval_every=50, checkpoint_every=100)
  config.optimizer.learning_rate = 3e-3
  config.recipe.update(synthetic_ratio=1.0, fairness_resamples=20)
  config.recipe.pairs.num_fit = 200
  splits = _celeba_from(reference, 96)
  mock = lambda: tfds.testing.mock_data(
      policy=tfds.testing.MockPolicy.USE_CODE, as_data_source_fn=splits
  )
  with mock():
    results = recipes.run(config, str(tmp_path / "run"))
  assert results["pairs"]["num_pairs"] == 48  # synthetic_ratio 1: one image per real one.
  assert list(results["stage_seconds_this_run"]) == [
      "protected",
      "baseline",
      "pairs",
      "augmented",
      "evaluation",
  ]
  assert results["priors"] == {"gan.tinted": False, "trained_on_bias_labels": True}
  for name in ("baseline", "augmented"):
    run = results["evaluation"][name]
    assert 0 <= run["test"]["classifier"]["accuracy"] <= 1
    (fairness,) = run["fairness"]  # One seed.
    assert set(fairness) == {"ap", "deo", "ba", "kl"}
  augmented = json.loads((tmp_path / "run" / "augmented" / "config.json").read_text())
  assert augmented["data"]["added_pairs"]["path"] == str(tmp_path / "run" / "pairs" / "pairs.npz")
  assert (tmp_path / "run" / "pairs" / "pairs.png").exists()
  assert results["final"] == json.loads(
      (tmp_path / "run" / "augmented" / "results.json").read_text()
  )
  with mock():
    again = recipes.run(config, str(tmp_path / "run"))
  assert again == results  # Finished: read back, nothing redone.
