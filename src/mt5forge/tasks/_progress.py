"""The one rich rendering of :class:`mt5forge.progress.Progress`: a bar per unit of work that
counts (build steps, downloaded bytes), a spinner line for the rest, and notes printed above."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from mt5forge.progress import Unit


class _Amount(ProgressColumn):
    """Bytes for downloads, M/N for steps, nothing for status lines."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()
        self._speed = TransferSpeedColumn()
        self._steps = MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "steps")
        if unit == "bytes":
            return Text.assemble(self._bytes.render(task), " ", self._speed.render(task))
        if unit == "steps" and task.total:
            return self._steps.render(task)
        return Text("")


class RichProgress:
    """Implements mt5forge.progress.Progress on a rich console; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _Amount(),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the report below says what each unit of work ended with
        )
        self.tasks: dict[str, TaskID] = {}
        self.labels: dict[str, str] = {}

    def __enter__(self) -> RichProgress:
        self.bars.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bars.__exit__(exc_type, exc, tb)

    def start(
        self,
        key: str,
        label: str,
        *,
        total: int | None = None,
        unit: Unit = "steps",
        completed: int = 0,
    ) -> None:
        self.labels[key] = label
        if key in self.tasks:
            self.bars.reset(self.tasks[key], total=total, completed=completed, description=label)
        else:
            self.tasks[key] = self.bars.add_task(label, total=total, completed=completed, unit=unit)

    def step(
        self,
        key: str,
        *,
        message: str | None = None,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> None:
        if key in self.tasks:
            task_id = self.tasks[key]
            if total is not None:
                self.bars.update(task_id, total=total)
            if completed is not None:
                self.bars.update(task_id, completed=completed)
            if advance:
                self.bars.advance(task_id, advance)
            if message is not None:
                self.bars.update(task_id, description=message)
        if note:
            self.bars.console.print(Text(f"  {note}"))

    def finish(self, key: str, status: str) -> None:
        if key in self.tasks:
            label = self.labels.get(key, key)
            self.bars.update(self.tasks[key], description=f"{label} ({status})")
            self.bars.stop_task(self.tasks[key])
            self.bars.console.print(Text(f"{label}: {status}"))

    def warn(self, message: str) -> None:
        self.bars.console.print(Text(f"warning: {message}", style="yellow"))
