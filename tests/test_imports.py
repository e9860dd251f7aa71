"""minimac's modules import each other downward only: no import cycle, imports inside functions included.

A cycle means two modules each need the other, so neither can be read (or tested) on its own; a student reading them
in lesson order would meet a name before its lesson. The graph is built from the source with `ast`, so an import
hidden inside a function counts as much as one at the top of a file.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "minimac"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: the minimac modules it imports}, every import statement in the file counted."""
    files = {module_name(f, root): f for f in root.rglob("*.py")}
    graph = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "minimac"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from minimac import b\n")
    (pkg / "b.py").write_text("def f():\n    from minimac.a import x\n")
    (pkg / "c.py").write_text("import minimac.a\n")
    assert cycles(import_graph(pkg)) == [["minimac.a", "minimac.b"]]


def test_minimac_has_no_import_cycle():
    graph = import_graph()
    assert "minimac.model" in graph and "minimac.fast" in graph and "minimac.learner.learner" in graph
    assert cycles(graph) == []


def test_the_lessons_never_import_the_speed_work():
    """minimac/fast/ sits on top of the lessons it speeds up: only the programs that switch it on import it."""
    callers = {"minimac.learner.learner", "minimac.learn", "minimac.pretrain", "minimac.generate"}
    graph = import_graph()
    importers = sorted(m for m, deps in graph.items() if not m.startswith("minimac.fast")
                       and any(d == "minimac.fast" or d.startswith("minimac.fast.") for d in deps))
    assert set(importers) <= callers, importers
