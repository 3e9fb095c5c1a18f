"""Lazy package attributes (PEP 562): a package names what it exports; a submodule loads on first use.

So ``import sdelab`` and the command line's ``--help`` cost no torch import (docs/conventions.md).
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for a package whose attribute ``name`` lives in module ``exports[name]``."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
