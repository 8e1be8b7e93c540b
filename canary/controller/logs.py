"""structlog set-up: JSON lines in a cluster, readable lines in a terminal.

Every line carries the Canary's namespace and name while a tick runs (bound with contextvars in
reconcile.py), so one rollout's story can be read from a shared log with a single filter.

structlog hands its events to the standard library's logging, and one handler renders both
those and the libraries' own records (APScheduler, urllib3): one writer with one lock, so a
line from a library can never land in the middle of one of ours, and a log collector reading
JSON never meets a line that is not.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

# Tells our handler apart from others on the root logger (pytest's, a user's) when replaced.
_HANDLER_NAME = "canary"


def configure(*, json: bool, level: str = "info", stream: TextIO | None = None) -> None:
    output = stream or sys.stderr
    threshold = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=output.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(output)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            # Records from other libraries get the same fields ours have.
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
