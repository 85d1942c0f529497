"""The shape of the code, checked: each concern has one owner module (issue 13)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from textclf import runs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "textclf"

# The files of a run directory are named in runs.py only. Two other modules read files that
# happen to share a name: a Hugging Face checkpoint's config.json and a .keras archive's.
RUN_FILES = set(runs.RUN_FILES) - {runs.LOCK_FILE}  # ".lock" is also a search folder's (tuning.py uses lock_dir)
ALLOWED = {"textclf/runs.py": RUN_FILES, "textclf/models/bert/hf_import.py": {"config.json"},
           "textclf/models/saving.py": {"config.json"}}


def _sources(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("bench/out/"):  # benchmark output (gitignored), e.g. bench/peers.py's venv
                continue
            yield rel, ast.parse(path.read_text(encoding="utf-8"))


def _module(rel: str) -> str:
    return rel[:-3].replace("/", ".").removesuffix(".__init__")


def _imports(tree: ast.AST, module: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def test_run_file_names_are_defined_only_in_runs_py():
    assert {"model-lite.npz", "predictions.npz", "thresholds.json", "confusion_matrix.png"} <= RUN_FILES
    found = []
    for rel, tree in _sources("textclf", "bench"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value in RUN_FILES - ALLOWED.get(rel, set()):
                    found.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not found, "run-file names outside runs.py (use runs.Run / its constants):\n" + "\n".join(found)


def test_neither_the_library_nor_bench_imports_the_cli():
    found = []
    for rel, tree in _sources("textclf", "bench"):
        if rel.startswith("textclf/cli/") or rel == "textclf/__main__.py":  # the entry points
            continue
        for name in _imports(tree, _module(rel)):
            if not name.startswith("textclf.cli"):
                continue
            found.append(f"{rel}: {name}")
    assert not found, found


def test_cli_modules_own_their_apps_and_do_not_pass_locals():
    for rel, tree in _sources("textclf/cli"):
        names = {n for n in _imports(tree, _module(rel))}
        assert "textclf.cli.app" not in names, f"{rel} imports the package's app; give it its own"
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "locals"]
        assert not calls, f"{rel} calls locals()"
        private = sorted(n for n in names if n.startswith("textclf.cli.") and n.rsplit(".", 1)[-1].startswith("_")
                         and not n.startswith("textclf.cli._render"))
        assert not private, f"{rel} imports another command's private helpers: {private}"


def test_no_import_cycle_among_modules():
    """Counting the imports inside functions too: a lazy import still ties two modules together."""
    raw = {_module(rel): set(_imports(tree, _module(rel))) for rel, tree in _sources("textclf")}

    def owner(name: str) -> str:  # `textclf.config.RunConfig` -> the module textclf.config
        while name not in raw and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    graph = {m: {owner(d) for d in deps} for m, deps in raw.items()}
    graph = {m: {d for d in deps if d in raw and d != m and not m.startswith(d + ".")} for m, deps in graph.items()}
    # (A module importing its own package is not a cycle: the package is initialised first.)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_the_registry_is_generic():
    registry = (PACKAGE / "registry.py").read_text(encoding="utf-8")
    imports = set(_imports(ast.parse(registry), "textclf.registry"))
    assert not {i for i in imports if i.startswith(("textclf.models", "textclf.config"))}, imports
    assert "bert" not in registry.lower().replace("bert_", ""), "registry.py names a model"


# The task's decision rule (textclf/task.py): a multi-label run answers every label whose probability
# reaches its threshold, a single-label run the most probable class.
DECISION = re.compile(r">=\s*(self\.)?(thresholds|cut)\b|\bprobs\.argmax\(|\bp\.argmax\(|tf\.argmax\(probs")


def _lines_matching(pattern: re.Pattern, owner: str, code_only: bool = False) -> list[str]:
    """Lines of textclf/ outside `owner` that match `pattern` (`code_only`: comments left out)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == owner:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line.split("#")[0] if code_only else line):
                found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_the_decision_rule_is_written_once():
    found = _lines_matching(DECISION, "textclf/task.py", code_only=True)
    assert not found, "the decision rule outside textclf/task.py (use task.decide / task.chosen):\n" + "\n".join(found)
    assert DECISION.search("chosen = [j for j in ranked if p[j] >= cut[j]]")  # the pattern finds the old copies


