"""The linkage unit's `pacelink` commands, one module per audience.

`partner` (upload, withdraw, results: the encoder and the HTTP client only), `operator`
(`pacelink unit ...`: imports the service), `link` (offline linkage) and `demo`. Each
command is a `pacelink.commands` entry point (pyproject.toml), which `encoder.cli` loads only
when that command is invoked or listed, so a partner's command never imports the service.
"""
