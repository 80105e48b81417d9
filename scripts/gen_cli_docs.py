"""Write docs/cli/<command>.md from the CLI's own argparse help, so the pages cannot drift from the code.

    python scripts/gen_cli_docs.py
"""
import argparse
import contextlib
import io
import os
from pathlib import Path

from napari_microcomp.cli import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli"


def pages() -> dict:
    """{relative path: text} of every page, at a fixed 80-column width (argparse reads $COLUMNS)."""
    os.environ["COLUMNS"] = "80"
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    index = ["# `microcomp` command line", "",
             "Every command prints one clear line and exits with status 2 on bad input; `--verbose` shows "
             "tracebacks.", "", "| command | what it does |", "|---|---|"]
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, p in sub.choices.items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            p.print_help()
        out[f"cli/{name}.md"] = (f"# `microcomp {name}`\n\n{helps.get(name, '')}\n\n```text\n"
                                 f"{buf.getvalue().rstrip()}\n```\n")
        index.append(f"| [`{name}`](cli/{name}.md) | {helps.get(name, '')} |")
    out["cli.md"] = "\n".join(index) + "\n"
    return out


def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    for rel, text in pages().items():
        (DOCS.parent / rel).write_text(text)
    print(f"wrote {len(pages()) - 1} pages to {DOCS}")


if __name__ == "__main__":
    main()
