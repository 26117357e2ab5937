"""The contracts' custom errors, decoded from whatever shape web3 raises them in.

eth-tester puts the revert data in a bytes literal inside the message; a JSON-RPC node (anvil)
sends it as hex. Either way ``AnchorRefused`` names the Solidity error and its arguments, e.g.
``PreviousMismatch(datasetId=0x…, previousTreeSize=20, latestTreeSize=0)``.
"""

from __future__ import annotations

import ast
from typing import Any


class ContractRefused(RuntimeError):
    """A contract refused a call; ``error`` is the Solidity custom error's name."""

    def __init__(self, error: str, args: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"{error}({shown})")
        self.error = error
        self.args_by_name = args


class AnchorRefused(ContractRefused):
    """The AnchorRegistry refused an anchor (or an identity)."""


def error_selectors(abi: list[dict]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    """4-byte selector -> (error name, argument types, argument names), from the ABI."""
    from eth_utils import keccak

    selectors = {}
    for item in abi:
        if item["type"] == "error":
            types = [i["type"] for i in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            selectors[keccak(text=signature)[:4]] = (
                item["name"],
                types,
                [i["name"] for i in item["inputs"]],
            )
    return selectors


def refusal(
    error: Exception,
    selectors: dict[bytes, tuple[str, list[str], list[str]]],
    kind: type[ContractRefused] = AnchorRefused,
):
    """``kind`` for a revert with one of the contract's errors, else ``error`` itself."""
    data = revert_data(error)
    if data is None or data[:4] not in selectors:
        return error
    name, types, names = selectors[data[:4]]
    from eth_abi import decode

    values = decode(types, data[4:])
    return kind(name, dict(zip(names, values, strict=True)))


def revert_data(error: Exception) -> bytes | None:
    """The ABI-encoded revert data carried by a web3 exception, whatever its shape."""
    for candidate in (getattr(error, "data", None), *getattr(error, "args", ())):
        if isinstance(candidate, dict):
            candidate = candidate.get("data")
        if isinstance(candidate, bytes) and len(candidate) >= 4:
            return candidate
        if isinstance(candidate, str):
            decoded = _revert_bytes_from_text(candidate)
            if decoded is not None:
                return decoded
    return None


def _revert_bytes_from_text(text: str) -> bytes | None:
    """Hex revert data (JSON-RPC nodes) or a bytes literal in the message (eth-tester)."""
    if text.startswith("0x") and len(text) >= 10:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return None
    marker = "execution reverted: b"
    if marker in text:
        try:
            value = ast.literal_eval(text[text.index(marker) + len(marker) - 1 :])
        except (SyntaxError, ValueError):
            return None
        return value if isinstance(value, bytes) and len(value) >= 4 else None
    return None


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def reverted_without_data(error: Exception) -> bool:
    """Whether a call failed because the contract reverted with no reason (web3's
    ``ContractLogicError``, or eth-tester's ``TransactionFailed`` in process)."""
    from web3.exceptions import ContractLogicError

    if isinstance(error, ContractLogicError):
        return error.data in (None, "0x", b"")
    return type(error).__name__ == "TransactionFailed" and str(error).endswith("b''")
