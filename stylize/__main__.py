"""`python -m stylize` runs the command line."""

from stylize.console import main

raise SystemExit(main())
