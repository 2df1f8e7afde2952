"""charpipe against the book's recipe, side by side, on this machine.

    python -m benchmarks.run [--quick] [--repeats N] [--only train,generate,...]
                             [--json PATH]

Each figure is measured for charpipe and for the baseline (`benchmarks.baseline`,
the book's recipe written again here) alternately within one run, so both
see the same load; the table shows the median of the repeats and the ratio
charpipe / baseline (higher is better for rates, lower for times and memory).
The machine's CPU count and load average are recorded with the results,
because on shared cores absolute numbers move with the neighbours' work.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SECTIONS = ("train", "generate", "data", "orchestration")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get(
        "CHARPIPE_CORPUS", CORPUS)), help="tiny Shakespeare (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: checks that every part runs, in seconds")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--repeats", type=int, help="runs per figure (default 3, quick 1)")
    p.add_argument("--train-batches", type=int,
                   help="timed batches per training run (default: one whole epoch)")
    p.add_argument("--warmup-batches", type=int, default=5,
                   help="batches run before timing starts (default 5)")
    p.add_argument("--gen-chars", type=int, default=1000,
                   help="characters per charpipe sample (default 1000)")
    p.add_argument("--baseline-gen-chars", type=int, default=50,
                   help="characters the baseline generates (default 50; each costs "
                        "a pass over the whole text, so 1000 takes minutes)")
    p.add_argument("--big-mb", type=int, default=1024,
                   help="size of the generated corpus in MB (default 1024)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def machine() -> dict:
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0], "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def figure(name: str, unit: str, better: str, ours: list, theirs: list | None,
           baseline: str = "book's recipe", note: str = "", **extra) -> dict:
    """One row: both sides' runs, their medians and the ratio ours / theirs."""
    row = {"name": name, "unit": unit, "better": better, "baseline": baseline,
           "charpipe": {"runs": ours, "median": statistics.median(ours)},
           "note": note, **extra}
    if theirs:
        row["reference"] = {"runs": theirs, "median": statistics.median(theirs)}
        row["ratio"] = row["charpipe"]["median"] / row["reference"]["median"]
    else:
        row["reference"], row["ratio"] = None, None
    return row


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        _parser().error(f"unknown section(s) {unknown}; choose among {SECTIONS}")
    if not args.corpus.is_file():
        _parser().error(f"no corpus at {args.corpus}; pass --corpus or set "
                        "CHARPIPE_CORPUS to a copy of tiny Shakespeare")
    args.repeats = args.repeats or (1 if args.quick else 3)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from benchmarks import sections as parts

    results = {"machine_start": machine(), "quick": args.quick,
               "repeats": args.repeats, "figures": []}
    for section in sections:
        started = time.perf_counter()
        rows = getattr(parts, section)(args)
        for row in rows:
            row["section"] = section
        results["figures"] += rows
        print(f"[{section}: {time.perf_counter() - started:.0f} s, load "
              f"{os.getloadavg()[0]:.2f}]", file=sys.stderr, flush=True)
    results["machine_end"] = machine()

    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        scratch = args.json.with_name(f".{args.json.name}.tmp")
        scratch.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(scratch, args.json)
    return 0


def _fmt(value) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(results: dict) -> str:
    start, end = results["machine_start"], results["machine_end"]
    lines = [f"{start['cpus']} CPUs; load average {start['loadavg']} at start, "
             f"{end['loadavg']} at end; median of {results['repeats']} run(s)", "",
             f"| figure | unit | charpipe | baseline | ratio | target |",
             "|---|---|---:|---:|---:|---|"]
    for row in results["figures"]:
        ref = row["reference"]["median"] if row["reference"] else None
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        target = row.get("target", "")
        if "met" in row:
            target += " (met)" if row["met"] else " (MISSED)"
        lines.append(f"| {row['name']} | {row['unit']} | {_fmt(row['charpipe']['median'])} "
                     f"| {_fmt(ref)} | {ratio} | {target} |")
    notes = [f"- {row['name']}: {row['note']}" for row in results["figures"] if row["note"]]
    return "\n".join(lines + ([""] + notes if notes else []))


if __name__ == "__main__":
    sys.exit(main())
