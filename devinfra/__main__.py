"""`python -m devinfra fetch|up|down|status ...`: see `devinfra.cli`."""

import sys

from devinfra.cli import main

sys.exit(main())
