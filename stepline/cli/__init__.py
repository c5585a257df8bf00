"""`stepline`: the command line of the Stepline workflow engine (`main` is the console script).

command.py (the parser and `main`), commands.py (`up`, `validate`, `apply`, `run`, ...), control.py,
keys.py, audit.py (their commands), client.py (the API client), run.py (start and follow a run),
render.py, graph.py, files.py, inputs.py, errors.py (`CliError` and the exit codes).
"""

from stepline.cli.command import main

__all__ = ["main"]
