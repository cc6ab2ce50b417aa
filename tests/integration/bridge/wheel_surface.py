"""The real MetaTrader5 package's surface, read from its pinned wheel without running any of it.

The wheel is win_amd64 only, so it cannot be imported here. Its `__init__.py` defines the
constants, `__author__`, `__version__` and the Buy/Sell/Close helpers in Python (read with `ast`,
never executed); its `_core` extension defines the functions (a PyMethodDef table) and the
record types (PyStructSequence descriptions: name, doc, field table). Those tables are static
data in the PE file's sections, holding absolute pointers to C strings, so a few lines of PE
parsing turn them back into names and field lists.

The wheel comes from PyPI with pip --require-hashes and the sha256 of
manifests/wheels-win_amd64.txt, cached (keyed by that sha256) beside the fixture kit's PyPI
cache, and re-hashed on every use.
"""

from __future__ import annotations

import ast
import hashlib
import re
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mt5forge.fixtures.pypi import default_cache_dir
from mt5forge.tools.run import call

REPO = Path(__file__).resolve().parents[3]
PINS = REPO / "manifests" / "wheels-win_amd64.txt"
MAX_MEMBER = 16 * 1024 * 1024  # the extension is ~110 kB; refuse anything absurd


@dataclass(frozen=True)
class Surface:
    version: str
    author: str
    constants: dict[str, int]
    python_functions: tuple[str, ...]  # defined in __init__.py (public ones)
    functions: tuple[str, ...]  # _core's method table, in order
    records: dict[str, tuple[str, ...]]  # struct sequence name -> fields in order


def pinned() -> tuple[str, str]:
    """(version, sha256) of MetaTrader5 in the Windows wheel pins."""
    text = PINS.read_text(encoding="utf-8").replace("\\\n", " ")
    m = re.search(r"^metatrader5==(\S+)\s+--hash=sha256:([0-9a-f]{64})", text, re.M | re.I)
    if m is None:
        raise AssertionError(f"{PINS} pins no metatrader5 with a sha256")
    return m.group(1), m.group(2)


def fetch_wheel(cache: Path | None = None) -> Path:
    version, sha = pinned()
    where = (cache or default_cache_dir().parent / "wheels") / sha
    for p in where.glob("*.whl") if where.is_dir() else ():
        if hashlib.sha256(p.read_bytes()).hexdigest() == sha:
            return p
        p.unlink()
    where.mkdir(parents=True, exist_ok=True)
    req = where / "requirements.txt"
    req.write_text(f"metatrader5=={version} --hash=sha256:{sha}\n", encoding="utf-8")
    call(sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
         "--no-deps", "--only-binary=:all:", "--require-hashes", "--platform", "win_amd64",
         "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
         "-d", where, "-r", req, timeout=600)  # fmt: skip
    (wheel,) = where.glob("*.whl")
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != sha:
        wheel.unlink()
        raise AssertionError("the downloaded MetaTrader5 wheel does not match its pin")
    return wheel


