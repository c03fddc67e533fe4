"""Numeric form fields whose bounds are worded right ("at least 1" for an inclusive minimum
of 1), for the operators' forms and the panel.

FiftyOne checks a ``Number``'s ``min``/``max`` itself, in the App and before executing, and
words an inclusive minimum of 1 as "Value must be greater than 1". So the bounds are not
given to FiftyOne: :func:`number_field` checks them and marks the field invalid with
:func:`bound_error`'s message (shown under the field; execution is refused).
"""

from __future__ import annotations

import math
from typing import Any

import fiftyone.operators.types as types

from ._forms import invalid


def _number(value: float) -> str:
    return f"{value:g}"


def bound_text(bound: float, inclusive: bool = True, lower: bool = True) -> str:
    """``"at least 1"``, ``"more than 0"``, ``"at most 1"`` or ``"less than 1"``."""
    if lower:
        words = "at least" if inclusive else "more than"
    else:
        words = "at most" if inclusive else "less than"
    return f"{words} {_number(bound)}"


def bound_error(
    value: Any,
    label: str,
    *,
    integer: bool = True,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> str | None:
    """Why ``value`` does not fit the field (its ``label`` named, the bound in words and the
    value given), or None when it fits; None (an empty field: the default) fits."""
    if value is None:
        return None
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return f"{label} must be {kind} (got {value!r})"
    if integer and not float(value).is_integer():
        return f"{label} must be {kind} (got {value!r})"
    if min is not None and (value < min or (value == min and not min_inclusive)):
        return f"{label} must be {bound_text(min, min_inclusive)} (got {_number(value)})"
    if max is not None and (value > max or (value == max and not max_inclusive)):
        return f"{label} must be {bound_text(max, max_inclusive, lower=False)} " + (
            f"(got {_number(value)})"
        )
    return None


def number_field(
    inputs: types.Object,
    name: str,
    value: Any,
    *,
    label: str,
    integer: bool = True,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    **kwargs: Any,
) -> types.Property:
    """An int (or float) field checked against its bounds: out of them, the field is
    invalid with :func:`bound_error`'s message. ``value``: the field's current value
    (``ctx.params.get(name)`` in a form). Other keyword arguments go to FiftyOne."""
    define = inputs.int if integer else inputs.float
    prop = define(name, label=label, **kwargs)
    error = bound_error(
        value,
        label,
        integer=integer,
        min=min,
        max=max,
        min_inclusive=min_inclusive,
        max_inclusive=max_inclusive,
    )
    if error:
        invalid(inputs, prop, name, error)
    return prop
