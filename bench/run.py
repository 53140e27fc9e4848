"""Benchmark runner: cold start, autocomplete, lookups and /next at conference scale, beside a baseline.

    python -m bench.run --sizes 1000 10000          # what `make bench` runs
    python -m bench.run --sizes 1000 10000 100000 --json bench/out/results.json

Cold start runs in a fresh subprocess per size, so its wall time and peak RSS are the bot's own.
It is measured for our YAML and for a pretalx JSON export of the same conference (bench.generate);
the queries run on the YAML schedule. A file larger than the bot's default SCHEDULE_MAX_MB (50 MB:
the 100,000-talk YAML is 230 MB) is read with the limit raised to its size, as its operator would.
The baseline is rapidfuzz `process.extract` over raw "title authors abstract" strings with its
default scorer and processor; it runs in the same process, interleaved query by query with the
project, so the ratio survives a noisy shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {  # size -> (cold s, RSS MB, autocomplete p99 ms, lookup p99 ms, /next p99 ms)
    10_000: (1.5, 200, 5, 10, 1),
    100_000: (15, 1500, 50, 100, 1),
}
FIRST_LOAD_RSS = {10_000: 250, 100_000: 1500}  # MB: peak RSS of a first load (parse, index, prepared copy)
JSON_READY = {10_000: 1.0}  # s: a pretalx JSON export to the bot ready (first load)
FORMATS = ("yaml", "pretalx")
BASELINE_QUERIES = 60  # at 10,000 talks and below; fewer above, where one baseline call takes seconds
SPEEDUP_TARGET = 5.0


def cold_start(path: str, cache: str, max_bytes: int | None = None) -> dict[str, float]:
    """Runs inside the child: import, then what `python -m bot` does to be ready; times and peak RSS.

    With an empty cache folder this is a first load (parse, validate, index, then keep a prepared
    copy); with the copy in place it is a restart of the same file. As the bot does, a first load is
    ready (schedule and index usable) before its copy is written in a thread: `copy_s` is when that
    copy is on disk, and the peak RSS is taken after it.
    """
    t0 = time.perf_counter()
    from bot.core.cache import load_ready, wait_for_copies
    from bot.sources import MAX_BYTES

    t1 = time.perf_counter()
    load_ready(path, Path(cache), max_bytes=max(max_bytes or 0, MAX_BYTES), background=True)
    t2 = time.perf_counter()
    wait_for_copies()
    t3 = time.perf_counter()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"import_s": t1 - t0, "ready_s": t2 - t1, "copy_s": t3 - t1, "total_s": t2 - t0, "rss_mb": rss_kb / 1024}


def _child(path: Path, cache: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.run", "--cold-child", str(path), "--cache", str(cache), "--max-bytes", str(path.stat().st_size)]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def measure_cold(path: Path, repeats: int) -> dict[str, Any]:
    """A first load in a fresh interpreter, then the median of `repeats` restarts (by ready time)."""
    with tempfile.TemporaryDirectory() as cache:
        first = _child(path, Path(cache))
        runs = sorted((_child(path, Path(cache)) for _ in range(repeats)), key=lambda r: r["ready_s"])
    return {"first": first, **runs[len(runs) // 2]}


def _percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pick(p: float) -> float:
        return ordered[min(n - 1, round(p * (n - 1)))] / 1e6

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": ordered[-1] / 1e6, "n": n}


def _timed(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[int], list[Any]]:
    times, results = [], []
    clock = time.perf_counter_ns
    for item in items:
        t0 = clock()
        result = fn(item)
        times.append(clock() - t0)
        results.append(result)
    return times, results


def _safe(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """A lookup that ends in 'not found' or 'did you mean' is still an answer: time it, keep it."""
    from bot.core.errors import UserError

    def call(query: str) -> Any:
        try:
            return fn(query)
        except UserError as err:
            return err

    return call


def measure_size(talks: int, seed: int, cold_repeats: int, formats: Sequence[str] = FORMATS) -> dict[str, Any]:
    from bench.generate import ensure_schedule

    path = ensure_schedule(talks, seed)
    result: dict[str, Any] = {"talks": talks, "file": str(path.relative_to(ROOT)), "file_mb": path.stat().st_size / 2**20}
    result["cold"] = measure_cold(path, cold_repeats)
    result["formats"] = {}
    for fmt in formats:
        if fmt != "yaml":
            other = ensure_schedule(talks, seed, fmt)
            result["formats"][fmt] = {"file": str(other.relative_to(ROOT)), "file_mb": other.stat().st_size / 2**20, "cold": measure_cold(other, cold_repeats)}
    result.update(measure_queries(path))
    return result


def measure_queries(path: Path) -> dict[str, Any]:
    from rapidfuzz import process

    from bench import queries as Q
    from bot.core import answers
    from bot.core.search import SearchIndex
    from bot.sources import load_schedule

    schedule = load_schedule(path, max_bytes=None)  # the 100,000-talk file is 230 MB
    index = SearchIndex(schedule)
    now = schedule.talks[len(schedule.talks) // 2].start
    auto = Q.autocomplete_queries(schedule)
    out: dict[str, Any] = {"items": len(schedule.talks), "sessions": len(schedule.sessions), "authors": len(index.authors)}

    t, _ = _timed(lambda q: answers.suggest_talks(index, q.text, now), auto)
    out["autocomplete"] = _percentiles(t)
    out["by_kind"] = {kind: _percentiles([ns for ns, q in zip(t, auto, strict=True) if q.kind == kind]) for kind in dict.fromkeys(q.kind for q in auto)}
    t, _ = _timed(lambda q: _safe(lambda s: answers.find_talk(index, s))(q.text), Q.talk_queries(schedule))
    out["talk_lookup"] = _percentiles(t)
    t, _ = _timed(lambda q: _safe(lambda s: answers.find_author(index, s))(q.text), Q.author_queries(schedule))
    out["author_lookup"] = _percentiles(t)
    t, _ = _timed(lambda moment: answers.next_talks(schedule, moment), Q.next_instants(schedule))
    out["next"] = _percentiles(t)

    # Project and baseline on the same queries, interleaved.
    choices = [f"{t.title} {' '.join(t.authors)} {t.abstract}" for t in schedule.talks]
    wanted = BASELINE_QUERIES if len(schedule.talks) <= 20_000 else 12
    subset = auto[:: max(1, len(auto) // wanted)]
    project_ns, baseline_ns, pairs = [], [], []
    for q in subset:
        index.clear_caches()  # each project query starts cold here, as the baseline does
        t0 = time.perf_counter_ns()
        mine = answers.suggest_talks(index, q.text, now)
        t1 = time.perf_counter_ns()
        theirs = process.extract(q.text, choices, limit=25)
        t2 = time.perf_counter_ns()
        project_ns.append(t1 - t0)
        baseline_ns.append(t2 - t1)
        pairs.append((q, [s.value for s in mine], [schedule.talks[i].id for _, _, i in theirs]))
    out["subset_project"] = _percentiles(project_ns)
    out["baseline"] = _percentiles(baseline_ns)
    out["speedup_p99"] = out["baseline"]["p99_ms"] / max(out["subset_project"]["p99_ms"], 1e-9)
    out["quality"] = _quality(pairs)
    out["side_by_side"] = _side_by_side(pairs, schedule, index, choices)
    return out


def _quality(pairs: list[tuple[Any, list[str], list[str]]]) -> dict[str, Any]:
    """Share of aimed queries (typos, titles typed past 12 characters) whose talk is first / in the top 5."""
    aimed = [(q, mine, theirs) for q, mine, theirs in pairs if q.target and (q.kind == "typo" or len(q.text) >= 12)]
    n = max(1, len(aimed))
    return {
        "aimed_queries": len(aimed),
        "project_top1": sum(mine[:1] == [q.target] for q, mine, _ in aimed) / n,
        "baseline_top1": sum(theirs[:1] == [q.target] for q, _, theirs in aimed) / n,
        "project_top5": sum(q.target in mine[:5] for q, mine, _ in aimed) / n,
        "baseline_top5": sum(q.target in theirs[:5] for q, _, theirs in aimed) / n,
    }


def _side_by_side(pairs: list[tuple[Any, list[str], list[str]]], schedule: Any, index: Any, choices: list[str]) -> list[dict[str, str]]:
    from rapidfuzz import process

    from bot.core import answers

    shown: dict[str, dict[str, str]] = {}
    extra = [("author", "dokmanic"), ("abstract", "wasserstein optimal transport")]
    chosen = [(q.kind, q.text, q.target) for q, _, _ in pairs if q.kind in {"typo", "keystroke"} and len(q.text) >= 10]
    for kind, text, target in [*chosen[:4], *((k, t, "") for k, t in extra)]:
        now = schedule.talks[0].start
        mine = answers.suggest_talks(index, text, now, limit=1)
        theirs = process.extract(text, choices, limit=1)
        shown.setdefault(
            text,
            {
                "kind": kind,
                "query": text,
                "target": schedule.talk(target).title if target else "",
                "project": schedule.talk(mine[0].value).title if mine else "(nothing)",
                "baseline": schedule.talks[theirs[0][2]].title if theirs else "(nothing)",
            },
        )
    return list(shown.values())


# --------------------------------------------------------------------------- report


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _pair(d: dict[str, float]) -> str:
    return f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}"


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        f"Machine: {cpu_model()}, {_cores()} cores, Python {platform.python_version()}",
        "",
        "| talks | ready: restart (first load) | first load's copy written | peak RSS: restart (first load) | autocomplete p50 / p99 "
        "| talk lookup p50 / p99 | author lookup p50 / p99 | /next p50 / p99 | baseline autocomplete p50 / p99 | p99 speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r["cold"]
        lines.append(
            f"| {r['talks']:,} | {c['ready_s']:.2f} s ({c['first']['ready_s']:.2f} s) | {_copy(c)} | {c['rss_mb']:.0f} MB ({c['first']['rss_mb']:.0f} MB) "
            f"| {_pair(r['autocomplete'])} ms "
            f"| {_pair(r['talk_lookup'])} ms | {_pair(r['author_lookup'])} ms | {_pair(r['next'])} ms | {_pair(r['baseline'])} ms | {r['speedup_p99']:.0f}× |"
        )
        for fmt, other in r.get("formats", {}).items():
            c = other["cold"]
            lines.append(
                f"| {r['talks']:,} · {_FORMAT_NAMES.get(fmt, fmt)} | {c['ready_s']:.2f} s ({c['first']['ready_s']:.2f} s) | {_copy(c)} "
                f"| {c['rss_mb']:.0f} MB ({c['first']['rss_mb']:.0f} MB) | — | — | — | — | — | — |"
            )
    lines.append("")
    lines.append(
        "Ready = load, validate and index the schedule, as `python -m bot` does (imports excluded): the schedule and its index "
        "are usable. A first load parses the file and then keeps a prepared copy under the state folder, written in a "
        "background thread once the bot is ready (its own column: when the copy is on disk, counted from the same start); "
        "a restart of the same file reads that copy. Peak RSS includes writing the copy. "
        "Rows marked with a format are the same conference as a pretalx export (schedule.json), read with orjson."
    )
    lines.append("Speed-up: baseline p99 / project p99 over the same queries, interleaved (project p50 / p99 on them: " + _subset_note(results) + ").")
    for r in results:
        q = r["quality"]
        lines.append(
            f"Answer quality at {r['talks']:,} talks, {q['aimed_queries']} aimed queries: intended talk first "
            f"{q['project_top1']:.0%} (project) vs {q['baseline_top1']:.0%} (baseline); in the top 5 {q['project_top5']:.0%} vs {q['baseline_top5']:.0%}."
        )
    lines += ["", _targets(results), ""]
    last = results[-1]
    lines += [f"Side by side at {last['talks']:,} talks (top result):", "", "| query | project | baseline |", "|---|---|---|"]
    for row in last["side_by_side"]:
        aim = row["target"]

        def mark(title: str, aim: str = aim) -> str:
            return _cut(title, 60) + (" ✓" if aim and title == aim else (" ✗" if aim else ""))

        lines.append(f"| `{row['query']}` ({row['kind']}) | {mark(row['project'])} | {mark(row['baseline'])} |")
    return "\n".join(lines)


_FORMAT_NAMES = {"pretalx": "pretalx JSON"}


def _copy(cold: dict[str, Any]) -> str:
    first = cold["first"]
    return f"{first['copy_s']:.2f} s" if "copy_s" in first else "—"


def _subset_note(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['talks']:,}: {_pair(r['subset_project'])} ms" for r in results)


def _targets(results: list[dict[str, Any]]) -> str:
    out = ["Targets:"]
    for r in results:
        target = TARGETS.get(r["talks"])
        if not target:
            continue
        cold, rss, ac, lookup, nxt = target
        checks = [
            ("ready (restart)", r["cold"]["ready_s"], cold, "s"),
            ("ready (first load)", r["cold"]["first"]["ready_s"], cold, "s"),
            ("peak RSS (restart)", r["cold"]["rss_mb"], rss, "MB"),
            ("peak RSS (first load)", r["cold"]["first"]["rss_mb"], FIRST_LOAD_RSS.get(r["talks"], rss), "MB"),
            ("autocomplete p99", r["autocomplete"]["p99_ms"], ac, "ms"),
            ("talk lookup p99", r["talk_lookup"]["p99_ms"], lookup, "ms"),
            ("author lookup p99", r["author_lookup"]["p99_ms"], lookup, "ms"),
            ("/next p99", r["next"]["p99_ms"], nxt, "ms"),
        ]
        pretalx = r.get("formats", {}).get("pretalx")
        if pretalx and r["talks"] in JSON_READY:
            checks.append(("ready (first load, pretalx JSON)", pretalx["cold"]["first"]["ready_s"], JSON_READY[r["talks"]], "s"))
        parts = [f"{name} {value:.2f} {unit} ≤ {limit} {'ok' if value <= limit else 'MISSED'}" for name, value, limit, unit in checks]
        if r["talks"] == 10_000:
            parts.append(f"speed-up {r['speedup_p99']:.1f}× ≥ {SPEEDUP_TARGET:g}× {'ok' if r['speedup_p99'] >= SPEEDUP_TARGET else 'MISSED'}")
        out.append(f"- {r['talks']:,}: " + "; ".join(parts))
    return "\n".join(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Benchmarks at conference scale.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cold-repeats", type=int, default=3, help="fresh interpreters per size (median kept); one at 100,000 and above")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="schedule formats to time the cold start of")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here ('-' for stdout)")
    parser.add_argument("--cold-child", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--cache", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--max-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        print(json.dumps(cold_start(args.cold_child, args.cache, args.max_bytes)))
        return 0
    results = []
    for size in args.sizes:
        print(f"… {size:,} talks", file=sys.stderr, flush=True)
        results.append(measure_size(size, args.seed, args.cold_repeats if size < 100_000 else 1, args.formats))
    report = {"machine": {"cpu": cpu_model(), "cores": _cores(), "python": platform.python_version()}, "results": results}
    if args.json and str(args.json) == "-":
        print(json.dumps(report, indent=2))
        return 0
    print(render(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
