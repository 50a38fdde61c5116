"""A large synthetic KB for timing: the demo KB's sections repeated with other model numbers and
sentences mixed between copies, so terms keep a realistic spread of rarity. Not for quality figures."""
from __future__ import annotations

import random
import re
from pathlib import Path


def write_big_kb(source: Path, target: Path, copies: int, seed: int = 5) -> Path:
    rng = random.Random(seed)
    text = source.read_text(encoding="utf-8")
    sections = re.split(r"(?m)^(?==== )", text)
    sections = [s for s in sections if s.startswith("===")]
    sentences = [s for sec in sections for s in re.split(r"(?<=[.!?])\s+", sec.split("\n", 1)[1]) if len(s) > 30]
    out = [text]
    for k in range(copies):
        for sec in sections:
            title, body = sec.split("\n", 1)
            body = re.sub(r"\b(\d{2,4})\b", lambda m: str(int(m.group(1)) + rng.randint(1, 9) * (k + 1)), body)
            extra = " ".join(rng.sample(sentences, 2))
            out.append(f"{title[:-4]} — выпуск {k + 1} ===\n{body.strip()} {extra}\n")
    target.write_text("\n".join(out), encoding="utf-8")
    return target
