"""The ``workspace`` command: a thin Click layer over the server, client and TUI.

Each subcommand lives in its own module and is imported only when it runs, so
``workspace send`` never pays for Textual and ``workspace --help`` is instant.
"""

from __future__ import annotations

import gc
import importlib

import click

from workspace_tui import __version__

# command name -> "module:attribute"
COMMANDS = {
    "serve": "workspace_tui.cli.serve:serve",
    "chat": "workspace_tui.cli.chat:chat",
    "send": "workspace_tui.cli.oneliners:send",
    "tail": "workspace_tui.cli.oneliners:tail",
    "who": "workspace_tui.cli.oneliners:who",
}
SHORT_HELP = {
    "serve": "Host the chat server (embedded SQLite store by default).",
    "chat": "Join the chat in the terminal app.",
    "send": "Send one message (or stdin) and wait for the server's ack.",
    "tail": "Print messages as they arrive.",
    "who": "List who is here, with their status.",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # List commands without importing them (keeps --help fast).
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP[name]) for name in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="workspace")
@click.pass_context
def main(ctx: click.Context) -> None:
    """workspace: a terminal chat for small teams.

    Settings come from flags, then WORKSPACE_* environment variables, then the
    config file (see `workspace_tui.config`), then built-in defaults.
    """
    from workspace_tui.config import ConfigError, command_defaults, load_config

    try:
        config = load_config()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.default_map = {name: command_defaults(config, name) for name in COMMANDS}


def run() -> None:
    """The console script: :func:`main`, then a quick exit."""
    try:
        main()
    finally:
        # At exit Python collects every object the process ever made: about 15 ms, a seventh
        # of a one-liner's life. Nothing left needs collecting, so freeze them all instead.
        gc.freeze()
