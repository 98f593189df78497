"""The arrows point one way: no import cycle inside jaxdebias/, no import tucked into a function
to survive one, and no module importing from a layer above its own (../shared/DESIGN.md)."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxdebias"

# Bottom to top; a module may import from its own layer (without a cycle) and the ones below.
LAYERS = (
    ("errors", "previews"),
    ("losses", "ema", "metrics", "sharding"),
    ("data", "models"),
    ("methods", "latent"),
    ("config",),
    ("runs",),
    ("trainers",),
    ("recipes", "tools"),
    ("main",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _modules(package: pathlib.Path) -> dict[str, pathlib.Path]:
  modules = {}
  for path in package.rglob("*.py"):
    parts = ["jaxdebias", *path.relative_to(package).with_suffix("").parts]
    if parts[-1] == "__init__":
      parts.pop()
    modules[".".join(parts)] = path
  return modules


def _imports(module: str, path: pathlib.Path, modules) -> list[tuple[str, bool]]:
  """(imported jaxdebias module, at module level?) for every import in `path`."""
  package = module if path.name == "__init__.py" else module.rpartition(".")[0]
  found = []

  def visit(node, top_level: bool):
    for child in ast.iter_child_nodes(node):
      inner = top_level and not isinstance(
          child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
      )
      if isinstance(child, ast.Import):
        found.extend((alias.name, inner) for alias in child.names)
      elif isinstance(child, ast.ImportFrom):
        base = child.module or ""
        if child.level:  # Relative: up from this module's package.
          parent = package.split(".")[: len(package.split(".")) - child.level + 1]
          base = ".".join(parent + ([base] if base else []))
        for alias in child.names:
          name = f"{base}.{alias.name}"
          found.append((name if name in modules else base, inner))
      visit(child, inner)

  visit(ast.parse(path.read_text()), True)
  return [(n, top) for n, top in found if n == "jaxdebias" or n.startswith("jaxdebias.")]


def _graph(package: pathlib.Path = PACKAGE):
  """The modules of `package` and the jaxdebias imports of each."""
  modules = _modules(package)
  return modules, {m: _imports(m, p, modules) for m, p in modules.items()}


def _cycles(imports) -> list[list[str]]:
  """Strongly connected groups of modules (Tarjan) in the module-level import graph."""
  edges = {m: {name for name, top in found if top and name != m} for m, found in imports.items()}
  index, low, stack, on_stack, cycles = {}, {}, [], set(), []

  def connect(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        connect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while not component or component[-1] != v:
        component.append(stack.pop())
        on_stack.discard(component[-1])
      if len(component) > 1:
        cycles.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      connect(v)
  return cycles


def _local_imports(imports) -> list[str]:
  return sorted(f"{m} imports {n}" for m, found in imports.items() for n, top in found if not top)


def _layer(module: str) -> str:
  return module.split(".")[1]


def _upward(imports) -> list[str]:
  return sorted(
      f"{m} imports {name}"
      for m, found in imports.items()
      if m != "jaxdebias"
      for name, _ in found
      if name != "jaxdebias" and RANK[_layer(name)] > RANK[_layer(m)]
  )


def test_no_import_cycle():
  cycles = _cycles(_graph()[1])
  assert not cycles, f"import cycles: {cycles}"


def test_no_import_inside_a_function():
  local = _local_imports(_graph()[1])
  assert not local, f"imports inside functions or classes (move them to the top): {local}"


def test_imports_point_down_the_layers():
  modules, imports = _graph()
  assert {_layer(m) for m in modules if m != "jaxdebias"} <= set(RANK), "a module has no layer"
  upward = _upward(imports)
  assert not upward, f"imports from a higher layer: {upward}"


def test_the_checks_catch_a_planted_cycle_local_import_and_upward_import(tmp_path):
  fake = tmp_path / "jaxdebias"
  (fake / "data").mkdir(parents=True)
  (fake / "__init__.py").write_text("")
  (fake / "data" / "__init__.py").write_text("from jaxdebias import runs\n")
  (fake / "runs.py").write_text("from . import data\n\ndef f():\n  import jaxdebias.main\n")
  (fake / "main.py").write_text("")
  _, imports = _graph(fake)
  assert _cycles(imports) == [["jaxdebias.data", "jaxdebias.runs"]]
  assert _local_imports(imports) == ["jaxdebias.runs imports jaxdebias.main"]
  assert _upward(imports) == [
      "jaxdebias.data imports jaxdebias.runs",
      "jaxdebias.runs imports jaxdebias.main",
  ]
