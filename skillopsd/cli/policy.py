"""``skillopsctl policy``: settings that change what projections compute, recorded as events."""

from __future__ import annotations

import getpass
import math
import textwrap

import click
import msgspec

from ..evals.gate import GATE_POLICY
from ..events import EventLog, NewEvent
from ..events.types import PolicySet
from ..projections.verdict import POLICY_NAME, SUMMARY
from ..versions.policy import BANDIT_POLICY, POLICY_TYPES, BanditPolicy, read_policy
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app
from ._output import echo, emit_json, table, terminal_width

_BANDIT = BanditPolicy()

Value = int | float | bool


class Setting(msgspec.Struct, frozen=True):
    """One key of a policy: its type, the range it must lie in, its default and meaning."""

    kind: type[int] | type[float] | type[bool]
    default: Value
    help: str
    minimum: float | None = None
    maximum: float | None = None


# The one table ``policy set`` validates against and ``policy show`` explains. A test keeps
# each policy's keys and defaults equal to the Struct its projection reads.
SETTINGS: dict[str, dict[str, Setting]] = {
    POLICY_NAME: {
        "tail_turns": Setting(
            int,
            1,
            "a failure counts as unresolved only in the last this many turns",
            minimum=1,
            maximum=1_000_000,
        ),
        "unresolved_min": Setting(
            int,
            1,
            "a session is a failure when at least this many of those failures were unresolved",
            minimum=1,
            maximum=1_000_000,
        ),
        "failure_share": Setting(
            float,
            0.8,
            "or when more than this share of its calls failed (look-ups, no-op edits, sandbox"
            " refusals and bookkeeping calls not counted)",
            minimum=0.0,
            maximum=1.0,
        ),
    },
    GATE_POLICY: {
        "min_sessions": Setting(
            int,
            3,
            "promote clears a version only if its newest eval run graded this many sessions",
            minimum=1,
            maximum=1_000_000,
        ),
    },
    BANDIT_POLICY: {
        "min_per_arm": Setting(
            int,
            _BANDIT.min_per_arm,
            "executions of each arm before a test decides",
            minimum=1,
            maximum=1_000_000,
        ),
        "promote_bar": Setting(
            float, _BANDIT.promote_bar, "P(challenger better) that promotes it", 0.5, 1.0
        ),
        "retire_bar": Setting(
            float, _BANDIT.retire_bar, "P(champion better) that retires the challenger", 0.5, 1.0
        ),
        "horizon": Setting(
            int,
            _BANDIT.horizon,
            "executions after which a test ends inconclusive (the champion stays)",
            minimum=2,
            maximum=1_000_000,
        ),
        "challenger_cap": Setting(
            float,
            _BANDIT.challenger_cap,
            "the largest share of sessions routed to the challenger",
            minimum=0.0,
            maximum=1.0,
        ),
        "guardrail_tokens": Setting(
            bool,
            _BANDIT.guardrail_tokens,
            "the cost guardrail compares tokens per execution instead of USD (cost)",
        ),
    },
}

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _range(setting: Setting) -> str:
    def show(bound: float | None) -> str:
        if bound is None:
            return ""
        return f"{int(bound):,}" if setting.kind is int else f"{bound:g}"

    low, high = show(setting.minimum), show(setting.maximum)
    return f"{low} to {high}" if low and high else (f"at least {low}" if low else f"at most {high}")


def check_value(name: str, key: str, raw: object) -> Value:
    """``raw`` (text from the command line, or a stored value) as a valid value of ``key``."""
    settings = SETTINGS[name]
    setting = settings.get(key)
    if setting is None:
        raise ValueError(f"no key {key!r} (keys: {', '.join(sorted(settings))})")
    text = str(raw).strip()
    value: Value
    if setting.kind is bool:
        if isinstance(raw, bool):
            value = raw
        elif text.lower() in _TRUE | _FALSE:
            value = text.lower() in _TRUE
        else:
            raise ValueError(f"{key}={text} is not true or false")
        return value
    if isinstance(raw, bool):
        raise ValueError(f"{key}={text} is not a number")
    try:
        if setting.kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value = int(raw) if isinstance(raw, int | float) else int(text, 10)
        else:
            value = float(raw) if isinstance(raw, int | float) else float(text)
    except (ValueError, OverflowError):
        kind = "a whole number" if setting.kind is int else "a number"
        raise ValueError(f"{key}={text} is not {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key}={text} is not a finite number")
    if (setting.minimum is not None and value < setting.minimum) or (
        setting.maximum is not None and value > setting.maximum
    ):
        raise ValueError(f"{key}={text} is out of range ({_range(setting)})")
    return value


def _parse(name: str, pairs: tuple[str, ...]) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageFailure(f"expected KEY=VALUE, got {pair!r}")
        try:
            values[key] = check_value(name, key, raw)
        except ValueError as exc:
            raise UsageFailure(f"policy {name}: {exc}; nothing recorded") from None
    return values


class PolicyReport(msgspec.Struct):
    """A policy in force: every key's value, the keys set explicitly, and since when."""

    name: str
    values: dict[str, object]
    set: dict[str, Value]
    position: int | None
    invalid: dict[str, object] = {}


