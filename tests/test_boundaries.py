"""Import boundaries between the packages, checked by reading the source (`ast`), never by importing it.

- `RULES`: per package (or module), the imports it must not make. A failure names file, line, module and
  rule. Relative imports (`from . import x`, `from ..protocol import y`) are resolved to absolute names,
  and imports anywhere count: inside functions, under `if TYPE_CHECKING:`, `importlib.import_module("…")`.
- `PURE_FUNCTIONS`: pure steps that share a module with I/O (the ffmpeg output parsers live next to the
  ffmpeg runner); their bodies must not reach the module's I/O names.

Why these rules: ARCHITECTURE.md. The wire protocol is the one thing both sides share, so it depends on
nothing of ours; `schedules/` and the analysis steps of `audio/` are pure cores (values in, values out);
the Pi agent is its own deployable and never imports the controller, the simulator or the rig; the
controller never imports the agent or the simulator; only `devrig/` may import both sides.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("audio", "bench", "controller", "devrig", "firmware_sim", "receivers", "schedules", "tests")

# Modules that reach the world: files, processes, network, databases, the event loop. Importing one is how
# I/O gets into a module, so a pure module imports none of them.
IO_MODULES = (
    "os", "pathlib", "shutil", "tempfile", "io", "glob", "socket", "ssl", "select", "selectors", "subprocess",
    "multiprocessing", "asyncio", "sqlite3", "urllib", "http", "httpx", "requests", "aiomqtt", "paho",
    "sqlalchemy", "sqlmodel", "fastapi", "uvicorn",
)

# The analysis steps of `audio/` that live in modules of their own and do no I/O (ARCHITECTURE: "pure-ish:
# ingest, normalise, TTS, text normalisation" — these are the pure part):
# - audio/vi_text.py: Vietnamese text normalisation, a pipeline of small text → text steps. It reads its
#   own bundled abbreviation table (vi_abbreviations.toml, next to it, once, cached) through `pathlib`:
#   package data, as constant as the code, so `pathlib` is allowed there and nowhere else.
# Not listed, because they do I/O by design: ffmpeg.py (runs ffmpeg; its parsers are pure and checked in
# PURE_FUNCTIONS), ingest.py (probe/analyse/encode run ffmpeg; `gain_chain` is pure, see below),
# compose.py (pydub, ffmpeg), tts.py (engines, network), store.py (the content-addressed store on disk).
PURE_AUDIO = ("audio/vi_text.py",)


@dataclass(frozen=True)
class Rule:
    name: str
    paths: tuple[str, ...]  # directories or .py files, relative to the repository root
    forbidden: tuple[str, ...] = ()  # module prefixes it must not import
    ours_allowed: tuple[str, ...] | None = None  # when set: the only first-party modules it may import
    third_party_allowed: tuple[str, ...] | None = None  # when set: the only non-stdlib, non-ours imports
    allow: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (file, module prefix) exceptions
    optional: tuple[str, ...] = ()  # paths that may not exist yet


RULES = (
    Rule("the protocol imports nothing of ours, only the stdlib, pydantic and cryptography",
         ("receivers/protocol",), ours_allowed=("receivers.protocol",),
         third_party_allowed=("pydantic", "pydantic_core", "cryptography")),
    Rule("schedules/ does no I/O and imports nothing of ours but schedules",
         ("schedules",), forbidden=IO_MODULES, ours_allowed=("schedules",)),
    Rule("the pure analysis steps of audio/ do no I/O",
         PURE_AUDIO, forbidden=IO_MODULES,
         ours_allowed=tuple(p.removesuffix(".py").replace("/", ".") for p in PURE_AUDIO),
         allow=frozenset({("audio/vi_text.py", "pathlib")})),
    Rule("the agent and its transport never import the controller, the simulator, the rig or audio/",
         ("receivers/agent", "receivers/transport"), forbidden=("controller", "firmware_sim", "devrig", "audio"),
         optional=("receivers/transport",)),
    Rule("the controller never imports the agent, the simulator or the rig",
         ("controller",), forbidden=("receivers.agent", "firmware_sim", "devrig")),
    Rule("the simulator never imports the controller or the rig",
         ("firmware_sim",), forbidden=("controller", "devrig")),
    Rule("the core knows no HTTP: services, the policy and the domain errors never import the web framework "
         "or the faces (api/, ui/), so the API and the staff UI share them as they are",
         ("controller/services", "controller/policy.py", "controller/errors.py"),
         forbidden=("fastapi", "starlette", "controller.api", "controller.ui", "nicegui")),
    Rule("only the staff UI imports NiceGUI: the rest of the controller runs without it",
         tuple(f"controller/{p.name}" for p in sorted((ROOT / "controller").iterdir())
               if p.name not in ("ui", "__pycache__")), forbidden=("nicegui", "controller.ui"),
         allow=frozenset({("controller/app.py", "controller.ui")})),  # create_app mounts it
    Rule("the staff UI reaches the core through the services, never through the API's routes",
         ("controller/ui",), forbidden=("controller.api",)),
)

# Pure functions in modules that also do I/O. Their bodies may not use a name the module bound to an I/O
# module or to an impure module of ours, nor call one of the module's other (I/O) functions, nor `open`.
PURE_FUNCTIONS = {
    "audio/ffmpeg.py": ("parse_probe", "parse_ebur128", "parse_silence"),
    "audio/ingest.py": ("gain_chain", "_trim"),
}
IO_BUILTINS = ("open", "print", "input", "exec", "eval", "__import__", "breakpoint")


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(path: Path, level: int, module: str | None, name: str | None = None) -> str:
    """The absolute name of `from {'.' * level}{module} import …` written in `path` (module `name`)."""
    package = (name or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]  # a plain module's package is its parent
    if level > len(package):  # Python refuses it too (ImportError)
        raise ValueError(f"{path}: relative import beyond the top-level package")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def imports_in(path: Path, name: str | None = None) -> Iterator[Import]:
    """Every import in `path`, as the absolute name of what it binds: `from a import b` → `a.b`, so
    `from receivers import agent` is seen as `receivers.agent`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(path, node.level, node.module, name) if node.level else (node.module or "")
            for alias in node.names:
                bound = base if alias.name == "*" else ".".join(filter(None, (base, alias.name)))
                yield Import(path, node.lineno, bound)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("import_module", "__import__"):
                yield Import(path, node.lineno, node.args[0].value)


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def files_of(rule: Rule) -> list[Path]:
    files: list[Path] = []
    for rel in rule.paths:
        p = ROOT / rel
        if not p.exists():
            if rel in rule.optional:
                continue
            raise AssertionError(f"rule {rule.name!r} names {rel}, which does not exist")
        files.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return files


