"""Numbers read from ``SYNCOPS_*`` (and a few standard) environment variables, checked one way.

A setting that is not a number in its range is bad input (exit 2), named with the value as given, so
a typo in a CI variable fails the command at once instead of turning into a default or a crash.
"""

from __future__ import annotations

import math
import os

from syncops.errors import BadInput


def number(
    name: str,
    default: float,
    *,
    minimum: float,
    above: bool = False,
    whole: bool = False,
    maximum: float = math.inf,
) -> float:
    """The value of variable ``name`` (``default`` when unset or blank): a finite number at least
    ``minimum`` (above it when ``above``) and at most ``maximum``, a whole one when ``whole``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(int(text)) if whole else float(text)
    except ValueError:
        value = math.nan
    in_range = value > minimum if above else value >= minimum
    if not (in_range and value <= maximum and math.isfinite(value)):
        kind = "a whole number" if whole else "a number"
        bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
        if math.isfinite(maximum):
            bound += f" and at most {maximum:g}"
        raise BadInput(f"{name}={text!r}: expected {kind}, {bound}")
    return value
