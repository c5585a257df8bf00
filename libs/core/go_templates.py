"""What to write in jq instead of the Go-template (sprig) helpers some of Port's published examples use.

Port evaluates `{{ }}` as jq (its docs: "All fields ... can be mapped using jq expressions"), so
`now | date "2006-01-02T15:04:05Z"`, `lower`, `replace " " "-"`, `add_duration` and `printf` are not
Port features: such a template fails in Port as it does here. Stepline refuses it when the workflow is
saved, and the message says what to write instead (`go_template_hint`).
"""

from __future__ import annotations

import re
from typing import Final

_HINTS: Final[tuple[tuple[str, str], ...]] = (
    (r"\|\s*date\s+\"", '`now | date "2006-01-02T15:04:05Z"` → `now | todate` (or `now | strftime("%Y-%m-%dT%H:%M:%SZ")`)'),
    (r"\|\s*lower\b", "`lower` → `ascii_downcase`"),
    (r"\|\s*upper\b", "`upper` → `ascii_upcase`"),
    (r"\|\s*replace\s+\"", '`replace " " "-"` → `gsub(" "; "-")`'),
    (r"\badd_duration\b", "`add_duration` → add seconds: `(now + 24 * 3600) | todate`"),
    (r"\bprintf\b", '`printf "%dh" .n` → string interpolation: `"\\(.n)h"`'),
    (r"\bmul\s+\S", "`mul a b` → `a * b`"),
)


def go_template_hint(expression: str) -> str:
    """'' or a sentence naming the jq to write for each Go-template helper found in `expression`."""
    found = [hint for pattern, hint in _HINTS if re.search(pattern, expression)]
    if not found:
        return ""
    return ("; this is Go-template (sprig) syntax, but templates are jq, in Port as in Stepline: "
            + "; ".join(found))
