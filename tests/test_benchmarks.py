"""The benchmark tables' bookkeeping (no training): benchmarks/baselines.py --update."""

import json

from absl import app
import pytest

from benchmarks import baselines


def _cell(seed: int, accuracy: float) -> dict:
  return {"seed": seed, "test": {"classifier": {"unbiased_accuracy": accuracy}}}


def test_update_keeps_the_earlier_cells_and_refuses_other_seeds(tmp_path):
  path = tmp_path / "baselines.json"
  earlier = {
      "biased_mnist/lff/0.997": [_cell(0, 0.6), _cell(1, 0.7)],
      "biased_mnist/jtt/0.997": [_cell(0, 0.3), _cell(1, 0.4)],
      "biased_mnist/jtt_error_set/0.997": [{"error_set": 5}, {"error_set": 6}],
  }
  path.write_text(json.dumps(earlier))
  found, error_sets = baselines.previous(path, [0, 1])
  assert set(found) == {("biased_mnist", "lff", 0.997), ("biased_mnist", "jtt", 0.997)}
  assert error_sets == {("biased_mnist", 0.997): [{"error_set": 5}, {"error_set": 6}]}
  assert baselines.previous(tmp_path / "none.json", [0]) == ({}, {})
  with pytest.raises(app.UsageError, match=r"lff/0.997 of seeds \[0, 1\].*--seeds=0,1"):
    baselines.previous(path, [0])  # The table would lose them.

  how = {"chosen": "ag, weight_decay=0.3", "held_out_flagged": 19, "standard_error": 0.0412}
  found["biased_mnist", "recipe", 0.999] = [_cell(0, 0.8) | how, _cell(1, 0.9) | how]
  earlier_rule = {"chosen": "ag, weight_decay=0"}  # A cell made before the rule.
  found["biased_mnist", "recipe", 0.997] = [_cell(0, 0.7) | earlier_rule]
  columns = {"colored_mnist": [], "biased_mnist": [0.997, 0.999]}
  rows = baselines.table(found, columns, [0, 1], {}).splitlines()
  assert (
      "- Biased MNIST (rho) 0.999: ag, weight_decay=0.3 (one-standard-error rule;"
      " 19 held-out examples read as conflicting by the amplifier; standard error 4.12 points)"
  ) in rows
  assert (
      "- Biased MNIST (rho) 0.997: ag, weight_decay=0 (the best held-out score,"
      " made before the one-standard-error rule)"
  ) in rows
  del found["biased_mnist", "recipe", 0.997]
  rows = baselines.table(found, columns, [0, 1], {}).splitlines()
  assert "--methods=lff,jtt,recipe --ratios= --rhos=0.997,0.999`. -: not run yet." in rows[0]
  row = lambda method: next(r for r in rows if r.startswith(f"| {method} |"))
  lff, jtt, recipe = row("lff"), row("jtt"), row("recipe")
  assert lff.startswith("| lff | 65.00 ± 7.07 | - |")
  assert jtt.startswith("| jtt | 35.00 ± 7.07 | - |")
  assert recipe.startswith("| recipe | - | 85.00 ± 7.07 |")


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
  rows = baselines.table(found, columns, [0], {}).splitlines()
  assert any(row.startswith("| disent | 70.00 ± 0.00 |") for row in rows)  # The final model.
  peak_line = "- disent, Colored MNIST (conflicting ratio) 0.01: 70.00 final, 80.00 at step 200"
  assert f"{peak_line} (seed by seed)" in rows
