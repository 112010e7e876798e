"""Money as `hubserve cost` prints it: amounts in cents, prices per request in fractions of a cent.

One rule for every row, so a column never mixes `$0.0000123` with `$1.23`: an amount (a month, a
window, a break-even) is rounded half up to the cent, and one that is not zero but under half a
cent reads `<$0.01` rather than a misleading `$0.00`; a unit price (per request, per second, per
hour) keeps the fractions of a cent it needs, and a column of them shares one number of places.
Figures in JSON stay exact; only what people read is rounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HALF_CENT = Decimal("0.005")
SIGNIFICANT = 4  # digits a sub-cent price keeps: $0.00002288
MOST_PLACES = 10  # decimal places a price may take at most


def amount(value: Decimal) -> str:
    """An amount of money to the cent: ``$1,234.57``, ``$0.00`` for nothing, ``<$0.01`` for a trace."""
    if value != 0 and abs(value) < HALF_CENT:
        return "<$0.01" if value > 0 else "-<$0.01"
    return _dollars(value.quantize(CENT, rounding=ROUND_HALF_UP), 2)


def price(value: Decimal, places: int | None = None) -> str:
    """A price per unit with the places it needs (at least the cents), or ``places`` to line up a column."""
    return _dollars(value, places if places is not None else price_places([value]))


def price_places(values: Iterable[Decimal]) -> int:
    """Decimal places that show every one of ``values`` to SIGNIFICANT digits, and at least cents."""
    needed = 2
    for value in values:
        if value == 0:
            continue
        kept = value.quantize(Decimal(1).scaleb(value.adjusted() - SIGNIFICANT + 1), rounding=ROUND_HALF_UP)
        needed = max(needed, min(MOST_PLACES, -int(kept.normalize().as_tuple().exponent)))
    return needed


def _dollars(value: Decimal, places: int) -> str:
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.{places}f}"
