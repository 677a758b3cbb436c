"""The wiring's structure in numbers (issue 21): import circles, function-local imports, large modules, settings reads.

    python bench/structure.py [--json] [--repo DIR]

- import circles: groups of project modules that import each other, counting function-local imports too (an import
  inside a function is still a dependency, only a hidden one), and the package ``__init__`` a submodule import runs;
- function-local imports: ``import`` statements inside a function or method, and how many of them carry no comment
  saying why (on the line, or on the line above the block of imports it belongs to);
- modules over 700 lines;
- settings read outside resources/settings.py: ``os.environ.get`` / ``os.getenv`` / ``os.environ[...]`` reads of an
  ``AUTOMODEL_*`` variable or of any variable of the settings table;
- side-channel reads between run assets in automodel_assets/assets.py: session-store reads other than the run's
  manifest, event-log reads of another asset's materialization, and files read back from the home.

Only the project's packages are read (not tests/, bench/ or the virtual environment). No code is imported or run.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

PACKAGES = ("automodel", "analyzers", "recipes", "automodel_assets", "resources", "sensors", "service")
LARGE_LINES = 700
SETTINGS_FILE = "resources/settings.py"
WIRING = ("automodel_assets/", "sensors/", "resources/")
# The settings table's variables that do not start with AUTOMODEL_ (the original guide's names).
GUIDE_VARIABLES = {"MIN_R2", "MAX_MAPE", "MAX_ROWS_FIRST_PASS", "MAX_FEATURES_FIRST_PASS", "MAX_ROWS_FULL", "PROFILE_SAMPLE_ROWS",
                   "MAX_REQUESTS_FREE", "MAX_GB_FREE", "ENABLE_LLM_PREPROCESSING", "ENABLE_SHAP_EXPLANATIONS", "ENABLE_SEMANTIC_MERGE",
                   "ENABLE_AGENT_ACTIONS"}
EVENT_LOG_READS = {"fetch_materializations", "get_latest_materialization_event", "get_event_records", "get_records_for_run"}
FILE_READS = {"read_csv", "read_parquet", "read_text", "read_bytes", "read_training_schema"}


def project_modules(repo: Path) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((repo / package).rglob("*.py")) if (repo / package).is_dir() else []:
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(node: ast.AST, module: str, modules: dict[str, Path]) -> list[str]:
    """The project modules an import statement loads (the module itself, and a submodule named in ``from X import Y``)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's own package, then up
            package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = ".".join(p for p in (package, base) if p)
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = []
    for target in targets:
        while target and target not in modules:  # `import a.b.c` where only a.b is a file
            target = target.rpartition(".")[0]
        if target:
            found.append(target)
            parent = target.rpartition(".")[0]  # importing a.b.c runs a/__init__ and a/b/__init__ first
            while parent:
                if parent in modules and not module.startswith(parent + ".") and parent != module:
                    found.append(parent)
                parent = parent.rpartition(".")[0]
    return found


class _Reader(ast.NodeVisitor):
    def __init__(self, module: str, modules: dict[str, Path], lines: list[str]):
        self.module, self.modules, self.lines = module, modules, lines
        self.edges: set[str] = set()
        self.local_imports: list[tuple[int, bool, bool]] = []  # (line, explained, of a project module)
        self.depth = 0
        self.constants: dict[str, str] = {}

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def _import(self, node):
        targets = [t for t in _imported_names(node, self.module, self.modules) if t != self.module]
        self.edges.update(targets)
        if self.depth:
            self.local_imports.append((node.lineno, self._explained(node.lineno), bool(targets)))

    visit_Import = visit_ImportFrom = _import

    def _explained(self, lineno: int) -> bool:
        """A comment on the import's line, on another import line of its block, or on the line above the block."""
        i = lineno - 1
        while i > 0 and self._is_import_or_blank(self.lines[i - 1]):
            i -= 1
        block = range(i - 1 if i > 0 else 0, lineno + self._block_tail(lineno))
        return any("#" in self.lines[j] for j in block if j < len(self.lines))

    def _block_tail(self, lineno: int) -> int:
        n = 0
        while lineno + n < len(self.lines) and self.lines[lineno + n].strip().startswith(("import ", "from ")):
            n += 1
        return n

    @staticmethod
    def _is_import_or_blank(line: str) -> bool:
        text = line.strip()
        return not text or text.startswith(("import ", "from "))


