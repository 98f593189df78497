"""Recipes end to end on a tiny .npz: every stage, reuse on rerun, label-free selection."""

import json
import shutil
import time
from unittest import mock

import chex
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import bias_amplification as bias_amplification_config
from configs import latent_debiasing as latent_debiasing_config
from jaxdebias import recipes, runs
from jaxdebias.errors import InputError, Interrupted
from jaxdebias.latent import pairs
from jaxdebias.recipes import bias_amplification, graph, latent_debiasing
from jaxdebias.recipes import stages as recipe_stages
from jaxdebias.recipes.graph import Recipe
from tests import synthetic


def _tiny_recipe(npz_path: str, config_module=bias_amplification_config):
  """A recipe (by its config module) on the tiny dataset, every stage a few steps."""
  config = config_module.get_config(f"data=npz,path={npz_path}")
  config.model.hidden = (32, 32)
  config.update(batch_size=32, num_steps=40, eval_every=40, checkpoint_every=40)
  config.update(eval_batch_size=64, input_scaling="unit")
  config.mesh.data = 1
  config.gan.update(latent_dim=8, generator_widths=(16, 8), discriminator_widths=(8,))
  config.recipe.update(gan_steps=10, gan_batch_size=16, gan_eval_every=10, per_class=16)
  if config_module is bias_amplification_config:
    # min_loss 0.5 flags what 0 does (a mistake's loss exceeds ln 2): trained once.
    config.recipe.update(weight_decay=(0.0, 0.1), min_loss=(0.0, 0.5), holdout_fraction=0.25)
  config.recipe.pairs.num_fit = 256  # num_pairs: as many as synthetic_ratio 2 needs, 512.
  return config


def _params(workdir) -> dict:
  """The final checkpoint of a run, as arrays."""
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(steps[-1]) / "default")


def _shuffled_bias_labels(directory) -> str:
  """The tiny dataset (`tiny_npz`'s arrays and name) with its training bias labels shuffled."""
  arrays = synthetic.biased_arrays()
  arrays["train_bias_label"] = np.random.default_rng(1).permutation(arrays["train_bias_label"])
  directory.mkdir()
  np.savez(directory / "tiny.npz", **arrays)
  return str(directory / "tiny.npz")


def _without_bias_labels(directory) -> str:
  """The tiny dataset with no bias label stored at all (a user who has none)."""
  arrays = synthetic.biased_arrays()
  directory.mkdir()
  np.savez(directory / "tiny.npz", **{k: v for k, v in arrays.items() if "bias" not in k})
  return str(directory / "tiny.npz")


def _assert_blind_to_training_bias_labels(one, two, first: dict, second: dict) -> None:
  """Recipes `first` in `one` and `second` in `two`, on data differing only in the training
  split's bias labels: bit-identical training and selection; only the diagnostics differ."""
  assert first.get("selection") == second.get("selection")
  if (one / "pairs" / "pairs.npz").exists():
    with np.load(one / "pairs" / "pairs.npz", allow_pickle=False) as a, np.load(
        two / "pairs" / "pairs.npz", allow_pickle=False
    ) as b:
      chex.assert_trees_all_equal(dict(a), dict(b))
  trained = sorted(p.parent.relative_to(one) for p in one.glob("**/checkpoints"))
  assert len(trained) >= 5
  for stage in trained:
    chex.assert_trees_all_equal(_params(one / stage), _params(two / stage))  # Bit-identical.
  if "diagnostics" in first:  # They read the training split's bias labels: they see the shuffle.
    assert first["diagnostics"] != second["diagnostics"]