def violations(rule: Rule, files: list[Path]) -> list[str]:
    found = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for imp in imports_in(path):
            top = imp.module.split(".")[0]
            if any(rel == f and under(imp.module, (m,)) for f, m in rule.allow):
                continue
            why = None
            if under(imp.module, rule.forbidden):
                why = "forbidden"
            elif top in OURS:
                if rule.ours_allowed is not None and not under(imp.module, rule.ours_allowed):
                    why = "not one of ours it may use"
            elif rule.third_party_allowed is not None and top not in sys.stdlib_module_names \
                    and not under(imp.module, rule.third_party_allowed):
                why = "a third-party package it may not use"
            if why:
                found.append(f"{rel}:{imp.line}: imports {imp.module} ({why}) — rule: {rule.name}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r.paths[0] for r in RULES])
def test_import_boundaries(rule: Rule) -> None:
    files = files_of(rule)
    assert files or rule.optional, f"rule {rule.name!r} checks no files"
    found = violations(rule, files)
    assert not found, "\n" + "\n".join(found)


def impure_names(tree: ast.Module, pure: tuple[str, ...], module: str) -> set[str]:
    """The module-level names a pure function of this module may not use."""
    names = set(IO_BUILTINS)
    pure_modules = {p.removesuffix(".py").replace("/", ".") for p in PURE_AUDIO}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name not in pure:
            names.add(node.name)
        elif isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if under(a.name, IO_MODULES))
        elif isinstance(node, ast.ImportFrom):
            base = resolve(ROOT / (module.replace(".", "/") + ".py"), node.level, node.module) if node.level \
                else (node.module or "")
            for a in node.names:
                target = f"{base}.{a.name}"
                # `from . import ffmpeg`: a module of ours with I/O; `from subprocess import run`: I/O itself
                if under(base, IO_MODULES) or (target.split(".")[0] in OURS and (ROOT / target.replace(
                        ".", "/")).with_suffix(".py").exists() and target not in pure_modules):
                    names.add(a.asname or a.name)
    return names


@pytest.mark.parametrize("rel", sorted(PURE_FUNCTIONS))
def test_pure_functions_do_no_io(rel: str) -> None:
    path = ROOT / rel
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    pure = PURE_FUNCTIONS[rel]
    banned = impure_names(tree, pure, module_name(path))
    defined = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert set(pure) <= set(defined), f"{rel}: no function(s) {sorted(set(pure) - set(defined))}"
    found = []
    for name in pure:
        for statement in defined[name].body:  # the body only: annotations name types, they run nothing
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and node.id in banned:
                    found.append(f"{rel}:{node.lineno}: {name}() uses {node.id}, which does I/O — pure steps "
                                 "take values and return values")
    assert not found, "\n" + "\n".join(found)


def test_the_checker_sees_relative_nested_and_dynamic_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from . import model\nfrom .. import controller\n\n"
                     "def f():\n    import socket\n    from ..receivers.agent import link\n"
                     "    importlib.import_module('firmware_sim.fleet')\n")
    found = {(i.line, i.module) for i in imports_in(probe, name="schedules.sub.probe")}
    assert found == {(1, "schedules.sub.model"), (2, "schedules.controller"), (5, "socket"),
                     (6, "schedules.receivers.agent.link"), (7, "firmware_sim.fleet")}
    with pytest.raises(ValueError, match="beyond the top-level package"):
        list(imports_in(probe, name="schedules.probe"))  # `..` from a top-level package's module
    init = tmp_path / "__init__.py"
    init.write_text("from .plan import x\nfrom . import model\n")
    assert {i.module for i in imports_in(init, name="schedules")} == {"schedules.plan.x", "schedules.model"}
