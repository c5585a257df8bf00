"""The source checkout around the `stepline` package, and the dev-only `devinfra` package in it.

`devinfra` (fetches and starts the development Kafka, FerretDB, PostgreSQL and local model) lives at
the repository root, outside the installed packages: a wheel does not ship it and an editable install
maps only `libs`, `services` and `stepline`. `stepline up --distributed` needs it, so the CLI finds
it beside the `stepline` package's own directory (a console script does not have the working
directory on `sys.path`), else wherever `import devinfra` already finds it.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
"""The directory that holds the `stepline` package: the repository root in a source checkout."""


class NoCheckoutError(RuntimeError):
    """`devinfra` cannot be imported: an installed `stepline` without its source checkout."""


def devinfra_on_path() -> None:
    """Make `import devinfra` work (the checkout goes on `sys.path`), else raise `NoCheckoutError`."""
    root = CHECKOUT
    if (root / "devinfra" / "__init__.py").is_file():
        if str(root) not in sys.path:
            sys.path.append(str(root))
        return
    if find_spec("devinfra") is None:
        raise NoCheckoutError(
            "distributed dev mode needs the Stepline source checkout: it starts Kafka and FerretDB with "
            f"the checkout's devinfra/ package, which is not installed and not found beside {root / 'stepline'}. "
            "Run `stepline up --distributed` from a checkout (`make install`), or run the services "
            "(`python -m services.<name>`) against your own broker and store")