def _assert_diagnostics_read_the_known_bias_labels(config, amplifier_dir) -> None:
  """The amplifier's diagnostics on the examples with a bias label, and none where bias value k
  cannot be read as aligned with class k."""
  dataset = runs.load_dataset(config.data)
  half = dataset.train.bias_label.copy()
  half[::2] = -1  # Half the bias labels unknown.
  partial = dataset._replace(train=dataset.train._replace(bias_label=half))
  found = bias_amplification._diagnostics(config, partial, amplifier_dir, {})
  assert found["examples_with_bias_label"] == 256
  assert 0 <= found["amplifier_finds_conflicting"]["auroc"] <= 1
  binary = dataset._replace(num_bias_classes=2)  # Two bias values for four classes.
  found = bias_amplification._diagnostics(config, binary, amplifier_dir, {})
  assert "amplifier_finds_conflicting" not in found
  assert found["amplifier_skipped"].startswith("2 bias values for 4 classes")


def test_bias_amplification_recipe_runs_every_stage_and_reuses_them(tiny_npz, tmp_path, capsys):
  config = _tiny_recipe(tiny_npz)
  results = recipes.run(config, str(tmp_path / "recipe"))
  out = capsys.readouterr().out
  shuffled = _tiny_recipe(_shuffled_bias_labels(tmp_path / "shuffled"))
  blind = recipes.run(shuffled, str(tmp_path / "blind"))
  _assert_blind_to_training_bias_labels(tmp_path / "recipe", tmp_path / "blind", results, blind)
  unlabelled = _tiny_recipe(_without_bias_labels(tmp_path / "unlabelled"))
  without = recipes.run(unlabelled, str(tmp_path / "without"))  # The same, without a label.
  _assert_blind_to_training_bias_labels(tmp_path / "recipe", tmp_path / "without", results, without)
  assert "amplifier_finds_conflicting" not in without["diagnostics"]  # It needs bias labels.
  unknown = without["final"]["test"]["classifier"]
  assert unknown["accuracy"] == results["final"]["test"]["classifier"]["accuracy"]
  assert (unknown["unbiased_accuracy"], unknown["num_bias_unknown"]) == (None, 200)
  stages = ["generator", "amplifier", "flagged", "candidates/erm", "candidates/lff"]
  stages += ["candidates/amplified_groups_ml0", "selection", "group_generator", "pairs"]
  pairs = results["diagnostics"]["pairs"]
  if "skipped" not in pairs:  # The tiny GAN may never show some class: no pairs, said so.
    stages += ["candidates/amplified_groups_ml0_pairs", "selection_with_pairs"]
  stages += ["final", "diagnostics"]
  assert list(results["stage_seconds_this_run"]) == stages
  for stage in stages:
    assert f"[recipe] stage {stage}: done in" in out
    assert (tmp_path / "recipe" / stage / "results.json").exists()
  flagged = results["flagged"]
  assert flagged["same_as"] == {"0.5": "0"} and flagged["distinct_min_loss"] == [0.0]
  counts = flagged["by_min_loss"]
  assert counts["0.5"] == counts["0"] <= flagged["training_examples"] == 384
  assert "min_loss 0.5 flags the same examples as min_loss 0: trained once, as 0" in out
  selection = results["selection"]
  expected = {
      "erm",
      "lff",
      "amplified_groups_ml0, weight_decay=0",  # Both decays side by side in one run.
      "amplified_groups_ml0, weight_decay=0.1",
  }
  if "skipped" not in pairs:  # The best amplified_groups candidate, with the pairs.
    expected |= {f"amplified_groups_ml0_pairs, weight_decay={v}" for v in ("0", "0.1")}
  assert set(selection["scores"]) == expected
  assert selection["held_out_examples"] == 128
  assert 0 <= selection["held_out_flagged"] <= 128
  assert 0 <= selection["standard_error"] <= 1
  assert selection["recipe_choice"] in selection["within_one_standard_error"]
  if "skipped" not in pairs:  # The pairs decision, then the weight decay on its side.
    side = selection["pairs"]["kept"]
    assert all(("_pairs" in n) == side for n in selection["within_one_standard_error"])
  assert all(0 <= s["mean"] <= 1 for s in selection["scores"].values())
  chosen = selection["chosen"]
  assert chosen["name"] in selection["scores"]
  read_config = lambda stage: json.loads((tmp_path / "recipe" / stage / "config.json").read_text())
  for stage in ["generator", "candidates/erm", "group_generator"]:  # No held-out example seen.
    assert read_config(stage)["data"]["valid_fraction"] == 0.25, stage
  final = read_config("final")
  assert final["data"]["valid_fraction"] == 0.0  # Retrained on the whole training split.
  assert final["method"] == chosen["run"].split("_ml")[0]
  if chosen["hparams"]:
    assert final["optimizer"]["weight_decay"] == chosen["hparams"]["weight_decay"]
  assert results["final"]["test"]["classifier"]["accuracy"] > 0.4  # Chance: 0.25.
  assert results["priors"] == {"gan.tinted": False}
  assert 0 <= results["diagnostics"]["amplifier_finds_conflicting"]["auroc"] <= 1
  _assert_diagnostics_read_the_known_bias_labels(config, tmp_path / "recipe" / "amplifier")
  assert results["stage_seconds"] == results["stage_seconds_this_run"]  # One invocation.
  again = recipes.run(config, str(tmp_path / "recipe"))  # Finished: read back, nothing redone.
  assert again == results
  (tmp_path / "recipe" / "results.json").unlink()  # Interrupted in its last stage that trains:
  for stage in ("final", "diagnostics"):  # the next invocation trains only that again.
    shutil.rmtree(tmp_path / "recipe" / stage)
  resumed = recipes.run(config, str(tmp_path / "recipe"))
  first, now = results["stage_seconds"], resumed["stage_seconds"]
  assert resumed["stage_seconds_this_run"]["generator"] < first["generator"] == now["generator"]
  assert now["final"] == pytest.approx(first["final"] + resumed["stage_seconds_this_run"]["final"])
  assert resumed["stage_seconds_total"] == pytest.approx(sum(now.values()))
  assert "(its stages over every invocation: " in capsys.readouterr().out
  assert resumed["final"]["test"] == results["final"]["test"]  # Seeded: the same classifier.
  config.recipe.holdout_fraction = 0.5
  with pytest.raises(InputError, match="differs in recipe/holdout_fraction"):
    recipes.run(config, str(tmp_path / "recipe"))
  config.recipe.holdout_fraction = 0.25
  (tmp_path / "recipe" / "results.json").unlink()  # Interrupted before the end, and its
  selection = tmp_path / "recipe" / "selection" / "results.json"  # selection by another rule.
  selection.write_text(json.dumps({**json.loads(selection.read_text()), "rule": "the best"}))
  with pytest.raises(InputError, match="earlier selection rule; rerun the recipe in a new"):
    recipes.run(config, str(tmp_path / "recipe"))


