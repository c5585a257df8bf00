"""`python -m stepline.cli` is the `stepline` command (as `python -m stepline` is)."""

import sys

from stepline.cli.command import main

sys.exit(main())
