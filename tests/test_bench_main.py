"""`python -m bench <section>` reruns one section of BENCHMARKS.md: the other sections keep their figures and the
header keeps the whole run's time, with a line naming what was rerun alone and when."""
import bench.__main__ as bench_main

BEFORE = """# Benchmarks

Written by `make bench` (`python -m bench`); every figure below comes from its last run.

- Run at: 2026-01-02 03:04 UTC
- Machine: x86_64, CPython 3.11.7, 2 CPUs

## First section

figures one

## Second section

figures two
"""


def test_a_partial_run_keeps_the_whole_runs_time_and_says_what_was_rerun(tmp_path, monkeypatch, capsys):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(BEFORE, encoding="utf-8")
    monkeypatch.setattr(bench_main, "OUT", out)
    bench_main.main(["no_such_section"])  # skipped: no section module, the file is rewritten all the same
    bench_main.main(["another_one"])
    text = out.read_text(encoding="utf-8")
    assert "- Run at: 2026-01-02 03:04 UTC\n" in text
    reruns = [line for line in text.splitlines() if line.startswith("- Rerun alone at: ")]
    assert [line.rsplit(": ", 1)[1] for line in reruns] == ["no_such_section", "another_one"]
    assert "figures one" in text and "figures two" in text