def _in_force(app: AppContext, name: str) -> PolicyReport:
    """The values the gate, the bandit and the verdict rule compute with, read by the one
    reader they use (:func:`~skillopsd.versions.policy.read_policy`).

    Values stored before ``policy set`` validated (``failure_share=2``) are listed in
    ``invalid`` so that setting the policy again replaces them.
    """
    state = read_policy(app.db(), name)
    explicit: dict[str, Value] = {}
    invalid: dict[str, object] = {}
    for key, value in state.stored.items():
        try:
            explicit[key] = check_value(name, key, value)
        except ValueError:
            invalid[key] = value
    return PolicyReport(
        name=name,
        values=msgspec.to_builtins(state.in_force),
        set=explicit,
        position=state.position,
        invalid=invalid,
    )


def _record(app: AppContext, name: str, values: dict[str, Value]) -> None:
    db = app.db(create=True)
    stored: dict[str, str | int | float | bool | None] = dict(values)
    try:
        msgspec.convert(stored, POLICY_TYPES[name], strict=False)
    except msgspec.ValidationError as exc:  # the table and the consumer's Struct disagree
        raise UsageFailure(f"policy {name}: {exc}; nothing recorded") from exc
    EventLog(db).append(
        [NewEvent(f"policy:{name}", PolicySet(name=name, values=stored, author=getpass.getuser()))]
    )
    app.caught_up()


def _echo(report: PolicyReport, as_json: bool) -> None:
    """What is in force now, each key marked set or default."""
    if as_json:
        emit_json(report)
        return
    echo(
        f"policy {report.name} in force: "
        + ", ".join(
            f"{k}={v}" + ("" if k in report.set else " (default)") for k, v in report.values.items()
        )
    )


@cli.group()
def policy() -> None:
    """Settings that change what projections compute, such as the verdict rule."""


def _keys_help() -> str:
    lines = []
    for name, settings in SETTINGS.items():
        for key, s in settings.items():
            lines.append(
                f"{name}.{key} ({s.kind.__name__}, {_range(s)}, default {s.default}): {s.help}"
            )
    return "\n\n".join(lines)


@policy.command(
    "set",
    help="Record new values for some keys of policy NAME; other keys keep their values.\n\n"
    "Keys:\n\n" + _keys_help(),
)
@db_option
@click.argument("name", type=click.Choice(sorted(SETTINGS)))
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
@pass_app
def set_policy(app: AppContext, name: str, pairs: tuple[str, ...], as_json: bool) -> None:
    given = _parse(name, pairs)
    app.db(create=True)
    app.caught_up()
    current = _in_force(app, name)
    for key, raw in current.invalid.items():
        if key not in given:
            echo(f"policy {name}: dropping stored {key}={raw!r} (not valid)", err=True)
    _record(app, name, {**current.set, **given})
    _echo(_in_force(app, name), as_json)


@policy.command("reset")
@db_option
@click.argument("name", type=click.Choice(sorted(SETTINGS)))
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@json_option
@pass_app
def reset_policy(app: AppContext, name: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Return KEYs of policy NAME (or all of them) to their defaults; recorded like a set."""
    unknown = [k for k in keys if k not in SETTINGS[name]]
    if unknown:
        raise UsageFailure(
            f"policy {name}: no key {unknown[0]!r} (keys: {', '.join(sorted(SETTINGS[name]))})"
        )
    app.db(create=True)
    app.caught_up()
    current = _in_force(app, name)
    kept = {k: v for k, v in current.set.items() if keys and k not in keys}
    if current.position is not None and (kept != current.set or current.invalid):
        _record(app, name, kept)
    _echo(_in_force(app, name), as_json)


@policy.command("show")
@db_option
@click.argument("name", type=click.Choice(sorted(SETTINGS)), required=False)
@json_option
@pass_app
def show_policy(app: AppContext, name: str | None, as_json: bool) -> None:
    """The policies in force (or policy NAME): each key's value, default and meaning."""
    app.caught_up()
    reports = [_in_force(app, n) for n in ([name] if name else sorted(SETTINGS))]
    if as_json:
        emit_json(reports if name is None else reports[0])
        return
    for i, report in enumerate(reports):
        if i:
            echo()
        since = (
            f"set at log position {report.position:,}"
            if report.position is not None
            else "never set: defaults"
        )
        echo(f"policy {report.name} ({since})")
        settings = SETTINGS[report.name]
        table(
            [
                [
                    key,
                    str(value),
                    "set" if key in report.set else "default",
                    settings[key].help if key in settings else "",
                ]
                for key, value in report.values.items()
            ],
            ["key", "value", "from", "meaning"],
            flex=3,
        )
        if report.name == POLICY_NAME:
            echo(textwrap.fill(f"verdicts: {SUMMARY}", width=terminal_width()))
        for key, raw in report.invalid.items():
            echo(
                f"warning: stored {key}={raw!r} is not valid (recorded before values were"
                f" checked); policy set {report.name} replaces it",
                err=True,
            )
