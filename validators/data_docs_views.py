"""Great Expectations' Data Docs views, with their Jinja templates compiled once per process.

GE makes a new Jinja ``Environment`` for every page view it renders, so each Data Docs build
compiled its ~50 templates again: ~0.27 s of a ~0.5 s build, paid once per dataset at the end
of every ``rda run --once``. These views are GE's own (``DefaultJinjaPageView``,
``DefaultJinjaIndexPageView``), named in the docs site's configuration as GE allows, with one
process-wide bytecode cache behind their environments: the same templates render the same
pages, compiled the first time only (Jinja checks each template's source checksum).
"""

from __future__ import annotations

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket

MODULE = __name__


class _InMemoryBytecodeCache(BytecodeCache):
    """Compiled templates kept in this process, keyed by template and source checksum."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()

    def clear(self) -> None:
        self._code.clear()


_COMPILED = _InMemoryBytecodeCache()


class CompiledOncePageView(DefaultJinjaPageView):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED


class CompiledOnceIndexPageView(DefaultJinjaIndexPageView):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED


def site_views() -> dict:
    """The docs site's configuration of its section and index views (GE's defaults otherwise)."""
    page = {"module_name": MODULE, "class_name": CompiledOncePageView.__name__}
    index = {"module_name": MODULE, "class_name": CompiledOnceIndexPageView.__name__}
    sections = ("expectations", "validations", "profiling")
    return {
        "site_section_builders": {name: {"view": page} for name in sections},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": index},
    }