def test_a_recipe_copies_the_finished_stages_of_the_same_config(tiny_npz, tmp_path, capsys):
  config = _tiny_recipe(tiny_npz)
  config.recipe.synthetic_ratio = 0  # No pairs: this is about the stages that train.
  recipes.run(config, str(tmp_path / "first"))
  config.recipe.weight_decay = (0.0, 0.3)  # Another grid: its candidates train anew.
  capsys.readouterr()
  reused = recipes.run(config, str(tmp_path / "reused"), str(tmp_path / "first"))
  out = capsys.readouterr().out
  copied = ["generator", "amplifier", "candidates/erm", "candidates/lff"]
  for stage in copied:  # The amplifier's config names the generator: the copied one.
    assert f"stage {stage}: copied from {tmp_path / 'first' / stage}" in out
    assert json.loads((tmp_path / "reused" / stage / "config.json").read_text()) == json.loads(
        (tmp_path / "first" / stage / "config.json").read_text().replace("/first/", "/reused/")
    )
  assert "stage candidates/amplified_groups_ml0: running" in out
  booked = json.loads((tmp_path / "first" / "stage_seconds.json").read_text())
  from_first = reused["stage_seconds_copied"]  # And final, where the same candidate won.
  assert set(copied) <= set(from_first) <= {*copied, "final"}
  assert from_first == {stage: booked[stage] for stage in from_first}
  assert reused["stage_seconds_from_nothing"] == pytest.approx(
      reused["stage_seconds_total"] + sum(from_first.values())
  )
  fresh = recipes.run(config, str(tmp_path / "fresh"))  # The same, trained from nothing.
  assert reused["selection"] == fresh["selection"]
  for stage in [*copied, "candidates/amplified_groups_ml0", "final"]:
    chex.assert_trees_all_equal(
        _params(tmp_path / "reused" / stage), _params(tmp_path / "fresh" / stage)
    )
  # A stage whose config names a stage trained here, not copied, is trained too.
  first, third = tmp_path / "first", tmp_path / "third"
  defaults = bias_amplification.default_config()
  recipe = Recipe(config, str(third), defaults, str(first))
  record = lambda c, d: {}
  (third / ".generator.copying").mkdir(parents=True)  # A copy killed halfway: redone.
  recipe.train("generator", record, runs.read_config(first / "generator"))
  assert not (third / ".generator.copying").exists()
  amplifier = runs.read_config(first / "amplifier")
  amplifier.data.generated_train.generator = str(tmp_path / "elsewhere")
  recipe.train("amplifier", record, amplifier)  # Named another generator: trained anew.
  erm = runs.read_config(first / "candidates" / "erm")
  erm.amplifier.workdir = str(recipe.directory("amplifier"))
  recipe.train("candidates/erm", record, erm)  # Names the amplifier trained here.
  assert recipe.copied == ["generator"]
  again = Recipe(config, str(third), defaults, str(first))  # Rerun: the copy is known as one.
  again.train("generator", record, runs.read_config(first / "generator"))
  assert again.copied == ["generator"]
  # A source moved since it ran (its configs name its old workdir) is reused the same.
  shutil.copytree(first, tmp_path / "moved")
  after_move = Recipe(config, str(tmp_path / "after_move"), defaults, str(tmp_path / "moved"))
  after_move.train("generator", record, runs.read_config(first / "generator"))
  amplifier.data.generated_train.generator = str(after_move.directory("generator"))
  after_move.train("amplifier", record, amplifier)
  assert after_move.copied == ["generator", "amplifier"]
  # A copy of a copy: its time is the one booked where it trained.
  twice = Recipe(config, str(tmp_path / "twice"), defaults, str(tmp_path / "reused"))
  twice.train("generator", record, runs.read_config(first / "generator"))
  assert graph._copied_seconds(twice.directory("generator"), "generator") == booked["generator"]
  (first / "generator" / "config.json").unlink()  # Not known to be the same: not copied.
  fifth = Recipe(config, str(tmp_path / "fifth"), defaults, str(first))
  fifth.train("generator", record, runs.read_config(third / "generator"))
  assert fifth.copied == []
  with pytest.raises(InputError, match="names the recipe's own workdir"):
    Recipe(config, str(third), defaults, str(third))
  with pytest.raises(InputError, match="is not the workdir of a recipe run on a local disk"):
    Recipe(config, str(tmp_path / "fourth"), defaults, str(first / "generator"))


