"""A batch is redone as it was planned, whatever the settings of the run that redoes it.

Found by the scale-out red team (F1): the plan did not record the signature policy, so a worker
killed after its checkpoints were built and restarted with ``--signatures required`` (or with
``--node-registry`` added under ``auto``) quarantined the records its first attempt had
published, anchored the old checkpoints, and then failed at every restart.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.device_signatures import REQUIRED, UNSIGNED
from streaming.commit import RedoMismatch, _same_landing
from streaming.errors import SettingsError
from streaming.node_cache import (
    AUTO,
    PLAN_POLICY_KEY,
    NodeRegistryCache,
    device_check,
    planned_policy,
)

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def cache(address: str = REGISTRY) -> NodeRegistryCache:
    return NodeRegistryCache(SimpleNamespace(address=address))


def plan(policy: str, registry: str | None = None) -> dict:
    return {"batch_id": 7, PLAN_POLICY_KEY: {"policy": policy, "registry": registry}}


def test_a_new_plan_records_the_policy_auto_resolved_to_and_its_registry():
    assert planned_policy(AUTO, None) == {"policy": UNSIGNED, "registry": None}
    assert planned_policy(AUTO, cache()) == {"policy": REQUIRED, "registry": REGISTRY}
    assert planned_policy(UNSIGNED, cache()) == {"policy": UNSIGNED, "registry": None}


def test_a_batch_planned_unsigned_is_checked_unsigned_by_a_run_that_requires_signatures():
    check = device_check(REQUIRED, cache(), plan(UNSIGNED), "t")
    assert check.policy == UNSIGNED


@pytest.mark.parametrize("now", [None, "0x0000000000000000000000000000000000000001"])
def test_a_batch_planned_against_a_registry_is_not_redone_against_another_or_none(now):
    with pytest.raises(SettingsError, match=f"--node-registry {REGISTRY} to finish it"):
        device_check(AUTO, cache(now) if now else None, plan(REQUIRED, REGISTRY), "t")


def test_a_plan_from_before_the_record_is_checked_under_the_runs_policy():
    check = device_check(UNSIGNED, None, {"batch_id": 7}, "t")
    assert check.policy == UNSIGNED
    with pytest.raises(SettingsError, match="no node registry is configured"):
        device_check(REQUIRED, None, {"batch_id": 7}, "t")


def test_a_redo_with_rows_of_other_datasets_than_its_checkpoints_stops_and_says_why():
    recorded = [{"dataset": "node_heartbeat.v1"}, {"dataset": "radio_kpi.v1"}]
    with pytest.raises(RedoMismatch, match="its first attempt ran under other settings"):
        _same_landing({"batch_id": 7}, recorded, {})
    _same_landing({"batch_id": 7}, recorded, {"node_heartbeat.v1": [], "radio_kpi.v1": []})
    _same_landing({"batch_id": 7}, [], {})  # a batch that published nothing


class Killed(Exception):
    """The worker dies right after a journal step (as ``RDA_CRASH_AT`` kills a real one)."""


def test_a_batch_killed_after_its_commit_is_finished_as_planned_by_a_run_asking_more(
    broker, topic, tmp_path, monkeypatch
):
    from dataclasses import replace

    from pipelines.kafka_source import open_source
    from simulator.fleet import generate
    from simulator.producer import produce
    from streaming import faults
    from streaming.chain import open_chain
    from streaming.driver import RunConfig, run_batch
    from streaming.journal import BatchJournal
    from streaming.store import workspace

    produced = produce(broker.bootstrap, topic, generate(2, 5, 1, 1_764_000_000_000, 3)).messages
    planned = RunConfig(
        broker.bootstrap, topic, f"g-{topic}", tmp_path / "data", signatures=UNSIGNED
    )
    source, chain = open_source(broker.bootstrap), open_chain("embedded", None, None)

    def killed_after_commit(step: str) -> None:
        if step == "committed":
            raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(faults, "journaled", killed_after_commit)
        with pytest.raises(Killed):
            run_batch(planned, source, chain.anchor)
    stricter = replace(planned, signatures=REQUIRED)  # and no node registry to check against

    summary = run_batch(stricter, source, chain.anchor)

    assert (summary.read, summary.published) == (produced, produced)
    space = workspace(planned.data_dir, planned.work_dir)
    with BatchJournal(space.work.journal, read_only=True) as journal:
        assert journal.unfinished_batches(topic) == []


def test_a_batch_planned_required_without_a_registry_says_none_is_configured():
    with pytest.raises(SettingsError, match="no node registry is configured"):
        device_check(REQUIRED, None, plan(REQUIRED, None), "t")
