"""Start-up trimming for the one-liners, which pay for every module they import.

Libraries we use import some stdlib modules eagerly that a ``workspace send``
never touches; each is only read inside a function that ``send`` does not call:

* :mod:`importlib.metadata` (with zipfile and more, ~10 ms), read only by
  development builds of websockets to find their version;
* :mod:`urllib.request` (with http.client and email), read only by websockets
  to look up a proxy, which it skips for loopback servers;
* :mod:`shutil` (with bz2 and lzma, ~3 ms), read only by :mod:`tempfile`
  (which platformdirs imports) to remove temporary directories.

(Not :mod:`uuid`, which Click reads at import time, nor :mod:`ipaddress`,
which websockets reads on every connect.)

:func:`defer_import` puts a placeholder in ``sys.modules`` that imports the
real module the first time anyone reads an attribute from it, so whoever does
need one still gets it. (:class:`importlib.util.LazyLoader` cannot do this:
``import`` itself reads ``__spec__``, which makes it load the module.) Only
modules imported as ``import name`` can be deferred: ``from name import x``
reads ``x`` at once, which loads the real module then, at no extra cost.
"""

from __future__ import annotations

import importlib
import sys
import types

DEFERRED = ("importlib.metadata", "urllib.request", "shutil")


class _Deferred(types.ModuleType):
    def __getattr__(self, attr: str) -> object:  # only for what the placeholder lacks: everything real
        if sys.modules.get(self.__name__) is self:
            sys.modules.pop(self.__name__, None)
        return getattr(importlib.import_module(self.__name__), attr)


def defer_import(name: str) -> None:
    """Make ``import name`` free until something reads from the module."""
    if name in sys.modules:
        return
    placeholder = sys.modules[name] = _Deferred(name)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, placeholder)


def defer_unused() -> None:
    """Defer every module of :data:`DEFERRED` not imported yet (call before the libraries)."""
    for name in DEFERRED:
        defer_import(name)
