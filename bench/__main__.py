"""`make bench`: runs each benchmark section, prints its figures, writes BENCHMARKS.md.

A section is a module in this package with `TITLE` and `run() -> str` (Markdown).
`python -m bench retrieval load` runs only the named sections.
"""
import importlib
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

SECTIONS = ["retrieval", "train_gate", "dialogue", "other_kbs", "llm_reach", "load", "bigkb", "admin_search", "replay", "faults"]
OUT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def main(argv):
    if argv[:1] == ["train-gate"]:  # not a section: trains the offline gate's model
        from .train_gate import main as train

        return train(argv[1:])
    chosen = argv or SECTIONS
    parts = []
    for name in chosen:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"[bench] section {name}: not written yet, skipped", flush=True)
                continue
            raise
        print(f"\n=== {module.TITLE} ===", flush=True)
        started = time.monotonic()
        saved_env = dict(os.environ)
        try:
            body = module.run()
        finally:  # a section may set variables for the servers it starts: the next one sees make bench's
            os.environ.clear()
            os.environ.update(saved_env)
        print(body, flush=True)
        parts.append(f"## {module.TITLE}\n\n{body.strip()}\n\n_Section time: {time.monotonic() - started:.0f} s._\n")
    now = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    stamp = f"- Run at: {now}\n"
    if argv and OUT.exists():
        # A partial run replaces only its own sections, and says so: the others keep the whole run's time.
        old = OUT.read_text(encoding="utf-8")
        parts = _merge(old, parts)
        earlier = re.findall(r"^- (?:Run at|Rerun alone at): .*$", old, re.M)
        if earlier:
            stamp = "".join(line + "\n" for line in earlier) + f"- Rerun alone at: {now}: {', '.join(chosen)}\n"
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m bench`); every figure below comes from its last run.\n\n"
        f"{stamp}"
        f"- Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{_cpus()} CPUs\n\n"
    )
    OUT.write_text(header + "\n".join(parts), encoding="utf-8")
    print(f"\n[bench] written {OUT}")


def _cpus():
    import os

    return os.cpu_count()


def _merge(old: str, new_parts: list[str]) -> list[str]:
    sections = {}
    order = []
    for chunk in old.split("\n## ")[1:]:
        title = chunk.split("\n", 1)[0].strip()
        sections[title] = "## " + chunk.rstrip() + "\n"
        order.append(title)
    for part in new_parts:
        title = part.split("\n", 1)[0][3:].strip()
        if title not in sections:
            order.append(title)
        sections[title] = part
    return [sections[t] for t in order]


if __name__ == "__main__":
    main(sys.argv[1:])
