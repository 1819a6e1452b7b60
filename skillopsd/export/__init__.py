"""Export of derived sessions: OTLP over HTTP (protobuf, gzip) to Phoenix, Jaeger or a Collector.

``_traces`` reads what a session's trace holds, ``_otlp`` encodes it in batches, ``_sender``
posts them with retries, ``_checkpoint`` records what each receiver acknowledged, ``_run`` is
one export pass and ``_live`` the daemon's exporter thread.
"""

from __future__ import annotations

from .._defaults import TRACES_ENDPOINT_ENV
from ._checkpoint import (
    TargetLag,
    ensure_tables,
    has_tables,
    record_error,
    register,
    target_key,
    target_lags,
)
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
from ._phoenix import PhoenixAPI, SpanAnnotation
from ._run import (
    Due,
    ExportIncomplete,
    ExportReport,
    Sink,
    current_changes,
    due_sessions,
    export_sessions,
    settled,
    span_annotations,
)
from ._sender import (
    DEFAULT_RETRY_BUDGET,
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
    "DEFAULT_RETRY_BUDGET",
    "TRACES_ENDPOINT_ENV",
    "Accepted",
    "Batch",
    "Due",
    "ExportError",
    "ExportIncomplete",
    "ExportReport",
    "LiveExporter",
    "PhoenixAPI",
    "ReceiverRefused",
    "ReceiverUnavailable",
    "Sender",
    "SessionTrace",
    "Sink",
    "SpanAnnotation",
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
    "record_error",
    "register",
    "root_span_id",
    "session_trace",
    "settled",
    "span_annotations",
    "target_key",
    "target_lags",
    "traces_url",
]