def test_selection_rule_takes_the_most_regularised_candidate_within_one_standard_error():
  scores = {
      "erm": {"hparams": {}, "mean": 0.5},
      "lff": {"hparams": {}, "mean": 0.6},
      "ag, weight_decay=0": {"hparams": {"weight_decay": 0.0}, "mean": 0.90},
      "ag, weight_decay=0.1": {"hparams": {"weight_decay": 0.1}, "mean": 0.85},
      "ag, weight_decay=0.3": {"hparams": {"weight_decay": 0.3}, "mean": 0.80},
      "ag_pairs, weight_decay=0.1": {"hparams": {"weight_decay": 0.1}, "mean": 0.87},
  }
  rule = bias_amplification.choose(scores, ["erm", "lff"], lambda name: 0.05)
  assert rule["best_recipe_candidate"] == "ag, weight_decay=0"
  assert rule["within_one_standard_error"] == [
      "ag, weight_decay=0",
      "ag, weight_decay=0.1",
      "ag_pairs, weight_decay=0.1",
  ]
  # The largest weight decay within one SE; of the two at 0.1, the higher score.
  assert rule["recipe_choice"] == rule["chosen"] == "ag_pairs, weight_decay=0.1"
  assert not rule["fell_back"]
  tight = bias_amplification.choose(scores, ["erm", "lff"], lambda name: 0.01)
  assert tight["chosen"] == "ag, weight_decay=0"
  wide = bias_amplification.choose(scores, ["erm", "lff"], lambda name: 0.2)
  assert wide["chosen"] == "ag, weight_decay=0.3"
  # A fallback above every amplified_groups candidate is chosen, whatever the rule's choice.
  scores["lff"]["mean"] = 0.95
  fallen = bias_amplification.choose(scores, ["erm", "lff"], lambda name: 0.05)
  assert fallen["recipe_choice"] == "ag_pairs, weight_decay=0.1"
  assert fallen["chosen"] == "lff" and fallen["fell_back"]
  # Pairs made: kept unless the best without them is more than one SE above the best with
  # them; then the weight decay among that side's candidates, by that side's best's SE.
  paired = {
      "erm": {"hparams": {}, "mean": 0.5},
      "ag, weight_decay=0": {"hparams": {"weight_decay": 0.0}, "mean": 0.90},
      "ag, weight_decay=0.1": {"hparams": {"weight_decay": 0.1}, "mean": 0.89},
      "ag_pairs, weight_decay=0": {"hparams": {"weight_decay": 0.0}, "mean": 0.88},
      "ag_pairs, weight_decay=0.1": {"hparams": {"weight_decay": 0.1}, "mean": 0.84},
      "ag_pairs, weight_decay=0.3": {"hparams": {"weight_decay": 0.3}, "mean": 0.70},
  }
  with_pairs = [n for n in paired if n.startswith("ag_pairs")]
  asked = []
  errors = {"ag, weight_decay=0": 0.03, "ag_pairs, weight_decay=0": 0.05}
  kept = bias_amplification.choose(
      paired, ["erm"], lambda name: asked.append(name) or errors[name], with_pairs
  )
  assert asked == ["ag, weight_decay=0", "ag_pairs, weight_decay=0"]
  assert kept["pairs"] == {
      "best_with": "ag_pairs, weight_decay=0",
      "best_without": "ag, weight_decay=0",
      "standard_error": 0.03,
      "kept": True,
  }
  assert kept["best_recipe_candidate"] == "ag_pairs, weight_decay=0"
  assert kept["within_one_standard_error"] == with_pairs[:2]
  assert kept["chosen"] == "ag_pairs, weight_decay=0.1"  # Not ag, 0.1: pairs are kept.
  asked.clear()  # The best with pairs the best of all: its standard error asked once.
  ahead = {**paired, "ag_pairs, weight_decay=0": {"hparams": {"weight_decay": 0.0}, "mean": 0.95}}
  bias_amplification.choose(ahead, ["erm"], lambda n: asked.append(n) or 0.05, with_pairs)
  assert asked == ["ag_pairs, weight_decay=0"]
  errors["ag, weight_decay=0"] = 0.015
  dropped = bias_amplification.choose(paired, ["erm"], errors.get, with_pairs)
  assert not dropped["pairs"]["kept"]
  assert dropped["within_one_standard_error"] == ["ag, weight_decay=0", "ag, weight_decay=0.1"]
  assert dropped["chosen"] == "ag, weight_decay=0.1" and dropped["standard_error"] == 0.015
  # One weight decay (no swept one): the candidates tie on it and the higher score wins; the
  # standard error asked for is the best candidate's; a score exactly at the floor is within.
  asked = []
  single = {"ag_ml0": {"hparams": {}, "mean": 0.7}, "ag_ml9.2": {"hparams": {}, "mean": 0.75}}
  rule = bias_amplification.choose(single, [], lambda name: asked.append(name) or 0.05)
  assert asked == ["ag_ml9.2"] and rule["within_one_standard_error"] == ["ag_ml0", "ag_ml9.2"]
  assert rule["chosen"] == "ag_ml9.2" and not rule["fell_back"]


