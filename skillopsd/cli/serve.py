"""``skillopsctl serve``: the local dashboard (loopback, a token in the URL)."""

from __future__ import annotations

import errno
import ipaddress
import webbrowser

import click

from ._app import AppContext, UsageFailure, cli, db_option, pass_app
from ._output import echo

DEFAULT_PORT = 8470


@cli.command("serve")
@db_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"Port to listen on (default {DEFAULT_PORT}, or a free one if that is taken; 0: any"
    " free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines reach the"
    " dashboard (the token still guards it): name it only on a network you trust.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser.")
@pass_app
def serve_command(app: AppContext, port: int | None, host: str, open_browser: bool) -> None:
    """Serve the dashboard until Ctrl-C: overview, sessions, span trees, skills, A/B tests,
    evals, lineage and a labelling queue.

    It prints a URL with a random token (like Jupyter); every request needs it (the first
    visit stores it in a cookie). It reads the log and writes only what you annotate there.
    """
    from ..web import is_loopback, make_server

    try:
        unspecified = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        raise UsageFailure(
            f"--host {host}: name the one address to listen on (127.0.0.1, or this machine's"
            " address on a network you trust)"
        )
    db = app.db()
    app.caught_up()
    wanted = DEFAULT_PORT if port is None else port
    try:
        try:
            server = make_server(db, host, wanted)
        except OSError as exc:
            if port is None and exc.errno == errno.EADDRINUSE:
                wanted = 0  # the default port is taken: any free one
                server = make_server(db, host, wanted)
            else:
                raise
    except OSError as exc:
        # The port it tried (the default when none was given), never "None" (review K14).
        where = f"[{host}]" if ":" in host and not host.startswith("[") else host
        on = f"{where}:{wanted}" if wanted else f"{where} (any free port)"
        raise UsageFailure(f"cannot listen on {on}: {exc.strerror or exc}") from exc
    if not is_loopback(host):
        echo(
            f"skillopsctl: warning: listening on {host}, not loopback: anyone who can reach"
            " it and learns the token can read your sessions and annotate them",
            err=True,
        )
    url = server.url()
    echo(f"skillops dashboard: {url}")
    echo("(Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
