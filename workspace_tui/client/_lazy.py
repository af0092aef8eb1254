"""Start-up trimming for the one-liners, which pay for every module they import.

websockets imports two stdlib modules eagerly that a ``workspace send`` does
not use, together about 12 ms of the 100 it takes:

* :mod:`importlib.metadata` (with zipfile and more), read only by development
  builds of websockets to find their version;
* :mod:`urllib.request` (with http.client and email), read only to look up a
  proxy, which the client skips for loopback servers.

:func:`defer_import` puts a placeholder in ``sys.modules`` that imports the
real module the first time anyone reads an attribute from it, so a server
behind a proxy still gets one. (:class:`importlib.util.LazyLoader` cannot do
this: ``import`` itself reads ``__spec__``, which makes it load the module.)
"""

from __future__ import annotations

import importlib
import sys
import types

DEFERRED = ("importlib.metadata", "urllib.request")


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
