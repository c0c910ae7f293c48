"""Named pause points, so crash tests can SIGKILL a real `adaptcommand` process at a known moment.

Test-only and inert by default. With `ADAPTCOMMAND_TEST_PAUSE_AT=<point>[:<n>]` and
`ADAPTCOMMAND_TEST_PAUSE_MARKER=<file>` in its environment, a process that reaches `<point>` for
the n-th time (default 1) writes its pid to the marker file and sleeps until it is killed; the
test waits for the marker, sends SIGKILL, reruns the command and compares the outputs. Points:

- `train.step`: inside a training step, after backward and before the optimizer step;
- `train.checkpoint`: inside an epoch checkpoint's temp directory, its files written, before
  the rename that publishes it;
- `train.save`: likewise inside a finished adapter's temp directory;
- `eval.predict`: after a prediction line is appended to predictions.jsonl.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

PAUSE_AT = "ADAPTCOMMAND_TEST_PAUSE_AT"
PAUSE_MARKER = "ADAPTCOMMAND_TEST_PAUSE_MARKER"
_reached: Counter[str] = Counter()


def pause_point(name: str) -> None:
    """Sleep forever here if the environment names this point (see module doc)."""
    wanted = os.environ.get(PAUSE_AT)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] != int(nth or 1):
        return
    Path(os.environ[PAUSE_MARKER]).write_text(str(os.getpid()), encoding="utf-8")
    while True:
        time.sleep(3600)
