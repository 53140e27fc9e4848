"""Redirect discord.py in a subprocess to the stand-in.

Put this folder first on PYTHONPATH and set DISCORD_STANDIN_URL=http://127.0.0.1:PORT.
When ``discord.http`` / ``discord.gateway`` get imported, Route.BASE and
DiscordWebSocket.DEFAULT_GATEWAY are patched right after the module has executed.
Self-contained on purpose (the subprocess may not have tests/ importable).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

_URL = os.environ.get("DISCORD_STANDIN_URL", "").rstrip("/")


def _patch(module) -> None:
    if module.__name__ == "discord.http":
        module.Route.BASE = f"{_URL}/api/v10"
    elif module.__name__ == "discord.gateway":
        import yarl

        ws = "ws" + _URL[len("http") :]
        module.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"{ws}/gateway")


class _Loader(importlib.abc.Loader):
    def __init__(self, inner) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        self.inner.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in ("discord.http", "discord.gateway"):
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


if _URL:
    for _name in ("discord.http", "discord.gateway"):
        if _name in sys.modules:
            _patch(sys.modules[_name])
    sys.meta_path.insert(0, _Finder())
