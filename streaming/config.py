"""``rda run`` settings: flags > ``RDA_*`` environment variables > TOML file > defaults.

The file (``--config`` or ``RDA_CONFIG``) has a ``[run]`` table with the global settings and one
``[topics.NAME]`` table per topic, whose ``format``, ``max_batch_records``,
``min_partition_share``, ``max_chunk_records`` and ``max_chunk_bytes`` override the file's global
values for that topic. A flag or an environment variable applies to every topic and wins over the
file. Example::

    [run]
    bootstrap = "127.0.0.1:19092"
    group = "rda-pipeline"
    join_group = true          # several workers share the partitions
    interval = 5.0
    max_batch_records = 200000

    [topics.node-telemetry]
    format = "rda.node.v1"

    [topics.ems-counters]
    format = "ems.csv"
    max_chunk_records = 20000

    [topics.ripe-atlas]
    format = "ripe.atlas.result"
    signatures = "unsigned"    # a public source that cannot sign: rows say device_signed = false

``signatures`` (per topic): ``required`` (every record must carry a valid device signature),
``unsigned`` (a source that cannot sign) or ``auto`` (the default: required when a node
registry is configured with ``node_registry``/``--node-registry`` or by `rda infra up`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from infra.chain import redacted_url
from pipelines.kafka_group import MIN_SESSION_TIMEOUT_MS, SESSION_TIMEOUT_MS
from pipelines.kafka_source import CLIENTS, DEFAULT_CLIENT, check_topic_name
from schemas.adapters import AUTO, check_format
from sinks.storage import data_location
from streaming.batch import DEFAULT_MAX_CHUNK_BYTES
from streaming.errors import SettingsError
from streaming.node_cache import SIGNATURE_POLICIES
from streaming.schedule import MIN_PARTITION_SHARE

DEFAULT_TOPIC = "node-telemetry"
RUNNERS = ("fnapi", "dask")
LOG_FORMATS = ("text", "json")
CHAINS = ("embedded", "anvil", "rpc")
# Great Expectations on each anchored checkpoint: in a worker process beside the run, or only
# queued, for `rda quality` (GE in a process, on cores, of its own) or the next run to validate.
QUALITY_MODES = ("worker", "queue")


@dataclass(frozen=True)
class TopicSettings:
    """What may differ between topics."""

    format: str = AUTO  # wire format of records without a format header; auto: sniff each
    max_batch_records: int = 2_000_000  # backpressure: offsets per micro-batch, all partitions
    max_chunk_records: int = 50_000  # offsets per work item: bounds a worker's memory
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES  # and the bytes of its records (a split past)
    signatures: str = "auto"  # device signatures: required, unsigned, auto (streaming/node_cache)
    min_partition_share: int = MIN_PARTITION_SHARE  # under a backlog: fewer partitions a batch


@dataclass(frozen=True)
class RunSettings:
    topics: dict[str, TopicSettings] = field(
        default_factory=lambda: {DEFAULT_TOPIC: TopicSettings()}
    )
    bootstrap: str | None = None  # None: the broker `rda infra up` started
    group: str = "rda-pipeline"
    data_dir: Path | str = Path("data")  # a local folder, or s3://BUCKET/PREFIX
    work_dir: Path | None = None  # this worker's local state (streaming/store.py)
    interval: float = 5.0  # seconds between micro-batches when there is nothing to read
    once: bool = False
    chain: str | None = None  # None: what `rda infra up` started, else embedded
    rpc_url: str | None = None
    registry: str | None = None
    node_registry: str | None = None  # NodeRegistry address; None: `rda infra up`'s, if any
    runner: str = "fnapi"
    dask_scheduler: str | None = None  # None with --runner dask: a local cluster
    metrics_port: int | None = None
    log_format: str = "text"
    kafka_timeout: float = 30.0  # seconds without an answer before a Kafka call is retried
    kafka_client: str = DEFAULT_CLIENT  # confluent (librdkafka) or kafka-python (pure Python)
    retries: int = 30  # consecutive failed attempts before giving up (0: never give up)
    backoff_max: float = 30.0  # cap of the exponential backoff, seconds
    join_group: bool = False  # share the topics' partitions with other workers in `group`
    # seconds a silent group member keeps its partitions: a killed worker's wait that long
    group_session_timeout: float = SESSION_TIMEOUT_MS / 1000
    crash_limit: int = 3  # worker crashes on one batch before it is bisected (streaming/poison)
    landers: int | None = None  # landing processes sharing a large batch; None: 2 if 2+ cores
    lag_interval: float = 15.0  # seconds between refreshes of the consumer-lag gauge
    window: int = 3600  # event-time windows (s): k-anonymity and DP counts per closed window
    allowed_lateness: int = 300  # s a window waits after its end, watermark-wise
    flush_windows: bool = False  # end of input: once caught up, close every window
    accept_retention_loss: bool = False  # read on past offsets retention deleted (recorded)
    quality: str = "worker"  # GE beside the run ("worker") or left queued ("queue")


MIN_SESSION_TIMEOUT_S = MIN_SESSION_TIMEOUT_MS / 1000


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


# Settings a flag, a variable or the file's [run] table may set, and how to read a string.
_GLOBAL: dict[str, Callable[[str], Any]] = {
    "bootstrap": str,
    "group": str,
    "data_dir": data_location,
    "work_dir": Path,
    "interval": float,
    "chain": str,
    "rpc_url": str,
    "registry": str,
    "node_registry": str,
    "runner": str,
    "dask_scheduler": str,
    "metrics_port": int,
    "log_format": str,
    "kafka_timeout": float,
    "kafka_client": str,
    "retries": int,
    "backoff_max": float,
    "join_group": boolean,
    "group_session_timeout": float,
    "crash_limit": int,
    "landers": int,
    "lag_interval": float,
    "window": int,
    "allowed_lateness": int,
    "flush_windows": boolean,
    "accept_retention_loss": boolean,
    "quality": str,
}
_PER_TOPIC: dict[str, Callable[[str], Any]] = {
    "format": str,
    "max_batch_records": int,
    "min_partition_share": int,
    "max_chunk_records": int,
    "max_chunk_bytes": int,
    "signatures": str,
}


def env_name(setting: str) -> str:
    return "RDA_" + setting.upper()


def load_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> RunSettings:
    """Merge the layers; ``flags`` holds parsed arguments, None for a flag not given."""
    environ = os.environ if environ is None else environ
    config_path = flags.get("config") or environ.get("RDA_CONFIG")
    document = _read_toml(Path(config_path)) if config_path else {}
    file_run = _table(document, "run", config_path)
    file_topics = _table(document, "topics", config_path)
    _reject_unknown(file_run, set(_GLOBAL) | set(_PER_TOPIC), f"{config_path} [run]")

    overrides: dict[str, Any] = {}  # env then flags on top: both apply to every topic
    for name, parse in {**_GLOBAL, **_PER_TOPIC}.items():
        if env_name(name) in environ:
            overrides[name] = _parse(parse, environ[env_name(name)], env_name(name))
        if flags.get(name) is not None:
            overrides[name] = flags[name]

    names = _topic_names(flags, environ, file_topics)
    base = TopicSettings(**_coerced(file_run, _PER_TOPIC, f"{config_path} [run]"))
    topics = {}
    for name in names:
        table = file_topics.get(name, {})
        if not isinstance(table, dict):
            raise SettingsError(f"{config_path}: [topics.{name}] must be a table")
        _reject_unknown(table, set(_PER_TOPIC), f"{config_path} [topics.{name}]")
        topic = replace(base, **_coerced(table, _PER_TOPIC, f"{config_path} [topics.{name}]"))
        per_topic = {k: v for k, v in overrides.items() if k in _PER_TOPIC}
        topics[name] = replace(topic, **per_topic)

    global_values = _coerced(file_run, _GLOBAL, f"{config_path} [run]")
    global_values.update({k: v for k, v in overrides.items() if k in _GLOBAL})
    settings = RunSettings(topics=topics, once=bool(flags.get("once")), **global_values)
    _validate(settings)
    return settings


def _topic_names(
    flags: Mapping[str, Any], environ: Mapping[str, str], file_topics: dict
) -> list[str]:
    if flags.get("topic"):
        names = list(flags["topic"])
    elif environ.get("RDA_TOPIC"):
        names = [t.strip() for t in environ["RDA_TOPIC"].split(",") if t.strip()]
    elif file_topics:
        names = list(file_topics)
    else:
        names = [DEFAULT_TOPIC]
    for name in names:  # files and folders are named after them
        try:
            check_topic_name(name)
        except ValueError as error:
            raise SettingsError(f"topic: {error}") from None
    return list(dict.fromkeys(names))  # in order, once each


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None


def _table(document: dict, name: str, path: str | None) -> dict:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise SettingsError(f"{path}: [{name}] must be a table")
    return value


def _reject_unknown(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(unknown)}")


def _coerced(table: dict, kinds: dict[str, Callable[[str], Any]], where: str) -> dict[str, Any]:
    return {
        name: _parse(kinds[name], value, f"{where} {name}")
        for name, value in table.items()
        if name in kinds
    }


def _parse(parse: Callable[[Any], Any], value: Any, where: str) -> Any:
    if parse in (int, float) and isinstance(value, bool):
        raise SettingsError(f"{where}: expected a number, got {value!r}")
    try:
        return parse(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: expected {parse.__name__}, got {value!r}") from None


def _validate(settings: RunSettings) -> None:
    if settings.runner not in RUNNERS:
        raise SettingsError(f"runner must be one of {', '.join(RUNNERS)}, not {settings.runner!r}")
    if settings.log_format not in LOG_FORMATS:
        raise SettingsError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    if settings.kafka_client not in CLIENTS:
        raise SettingsError(
            f"kafka client must be one of {', '.join(CLIENTS)}, not {settings.kafka_client!r}"
        )
    if settings.quality not in QUALITY_MODES:
        raise SettingsError(
            f"quality must be one of {', '.join(QUALITY_MODES)}, not {settings.quality!r}"
        )
    if settings.chain is not None and settings.chain not in CHAINS:
        raise SettingsError(f"chain must be one of {', '.join(CHAINS)}, not {settings.chain!r}")
    if settings.interval < 0 or settings.kafka_timeout <= 0 or settings.backoff_max <= 0:
        raise SettingsError("interval, kafka timeout and backoff must be positive")
    if settings.group_session_timeout < MIN_SESSION_TIMEOUT_S:
        raise SettingsError(
            f"group session timeout must be at least {MIN_SESSION_TIMEOUT_S:g} s (heartbeats "
            f"go every sixth of it, at most every 0.5 s), not {settings.group_session_timeout:g}"
        )
    if settings.retries < 0:
        raise SettingsError("retries must be 0 (never give up) or more")
    if settings.metrics_port is not None and not 0 <= settings.metrics_port < 65536:
        raise SettingsError(f"metrics port {settings.metrics_port} is not a TCP port")
    for name, topic in settings.topics.items():
        if min(topic.max_batch_records, topic.max_chunk_records, topic.max_chunk_bytes) <= 0:
            raise SettingsError(f"topic {name}: batch and chunk sizes must be positive")
        if topic.min_partition_share < 0:
            raise SettingsError(f"topic {name}: min partition share must be 0 or more")
        try:
            check_format(topic.format)
        except ValueError as error:
            raise SettingsError(f"topic {name}: {error}") from None
        if topic.signatures not in SIGNATURE_POLICIES:
            raise SettingsError(
                f"topic {name}: signatures must be one of {', '.join(SIGNATURE_POLICIES)}, "
                f"not {topic.signatures!r}"
            )
    if settings.crash_limit < 1:
        raise SettingsError("crash limit must be 1 or more")
    if settings.landers is not None and settings.landers < 1:
        raise SettingsError("landers must be 1 or more")


def kafka_bootstrap(settings: RunSettings, recorded: str | None) -> str:
    """The broker a run reads: its own setting, else the one ``rda infra up`` recorded
    (``recorded``); a ``SettingsError`` with neither."""
    bootstrap = settings.bootstrap or recorded
    if not bootstrap:
        raise SettingsError("no Kafka broker: run `rda infra up` first, or pass --bootstrap")
    return bootstrap


def describe(settings: RunSettings) -> dict[str, Any]:
    """The effective settings, as `rda run --json` reports them."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values["data_dir"] = str(settings.data_dir)
    values["work_dir"] = str(settings.work_dir) if settings.work_dir else None
    if settings.rpc_url:  # a hosted node's URL holds its API key
        values["rpc_url"] = redacted_url(settings.rpc_url)
    values["topics"] = {
        name: {f.name: getattr(t, f.name) for f in fields(t)} for name, t in settings.topics.items()
    }
    return values
