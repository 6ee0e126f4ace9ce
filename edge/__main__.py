"""`python -m edge ...`: the same as the `edge` command."""

from edge.cli import main

raise SystemExit(main())