def test_latent_debiasing_recipe_runs_every_stage_without_bias_labels(tiny_npz, tmp_path, capsys):
  config = _tiny_recipe(tiny_npz, latent_debiasing_config)
  config.num_seeds = 2  # The baseline's first seed labels the pairs' target.
  results = recipes.run(config, str(tmp_path / "recipe"))
  out = capsys.readouterr().out
  shuffled = _tiny_recipe(_shuffled_bias_labels(tmp_path / "shuffled"), latent_debiasing_config)
  shuffled.num_seeds = 2
  blind = recipes.run(shuffled, str(tmp_path / "blind"))
  _assert_blind_to_training_bias_labels(tmp_path / "recipe", tmp_path / "blind", results, blind)
  stages = ["generator", "class_generator", "amplifier", "baseline", "pairs"]
  if "skipped" in results["pairs"]:  # The tiny GAN may never show some class: said so.
    assert "the generator cannot show them" in results["pairs"]["skipped"]
    assert "the final classifier is the baseline" in out
  else:
    stages.append("augmented")
    assert results["pairs"]["num_pairs"] == 512
    assert results["final"] == json.loads(
        (tmp_path / "recipe" / "augmented" / "results.json").read_text()
    )
  stages.append("evaluation")
  assert list(results["stage_seconds_this_run"]) == stages
  for stage in stages:
    assert f"[recipe] stage {stage}: done in" in out
  assert results["priors"] == {"gan.tinted": False, "trained_on_bias_labels": False}
  trained = {"baseline", "augmented"} & set(stages)
  assert set(results["evaluation"]) == trained  # A 4-class target: no fairness metrics.
  for name in trained:
    members = results["evaluation"][name]["members"]
    assert [m["seed"] for m in members] == [0, 1]
    assert all(0 <= m["test"]["classifier"]["unbiased_accuracy"] <= 1 for m in members)
  amplifier = json.loads((tmp_path / "recipe" / "amplifier" / "config.json").read_text())
  assert amplifier["data"]["generated_train"]["generator"].endswith("class_generator")
  config.recipe.protected = "labels"
  with pytest.raises(InputError, match="recipe.protected is 'labels'"):
    recipes.run(config, str(tmp_path / "other"))
  unlabelled = _tiny_recipe(_without_bias_labels(tmp_path / "unlabelled"), latent_debiasing_config)
  unlabelled.recipe.protected = "bias_labels"  # The paper's labeller: it needs them.
  with pytest.raises(InputError, match="lacks some examples' bias labels .*protected='amplifier'"):
    recipes.run(unlabelled, str(tmp_path / "refused"))
  assert not (tmp_path / "refused").exists()  # Refused before any stage.


