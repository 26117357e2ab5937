"""The public files of the web page: the page, its scripts and styles, the map's reference
layer. Only names that exist in the package's ``web`` folder are served; nothing else is."""

from __future__ import annotations

import functools
from importlib import resources

from market.policy import QueryRefused

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}


@functools.cache
def _files() -> dict[str, tuple[bytes, str]]:
    web = resources.files("market").joinpath("web")
    found = {}
    for entry in web.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


def static_file(path: str) -> tuple[bytes, str]:
    """(body, media type) of ``/`` or ``/static/<name>``; a 404 for anything else."""
    if path == "/":
        return _files()["index.html"]
    if path == "/static/reference/land.json":
        from market.reference import land_layer

        return land_layer(), "application/json"
    name = path.removeprefix("/static/")
    if path.startswith("/static/") and name in _files():
        return _files()[name]
    raise QueryRefused("not_found", f"no page {path[:200]}", 404)