def _value(node: ast.expr) -> int | str:
    """The value of a constant expression as the wheel writes them (1 | 0x4000, -1, 'text')."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _value(node.operand)
        assert isinstance(v, int)
        return -v
    if isinstance(node, ast.BinOp):
        a, b = _value(node.left), _value(node.right)
        assert isinstance(a, int) and isinstance(b, int)
        ops = {ast.BitOr: a | b, ast.Add: a + b, ast.LShift: a << b}
        return ops[type(node.op)]
    raise AssertionError(f"unexpected expression in the wheel: {ast.dump(node)}")


class _PE:
    """Just enough of a PE32+ file: sections, and C strings at virtual addresses."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        assert data[pe : pe + 4] == b"PE\0\0", "not a PE file"
        count, opt_size = (
            struct.unpack_from("<H", data, pe + 6)[0],
            struct.unpack_from("<H", data, pe + 20)[0],
        )
        opt = pe + 24
        assert struct.unpack_from("<H", data, opt)[0] == 0x20B, "not PE32+"
        self.base = struct.unpack_from("<Q", data, opt + 24)[0]
        self.sections = []
        for i in range(count):
            off = opt + opt_size + 40 * i
            vsize, va, rsize, raw = struct.unpack_from("<IIII", data, off + 8)
            self.sections.append((va, max(vsize, rsize), raw, rsize))

    def offset(self, address: int) -> int:
        rva = address - self.base
        for va, size, raw, rsize in self.sections:
            if va <= rva < va + size and rva - va < rsize:
                return raw + rva - va
        raise AssertionError(f"address {address:#x} is in no section")

    def address(self, offset: int) -> int:
        for va, _size, raw, rsize in self.sections:
            if raw <= offset < raw + rsize:
                return self.base + va + offset - raw
        raise AssertionError(f"offset {offset:#x} is in no section")

    def cstr(self, address: int) -> str:
        start = self.offset(address)
        return self.data[start : self.data.index(b"\0", start)].decode("ascii")

    def pointers_to(self, text: str) -> list[int]:
        """File offsets of 8-byte-aligned pointers to the C string `text`."""
        where = self.data.find(b"\0" + text.encode() + b"\0")
        assert where >= 0, f"{text!r} not in the extension"
        needle = struct.pack("<Q", self.address(where + 1))
        return [i for i in range(0, len(self.data) - 7, 8) if self.data[i : i + 8] == needle]


def _method_table(pe: _PE, first: str) -> tuple[str, ...]:
    (at,) = pe.pointers_to(first)  # PyMethodDef: name, function, flags (int + pad), doc
    names = []
    while True:
        name = struct.unpack_from("<Q", pe.data, at)[0]
        if name == 0:
            return tuple(names)
        names.append(pe.cstr(name))
        at += 32


def _struct_sequences(pe: _PE) -> dict[str, tuple[str, ...]]:
    """Every PyStructSequence_Desc (name, doc, fields, n_in_sequence) in the extension: found
    as a pointer to a name followed by a pointer to a doc and one to a field table."""
    records: dict[str, tuple[str, ...]] = {}
    text = pe.data.decode("latin-1")
    for m in re.finditer(r"\0([A-Z][A-Za-z]+)\0", text):
        name = m.group(1)
        try:
            candidates = pe.pointers_to(name)
        except AssertionError:  # a string in the headers, not in a section
            continue
        for at in candidates:
            _, doc, fields, n = struct.unpack_from("<QQQi", pe.data, at)
            try:
                if not pe.cstr(doc).startswith(("This is a structure", "Trade ", "order_")):
                    continue
                names, f = [], pe.offset(fields)
            except (AssertionError, ValueError, struct.error):
                continue
            while (field := struct.unpack_from("<Q", pe.data, f)[0]) != 0:
                names.append(pe.cstr(field))
                f += 16
            assert len(names) == n, name
            records[name] = tuple(names)
    return records


def read_surface(wheel: Path) -> Surface:
    with zipfile.ZipFile(wheel) as z:
        init_info = z.getinfo("MetaTrader5/__init__.py")
        core_info = next(i for i in z.infolist() if i.filename.startswith("MetaTrader5/_core."))
        for info in (init_info, core_info):
            assert info.file_size < MAX_MEMBER, info.filename
        init = z.read(init_info).decode("utf-8")
        core = z.read(core_info)
    tree = ast.parse(init)
    assigned: dict[str, int | str] = {}
    functions = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            assert isinstance(target, ast.Name)
            assigned[target.id] = _value(node.value)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            functions.append(node.name)
    pe = _PE(core)
    constants = {k: v for k, v in assigned.items() if not k.startswith("_")}
    assert all(isinstance(v, int) for v in constants.values())
    return Surface(
        version=str(assigned["__version__"]),
        author=str(assigned["__author__"]),
        constants={k: int(v) for k, v in constants.items()},
        python_functions=tuple(functions),
        functions=_method_table(pe, "initialize"),
        records=_struct_sequences(pe),
    )
