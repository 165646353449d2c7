"""The package's shape: layers that import only downwards, no import cycles, lazy imports that say why.

Read the layers from the bottom up and you read the path of one song: decode and log-mel
(``signal``), stored as a dataset (``data``), a network (``models``), a classifier running it
(``inference``), and the commands around them.
"""

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "genre_cnn"

#: Lowest first. A module may import modules of its own layer or of a layer below it.
LAYERS = [
    ("genre_cnn.errors", "genre_cnn.version"),
    ("genre_cnn.config", "genre_cnn.plots"),
    ("genre_cnn.kinds",),
    ("genre_cnn.runtime",),
    ("genre_cnn.signal",),
    ("genre_cnn.data",),
    ("genre_cnn.models",),
    ("genre_cnn.inference",),
    ("genre_cnn.monitoring",),
    ("genre_cnn.training",),
    ("genre_cnn.kinds.cnn", "genre_cnn.kinds.musicnn", "genre_cnn.kinds.baseline"),
    ("genre_cnn.library",),
    ("genre_cnn.analysis",),
    ("genre_cnn.serving",),
    ("genre_cnn.report", "genre_cnn.cli", "genre_cnn.__main__", "genre_cnn"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    matches = [(len(prefix), number) for number, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} belongs to no layer: add it to LAYERS"
    return max(matches)[1]


def internal_imports(path: Path):
    """(imported module, line, inside a function?, the source line) of each genre_cnn import."""
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; genre_cnn imports are absolute"
            names = [node.module] if node.module != "genre_cnn" else []
            # "from genre_cnn.training import distill" imports the module genre_cnn.training.distill
            names += [f"{node.module}.{alias.name}" for alias in node.names
                      if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")).with_suffix(".py").exists()]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        scope = node
        while scope in parents and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope = parents[scope]
        for name in names:
            if name == "genre_cnn" or name.startswith("genre_cnn."):
                # the source line with the line above it, where a "# lazy: reason" comment goes
                source = "\n".join(lines[node.lineno - 2:node.lineno])
                yield name, node.lineno, scope is not node and scope in parents, source


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_the_layers_below(module):
    upward = [f"line {line}: {imported} (layer {layer_of(imported)})"
              for imported, line, _, _ in internal_imports(MODULES[module])
              if layer_of(imported) > layer_of(module)]
    assert not upward, f"{module} (layer {layer_of(module)}) imports upwards: {upward}"


def test_there_are_no_import_cycles_even_through_imports_inside_functions():
    graph = {module: {imported for imported, *_ in internal_imports(path) if imported != module}
             for module, path in MODULES.items()}
    for module in graph:  # importing genre_cnn.x.y runs genre_cnn/x/__init__ first: not an edge to follow
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_imports_inside_functions_say_why_they_are_lazy():
    """Only the command line (which imports a command's modules when it runs) may do it silently."""
    silent = [f"{module}:{line}" for module, path in MODULES.items() if module != "genre_cnn.cli"
              for _, line, inside, text in internal_imports(path) if inside and "# lazy:" not in text]
    assert not silent, f"imports inside functions without a '# lazy: reason' comment: {silent}"


def test_every_layer_is_a_documented_subpackage():
    for prefixes in LAYERS[2:-1]:
        for prefix in prefixes:
            package = PACKAGE / prefix.split(".")[1] / "__init__.py"
            assert package.is_file() and ast.get_docstring(ast.parse(package.read_text())), package


#: Ways of scoring predictions against genres; only genre_cnn/training/metrics.py (``score_songs``) uses them.
SCORING = {"accuracy_score", "balanced_accuracy_score", "confusion_matrix", "f1_score", "precision_score",
           "recall_score", "precision_recall_fscore_support", "classification_report"}


def test_songs_are_scored_in_one_module():
    """fit, cv, the baseline and evaluate call training.metrics.score_songs; no other module counts right songs."""
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "training" / "metrics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "sklearn.metrics":
                elsewhere += [f"{module_name(path)}: {a.name}" for a in node.names if a.name in SCORING]
            is_mean = isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "mean"
            if is_mean and node.args and isinstance(node.args[0], ast.Compare) and \
                    isinstance(node.args[0].ops[0], ast.Eq):  # np.mean(predicted == labels)
                elsewhere.append(f"{module_name(path)}:{node.lineno}: mean of a comparison")
    assert not elsewhere, f"score songs with genre_cnn.training.metrics.score_songs: {elsewhere}"
