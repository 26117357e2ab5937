"""A publisher identity document that is there but damaged is not "no identity yet".

Taken for absence, a damaged ``published/publisher-identity.json`` made ``rda run`` build a new
identity listing only the current key (the keys it listed, with their validity, dropped for
good once published on a new registry), and ``rda market mint`` deploy a DataLicences that pays
no node registry. Now the file is read by ``proofs.identity.read_identity_file``: None only
when absent; a damaged copy is replaced by the registry's, when the registry holds this
publisher's; otherwise the run stops and names the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.identity import (
    FILE_NAME,
    IdentityError,
    build_identity,
    key_entry,
    parse_identity,
    read_identity_file,
)
from proofs.node_owners import node_registry_of
from proofs.signing import publisher_key
from sinks.layout import DataLayout
from streaming.chain import ChainContext, open_chain
from streaming.chain_binding import IdentityDamaged, publish_identity

NODE_REGISTRY = "0x" + "ab" * 20


def a_document(tmp_path: Path, node_registry: str | None = None) -> bytes:
    signer = publisher_key(tmp_path / "signer")
    owner = "0x" + "11" * 20
    keys = [key_entry(signer)]
    return build_identity(31337, "0x" + "22" * 20, owner, keys, [signer], node_registry)


def identity_path(data_dir: Path) -> Path:
    return DataLayout(data_dir).published / FILE_NAME


def written(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- reading the file ---------------------------------------------------------------------------


def test_no_file_is_no_identity(tmp_path):
    assert read_identity_file(tmp_path / FILE_NAME) is None


def test_a_valid_file_is_its_document(tmp_path):
    raw = a_document(tmp_path)
    assert read_identity_file(written(tmp_path / FILE_NAME, raw)).raw == raw


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_a_file_cut_short_anywhere_is_refused_with_its_path(tmp_path_factory, cut):
    directory = tmp_path_factory.mktemp("cut")
    raw = a_document(directory)
    path = written(directory / FILE_NAME, raw[: cut % len(raw)])
    with pytest.raises(IdentityError, match="is not a valid publisher identity") as refused:
        read_identity_file(path)
    assert str(path) in str(refused.value)


def test_a_file_whose_signature_no_longer_holds_is_refused(tmp_path):
    raw = a_document(tmp_path)
    forged = raw.replace(b'"chain_id":31337', b'"chain_id":31338')
    assert forged != raw
    path = written(tmp_path / FILE_NAME, forged)
    with pytest.raises(IdentityError, match="signature"):
        read_identity_file(path)


def test_a_path_that_cannot_be_read_is_refused_not_absent(tmp_path):
    path = tmp_path / FILE_NAME
    path.mkdir()  # a directory where the file should be
    with pytest.raises(IdentityError, match="cannot be read"):
        read_identity_file(path)


def test_a_huge_file_is_refused_without_being_loaded(tmp_path):
    """A copy in a data directory being verified is untrusted: 1 GiB (sparse: no disk used) is
    refused after reading one byte past the limit, not loaded whole."""
    path = tmp_path / FILE_NAME
    with path.open("wb") as file:
        file.truncate(2**30)
    with pytest.raises(IdentityError, match="at most 65536"):
        read_identity_file(path)


# -- the node registry a new DataLicences pays -------------------------------------------------


def test_the_node_registry_is_the_one_the_document_names(tmp_path):
    written(identity_path(tmp_path), a_document(tmp_path, NODE_REGISTRY))
    assert node_registry_of(DataLayout(tmp_path).published).lower() == NODE_REGISTRY


def test_no_document_names_no_node_registry(tmp_path):
    assert node_registry_of(DataLayout(tmp_path).published) is None


def test_a_damaged_document_is_refused_rather_than_paying_no_node_registry(tmp_path):
    raw = a_document(tmp_path, NODE_REGISTRY)
    path = written(identity_path(tmp_path), raw[:-1])
    with pytest.raises(IdentityError) as refused:
        node_registry_of(DataLayout(tmp_path).published)
    assert str(path) in str(refused.value)


# -- the run binding its data directory to the chain ---------------------------------------------


@pytest.fixture
def chain() -> ChainContext:
    return open_chain("embedded", None, None)


def published_with_two_keys(chain: ChainContext, data_dir: Path) -> bytes:
    """The identity an operator published with an earlier key beside the current one: both
    keys sign, and each keeps its interval of validity."""
    current, earlier = publisher_key(data_dir), publisher_key(data_dir / "earlier")
    keys = [key_entry(earlier, 0, 100), key_entry(current, 100)]
    owner = chain.registry.owner()
    raw = build_identity(chain.chain_id, chain.contract, owner, keys, [current, earlier])
    chain.registry.publish_identity(raw)
    written(identity_path(data_dir), raw)
    return raw


def test_a_damaged_copy_is_restored_from_the_registry_with_every_key(tmp_path, chain):
    raw = published_with_two_keys(chain, tmp_path)
    path = identity_path(tmp_path)
    damaged = raw[: len(raw) // 2]
    path.write_bytes(damaged)
    assert publish_identity(chain, DataLayout(tmp_path)) is False  # nothing sent
    assert path.read_bytes() == raw == chain.identity
    assert len(parse_identity(path.read_bytes()).keys) == 2
    kept = sorted(path.parent.glob("publisher-identity.superseded-*.json"))
    assert [p.read_bytes() for p in kept] == [damaged]


def test_a_damaged_copy_with_no_registry_copy_stops_the_run_and_is_left_as_it_is(tmp_path):
    first = open_chain("embedded", None, None)
    raw = published_with_two_keys(first, tmp_path)
    path = identity_path(tmp_path)
    path.write_bytes(raw[:-3])
    fresh = open_chain("embedded", None, None)  # the embedded EVM of the next start: empty
    with pytest.raises(IdentityDamaged) as stopped:
        publish_identity(fresh, DataLayout(tmp_path))
    assert str(path) in str(stopped.value)
    assert "holds no copy to restore it from" in str(stopped.value)
    assert path.read_bytes() == raw[:-3]
    assert fresh.registry.identity_hash() is None  # no identity without its keys was published


def test_an_absent_copy_is_still_published_with_the_current_key(tmp_path, chain):
    assert publish_identity(chain, DataLayout(tmp_path)) is True
    identity = parse_identity(identity_path(tmp_path).read_bytes())
    assert [k.key_id for k in identity.keys] == [publisher_key(tmp_path).key_id]


# -- the marketplace offering it for pinning ------------------------------------------------------


def test_the_marketplace_does_not_offer_a_damaged_document_for_pinning(tmp_path):
    from market.policy import QueryRefused
    from market.service import Marketplace

    raw = a_document(tmp_path)
    written(identity_path(tmp_path), raw[:-1])
    market = Marketplace(tmp_path)
    try:
        with pytest.raises(QueryRefused) as refused:
            market.publisher_identity()
        assert (refused.value.code, refused.value.status) == ("unavailable", 503)
        identity_path(tmp_path).write_bytes(raw)
        assert market.publisher_identity()["identity"] == raw.decode()
    finally:
        market.close()


def test_rda_run_stops_in_one_line_on_a_damaged_copy_it_cannot_restore(
    broker, topic, publish, tmp_path
):
    from test_cli import rda

    data, state = tmp_path / "data", tmp_path / "state"
    run = ("run", "--once", "--bootstrap", broker.bootstrap, "--topic", topic, "--group",
           f"g-{topic}", "--data-dir", str(data), "--chain", "embedded",
           "--quality", "queue")  # fmt: skip
    publish(broker, topic, nodes=2, duration_s=5, seed=1)
    assert rda(*run, state=state).returncode == 0
    path = identity_path(data)
    damaged = path.read_bytes()[:-1]
    path.write_bytes(damaged)
    publish(broker, topic, nodes=2, duration_s=5, seed=2)
    stopped = rda(*run, state=state)  # the embedded EVM starts empty: no copy to restore
    message = " ".join(stopped.stderr.split())
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr, stopped.stderr
    assert f"{path} is not a valid publisher identity" in message
    assert path.read_bytes() == damaged
