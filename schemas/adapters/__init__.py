"""Adapters decode vendor wire formats into canonical schemas."""

from schemas.adapters.base import Adapter, DecodeResult, adapter_for
from schemas.adapters.node_json import NodeJsonAdapter

__all__ = ["Adapter", "DecodeResult", "NodeJsonAdapter", "adapter_for"]
