"""Puts a benchmark's output into README.md, so the README shows exactly what a script printed."""

import pathlib

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def splice(name: str, text: str) -> None:
  """Replaces what stands between the `<!-- {name} table: begin/end -->` markers with `text`."""
  begin, end = f"<!-- {name} table: begin -->", f"<!-- {name} table: end -->"
  head, rest = README.read_text().split(begin)
  _, tail = rest.split(end)
  README.write_text(f"{head}{begin}\n{text}{end}{tail}")
