"""Strict reading of query strings: known names only, each at most once, exact grammar."""

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import msgspec

from domain.errors import FieldError, InvalidRequest

_DIGITS = re.compile(r"[0-9]+")
# Longer than any 64-bit number; refused before int() has to read it.
_MAX_DIGITS = 20
_Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class QueryReader:
    """Reads typed parameters and gathers every error, so one answer names them all."""

    def __init__(self, items: Iterable[tuple[str, str]], allowed: frozenset[str]) -> None:
        self._values: dict[str, str] = {}
        self._errors: list[FieldError] = []
        for name, value in items:
            if name not in allowed:
                self._errors.append(FieldError(name, "is not a known parameter"))
            elif name in self._values:
                self._errors.append(FieldError(name, "may be given only once"))
            else:
                self._values[name] = value

    def integer(self, name: str, default: int) -> int:
        """A non-negative decimal integer in digits only: no sign, space, fraction or exponent."""
        raw = self._values.get(name)
        if raw is None:
            return default
        if not _DIGITS.fullmatch(raw):
            self._errors.append(FieldError(name, "must be a whole number written in digits"))
            return default
        significant = raw.lstrip("0") or "0"
        if len(significant) > _MAX_DIGITS:
            self._errors.append(FieldError(name, "is out of range"))
            return default
        return int(significant)

    def timestamp(self, name: str) -> datetime | None:
        """An RFC 3339 timestamp with an explicit offset (`+` must be sent as `%2B`)."""
        raw = self._values.get(name)
        if raw is None:
            return None
        try:
            return msgspec.convert(raw, _Aware)
        except msgspec.ValidationError:
            message = "must be an RFC 3339 timestamp with an offset, e.g. 2026-12-04T00:00:00Z"
            if " " in raw:
                # An unencoded `+` arrives as a space.
                message += "; send the + of an offset as %2B"
            self._errors.append(FieldError(name, message))
            return None

    def check(self) -> None:
        if self._errors:
            raise InvalidRequest(*self._errors)
