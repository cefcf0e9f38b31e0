"""The module paths of 0.5, served for one release (to be removed in 0.7).

0.6 laid the package out as a folder per layer (docs/architecture.md), so that ``mlml_tf.layout``
became ``mlml_tf.files.layout``, ``mlml_tf.train`` became ``mlml_tf.training.runs`` and its
neighbours, and so on. Code written for 0.5 (a notebook saved on one's Drive, say) that imports
``from mlml_tf.layout import read_manifest`` still works: the old module is a stand-in whose
names are looked up, on first use, in the modules that hold them now, with a
``DeprecationWarning`` that names the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: Each module of 0.5 that 0.6 moved, and the modules that hold its names now, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "cache": ("features.cache", "files.atomic", "files.layout"),
    "demo": ("apps.demo", "apps.demo_backbone", "features.backbones"),
    "end_to_end": ("training.end_to_end", "apps.own.serve"),
    "grid": ("apps.grid", "settings", "training.prior"),
    "inputs": ("features.images", "features.checks", "features.dataset", "features.extract",
               "settings"),
    "layout": ("files.layout", "files.tables", "files.split", "files.protocols"),
    "model": ("training.heads", "features.backbones", "apps.demo_backbone", "settings"),
    "objectives": ("losses.objectives",),
    "own_data": ("files.own_table", "datasets.nuswide"),
    "own_model": ("apps.own.folder", "apps.own.serve", "apps.own.images", "apps.own.fit",
                  "apps.own.network", "apps.own.card", "settings", "training.end_to_end"),
    "results": ("apps.tables", "apps.figures"),
    "train": ("training.runs", "training.schedule", "settings", "training.data",
              "training.record", "training.stream", "training.optimizer", "training.callbacks",
              "training.prior", "methods.prior", "files.layout"),
    "trainer": ("training.callbacks", "training.trainer", "training.optimizer"),
}


class _StandIn(types.ModuleType):
    """A 0.5 module: its names are read from the modules of :data:`MOVED`."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        for target in MOVED[self.__name__.rpartition(".")[2]]:
            module = importlib.import_module(f"mlml_tf.{target}")
            if hasattr(module, name):
                value = getattr(module, name)
                setattr(self, name, value)
                return value
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r} "
                             "(its names moved in 0.6: docs/architecture.md)")


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module) -> None:
        old = module.__name__.rpartition(".")[2]
        warnings.warn(f"{module.__name__} moved in 0.6 to "
                      + ", ".join(f"mlml_tf.{t}" for t in MOVED[old])
                      + "; the old path goes in 0.7", DeprecationWarning, stacklevel=2)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package == "mlml_tf" and old in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _Loader())
        return None


def install() -> None:
    """Serve the 0.5 paths (once per interpreter)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
