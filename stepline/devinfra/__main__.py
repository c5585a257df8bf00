"""`python -m stepline.devinfra fetch|up|down|status ...`: see `stepline.devinfra.cli`."""

import sys

from stepline.devinfra.cli import main

sys.exit(main())
