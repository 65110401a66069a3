"""No `dict[str, Any]` crosses a package boundary inside toolkit/: what one package hands another is typed.

The check reads the source (ast, nothing is imported). A *package* is one container of the import-linter
layers contract "Inside toolkit" in pyproject.toml (`toolkit.cli`, `toolkit.api`, `toolkit.steps`,
`toolkit.run.layout`, `toolkit.run.documents`, ...), so the list follows the layers when they move. For every
name a module of one package imports from a module of another (`from toolkit.x import f`, re-exports
followed, and `A.f` through `from toolkit.run import layout as A`), it looks at:

- a function: its parameters and return annotation;
- a class: its public methods' signatures and its annotated fields (dataclass and pydantic fields).

An annotation is loose when it holds `dict[str, Any]` (also `Dict`, `Mapping`, `MutableMapping`), directly
or through an alias such as `Doc = dict[str, Any]`, anywhere inside it (`list[dict[str, Any]]`,
`tuple[Path, dict[str, Any]]`, `Callable[[dict[str, Any]], None]`).

`ALLOWED` lists what may stay loose, each with its reason. Run `python -m tests.test_typed_boundaries` for the
full list with locations.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOSE = re.compile(r"\b(?:dict|Dict|Mapping|MutableMapping)\[\s*str\s*,\s*Any\s*\]")

# "module:qualified name" → why it stays loose.
ALLOWED: dict[str, str] = {
    # A TFLite-only board install (toolkit.cli.board: Python 3.9, no pydantic) verifies bundles: it reads
    # bundle.json and writes verify.json as plain JSON. The desktop checks the same report as `VerifyDocument`
    # before it writes or returns it (toolkit.api.device.verify).
    "toolkit.bundles.verify:verify_here": "board install: no pydantic; the API validates it as VerifyDocument",
    "toolkit.tolerances:machine_tolerance": "board install: plain Python; documents record it as MachineTolerance",
    "toolkit.run.layout:read_json": "board install: reads bundle.json without pydantic (toolkit.bundles.format)",
    "toolkit.bundles.format:load_bundle": "board install: bundle.json as plain JSON (predict, verify)",
    "toolkit.bundles.format:check_file": "board install: one bundle.json file record, as plain JSON",
    # Serialising a typed object to JSON is what these are for.
    "toolkit.run.documents.base:dump_document": "a document's JSON form, for code that reads JSON (benchmarks.gate "
    "and the board's printers run without pydantic)",
    "toolkit.inputs.predict:Predictions.to_dict": "`predict --json`'s output; predict starts without pydantic",
    # The QEMU root's marker file, as read from disk.
    "toolkit.emulate.rootfs:ensure_root": "the root's marker.json (qemu, python, packages), read from the root",
    "toolkit.emulate.rootfs:ensure_extras": "the same marker.json as ensure_root's, with the extras added (OpenVINO)",
}


@dataclass(frozen=True)
class Loose:
    """A loosely typed signature or field that another package uses."""

    key: str  # module:qualified name
    where: str  # file:line
    annotation: str
    used_by: tuple[str, ...]  # the importing modules

    def __str__(self) -> str:
        users = ", ".join(self.used_by[:3]) + (f" (+{len(self.used_by) - 3})" if len(self.used_by) > 3 else "")
        return f"{self.where}: {self.key}: {self.annotation}  [used by {users}]"


def _containers(root: Path) -> list[str]:
    """The containers of pyproject.toml's "Inside toolkit" layers contract (read as text: no tomllib on 3.10)."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    contract = text[text.index('name = "Inside toolkit') :]
    block = contract[contract.index("layers = [") : contract.index("]", contract.index("layers = ["))]
    names = [name.strip() for layer in re.findall(r'"([^"]+)"', block) for name in layer.split("|")]
    return sorted(names, key=len, reverse=True)


def package_of(module: str, containers: list[str]) -> str:
    """The layer container holding `module` (the longest prefix), else its first two components."""
    for c in containers:
        if module == c or module.startswith(c + "."):
            return c
    return ".".join(module.split(".")[:2])


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Module:
    """One parsed module: its definitions, aliases, from-imports and module aliases."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.name = _module_name(path, root)
        self.is_package = path.name == "__init__.py"
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef] = {}
        self.aliases: dict[str, ast.expr] = {}  # Name = <annotation-like value>
        self.imports: dict[str, tuple[str, str]] = {}  # local name → (module, name), every scope
        self.module_aliases: dict[str, str] = {}  # local name → module
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.aliases[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.aliases[node.target.id] = node.value
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    self.imports[a.asname or a.name] = (node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.module_aliases[a.asname] = a.name

    def uses(self, modules: dict[str, Module]) -> set[tuple[str, str]]:
        """(module, name) pairs this module takes from toolkit modules."""
        used = set()
        for local, (mod, name) in self.imports.items():
            if not mod.startswith("toolkit"):
                continue
            if f"{mod}.{name}" in modules:  # `from toolkit.run import layout as A`: a module
                self.module_aliases[local] = f"{mod}.{name}"
            else:
                used.add((mod, name))
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                mod = self.module_aliases.get(node.value.id)
                if mod is not None and mod.startswith("toolkit"):
                    used.add((mod, node.attr))
        return used


def _modules(root: Path) -> dict[str, Module]:
    found = {}
    for path in sorted((root / "toolkit").rglob("*.py")):
        m = Module(path, root)
        found[m.name] = m
    return found


def resolve(modules: dict[str, Module], module: str, name: str, depth: int = 0) -> tuple[Module, str] | None:
    """The module that defines `name` (re-exports followed)."""
    m = modules.get(module)
    if m is None or depth > 10:
        return None
    if name in m.defs or name in m.aliases:
        return m, name
    if name in m.imports:
        mod, orig = m.imports[name]
        return resolve(modules, mod, orig, depth + 1)
    return None


def _expand(modules: dict[str, Module], m: Module, text: str, depth: int = 0) -> str:
    """The annotation text with the module's (and imported) aliases replaced by their values."""
    if depth > 5:
        return text
    for ident in set(re.findall(r"\b[A-Za-z_]\w*\b", text)):
        target = resolve(modules, m.name, ident) if ident in m.aliases or ident in m.imports else None
        if target is None:
            continue
        owner, name = target
        value = owner.aliases.get(name)
        if value is None:
            continue
        expanded = _expand(modules, owner, ast.unparse(_strip_annotated(value)), depth + 1)
        text = re.sub(rf"\b{re.escape(ident)}\b", lambda _m, e=expanded: e, text)
    return text


