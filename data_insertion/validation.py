"""A record's own fields: values taken as a user typed them, then Django's field validation
(full_clean) without the rules that need other rows. The services run it before any database
is touched; the audit runs the very same on stored rows."""

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model


def field_errors(instance: Model) -> dict[str, list[str]]:
    try:
        instance.full_clean(
            exclude=derived_fields(type(instance)),
            validate_unique=False,  # uniqueness needs other rows: checked in the transaction
            validate_constraints=False,
        )
    except ValidationError as error:
        return error.message_dict
    return {}


DERIVED_FIELDS: dict[type[Model], list[str]] = {}


def derived_fields(model: type[Model]) -> list[str]:
    """Fields the model computes itself (like ModelForm, validation leaves them out)."""
    if model not in DERIVED_FIELDS:
        DERIVED_FIELDS[model] = [f.name for f in model._meta.fields if not f.editable]
    return DERIVED_FIELDS[model]


def as_text(value: Any) -> str:
    """Text as a form would take it: surrounding whitespace trimmed, None as empty."""
    if value is None:
        return ""
    return str(value).strip()


def as_price(value: Any) -> Any:
    # A float carries binary noise (0.1 + 0.2): take its shortest text form instead.
    if isinstance(value, float):
        return repr(value)
    return as_text(value) if isinstance(value, str) else value


def as_integer_input(value: Any) -> Any:
    """Leave conversion to the field, except values int() would silently truncate."""
    if (
        isinstance(value, bool)
        or (isinstance(value, float) and not value.is_integer())
        or (isinstance(value, Decimal) and not (value.is_finite() and value == value.to_integral()))
    ):
        return str(value)  # the field rejects "True", "1.5" and "Infinity" as not an integer
    return as_text(value) if isinstance(value, str) else value
