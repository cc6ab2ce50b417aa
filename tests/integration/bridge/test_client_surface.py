"""mt5bridge.client has the real MetaTrader5 package's surface, read from the pinned wheel: the
same functions, constants with the same values, record types with the same fields in the same
order, __author__ and __version__, and nothing else but `connect`; and the last_error() texts
the bridge gives are ones compiled into the real package."""

from __future__ import annotations

import ast
import re
import types
import zipfile
from pathlib import Path

import mt5bridge
import mt5bridge.client as mt5
import pytest
from mt5bridge import constants, mt5types, terms
from mt5bridge.api import EXPOSED_CALLS
from wheel_surface import Surface, fetch_wheel, pinned, read_surface

pytestmark = pytest.mark.integration

#: What the client adds to the real surface, documented in its docstring.
EXTRA = {"connect"}


@pytest.fixture(scope="module")
def real() -> Surface:
    return read_surface(fetch_wheel())


@pytest.fixture(scope="module")
def core() -> bytes:
    """The bytes of the pinned wheel's `_core` extension."""
    with zipfile.ZipFile(fetch_wheel()) as z:
        (name,) = (n for n in z.namelist() if n.startswith("MetaTrader5/_core."))
        return z.read(name)


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


def _in_core(core: bytes, text: str) -> bool:
    """Whether `text` is a whole C string in the extension; our `%s` is a printf directive there
    (MSVC's `%S`: the reason is a wide string). A string of up to 7 characters may be compiled
    into the code instead, as the 8-byte operand of a `mov r64, imm64` ("Success" is)."""
    parts = [re.escape(part.encode("ascii")) for part in text.split("%s")]
    if re.search(b"\0" + b"%[sS]".join(parts) + b"\0", core):
        return True
    raw = text.encode("ascii")
    return (
        len(raw) < 8
        and re.search(b"[\x48\x49][\xb8-\xbf]" + re.escape(raw.ljust(8, b"\0")), core) is not None
    )


def _invalid_argument_names() -> dict[str, str]:
    """Every name mt5bridge passes to terms.invalid_argument, read from its source: a literal,
    or a loop variable over a literal table or a record type's _fields. Name -> where."""
    names: dict[str, str] = {}
    for path in sorted(Path(mt5bridge.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or _callee(call) != "invalid_argument":
                continue
            where = f"{path.name}:{call.lineno}"
            (arg,) = call.args
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names[arg.value] = where
                continue
            assert isinstance(arg, ast.Name), f"{where}: cannot read {ast.unparse(arg)}"
            found = _loop_values(arg.id, call, parents)
            assert found, f"{where}: cannot tell what {arg.id} holds; extend this reader"
            names.update(dict.fromkeys(found, where))
    return names


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _loop_values(var: str, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[str]:
    """The values `var` takes in the nearest enclosing `for` that binds it."""
    while node in parents:
        node = parents[node]
        if not isinstance(node, ast.For):
            continue
        target, it = node.target, node.iter
        if isinstance(target, ast.Name) and target.id == var:
            if isinstance(it, ast.Attribute) and it.attr == "_fields":
                assert isinstance(it.value, ast.Name)
                return list(mt5types.RECORD_TYPES[it.value.id]._fields)
            if isinstance(it, ast.Tuple | ast.List):
                return [e.value for e in it.elts if isinstance(e, ast.Constant)]
        if isinstance(target, ast.Tuple) and isinstance(it, ast.Tuple | ast.List):
            index = [getattr(e, "id", None) for e in target.elts].index(var)
            rows = [row.elts[index] for row in it.elts if isinstance(row, ast.Tuple)]
            return [cell.value for cell in rows if isinstance(cell, ast.Constant)]
    return []


def test_error_texts_are_the_real_packages(core: bytes) -> None:
    texts = {f"ERROR_TEXT[{code}]": text for code, text in terms.ERROR_TEXT.items()}
    texts |= {f"ORDINAL_ARGUMENT[{n}]": text for n, text in terms.ORDINAL_ARGUMENT.items()}
    for name in ("INVALID_ARGUMENTS", "INVALID_ARGUMENT_COUNT", "UNNAMED_NOT_ALLOWED"):
        texts[name] = getattr(terms, name)
    names = _invalid_argument_names()
    # The reader found the calls it should: literals, loop tables and TradeRequest's fields.
    assert {"symbol", "login", "password", "ticket", "group", "position_by"} <= set(names)
    for name, where in names.items():
        texts[f"invalid_argument({name!r}) at {where}"] = terms.invalid_argument(name)
    missing = {text: what for what, text in texts.items() if not _in_core(core, text)}
    assert not missing, missing


def test_the_error_text_check_sees_a_changed_text(core: bytes) -> None:
    """_in_core is not vacuous: a text off by one letter, or only part of a string, is not in."""
    assert _in_core(core, "No IPC connection")
    assert not _in_core(core, "No IPC connections")
    assert not _in_core(core, "IPC connection")
    assert _in_core(core, "IPC initialize failed, %s")
    assert not _in_core(core, "IPC initialise failed, %s")
    assert _in_core(core, "Success") and not _in_core(core, "Succes")
