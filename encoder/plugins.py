"""The `pacelink.commands` plug-ins: command groups other packages add to `pacelink`.

The linkage unit registers its commands as entry points (pyproject.toml), so the encoder
never imports it. `load_plugins` reads the entry points only; `PluginGroup`, the root
command group, imports a plug-in when its command is invoked or listed, so that
`pacelink encode` never loads the service.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["PluginGroup", "load_plugins"]

#: The plug-in commands `load_plugins` found, by name; imported when first used.
_PLUGINS: dict[str, EntryPoint] = {}


def _plugin_command(name: str, entry: EntryPoint) -> Any:
    """The click command of a plug-in: a Typer group, or a function made a command."""
    plugin = entry.load()
    holder = typer.Typer(add_completion=False)
    if isinstance(plugin, typer.Typer):
        holder.add_typer(plugin, name=name)
        return typer.main.get_command(holder).get_command(None, name)  # type: ignore[attr-defined]
    holder.command(name=name)(plugin)
    return typer.main.get_command(holder)


class PluginGroup(TyperGroup):
    """The root group: the encoder's own commands, then the plug-ins, each loaded on use."""

    def list_commands(self, ctx: Any) -> list[str]:
        """Own commands in order of definition, then the plug-ins' commands, then their groups.

        Listing loads every plug-in (help shows each one's summary); running a command
        loads only its own.
        """
        own = super().list_commands(ctx)
        plugins = {n: self.get_command(ctx, n) for n in _PLUGINS if n not in own}
        # As Typer lists added commands and groups: the commands first (sorted is stable).
        return [*own, *sorted(plugins, key=lambda n: isinstance(plugins[n], TyperGroup))]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command `cmd_name`, importing its plug-in the first time it is asked for."""
        if cmd_name not in self.commands and cmd_name in _PLUGINS:
            self.add_command(_plugin_command(cmd_name, _PLUGINS[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def load_plugins() -> None:
    """Offer the commands other packages register under `pacelink.commands`.

    Reads the entry points only (package metadata); each plug-in module is imported when
    its command is first invoked or listed.
    """
    for entry in entry_points(group="pacelink.commands"):
        _PLUGINS.setdefault(entry.name, entry)
