"""The log exporter: a redacted copy of the log volumes in one directory (the host's ./export).

    python3 -m mt5bridge.logexport --from terminal=/logs/terminal --from bot=/logs/bot \\
        --to /export [--interval 5] [--once]

The compose files run it as the `log-export` service, the only container that mounts ./export
(read-write); it mounts the log volumes read-only, and the writers (terminal, bot) never see
./export. Every line of every ``*.jsonl`` file (and its rotated ``.N`` copies) is copied to
``<to>/<name>/<file>`` after one more pass through mt5bridge.redact, with the secrets this
process is given at run time (MT5_PASSWORD, MT5_VNC_PASSWORD and the account MT5_LOGIN, or
their *_FILE secrets): the writers redact already, this pass is what makes "no secret in
./export" hold for a line a writer got wrong, or for a line the bot's user wrote into its own
log volume by hand. A line that is not a mt5bridge.jsonlog record is exported as an
``unparsed`` record holding the line, redacted and cut, never as it came.

A file that only grew since the last pass has its new whole lines appended to its copy (one
write); any other change (a new file, a rotation, a rewrite) exports it again into a temporary
file renamed over the old copy. Either way a reader of ./export never sees half a line, and
a line still being written waits for its end. A copy whose source is gone is removed. At most
`max_file` bytes of a source are read (its end), so a writer that ignores its rotation cap
cannot make the exporter read without bound.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from mt5bridge import jsonlog
from mt5bridge.envsecrets import SettingError, read_setting
from mt5bridge.redact import Redactor, escape

log = logging.getLogger("mt5bridge.logexport")

SECRET_SETTINGS: Final = ("MT5_PASSWORD", "MT5_VNC_PASSWORD")
MAX_FILE: Final = 64 << 20
_LINE_CAP = 4 * jsonlog.MAX_LINE


def redactor_from_env(environ: dict[str, str] | None = None) -> Redactor:
    """The redactor for the secrets and account this process is given (see the docstring)."""
    env = dict(os.environ if environ is None else environ)
    secrets = [v for n in SECRET_SETTINGS if (v := read_setting(n, env))]
    login = read_setting("MT5_LOGIN", env)
    accounts = [int(login)] if login and login.isdigit() else []
    return Redactor(secrets, accounts)


def export_line(text: str, source: str, redact: Callable[[str], str]) -> str:
    """One exported line: the record redacted field by field, or an ``unparsed`` record."""
    record = jsonlog.parse(text)
    if record is None:
        return jsonlog.line(
            source, "WARNING", "unparsed", {"line": escape(redact(text), 2000)}, redact=redact
        )
    fields: dict[str, Any] = record["fields"]
    out = jsonlog.line(
        record["component"], record["level"], record["event"], fields, redact=redact,
        time=escape(record["time"], 40),
    )  # fmt: skip
    # Belt and braces: the line as text once more (a secret JSON-escaped across two fields).
    again = redact(out)
    if again != out:
        parsed = jsonlog.parse(again)
        return again if parsed is not None else jsonlog.line(
            source, "WARNING", "unparsed", {"line": "[withheld: a secret spanned its fields]"},
            redact=redact,
        )  # fmt: skip
    return out


def _sources(root: Path) -> list[Path]:
    with contextlib.suppress(OSError):
        return sorted(
            p for p in root.iterdir()
            if p.is_file() and (p.suffix == ".jsonl" or ".jsonl." in p.name)
        )  # fmt: skip
    return []


class Exporter:
    """Keeps `to` a redacted copy of each `name=dir` source (see the module docstring)."""

    def __init__(
        self,
        sources: Iterable[tuple[str, Path]],
        to: Path,
        redact: Callable[[str], str],
        *,
        max_file: int = MAX_FILE,
    ) -> None:
        self.sources = list(sources)
        self.to = to
        self.redact = redact
        self.max_file = max_file
        self._seen: dict[Path, tuple[int, int, int]] = {}
        self._done: dict[Path, tuple[int, int]] = {}  # inode, bytes exported (whole lines)

    def _lines(self, name: str, data: bytes) -> str:
        out = []
        for text in data.decode("utf-8", errors="replace").splitlines():
            if text.strip():
                out.append(export_line(text[:_LINE_CAP], name, self.redact) + "\n")
        return "".join(out)

    def export_file(self, name: str, path: Path, dest: Path) -> None:
        """Bring `dest` up to date with `path`'s whole lines: the new ones appended when the
        file only grew since the last pass (one write), else the file again (its last
        `max_file` bytes) into a temporary file renamed over `dest`."""
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())
            done = self._done.get(path)
            grown = st.st_size - done[1] if done is not None else -1
            if done and done[0] == st.st_ino and 0 <= grown <= self.max_file and dest.exists():
                handle.seek(done[1])
                data = handle.read(grown)
                whole = data.rfind(b"\n") + 1
                if whole:
                    with dest.open("a", encoding="utf-8") as out:
                        out.write(self._lines(name, data[:whole]))
                self._done[path] = (st.st_ino, done[1] + whole)
                return
            begin = max(0, st.st_size - self.max_file)
            handle.seek(begin)
            data = handle.read(st.st_size - begin)
        if begin:  # from the first whole line
            skip = data.find(b"\n") + 1
            data, begin = data[skip:], begin + skip
        whole = data.rfind(b"\n") + 1
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text(self._lines(name, data[:whole]), encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(dest)
        self._done[path] = (st.st_ino, begin + whole)

    def pass_once(self) -> int:
        """One pass; the number of files exported."""
        exported = 0
        for name, root in self.sources:
            target = self.to / name
            target.mkdir(parents=True, exist_ok=True)
            present = set()
            for path in _sources(root):
                dest = target / path.name
                present.add(dest.name)
                try:
                    st = path.stat()
                    key = (st.st_size, st.st_mtime_ns, st.st_ino)
                    if self._seen.get(path) == key and dest.exists():
                        continue
                    self.export_file(name, path, dest)
                except OSError as exc:
                    log.warning("cannot export %s: %s", path, exc)
                    continue
                self._seen[path] = key
                exported += 1
            for stale in target.iterdir():
                if stale.is_file() and stale.name not in present and not stale.name.startswith("."):
                    with contextlib.suppress(OSError):
                        stale.unlink()
        return exported


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mt5bridge-logexport", description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="sources", action="append", required=True,
                   metavar="NAME=DIR", help="a log directory, exported under NAME")  # fmt: skip
    p.add_argument("--to", required=True, help="the export directory (./export)")
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--max-file", type=int, default=MAX_FILE)
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    sources = []
    for item in args.sources:
        name, sep, where = item.partition("=")
        if not sep or not name or "/" in name or name.startswith("."):
            log.error("--from expects NAME=DIR with a plain NAME, got %r", item)
            return 2
        sources.append((name, Path(where)))
    try:
        redact = redactor_from_env()
    except SettingError as exc:
        log.error("%s", exc)
        return 2
    exporter = Exporter(sources, Path(args.to), redact, max_file=args.max_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("exporting %s to %s every %g s", ", ".join(n for n, _ in sources), args.to,
             args.interval)  # fmt: skip
    while True:
        started = time.monotonic()
        try:
            exporter.pass_once()
        except OSError as exc:  # the export directory went away or filled up: said, retried
            log.warning("export pass failed: %s", exc)
        if args.once or stop.wait(max(0.0, args.interval - (time.monotonic() - started))):
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