def test_pairs_stage_skips_only_where_the_generator_cannot_reach_a_class(tiny_npz, tmp_path):
  config = _tiny_recipe(tiny_npz)
  recipe = Recipe(config, str(tmp_path / "recipe"), bias_amplification.default_config())
  make = lambda: recipe_stages.pairs(recipe, tmp_path, tmp_path, tmp_path, pairs.default_config())
  with pytest.MonkeyPatch.context() as patch:
    fail = lambda error: patch.setattr(recipe_stages, "write_pairs", mock.Mock(side_effect=error))
    fail(InputError("bad settings"))
    with pytest.raises(InputError, match="bad settings"):  # A mistake is not skipped.
      make()
    fail(pairs.UnreachableClasses("none"))
    assert make() == {"skipped": "none"}


def test_a_stage_stopped_by_ctrl_c_or_sigterm_keeps_its_time_for_the_invocation_that_resumes(
    tiny_npz, tmp_path
):
  config, workdir = _tiny_recipe(tiny_npz), str(tmp_path / "recipe")
  defaults = bias_amplification.default_config()

  def stopped(directory):
    time.sleep(0.05)  # Trains a while, then is stopped.
    raise Interrupted("SIGTERM at step 10; the same command resumes it.", exit_code=143)

  with pytest.raises(Interrupted, match="resumes it"):
    Recipe(config, workdir, defaults).stage("generator", stopped)
  booked = runs.read_json(tmp_path / "recipe" / "stage_seconds.json")["generator"]
  assert booked >= 0.05
  mistake = mock.Mock(side_effect=InputError("bad settings"))
  with pytest.raises(InputError, match="bad settings"):  # An error is no attempt to book.
    Recipe(config, workdir, defaults).stage("amplifier", mistake)
  resumed = Recipe(config, workdir, defaults)
  resumed.stage("generator", lambda directory: {})
  ledger = runs.read_json(tmp_path / "recipe" / "stage_seconds.json")
  assert list(ledger) == ["generator"]
  assert ledger["generator"] == pytest.approx(booked + resumed.seconds["generator"], abs=0.011)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"recipe.holdout_fraction": 0.0005}, r"0.0005 of npz/tiny's 512 training examples holds"),
        (
            {"recipe.gan_batch_size": 500},
            r"gives 384 training examples outside the held-out part, fewer than a batch of 500",
        ),
        ({"batch_size": 400}, r"fewer than a batch of 400; lower --config.batch_size"),
        ({"recipe.per_class": 7}, r"gives 28 generated images for the amplifier, fewer than a"),
    ],
)
def test_the_recipe_refuses_data_its_stages_cannot_run_on(tiny_npz, tmp_path, change, match):
  config = _tiny_recipe(tiny_npz)
  config.update_from_flattened_dict(change)
  with pytest.raises(InputError, match=match):
    recipes.run(config, str(tmp_path / "recipe"))
  assert not (tmp_path / "recipe").exists()  # Refused before any stage.


