"""How assistant replies answer their user turn: real sample vs synthetic corpora vs model replies.

    PYTHONPATH=src .venv/bin/python benchmarks/synth_reply_style.py \
        --synth runs/synth_yardstick/raw/sessions.jsonl \
        --predictions runs/synth_yardstick/real_unified/predictions.jsonl

Every assistant turn is read with the action extractor next to the user turn before it. Rows:
the real sample (`--real`, its first five messages per user), each `--synth` sessions.jsonl
(every message), and each `--predictions` file of `eval`/`baseline` on the real sample (the
model's reply in place of the real one). Columns: replies, words per reply, setting values per
reply; after a user turn that states values, the share of replies applying a setting and of
replies that only ask; the share opening with an acknowledgement ('Sure.', 'Got it.') among
applying replies and among asking-only replies. Built for issue 14's yardstick diagnosis.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.fileio import read_jsonl

REAL = Path("data/edgewisepersona_sample/cold_start_dev.jsonl")
ACK = re.compile(r"^(?:sure|of course|certainly|got it|understood|absolutely|no problem|okay|"
                 r"right away|will do|alright|as you wish|you got it)\b", re.IGNORECASE)
Turn = tuple[str, str]  # (user text, assistant reply)


def _n_values(text: str) -> int:
    return sum(len(params) for params in extract_actions(text).values())


def _pairs(messages: list[dict]) -> Iterator[Turn]:
    for before, reply in zip(messages, messages[1:], strict=False):
        if before["role"] == "user" and reply["role"] == "assistant":
            yield before["text"], reply["text"]


def real_turns(path: Path) -> list[Turn]:
    return [t for _, d in read_jsonl(path) for t in _pairs(d["messages"])]


def synth_turns(path: Path) -> list[Turn]:
    return [t for _, u in read_jsonl(path) for s in u["sessions"] for t in _pairs(s["messages"])]


def prediction_turns(path: Path, real: Path) -> list[Turn]:
    dialogues = {(d["persona_id"], d["dialogue_idx"]): d["messages"] for _, d in read_jsonl(real)}
    return [(dialogues[r["persona_id"], r["session_id"]][r["turn_index"] - 1]["text"],
             r["prediction"]) for _, r in read_jsonl(path)]


def row(name: str, turns: list[Turn]) -> str:
    stated = [(u, a) for u, a in turns
              if any(extract_actions(u, commitments_only=False).values())]
    applies = [bool(extract_actions(a)) for _, a in turns]
    asks = ["?" in a and not ap for (_, a), ap in zip(turns, applies, strict=True)]

    def share(flags: list[bool]) -> str:
        return f"{sum(flags) / len(flags):.2f} ({sum(flags)}/{len(flags)})" if flags else "n/a"

    cells = [name, str(len(turns)),
             f"{sum(len(a.split()) for _, a in turns) / len(turns):.1f}",
             f"{sum(_n_values(a) for _, a in turns) / len(turns):.2f}",
             share([bool(extract_actions(a)) for _, a in stated]),
             share(["?" in a and not extract_actions(a) for _, a in stated]),
             share([bool(ACK.match(a)) for (_, a), ap in zip(turns, applies, strict=True) if ap]),
             share([bool(ACK.match(a)) for (_, a), q in zip(turns, asks, strict=True) if q])]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--synth", type=Path, action="append", default=[])
    parser.add_argument("--predictions", type=Path, action="append", default=[])
    args = parser.parse_args()
    print("| replies of | n | words | values | applies after stated values | only asks after "
          "stated values | ack first: applying | ack first: only asking |")
    print("|---|---|---|---|---|---|---|---|")
    print(row(f"real sample ({args.real.name})", real_turns(args.real)))
    for path in args.synth:
        print(row(f"synthetic {path}", synth_turns(path)))
    for path in args.predictions:
        print(row(f"model {path}", prediction_turns(path, args.real)))


if __name__ == "__main__":
    main()
