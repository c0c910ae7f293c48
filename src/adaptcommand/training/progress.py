"""The live progress line of a training run: adapters done, current loss, tokens/s, ETA.

Completion is counted in adapters, advanced fractionally by each adapter's share of its planned
steps, so the ETA moves smoothly even when an adapter takes minutes.
"""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from adaptcommand.training.engine import StepReport


class TrainingProgress:
    """A rich progress bar over `total` adapters, `done` of which were finished before."""

    def __init__(self, total: int, done: int, enabled: bool = True) -> None:
        self.done = done
        self.partial: dict[str, float] = {}
        self.tokens = 0
        self.seconds = 0.0
        self.bar = Progress(
            TextColumn("[bold]training"), BarColumn(),
            TextColumn("{task.fields[done]}/{task.total:.0f} adapters"),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeRemainingColumn(), disable=not enabled,
        )
        self.task = self.bar.add_task("training", total=total, completed=done, done=done,
                                      loss="-", tps="-")

    def __enter__(self) -> TrainingProgress:
        self.bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.stop()

    def step(self, report: StepReport) -> None:
        self.partial.update(report.progress)
        self.tokens += report.tokens
        self.seconds += report.seconds
        mean_loss = sum(report.losses.values()) / len(report.losses)
        self._refresh(loss=f"{mean_loss:.3f}", tps=f"{self.tokens / self.seconds:.0f}")

    def set_done(self, done: int, finished: list[str] | None = None) -> None:
        """`done` adapters are finished; `finished` ones no longer count as partial."""
        self.done = done
        for name in finished or []:
            self.partial.pop(name, None)
        self._refresh()

    def _refresh(self, **fields: str) -> None:
        self.bar.update(self.task, completed=self.done + sum(self.partial.values()),
                        done=self.done, **fields)
