"""`python -m stylize` runs the command line."""

from stylize.cli import main

raise SystemExit(main())
