"""The benchmark tables' bookkeeping (no training): benchmarks/baselines.py and
benchmarks/bias_amplification.py --update; the data benchmarks/official_lff.py hands the official
LfF code."""

import json
import pickle

from absl import app
import chex
import numpy as np
import pytest

from benchmarks import baselines
from benchmarks import bias_amplification
from benchmarks import official_lff
from benchmarks import readme
from benchmarks import references
from jaxdebias.data.records import BiasedDataset, make_split
from tests import synthetic


def _cell(seed: int, accuracy: float) -> dict:
  return {"seed": seed, "test": {"classifier": {"unbiased_accuracy": accuracy}}}


def test_update_grows_the_table_seed_by_seed(tmp_path):
  path = tmp_path / "baselines.json"
  error_set = {"error_set": 5, "precision": 0.2, "recall": 1.0}
  earlier = {
      "biased_mnist/lff/0.997": [_cell(0, 0.6)],
      "biased_mnist/jtt/0.997": [_cell(0, 0.3), _cell(1, 0.4)],
      # Written before error sets named their seed: those of the JTT cell, in order.
      "biased_mnist/jtt_error_set/0.997": [error_set, error_set],
      "biased_mnist/recipe/0.99": [_cell(0, 0.8)],  # Stored before generators_held_out.
  }
  path.write_text(json.dumps(earlier))
  found, error_sets = baselines.previous(path)
  early_recipe = found.pop(("biased_mnist", "recipe", 0.99))
  assert early_recipe == [_cell(0, 0.8) | {"generators_held_out": False}]
  assert set(found) == {("biased_mnist", "lff", 0.997), ("biased_mnist", "jtt", 0.997)}
  assert error_sets == {("biased_mnist", 0.997): [{"seed": s, **error_set} for s in (0, 1)]}
  assert baselines.previous(tmp_path / "none.json") == ({}, {})

  lff = ("biased_mnist", "lff", 0.997)
  in_order = [_cell(0, 0.6), _cell(1, 0.7)]
  assert baselines.merged(lff, None, in_order[::-1]) == in_order
  grown = baselines.merged(lff, found[lff], [_cell(2, 0.8), _cell(1, 0.7)])
  chex.assert_trees_all_equal(grown, [_cell(0, 0.6), _cell(1, 0.7), _cell(2, 0.8)])
  rerun = baselines.merged(lff, grown, [_cell(1, 0.75)])  # A seed run again replaces its own.
  assert [c["test"]["classifier"]["unbiased_accuracy"] for c in rerun] == [0.6, 0.75, 0.8]
  recipe = ("biased_mnist", "recipe", 0.997)
  three = [_cell(s, 0.7) for s in range(3)]
  assert baselines.merged(recipe, [_cell(0, 0.9)], three) == three  # One run, replaced whole.
  refused = r"recipe/0.997 already holds seeds \[0, 1, 2\].*--seeds=0,1,2"
  with pytest.raises(app.UsageError, match=refused):
    baselines.check_recipe_seeds(recipe, three, [0])  # Would lose seeds 1 and 2.
  baselines.check_recipe_seeds(recipe, three, [0, 1, 2])  # As many: replaced.

  found[lff] = grown
  how = {"chosen": "ag, weight_decay=0.3", "held_out_flagged": 19, "standard_error": 0.0412}
  found["biased_mnist", "recipe", 0.999] = [_cell(s, 0.8 + s / 10) | how for s in range(3)]
  earlier_rule = {"chosen": "ag, weight_decay=0"}  # A cell made before the rule.
  found["biased_mnist", "recipe", 0.997] = [_cell(0, 0.7) | earlier_rule]
  columns = {"colored_mnist": [], "biased_mnist": [0.997, 0.999]}
  rows = baselines.table(found, columns, error_sets).splitlines()
  assert (
      "- Biased MNIST (rho) 0.999: ag, weight_decay=0.3 (one-standard-error rule;"
      " 19 held-out examples read as conflicting by the amplifier; standard error 4.12 points)"
  ) in rows
  assert (
      "- Biased MNIST (rho) 0.997: ag, weight_decay=0 (the best held-out score,"
      " made before the one-standard-error rule)"
  ) in rows
  error_line = "- Biased MNIST (rho) 0.997: seed 0: 5 examples, precision 0.20, recall 1.00;"
  assert any(row.startswith(f"{error_line} seed 1:") for row in rows)
  assert "std over seeds 0,1,2 (a cell of other seeds names them" in rows[0]
  assert "--seeds=0,1,2 --methods=lff,jtt,recipe --ratios= --rhos=0.997,0.999`." in rows[0]
  assert "-: not run yet." in rows[0]
  row = lambda method: next(r for r in rows if r.startswith(f"| {method} |"))
  assert row("lff").startswith("| lff | 70.00 ± 10.00 | - |")
  assert row("jtt").startswith("| jtt | 35.00 ± 7.07 (seeds 0,1) | - |")
  assert row("recipe").startswith("| recipe | 70.00 ± 0.00 (seed 0) | 90.00 ± 10.00 |")
  assert "†" not in rows[0]
  found["biased_mnist", "recipe", 0.997][0]["generators_held_out"] = False
  rows = baselines.table(found, columns, error_sets).splitlines()
  assert row("recipe").startswith("| recipe | 70.00 ± 0.00 (seed 0) † | 90.00 ± 10.00 |")
  assert "when the recipe's GANs trained on the whole training split" in rows[0]

  # A recipe cell of more seeds (one run of five side by side) names them; the header keeps the
  # seeds most cells hold and says how that cell is rerun.
  found["biased_mnist", "recipe", 0.997] = [_cell(s, 0.7) | how for s in range(5)]
  rows = baselines.table(found, columns, error_sets).splitlines()
  assert "std over seeds 0,1,2 (a cell of other seeds" in rows[0]
  rerun = "(a recipe cell of seeds 0,1,2,3,4: its run with `--methods=recipe --seeds=0,1,2,3,4`)."
  assert rerun in rows[0]
  assert row("recipe").startswith("| recipe | 70.00 ± 0.00 (seeds 0,1,2,3,4) | 90.00 ± 10.00 |")


