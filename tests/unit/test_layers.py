"""Layers import downward only: protocol/engine/_core → scripting → service → net → app."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gameserver"

# For each layer, the gameserver modules it must never import.
FORBIDDEN = {
    "protocol": ("scripting", "service", "session", "net", "app", "cli", "client", "engine"),
    "engine": ("scripting", "service", "session", "net", "app", "cli", "client", "protocol"),
    "_core_py": ("scripting", "service", "session", "net", "app", "cli", "client", "engine"),
    "storage": ("scripting", "service", "session", "net", "app", "cli", "client", "engine"),
    "scripting": ("service", "session", "net", "app", "cli", "client"),
    "service": ("net", "app", "cli", "client"),
    "session": ("net", "app", "cli", "client"),
    "net": ("app", "cli", "client"),
    # Token minting and checking: pure, a leaf every layer may use.
    "identity": (
        "protocol",
        "engine",
        "scripting",
        "service",
        "session",
        "storage",
        "net",
        "app",
        "cli",
        "client",
    ),
}
IO_MODULES = ("asyncio", "websockets", "picows", "uvloop", "socket")
SANS_IO = ("protocol", "engine", "_core_py", "scripting", "service", "session", "identity")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules_of(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


def test_layers_import_downward_only():
    for layer, forbidden in FORBIDDEN.items():
        for path in modules_of(layer):
            for name in imports_of(path):
                parts = name.split(".")
                if parts[0] == "gameserver" and len(parts) > 1:
                    assert parts[1] not in forbidden, f"{path.name} imports {name}"


def test_only_net_and_app_do_io():
    for layer in SANS_IO:
        for path in modules_of(layer):
            for name in imports_of(path):
                assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"
