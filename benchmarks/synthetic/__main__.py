"""``python -m benchmarks.synthetic``: write a scenario's partner files (see :mod:`.cli`)."""

from benchmarks.synthetic.cli import main

raise SystemExit(main())
