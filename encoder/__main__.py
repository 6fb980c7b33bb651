"""Runs the encoder's command line as `python -m encoder`."""

from encoder.cli import main

main()