def _environ_reads(tree: ast.AST, constants: dict[str, str]) -> list[tuple[int, str]]:
    """(line, variable) of every read of an environment variable whose name is a constant string."""
    def name_of(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    def is_environ(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"

    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            if (func.attr == "get" and is_environ(func.value)) or (func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"):
                reads.append((node.lineno, name_of(node.args[0])))
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
            reads.append((node.lineno, name_of(node.slice)))
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            reads.append((node.lineno, name_of(node.left)))
    return [(line, name) for line, name in reads if name and (name.startswith("AUTOMODEL_") or name in GUIDE_VARIABLES)]


def _side_channels(tree: ast.AST) -> list[tuple[int, str]]:
    """Reads in the assets module of what another asset (or the run's record) holds, other than the run's manifest."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, owner = node.func.attr, node.func.value
        owner_text = ast.unparse(owner)
        if attr == "get" and ("SessionStore(" in owner_text or owner_text in ("store", "self.store")):
            found.append((node.lineno, f"session store read: {ast.unparse(node)[:80]}"))
        elif attr in EVENT_LOG_READS:
            found.append((node.lineno, f"event log read: {attr}"))
        elif attr in FILE_READS and attr != "read_bytes":
            found.append((node.lineno, f"file read: {ast.unparse(node)[:80]}"))
    return found


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups, key=len, reverse=True)


def measure(repo: Path) -> dict:
    modules = project_modules(repo)
    graph, local, unexplained, large, reads, side, local_project = {}, {}, [], {}, [], [], 0
    for module, path in modules.items():
        text = path.read_text(errors="replace")
        lines = text.splitlines()
        tree = ast.parse(text)
        reader = _Reader(module, modules, lines)
        reader.visit(tree)
        graph[module] = reader.edges
        if reader.local_imports:
            local[module] = len(reader.local_imports)
            unexplained += [f"{path.relative_to(repo)}:{line}" for line, why, _ in reader.local_imports if not why]
            local_project += sum(ours for _, _, ours in reader.local_imports)
        if len(lines) > LARGE_LINES:
            large[str(path.relative_to(repo))] = len(lines)
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                     and isinstance(n.value.value, str) for t in n.targets if isinstance(t, ast.Name)}
        relative = str(path.relative_to(repo))
        if relative != SETTINGS_FILE:
            reads += [f"{relative}:{line} {name}" for line, name in _environ_reads(tree, constants)]
        if relative == "automodel_assets/assets.py":
            side = [f"{relative}:{line} {what}" for line, what in _side_channels(tree)]
    circles = _circles(graph)
    return {
        "modules": len(modules),
        "import_circles": len(circles), "modules_in_circles": sum(len(c) for c in circles), "circles": circles,
        "function_local_imports": sum(local.values()), "function_local_imports_of_project_modules": local_project,
        "function_local_imports_without_why": len(unexplained),
        "wiring_function_local_imports_without_why": sum(1 for u in unexplained if u.startswith(WIRING)),
        "function_local_imports_by_module": dict(sorted(local.items(), key=lambda kv: -kv[1])),
        "unexplained": unexplained,
        "modules_over_700_lines": large,
        "settings_reads_outside_settings": len(reads), "settings_reads": reads,
        "side_channel_reads_between_run_assets": len(side), "side_channels": side,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent, help="the checkout to measure")
    parser.add_argument("--json", action="store_true", help="print every finding as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.repo.resolve())
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"modules: {figures['modules']}")
    print(f"import circles: {figures['import_circles']} ({figures['modules_in_circles']} modules)")
    for circle in figures["circles"]:
        print("  " + " <-> ".join(circle))
    print(f"function-local imports: {figures['function_local_imports']} ({figures['function_local_imports_of_project_modules']} of project modules; "
          f"{figures['function_local_imports_without_why']} without a comment saying why, "
          f"{figures['wiring_function_local_imports_without_why']} of them in the wiring: automodel_assets/, sensors/, resources/)")
    for module, count in list(figures["function_local_imports_by_module"].items())[:8]:
        print(f"  {module}: {count}")
    print(f"modules over {LARGE_LINES} lines: {len(figures['modules_over_700_lines'])}")
    for path, n in figures["modules_over_700_lines"].items():
        print(f"  {path}: {n}")
    print(f"settings read outside {SETTINGS_FILE}: {figures['settings_reads_outside_settings']}")
    for read in figures["settings_reads"]:
        print(f"  {read}")
    print(f"side-channel reads between run assets: {figures['side_channel_reads_between_run_assets']}")
    for read in figures["side_channels"]:
        print(f"  {read}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