def test_the_best_test_evaluation_is_a_diagnosis_beside_the_final_model(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # Runs live in workdirs/ under the working directory.
  workdir = baselines.workdir_of("colored_mnist", "disent", 0.01, 0)
  workdir.mkdir(parents=True)
  records = [(100, 0.5), (200, 0.8), (300, 0.7)]
  key = "test/classifier/unbiased_accuracy"
  lines = [json.dumps({"step": step, key: acc, "seed": 0}) for step, acc in records]
  (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  peak = baselines.best_test_evaluation("colored_mnist", "disent", 0.01, 0)
  assert peak == {"unbiased_accuracy": 0.8, "step": 200}
  found = {("colored_mnist", "disent", 0.01): [_cell(0, 0.7) | {"best_test_evaluation": peak}]}
  columns = {"colored_mnist": [0.01], "biased_mnist": []}
  rows = baselines.table(found, columns, {}).splitlines()
  assert any(row.startswith("| disent | 70.00 ± 0.00 |") for row in rows)  # The final model.
  peak_line = "- disent, Colored MNIST (conflicting ratio) 0.01: seed 0: 70.00 final, 80.00 at step"
  assert f"{peak_line} 200" in rows


def _recipe_results(accuracies: list[float], machine: str) -> dict:
  """A recipe run's results.json, as much of it as the bias amplification tables read."""
  member = lambda acc: {"test": {"classifier": {"unbiased_accuracy": acc}}}
  return {
      "final": {"members": [member(a) for a in accuracies]},
      "selection": {
          "scores": {"erm": {"mean": 0.5}, "ag, weight_decay=0.1": {"mean": 0.9}},
          "chosen": {"name": "ag, weight_decay=0.1"},
          "fell_back": False,
      },
      "diagnostics": {
          "candidates_test": {
              "erm": member(0.4)["test"],
              "ag": [{"hparams": {"weight_decay": 0.1}, **member(0.8)}],
          },
          "pairs": {"skipped": "no pairs"},
      },
      "stage_seconds_this_run": {"generator": 10.0},
      "total_seconds_this_run": 12.0,
      "measured_on": machine,
      "generators_held_out": True,
  }


def test_bias_amplification_update_keeps_cells_across_invocations(tmp_path):
  path = tmp_path / "bias_amplification.json"
  lff = [_cell(s, 0.7) | {"measured_on": "machine A"} for s in range(3)]
  stored = {
      "recipes": {"none/0.01": _recipe_results([0.8, 0.9], "machine A")},
      "plain": {"lff/0.01": lff},
  }
  del stored["recipes"]["none/0.01"]["generators_held_out"]  # Stored before the field.
  path.write_text(json.dumps(stored))
  found, plain = bias_amplification.previous(path)
  assert set(found) == {("none", 0.01)} and set(plain) == {("lff", 0.01)}
  assert found["none", 0.01]["generators_held_out"] is False
  assert bias_amplification.previous(tmp_path / "none.json") == ({}, {})

  # A later invocation adds a cell of five seeds, measured elsewhere.
  found["none", 0.005] = _recipe_results([0.6, 0.7, 0.8, 0.6, 0.7], "machine B")
  rows = bias_amplification.report(found, plain).splitlines()
  header = rows[2]
  assert "--seeds=5 --ratios=0.005,0.01 --priors=none`" in header
  assert "over seeds 0,1,2,3,4 (a cell of other seeds names them" in header
  assert "Measured on: machine A; and machine B. †: run before 2026-12-07" in header
  row = lambda name: next(r for r in rows if r.startswith(f"| {name}"))
  assert row("erm") == "| erm (fixed knobs) | - | - |"
  assert row("lff") == "| lff (fixed knobs) | - | 70.00 ± 0.00 (seeds 0,1,2) |"
  recipe = "| recipe, no prior (the default) | 68.00 ± 8.37 | 85.00 ± 7.07 (seeds 0,1) † |"
  assert row("recipe") == recipe
  choice = "| none | 1% | ag, weight_decay=0.1 | no | erm: 50.00 / 40.00 ; ag, weight_decay=0.1:"
  assert f"{choice} 90.00 / 80.00 |" in rows

  # A recipe cell is one run with one selection: a run of fewer seeds may not replace it.
  with pytest.raises(app.UsageError, match=r"none/0.005 already holds seeds 0-4.*--seeds=5"):
    bias_amplification.check_recipe_seeds(found, [0.005], 3, ["none"])
  bias_amplification.check_recipe_seeds(found, [0.005, 0.01], 5, ["none"])


def test_bias_amplification_takes_the_seeds_it_lacks_from_the_baselines_table(tmp_path):
  path = tmp_path / "baselines.json"
  stored = {
      "colored_mnist/lff/0.01": [_cell(0, 0.5), _cell(1, 0.6), _cell(2, 0.7)],
      "colored_mnist/jtt/0.01": [_cell(0, 0.1)],
      "biased_mnist/lff/0.997": [_cell(0, 0.2)],
  }
  path.write_text(json.dumps(stored))
  ours = {("lff", 0.01): [_cell(0, 0.55) | {"measured_on": "here"}]}
  plain = bias_amplification.with_baselines(ours, path)
  assert set(plain) == {("lff", 0.01)}  # Only Colored MNIST's ERM and LfF are the same runs.
  cell = plain["lff", 0.01]
  assert [r["test"]["classifier"]["unbiased_accuracy"] for r in cell] == [0.55, 0.6, 0.7]
  assert cell[0]["measured_on"] == "here" and "baselines.json's runs" in cell[1]["measured_on"]
  assert bias_amplification.with_baselines(ours, tmp_path / "none.json") == ours


def test_a_recipe_run_says_whether_its_gans_saw_the_held_out_part(tmp_path):
  for fraction, held_out in ((0.1, True), (0.0, False)):  # The latter: runs before 2026-12-07.
    (tmp_path / "generator").mkdir(exist_ok=True)
    config = {"data": {"valid_fraction": fraction}}
    (tmp_path / "generator" / "config.json").write_text(json.dumps(config))
    assert references.generators_held_out(tmp_path) is held_out


def test_recipe_times_count_the_stages_earlier_invocations_finished():
  resumed = {  # Its generator finished in an invocation before the one that ended the recipe.
      "stage_seconds_this_run": {"generator": 0.0, "final": 5.0},
      "total_seconds_this_run": 6.0,
      "stage_seconds": {"generator": 100.0, "final": 5.0},
      "stage_seconds_total": 105.0,
  }
  single = {"stage_seconds_this_run": {"generator": 90.0}, "total_seconds_this_run": 91.0}
  reused = {  # Its generator copied from another recipe workdir, where it took 80 s.
      **resumed,
      "stage_seconds": {"generator": 0.0, "final": 5.0},
      "stage_seconds_total": 5.0,
      "stage_seconds_copied": {"generator": 80.0},
      "stage_seconds_from_nothing": 85.0,
  }
  unbooked = {  # The same, copied from a recipe workdir that did not book its time.
      **reused,
      "stage_seconds_copied": {"generator": None},
      "stage_seconds_from_nothing": None,
  }
  found = {("none", 0.02): resumed, ("a", 0.05): reused, ("b", 0.05): unbooked}
  found[("none", 0.01)] = single
  lines = readme.recipe_times(found)
  assert lines[-4:] == [
      "- none, 2%: 105 s (generator 100, final 5; each stage summed over the invocations that"
      " trained it)",
      "- a, 5%: 85 s (generator 80, final 5; each stage summed over the invocations that trained"
      " it; copied from another recipe workdir, at their time there: generator)",
      "- b, 5%: 5 s (final 5; each stage summed over the invocations that trained it, without"
      " those copied from another recipe workdir that did not book their time: generator)",
      "- none, 1%: 91 s (generator 90; the invocation that finished it; stages it reused count"
      " ~0 s)",
  ]


def test_the_official_lff_code_gets_our_data_in_its_layout(tmp_path):
  """What the official code's AttributeDataset reads: uint8 HWC images and [label, bias] rows
  per split, our test split as its 'valid', and the attribute names."""
  arrays = synthetic.biased_arrays(num_train=40, num_test=20)
  split = lambda name: make_split(
      arrays[f"{name}_images"], arrays[f"{name}_label"], arrays[f"{name}_bias_label"]
  )
  dataset = BiasedDataset("synthetic", split("train"), split("test"), None, 4, 4)
  official_lff.write_official_data(dataset, tmp_path)
  root = tmp_path / official_lff.OFFICIAL_TAG
  for name, ours in (("train", dataset.train), ("valid", dataset.test)):
    images = np.load(root / name / "images.npy")
    attrs = np.load(root / name / "attrs.npy")
    assert images.dtype == np.uint8 and attrs.dtype == np.uint8
    chex.assert_trees_all_equal(images, ours.images)
    chex.assert_trees_all_equal(attrs[:, 0], ours.label.astype(np.uint8))
    chex.assert_trees_all_equal(attrs[:, 1], ours.bias_label.astype(np.uint8))
  with open(root / "attr_names.pkl", "rb") as f:
    assert pickle.load(f) == ["digit", "color"]
