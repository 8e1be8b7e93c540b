"""structlog set-up: JSON lines in a cluster, readable lines in a terminal.

Every line carries the Canary's namespace and name while a tick runs (bound with contextvars in
reconcile.py), so one rollout's story can be read from a shared log with a single filter.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(*, json: bool, level: str = "info", stream: TextIO | None = None) -> None:
    output = stream or sys.stderr
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=output.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