def test_the_recipe_refuses_a_class_of_no_training_example(tmp_path):
  arrays = synthetic.biased_arrays()
  for split in ("train", "test"):  # Classes 0, 2, 3: read as 4 classes, class 1 empty.
    label = arrays[f"{split}_label"]
    label[label == 1] = 2
  np.savez(tmp_path / "gap.npz", **arrays)
  with pytest.raises(InputError, match=r"no example of 1 of its 4 classes \(0..3; first missing:"):
    recipes.run(_tiny_recipe(str(tmp_path / "gap.npz")), str(tmp_path / "recipe"))
  assert not (tmp_path / "recipe").exists()


def test_fairness_metrics_need_a_binary_protected_attribute(tmp_path):
  arrays = synthetic.biased_arrays(num_classes=3)  # A binary target, three protected values.
  arrays.update({k: arrays[k] % 2 for k in ("train_label", "test_label")})
  arrays.update(valid_images=arrays["test_images"], valid_label=arrays["test_label"])
  np.savez(tmp_path / "three.npz", **arrays)
  config = latent_debiasing_config.get_config(f"data=npz,path={tmp_path / 'three.npz'}")
  with pytest.raises(InputError, match="need a binary target, a binary protected attribute"):
    latent_debiasing.fairness(config, str(tmp_path / "unused"))


@pytest.mark.parametrize("config_module", [bias_amplification_config, latent_debiasing_config])
def test_recipe_configs_take_both_mnist_biases_by_name(config_module):
  colored = config_module.get_config("data=colored_mnist,ratio=0.02,severity=3").data
  assert (colored.name, colored.ratio, colored.severity) == ("colored_mnist", 0.02, 3)
  biased = config_module.get_config("data=biased_mnist,rho=0.999").data
  assert (biased.name, biased.rho) == ("biased_mnist", 0.999)
  with pytest.raises(ValueError, match="data=svhn is not offered; use colored_mnist, biased"):
    config_module.get_config("data=svhn")
