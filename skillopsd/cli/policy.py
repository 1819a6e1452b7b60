"""``skillopsctl policy``: settings that change what projections compute, recorded as events."""

from __future__ import annotations

import getpass

import click
import msgspec

from ..evals.gate import GATE_POLICY, GatePolicy
from ..events import EventLog, NewEvent
from ..events.types import PolicySet
from ..projections.verdict import POLICY_NAME, VerdictPolicy
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app
from ._output import emit_json

_POLICIES: dict[str, type[msgspec.Struct]] = {POLICY_NAME: VerdictPolicy, GATE_POLICY: GatePolicy}


def _parse(pairs: tuple[str, ...]) -> dict[str, str | int | float | bool | None]:
    values: dict[str, str | int | float | bool | None] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageFailure(f"expected KEY=VALUE, got {pair!r}")
        try:
            values[key] = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            values[key] = raw
    return values


@cli.group()
def policy() -> None:
    """Settings that change what projections compute, such as the verdict rule."""


@policy.command("set")
@db_option
@click.argument("name", type=click.Choice(sorted(_POLICIES)))
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
@pass_app
def set_policy(app: AppContext, name: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Record new settings for policy NAME (unset keys keep their defaults)."""
    values = _parse(pairs)
    try:
        checked = msgspec.convert(values, _POLICIES[name], strict=False)
    except msgspec.ValidationError as exc:
        raise UsageFailure(f"policy {name}: {exc}") from exc
    full = msgspec.to_builtins(checked)
    EventLog(app.db()).append(
        [NewEvent(f"policy:{name}", PolicySet(name=name, values=full, author=getpass.getuser()))]
    )
    app.caught_up()
    if as_json:
        emit_json({"name": name, "values": full})
    else:
        click.echo(f"policy {name}: " + ", ".join(f"{k}={v}" for k, v in full.items()))