class _Annotated(ast.NodeTransformer):
    """`Annotated[T, metadata...]` → `T`: the metadata (validators, serializers) is not the type."""

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        name = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
        if name == "Annotated" and isinstance(node.slice, ast.Tuple) and node.slice.elts:
            return self.visit(node.slice.elts[0])
        self.generic_visit(node)
        return node


def _strip_annotated(node: ast.expr) -> ast.expr:
    import copy

    stripped = _Annotated().visit(copy.deepcopy(node))
    assert isinstance(stripped, ast.expr)
    return stripped


def _annotation(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(_strip_annotated(node))


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = fn.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    texts = [f"{a.arg}: {t}" for a in params if (t := _annotation(a.annotation))]
    if (r := _annotation(fn.returns)) is not None:
        texts.append(f"-> {r}")
    return texts


def _members(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[tuple[str, int, str]]:
    """(qualified suffix, line, annotation text) of what a use of `node` exposes."""
    if not isinstance(node, ast.ClassDef):
        return [("", node.lineno, t) for t in _signature(node)]
    out = []
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and not item.target.id.startswith("_"):
            text = _annotation(item.annotation) or ""
            if not text.startswith("ClassVar"):
                out.append((f".{item.target.id}", item.lineno, f"{item.target.id}: {text}"))
        elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            public = not item.name.startswith("_") or item.name == "__init__"
            if public:
                out += [(f".{item.name}", item.lineno, t) for t in _signature(item)]
    return out


def loose_boundaries(root: Path = REPO) -> list[Loose]:
    """Every loosely typed signature or field used across a package boundary, allowed ones included."""
    modules = _modules(root)
    containers = _containers(root)
    users: dict[tuple[str, str], set[str]] = {}
    for m in modules.values():
        mine = package_of(m.name, containers)
        for mod, name in m.uses(modules):
            target = resolve(modules, mod, name)
            if target is None or target[1] not in target[0].defs or name.startswith("_"):
                continue
            owner, defined = target
            if package_of(owner.name, containers) != mine:
                users.setdefault((owner.name, defined), set()).add(m.name)
    found = []
    for (mod, name), by in sorted(users.items()):
        owner = modules[mod]
        for suffix, line, text in _members(owner.defs[name]):
            if LOOSE.search(_expand(modules, owner, text)):
                where = f"{owner.path.relative_to(root)}:{line}"
                found.append(Loose(f"{mod}:{name}{suffix}", where, text, tuple(sorted(by))))
    return found


def test_no_loose_dict_crosses_a_package_boundary() -> None:
    found = [f for f in loose_boundaries() if f.key not in ALLOWED]
    assert not found, "dict[str, Any] across packages (type it, or justify it in ALLOWED):\n" + "\n".join(
        map(str, found)
    )


def test_every_allowed_entry_is_still_needed() -> None:
    keys = {f.key for f in loose_boundaries()}
    assert sorted(set(ALLOWED) - keys) == []


def test_the_check_finds_a_loose_signature(tmp_path: Path) -> None:
    """The checker itself, on a small tree: a dict behind an alias crossing packages is found; the same within
    its package, a typed one, or one behind `Annotated` metadata is not."""
    files = {
        "pyproject.toml": 'name = "Inside toolkit: test"\nlayers = [\n    "toolkit.b",\n    "toolkit.a",\n]\n',
        "toolkit/__init__.py": "",
        "toolkit/a/__init__.py": "from toolkit.a.m import loose\n",
        "toolkit/a/m.py": (
            "from typing import Annotated, Any\n"
            "Doc = dict[str, Any]\n"
            "Spec = Annotated[int, dict[str, Any]]\n"
            "def loose(x: int) -> list[Doc]: ...\n"
            "def typed(x: Spec) -> int: ...\n"
            "def inside() -> Doc: ...\n"
            "class Holder:\n"
            "    data: Doc\n"
        ),
        "toolkit/a/n.py": "from toolkit.a.m import inside\n",
        "toolkit/b/__init__.py": "",
        "toolkit/b/user.py": "from toolkit.a import loose\nfrom toolkit.a.m import Holder, typed\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = {f.key: f.used_by for f in loose_boundaries(tmp_path)}
    assert found == {"toolkit.a.m:loose": ("toolkit.b.user",), "toolkit.a.m:Holder.data": ("toolkit.b.user",)}
    assert package_of("toolkit.run.documents.bench", ["toolkit.run.documents", "toolkit.run.layout"]) == (
        "toolkit.run.documents"
    )
    assert package_of("toolkit.version", []) == "toolkit.version"


if __name__ == "__main__":
    everything = loose_boundaries()
    for f in everything:
        print(("allowed  " if f.key in ALLOWED else "") + str(f))
    allowed = sum(f.key in ALLOWED for f in everything)
    print(f"{len(everything) - allowed} not allowed, {allowed} allowed")
