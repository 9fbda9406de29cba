"""The package's import structure: no import cycle anywhere (module-level or deferred inside a function), layers
import only downward, and no module imports another's underscore names. Read from the source with ast, so a
deferred import counts as much as a top-level one; imports under `if TYPE_CHECKING:` do not run and do not
count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "attrwidgets"

# Lowest first: a module may import its own layer or lower ones. The first matching prefix decides.
LAYERS = (
    ("errors", ("attrwidgets.errors",)),
    ("core", ("attrwidgets.core", "attrwidgets.models", "attrwidgets.packaged_models", "attrwidgets.gguf_convert",
              "attrwidgets.testing")),
    ("widgets", ("attrwidgets.widgets",)),
    ("export and cli", ("attrwidgets.export_html", "attrwidgets.cli", "attrwidgets")),
)
# Inside core/graph, lowest first; other core/graph modules (prompt, replacement, sweep, rows, attribution,
# engine, intervene, ...) build graphs and sit on top.
GRAPH = "attrwidgets.core.graph."
GRAPH_LAYERS = (
    ("graph data", ("node_table", "graph", "graph_write", "graph_io", "influence", "pruning")),
    ("transcoders", ("transcoder", "transcoder_write", "transcoder_layouts", "transcoder_io", "transcoder_hub",
                     "transcoder_fetch")),
    ("training", ("train", "train_model", "checkpoint", "harvest")),
)


def module_files() -> dict[str, Path]:
    out = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = file
    return out


MODULES = module_files()


def resolve(name: str) -> str | None:
    """The module an import names (the deepest one that exists: `a.b.func` -> `a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(module: str) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement of `module` in the package."""
    file = MODULES[module]
    tree = ast.parse(file.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:  # relative: from the module's package
            package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            out.append((full, None) if full in MODULES else (base, alias.name))
    return [(target, name) for target, name in out if target.split(".")[0] == "attrwidgets"]


EDGES = {m: {r for t, _ in imports(m) if (r := resolve(t)) and r != m} for m in MODULES}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other in a circle."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    for root, children_of_root in edges.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children_of_root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def layer_of(module: str, layers) -> int | None:
    for rank, (_, prefixes) in enumerate(layers):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def graph_layer_of(module: str) -> int:
    name = module.removeprefix(GRAPH)
    for rank, (_, names) in enumerate(GRAPH_LAYERS):
        if name in names:
            return rank
    return len(GRAPH_LAYERS)  # building graphs: the top


def test_the_checker_sees_cycles_and_deferred_imports():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
    assert "attrwidgets.core.estimate" in EDGES["attrwidgets.core.token.session"]  # a top-level import
    assert "attrwidgets.core.dlig.layers" in EDGES["attrwidgets.core.estimate"]  # a deferred one, in a function


def test_no_import_cycle():
    cycles = strongly_connected(EDGES)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_layers_import_only_downward():
    wrong = [f"{m} ({LAYERS[layer_of(m, LAYERS)][0]}) imports {t} ({LAYERS[layer_of(t, LAYERS)][0]})"
             for m in MODULES for t in EDGES[m] if layer_of(t, LAYERS) > layer_of(m, LAYERS)]
    assert not wrong, "\n".join(sorted(wrong))


def test_graph_layers_import_only_downward():
    names = [GRAPH_LAYERS[rank][0] for rank in range(len(GRAPH_LAYERS))] + ["building"]
    wrong = [f"{m} ({names[graph_layer_of(m)]}) imports {t} ({names[graph_layer_of(t)]})"
             for m in MODULES if m.startswith(GRAPH) for t in EDGES[m]
             if t.startswith(GRAPH) and graph_layer_of(t) > graph_layer_of(m)]
    assert not wrong, "\n".join(sorted(wrong))
    listed = {n for _, group in GRAPH_LAYERS for n in group}
    assert listed <= {m.removeprefix(GRAPH) for m in MODULES}, "a module named in GRAPH_LAYERS no longer exists"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_another_modules_underscore_names(module):
    private = [f"{target}.{name}" for target, name in imports(module)
               if name is not None and name.startswith("_") and not name.startswith("__")]
    assert not private, f"{module} imports private names {private}: make them public where they are defined"
