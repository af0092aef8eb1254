"""The ``workspace`` command: a thin Click layer over the server, client and TUI.

Each subcommand lives in its own module and is imported only when it runs, so
``workspace send`` never pays for Textual and ``workspace --help`` is instant.
"""

from __future__ import annotations

import gc
import importlib
import sys

from workspace_tui.lazy_imports import defer_unused

defer_unused()  # before anything imports them: see lazy_imports

import click  # noqa: E402

from workspace_tui import __version__  # noqa: E402

# The commands that pay for their imports inside their callbacks and call one_shot() once they
# have: until then the garbage collector stays off (see run). Every other command turns it back
# on as soon as it is looked up.
ONE_SHOT = frozenset({"send", "tail", "who"})

# command name -> "module:attribute"
COMMANDS = {
    "serve": "workspace_tui.cli.serve:serve",
    "chat": "workspace_tui.cli.chat:chat",
    "send": "workspace_tui.cli.oneliners:send",
    "tail": "workspace_tui.cli.oneliners:tail",
    "who": "workspace_tui.cli.oneliners:who",
    "rooms": "workspace_tui.cli.rooms:rooms",
    "users": "workspace_tui.cli.users:users",
    "login": "workspace_tui.cli.login:login",
    "key": "workspace_tui.cli.login:key",
}
SHORT_HELP = {
    "serve": "Host the chat server (embedded SQLite store by default).",
    "chat": "Join the chat in the terminal app.",
    "send": "Send one message (or stdin) and wait for the server's ack.",
    "tail": "Print messages as they arrive.",
    "who": "List who is here, with their status.",
    "rooms": "List your rooms and direct messages with unread and mention counts.",
    "users": "Who owns which name: list, add (an invite), remove, reset (admin).",
    "login": "Make a name yours on this device: redeem an invite, or import your key.",
    "key": "Show this device's key for a name (to use it on a second device).",
}


def _import_command(name: str) -> click.Command:
    module, attr = COMMANDS[name].split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = _import_command(cmd_name)
        if cmd_name not in ONE_SHOT:
            imports_done()
        return command

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        from workspace_tui import paths

        with formatter.section("Files"):
            formatter.write_dl([
                ("config file", f"{paths.config_file()}  (WORKSPACE_CONFIG_DIR moves its folder)"),
                ("data", f"{paths.data_dir()}  (stores, outboxes; WORKSPACE_DATA_DIR moves it)"),
            ])

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
    config file (TOML: top-level keys for every command, a [table] per command),
    then built-in defaults.
    """
    from workspace_tui.config import ConfigError, command_defaults, load_config

    asking_for_help = any(arg in ("-h", "--help") for arg in sys.argv[1:])
    try:
        config = load_config()
    except ConfigError as exc:
        if asking_for_help:  # a broken file must not hide the help that explains it
            return
        raise click.UsageError(str(exc)) from None
    if config:
        _check_config(ctx, config)
    ctx.default_map = {name: command_defaults(config, name) for name in COMMANDS}


def _check_config(ctx: click.Context, config: dict) -> None:
    """Unknown keys, and values the options would refuse, are usage errors naming the file."""
    from workspace_tui.config import unknown_keys
    from workspace_tui.paths import config_file

    commands = {name: _import_command(name) for name in COMMANDS}  # the collector stays as it is
    options = {name: {p.name for p in cmd.params if p.name and isinstance(p, click.Option)}
               for name, cmd in commands.items() if cmd is not None}
    where = config_file()
    problems = unknown_keys(config, options, nested={"chat": {"keys"}})
    for name, cmd in commands.items():
        if cmd is None:
            continue
        values = {k: v for k, v in config.items() if not isinstance(v, dict)}
        values.update(config.get(name) if isinstance(config.get(name), dict) else {})
        for param in cmd.params:
            if param.name in values and isinstance(param, click.Option):
                try:
                    param.type_cast_value(ctx, values[param.name])
                except click.BadParameter as exc:
                    table = f"[{name}] " if param.name in (config.get(name) or {}) else ""
                    problems.append(f"{table}{param.name} = {values[param.name]!r}: {exc.message}")
    if problems:
        unique = list(dict.fromkeys(problems))
        raise click.UsageError(f"in the config file {where}:\n  " + "\n  ".join(unique))


_one_shot = False  # set by one_shot(): this process may end without tearing the interpreter down


def imports_done() -> None:
    """Turn the garbage collector back on (see :func:`run`); what the imports made stays out of
    its way for good."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def one_shot() -> None:
    """For ``send``, ``tail`` and ``who`` once imported: the collector back on, and a quick exit.

    Their last act is a clean close (the connection, then the outbox), so once they return
    nothing is left for the interpreter's own shutdown to do but free every module and object,
    ~5 ms of a one-liner's life. :func:`run` skips it.
    """
    global _one_shot
    _one_shot = True
    imports_done()


def _exit_now(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, without the interpreter's shutdown."""
    import os

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left (`| head`), or a closed stream
            pass
    os._exit(code or 0)


def run() -> None:
    """The console script: :func:`main`, then a quick exit."""
    # Importing makes tens of thousands of objects that live as long as the process, and the
    # collector would walk them all again and again while a one-liner starts (~7 ms of ~100).
    # It is off until the command has imported what it needs; imports_done() turns it on.
    gc.disable()
    try:
        main()
    except SystemExit as exc:
        if _one_shot:
            _exit_now(exc.code)
        raise
    finally:
        # At exit Python collects every object the process ever made: about 15 ms, a seventh
        # of a one-liner's life. Nothing left needs collecting, so freeze them all instead.
        gc.freeze()
