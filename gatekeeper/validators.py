"""Field validators shared by every app's models (a kernel module, below the apps).

Attached to the model fields themselves, so ModelForms, the admin, DRF ModelSerializers and
``full_clean`` all refuse the same input without each restating the rule.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

# C0 controls but tab: CR/LF split headers, log lines and CSV rows when a one-line value is
# written into them, and the rest are invisible in every place a name is shown.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")

# Largest value PostgreSQL's bigint (and Python's timedelta arithmetic on our numbers) takes.
BIGINT_MAX = 2**63 - 1


def validate_single_line(value: Any) -> None:
    """Refuse control characters (CR, LF, NUL…; tab allowed) in a one-line text value."""
    if isinstance(value, str):
        match = _CONTROL.search(value)
        if match is not None:
            raise ValidationError(
                "Control characters (such as line breaks) are not allowed here (found %(char)s).",
                code="control_characters",
                params={"char": f"U+{ord(match.group()):04X}"},
            )


def validate_no_nul(value: Any) -> None:
    """Refuse NUL in multi-line text: PostgreSQL cannot store it in a text column."""
    if isinstance(value, str) and "\x00" in value:
        raise ValidationError("Null characters are not allowed.", code="null_characters")


def contains_nul(value: Any) -> bool:
    """True if a decoded JSON value (or a string) holds NUL anywhere, keys included."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def bounded(low: int, high: int) -> list[Any]:
    """Validators keeping a number where the code can compute with it (timedeltas, quorums)."""
    return [MinValueValidator(low), MaxValueValidator(high)]
