"""mt5bridge.client has the real MetaTrader5 package's surface, read from the pinned wheel: the
same functions, constants with the same values, record types with the same fields in the same
order, __author__ and __version__, and nothing else but `connect`."""

from __future__ import annotations

import types
import zipfile
from pathlib import Path

import mt5bridge.client as mt5
import pytest
from mt5bridge import constants, mt5types
from mt5bridge.api import EXPOSED_CALLS
from wheel_surface import Surface, fetch_wheel, pinned, read_surface

pytestmark = pytest.mark.integration

#: What the client adds to the real surface, documented in its docstring.
EXTRA = {"connect"}


@pytest.fixture(scope="module")
def real() -> Surface:
    return read_surface(fetch_wheel())


def _public(module: types.ModuleType) -> set[str]:
    return {n for n in vars(module) if not n.startswith("_")}


def test_the_wheel_read_is_the_pinned_one(real: Surface) -> None:
    assert real.version == pinned()[0] == constants.PACKAGE_VERSION
    # Sanity of the reader itself: what the MetaTrader5 documentation shows.
    assert real.constants["TIMEFRAME_H1"] == 16385 and real.constants["RES_S_OK"] == 1
    assert "copy_rates_from_pos" in real.functions and len(real.functions) == 32
    assert real.records["Tick"][:3] == ("time", "bid", "ask")
    assert set(real.python_functions) == {"Buy", "Sell", "Close"}


def test_version_and_author(real: Surface) -> None:
    assert (mt5.__version__, mt5.__author__) == (real.version, real.author)


def test_constants_and_values(real: Surface) -> None:
    ours = {n: getattr(mt5, n) for n in constants.__all__}
    assert ours == real.constants
    for name, value in real.constants.items():
        assert type(getattr(mt5, name)) is int and getattr(mt5, name) == value, name


def test_functions(real: Surface) -> None:
    assert set(real.functions) == EXPOSED_CALLS
    for name in (*real.functions, *real.python_functions):
        assert callable(getattr(mt5, name)), name


def test_record_types_and_field_order(real: Surface) -> None:
    assert set(real.records) == set(mt5types.RECORD_TYPES)
    for name, fields in real.records.items():
        cls = getattr(mt5, name)
        assert cls is mt5types.RECORD_TYPES[name]
        assert tuple(cls._fields) == fields, name
    assert len(real.records["SymbolInfo"]) == 96


def test_nothing_beyond_the_real_surface(real: Surface) -> None:
    expected = (
        set(real.constants)
        | set(real.functions)
        | set(real.python_functions)
        | set(real.records)
        | EXTRA
    )
    assert _public(mt5) == expected


def test_a_changed_wheel_is_a_difference(tmp_path: Path) -> None:
    """The comparison is not vacuous: a wheel with one value changed and one constant added
    reads differently, and so would fail test_constants_and_values."""
    wheel = fetch_wheel()
    changed = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(changed, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "MetaTrader5/__init__.py":
                text = data.decode("utf-8").replace("TIMEFRAME_H1 ", "TIMEFRAME_H1 = 2 #", 1)
                data = (text + "\nNEW_CONSTANT = 7\n").encode("utf-8")
            dst.writestr(info, data)
    other = read_surface(changed)
    ours = {n: getattr(mt5, n) for n in constants.__all__}
    assert other.constants != ours
    assert other.constants["TIMEFRAME_H1"] == 2 and "NEW_CONSTANT" in other.constants