# The text rules (textclf/textrules.py): the punctuation set, ASCII lower-casing, TensorFlow's
# whitespace, what a tokenizer keeps. Another copy would drift from the one the twins are checked on.
TEXT_RULES = re.compile(r'#\$%&|ABCDEFGHIJKLMNOPQRSTUVWXYZ|"A" <= \w+ <= "Z"|\\t\\n\\v\\f\\r|\\t\\n\\r\\v\\f|x1c-\\x1f')


def test_the_text_rules_are_written_once():
    found = _lines_matching(TEXT_RULES, "textclf/textrules.py")
    assert not found, "text rules outside textclf/textrules.py:\n" + "\n".join(found)
    rules = (PACKAGE / "textrules.py").read_text(encoding="utf-8")
    assert TEXT_RULES.search(rules)  # the pattern finds the owner's own definitions
    assert TEXT_RULES.search('lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)')


# Private TensorFlow / tf_keras / TF Hub hooks (textclf/compat.py, each with the version it was checked
# against): in one module, so an upgrade reviews one file.
PRIVATE_HOOKS = re.compile(r"_should_use_autograph|_create_all_weights|[\"'.]_random_generator|tensorflow\.python|"
                           r"convert_variables_to_constants")


def test_private_tensorflow_hooks_live_in_compat():
    found = _lines_matching(PRIVATE_HOOKS, "textclf/compat.py")
    assert not found, "private TensorFlow/Keras hooks outside textclf/compat.py:\n" + "\n".join(found)
    assert PRIVATE_HOOKS.search((PACKAGE / "compat.py").read_text(encoding="utf-8"))


def test_the_library_never_prints():
    """Output is the CLI's (cli/, and __main__'s one line for a signal during its imports): the library
    reports through return values, exceptions and listener hooks."""
    found = []
    for rel, tree in _sources("textclf"):
        if rel.startswith("textclf/cli/") or rel == "textclf/__main__.py":
            continue
        found += [f"{rel}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert not found, found


def test_training_is_a_package_of_short_modules():
    """training/ holds one module per step; none grows back into a grab bag."""
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "training").glob("*.py")}
    assert {"run.py", "data.py", "steps.py", "native.py", "hooks.py"} <= set(sizes)
    assert max(sizes.values()) <= 350, sizes


# A model family is one folder under textclf/models/ (params, builder, twin, export hooks) declared in its
# __init__.py and registered by one line of textclf/models/catalog.py; the rest of the library reaches it
# only through that declaration (textclf.registry.Family), never by importing its modules.
FAMILY_IMPORTERS = {"textclf/models/catalog.py", "textclf/cli/models.py"}  # cli/models.py: `models import-hf` (bert)


def test_each_model_family_is_one_folder_reached_through_its_declaration():
    from textclf.models.catalog import MODELS
    from textclf.registry import FAMILIES

    folders = {p.parent.name for p in (PACKAGE / "models").glob("*/__init__.py")}
    assert folders == set(FAMILIES) == {"ngram", "transformer", "bert"}
    catalog = (PACKAGE / "models" / "catalog.py").read_text(encoding="utf-8")
    assert catalog.count("register_family(textclf.models.") == len(FAMILIES)
    for name, spec in FAMILIES.items():
        hooks = [spec.builder, spec.twin, spec.tflite, spec.solver, spec.from_arrays, *spec.runners.values()]
        assert all(hook.startswith(f"textclf.models.{name}.") for hook in hooks if hook), (name, hooks)
        assert all(MODELS.get(preset.name).family == name for preset in spec.presets)
    found = []
    for rel, tree in _sources("textclf"):
        if rel in FAMILY_IMPORTERS or any(rel.startswith(f"textclf/models/{f}/") for f in FAMILIES):
            continue
        found += [f"{rel}: {i}" for i in _imports(tree, _module(rel))
                  if any(i == f"textclf.models.{f}" or i.startswith(f"textclf.models.{f}.") for f in FAMILIES)]
    assert not found, "a family's modules imported outside its folder (use its Family hooks):\n" + "\n".join(found)


def test_no_function_is_longer_than_60_lines_and_bench_edits_no_sys_path():
    long, path_edits = [], []
    for rel, tree in _sources("textclf", "bench"):
        long += [f"{rel}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
        if rel.startswith("bench/"):
            path_edits += [f"{rel}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                           and n.attr in ("insert", "append") and isinstance(n.value, ast.Attribute)
                           and n.value.attr == "path" and isinstance(n.value.value, ast.Name)
                           and n.value.value.id == "sys"]
    assert not long, "functions over 60 lines (split them into named steps):\n" + "\n".join(long)
    assert not path_edits, path_edits
