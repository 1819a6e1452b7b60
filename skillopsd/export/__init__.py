"""Export of derived sessions: OTLP over HTTP (protobuf, gzip) to Phoenix, Jaeger or a Collector.

``_traces`` reads what a session's trace holds, ``_otlp`` encodes it in batches, ``_sender``
posts them with retries, ``_checkpoint`` records what each receiver acknowledged, ``_run`` is
one export pass and ``_live`` the daemon's exporter thread.
"""

from __future__ import annotations

from .._defaults import TRACES_ENDPOINT_ENV
from ._checkpoint import TargetLag, ensure_tables, has_tables, register, target_lags
from ._live import LiveExporter
from ._otlp import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_PROJECT,
    Batch,
    encode_batches,
    encode_session,
    otlp_json,
    root_span_id,
)
from ._run import (
    Due,
    ExportIncomplete,
    ExportReport,
    Sink,
    current_changes,
    due_sessions,
    export_sessions,
)
from ._sender import (
    Accepted,
    ExportError,
    ReceiverRefused,
    ReceiverUnavailable,
    Sender,
    parse_header,
    traces_url,
)
from ._traces import SessionTrace, read_human_and_evals, session_trace

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_PROJECT",
    "TRACES_ENDPOINT_ENV",
    "Accepted",
    "Batch",
    "Due",
    "ExportError",
    "ExportIncomplete",
    "ExportReport",
    "LiveExporter",
    "ReceiverRefused",
    "ReceiverUnavailable",
    "Sender",
    "SessionTrace",
    "Sink",
    "TargetLag",
    "current_changes",
    "due_sessions",
    "encode_batches",
    "encode_session",
    "ensure_tables",
    "export_sessions",
    "has_tables",
    "otlp_json",
    "parse_header",
    "read_human_and_evals",
    "register",
    "root_span_id",
    "session_trace",
    "target_lags",
    "traces_url",
]
