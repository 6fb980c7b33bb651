"""``python -m benchmarks.quality``: run the match-quality benchmark (see :mod:`.cli`)."""

from benchmarks.quality.cli import main

raise SystemExit(main())
