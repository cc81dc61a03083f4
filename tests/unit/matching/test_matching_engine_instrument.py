"""Exact, reversible Decimal <-> ticks/lots conversion at the engine's edges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.matching.engine import Instrument, OffGridError

GRIDS = [Decimal(s) for s in ("0.01", "0.05", "0.25", "1", "0.0001", "5", "0.125", "100")]


def test_price_round_trip_examples() -> None:
    inst = Instrument("X", Decimal("0.01"), Decimal("1"))
    assert inst.price_to_ticks(Decimal("123.45")) == 12345
    assert inst.price_to_ticks(Decimal("123.450000")) == 12345
    assert inst.ticks_to_price(12345) == Decimal("123.45")
    assert str(inst.ticks_to_price(12345)) == "123.45"
    assert inst.qty_to_lots(Decimal("7")) == 7
    assert inst.lots_to_qty(7) == Decimal("7")


def test_fractional_lots_and_coarse_ticks() -> None:
    inst = Instrument("F", Decimal("0.05"), Decimal("0.001"))
    assert inst.price_to_ticks(Decimal("10.15")) == 203
    assert inst.qty_to_lots(Decimal("1.25")) == 1250
    assert inst.lots_to_qty(1250) == Decimal("1.250")


def test_off_grid_raises_clear_error() -> None:
    inst = Instrument("X", Decimal("0.05"), Decimal("10"))
    with pytest.raises(OffGridError) as price_err:
        inst.price_to_ticks(Decimal("1.02"))
    assert isinstance(price_err.value, ValueError)
    assert "1.02" in str(price_err.value)
    assert "0.05" in str(price_err.value)
    assert "tick" in str(price_err.value)
    assert "X" in str(price_err.value)
    with pytest.raises(OffGridError, match=r"quantity 15 .* lot size 10"):
        inst.qty_to_lots(Decimal("15"))
    for bad in (Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(OffGridError):
            inst.price_to_ticks(bad)


def test_floats_and_other_types_are_refused() -> None:
    inst = Instrument("X", Decimal("0.01"), Decimal("1"))
    with pytest.raises(TypeError):
        inst.price_to_ticks(1.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        inst.qty_to_lots(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        inst.ticks_to_price(1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tick", "lot"), [("0", "1"), ("-0.01", "1"), ("0.01", "0"), ("NaN", "1"), ("0.01", "Infinity")]
)
def test_bad_grid_sizes(tick: str, lot: str) -> None:
    with pytest.raises(ValueError, match="must be a positive finite Decimal"):
        Instrument("X", Decimal(tick), Decimal(lot))


def test_bad_symbol_and_float_sizes() -> None:
    with pytest.raises(ValueError, match="symbol"):
        Instrument("", Decimal("1"), Decimal("1"))
    with pytest.raises(TypeError):
        Instrument("X", 0.01, Decimal("1"))  # type: ignore[arg-type]


def test_huge_values_stay_exact() -> None:
    inst = Instrument("X", Decimal("0.000001"), Decimal("0.00000001"))
    n = (1 << 62) - 1
    assert inst.price_to_ticks(inst.ticks_to_price(n)) == n
    assert inst.qty_to_lots(inst.lots_to_qty(n)) == n


@given(ticks=st.integers(-(10**15), 10**15), grid=st.sampled_from(GRIDS))
def test_ticks_round_trip(ticks: int, grid: Decimal) -> None:
    inst = Instrument("X", grid, grid)
    price = inst.ticks_to_price(ticks)
    assert price == ticks * grid
    assert inst.price_to_ticks(price) == ticks
    assert inst.qty_to_lots(inst.lots_to_qty(ticks)) == ticks


@given(
    value=st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
    ),
    grid=st.sampled_from(GRIDS),
)
def test_on_grid_iff_exact_multiple(value: Decimal, grid: Decimal) -> None:
    inst = Instrument("X", grid, grid)
    on_grid = (value % grid) == 0
    if on_grid:
        assert inst.ticks_to_price(inst.price_to_ticks(value)) == value
    else:
        with pytest.raises(OffGridError):
            inst.price_to_ticks(value)
