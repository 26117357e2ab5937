"""``rda verify --contribution`` against a publisher who pays node shares from another table than
the one it published (red team, stop 69): the verdict is VERIFIED only when the checkpoint the
node owner checks is the one sales pay into, with the table of that very checkpoint."""

from __future__ import annotations

import pytest
from audit_dataset import first_failure
from contribution_world import DATASET, contribution_world, rows

from proofs.contributions import ContributionTable
from proofs.verdict import NOT_VERIFIED, VERIFIED

NODES = ["n0", "n1", "n2", "n0", "n1", "n2"]


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("RDA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RDA_PUBLISHER", raising=False)
    return contribution_world(tmp_path, NODES)


def test_the_checkpoint_sales_pay_into_is_verified_with_its_own_table(world):
    verdict = world.verify("n0")
    assert verdict.status == VERIFIED, verdict.as_dict()
    asset = next(c for c in verdict.checks if c.name == "asset")
    assert asset.detail == f"asset {world.token} holds this root, bound to this manifest; " + (
        "sales pay into it"
    )
    assert "latest" in [c.name for c in verdict.checks]  # the history, as plain `rda verify`


def test_a_table_stating_another_checkpoint_s_size_is_refused(world):
    # Checkpoint 12 holds 10 rows of nodes; its signed table says it is of checkpoint 10, where
    # the asset would then have been read.
    checkpoint = world.publish(rows(6, ["n0", "n1", "n2", "n0", None, None]), table_size=10)
    verdict = world.verify("n0", checkpoint.manifest_file)
    assert verdict.status == NOT_VERIFIED
    assert first_failure(verdict) == (
        "contributions",
        f"the table is of {DATASET} at 10, not of 12",
    )


def test_an_honest_table_at_a_size_nobody_published_does_not_hide_the_one_paid(world):
    # The red team's attack: the honest table committed at a size anchored with the checkpoint's
    # manifest hash, and a table giving every row to the publisher's node at the real size.
    checkpoint = world.publish(
        rows(6, ["n0", "n1", "n2", "n0", None, None]), table_size=10, anchor=False
    )
    registry = world.chain.registry
    registry.anchor(DATASET, 10, b"\x99" * 32, checkpoint.digest, 6)
    registry.anchor(DATASET, 12, checkpoint.root, checkpoint.digest, 10)
    bogus = ContributionTable(DATASET, 12, {"pub-node": 12})
    world.asset.commit_contributions([(world.token, 10, checkpoint.table.root(), 10)])
    world.asset.commit_contributions([(world.token, 12, bogus.root(), 12)])
    verdict = world.verify("n0", checkpoint.manifest_file)
    assert verdict.status == NOT_VERIFIED
    assert first_failure(verdict)[0] == "links"  # anchored checkpoint 10 is not in the data


def test_sales_paying_into_a_checkpoint_never_published_are_not_verified(world):
    registry = world.chain.registry
    registry.anchor(DATASET, 7, b"\x77" * 32, b"\x78" * 32, 6)  # never published
    bogus = ContributionTable(DATASET, 7, {"pub-node": 7})
    world.asset.commit_contributions([(world.token, 7, bogus.root(), 7)])
    assert world.asset.info(world.token).latest_tree_size == 7
    verdict = world.verify("n0")  # the newest checkpoint the data holds: 6
    assert verdict.status == NOT_VERIFIED
    name, detail = first_failure(verdict)
    assert name == "latest" and "has size 7" in detail
