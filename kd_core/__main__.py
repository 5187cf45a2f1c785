"""Entry point for `python -m kd_core`."""

from kd_core.cli import main

raise SystemExit(main())
