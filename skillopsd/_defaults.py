"""Defaults the daemon's options name, kept apart from the modules that use them.

``skillopsd --once`` must not import the exporter or the skill-version machinery (a fifth of
its start-up) only to show their defaults in ``--help``.
"""

from __future__ import annotations

# Seconds a session must be quiet before its executions count for a managed skill.
DEFAULT_SETTLE_SECONDS = 300.0
# The OpenInference project exported traces belong to.
DEFAULT_PROJECT = "skillops"
# The OpenTelemetry variable naming where traces go.
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
# The variable naming a team's PostgreSQL: where ``sync`` and ``skillopsd --sync-to`` push
# the log, and where a machine's pooled experiments are read from and decided.
TEAM_URL_ENV = "SKILLOPS_SYNC_URL"
