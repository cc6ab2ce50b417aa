"""MetaTrader 5's own journal, followed into the structured logs.

The terminal writes its journal to ``logs/YYYYMMDD.log`` and the experts' journal to
``MQL5/Logs/YYYYMMDD.log`` under its data folder (the terminal's directory in /portable mode),
in UTF-16 with one tab-separated entry per line. The bridge runs beside the terminal, so it
follows those files here and writes each entry as a mt5bridge.jsonlog record (component ``mt5``,
event ``journal``), redacted like every other line: a journal names the account in full
("'12345678': authorization on ... failed"), which the redaction masks.

The directories may not exist (the fixture profile's stand-in terminal writes none, and a real
terminal makes them only once it runs): they are looked for again on every pass. Where each
file was read to is kept in ``.journal-offsets.json`` beside the logs, so a restarted bridge
neither repeats nor skips entries. A pass reads at most `max_read` bytes of one file, so a
huge journal is followed over several passes instead of held in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path, PureWindowsPath
from typing import Final

log = logging.getLogger(__name__)

OFFSETS: Final = ".journal-offsets.json"
_BOM = b"\xff\xfe"


def journal_dirs(terminal_path: str) -> list[Path]:
    """The journal directories of the terminal at `terminal_path` (its .exe)."""
    exe = PureWindowsPath(terminal_path) if "\\" in terminal_path else Path(terminal_path)
    home = Path(str(exe.parent))
    return [home / "logs", home / "MQL5" / "Logs"]


class JournalFollower:
    """Reads new journal entries and logs them to `sink` (see the module docstring)."""

    def __init__(
        self, dirs: list[Path], state_dir: Path, sink: logging.Logger, *, max_read: int = 1 << 20
    ) -> None:
        self.dirs = dirs
        self.sink = sink
        self.max_read = max_read
        self._state = state_dir / OFFSETS
        self._offsets: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self._state.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._offsets = {k: v for k, v in loaded.items() if type(v) is int and v >= 0}

    def files(self) -> list[Path]:
        found: list[Path] = []
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.extend(sorted(p for p in d.iterdir() if p.suffix.lower() == ".log"))
        return found[-64:]

    def poll(self) -> int:
        """One pass over every journal file; the number of entries logged."""
        count = 0
        changed = False
        for path in self.files():
            key = str(path)
            offset = self._offsets.get(key, 0)
            try:
                size = path.stat().st_size
                if size < offset:  # a new file under an old name: from its start
                    offset = 0
                if size == offset:
                    continue
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read(self.max_read)
            except OSError:
                continue
            if offset == 0 and data.startswith(_BOM):
                data, offset = data[2:], 2
            text = data[: len(data) // 2 * 2].decode("utf-16-le", errors="replace")
            end = text.rfind("\n")
            if end < 0:
                if len(data) < self.max_read:
                    continue  # an entry still being written
                end = len(text) - 1  # one entry longer than a pass reads: take it cut
            for entry in text[: end + 1].splitlines():
                if entry.strip():
                    self._emit(path, entry)
                    count += 1
            self._offsets[key] = offset + len(text[: end + 1].encode("utf-16-le"))
            changed = True
        if changed:
            self._save()
        return count

    def _emit(self, path: Path, entry: str) -> None:
        parts = entry.split("\t")
        fields = {"file": f"{path.parent.name}/{path.name}"}
        if len(parts) >= 5:
            fields.update(code=parts[0], kind=parts[1], at=parts[2], source=parts[3])
            message = "\t".join(parts[4:])
        else:
            message = entry
        self.sink.info("%s", message, extra={"event": "journal", "fields": fields})

    def _save(self) -> None:
        tmp = self._state.with_name(OFFSETS + ".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self._offsets), encoding="utf-8")
            tmp.replace(self._state)

    def run(self, stop: threading.Event, interval: float = 2.0) -> None:
        while not stop.wait(interval):
            try:
                self.poll()
            except Exception:  # the journal is a side show: the bridge goes on
                log.exception("following MetaTrader 5's journal failed; trying again")
