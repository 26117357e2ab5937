"""Log lines of ``rda run``: readable text, or one JSON object per line (``--log-format json``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import warnings
from typing import Any

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, default=str, sort_keys=True)


def configure(log_format: str, console: Any = None) -> logging.Logger:
    """The ``rda.run`` logger, writing to stderr in the chosen format.

    With a rich ``console`` (a live display on a terminal), text lines go through it so they
    print above the status line instead of through it.
    """
    logger = logging.getLogger("rda.run")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    # An outage makes kafka-python and Beam log tracebacks; the retry line already says it once.
    for noisy in ("kafka", "apache_beam", "distributed"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # kafka-python loads its protocol with importlib.resources' legacy API, warning every time.
    warnings.filterwarnings(
        "ignore", message=".*Use files\\(\\) instead", category=DeprecationWarning
    )
    return logger
