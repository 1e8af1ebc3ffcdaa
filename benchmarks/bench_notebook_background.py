"""Notebook benchmark: ``%%background`` latency and the per-iteration cost of a progress card.

Runs in one real kernel (jupyter_client), in one run:

* submit-to-running latency of ``%%background`` (from the magic call to the
  first line of the cell running in its worker thread), p50/p99, with a card;
* the time per iteration of a tight loop: bare, with ``tqdm.notebook``, and in a
  ``%%background`` cell with its card, reporting progress with ``track()`` or
  with ``progress(i, n)`` on every iteration; the overhead each adds over the
  bare loop of the same thread kind, and the ratio to tqdm's overhead;
* the widget messages each sends per second (IOPub comm traffic).

Usage: ``python benchmarks/bench_notebook_background.py [--iterations N] [--submits K]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.notebook.harness import Kernel

LATENCY = """
import time
from jupyter_tasks.kernel import kernel_side
_ip = get_ipython()
_lat, _ret = [], []
for _k in range({submits}):
    _t0 = time.perf_counter()
    _ip.run_cell_magic("background", "--name _h", "_started = time.perf_counter()")
    _ret.append(time.perf_counter() - _t0)
    _h.wait(30)
    _lat.append(_started - _t0)
(_lat, _ret)
"""

FOREGROUND = """
import time
_t = time.perf_counter()
{loop}
time.perf_counter() - _t
"""

BACKGROUND = """%%background --name {name} --label {label}
import time
from jupyter_tasks import progress, track
_n = {n}
_t = time.perf_counter()
{loop}
time.perf_counter() - _t
"""

LOOPS = {
    "bare": "for _i in range(_n):\n    pass",
    "track": "for _i in track(range(_n)):\n    pass",
    "progress": "for _i in range(_n):\n    progress(_i + 1, _n)",
    "tqdm": "from tqdm.notebook import tqdm as _tq\nfor _i in _tq(range(_n)):\n    pass",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def comm_updates_between(kernel: Kernel, start: int, end: int) -> int:
    return sum(1 for m in kernel.messages[start:end] if m["msg_type"] == "comm_msg"
               and m["content"]["data"].get("method") == "update")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2_000_000)
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.iterations

    with tempfile.TemporaryDirectory() as tmp:
        kernel = Kernel(Path(tmp) / "tasks.db", cwd=tmp)
        try:
            kernel.execute("%load_ext jupyter_tasks")
            kernel.execute("import tqdm.notebook as _tqdm_nb, ipywidgets")  # warm imports

            lat, ret = kernel.value(LATENCY.format(submits=args.submits), timeout=600)
            ms = [x * 1000 for x in lat]
            rms = [x * 1000 for x in ret]
            print(f"%%background submit-to-running latency over {len(ms)} cells (with card): "
                  f"p50 {pct(ms, 0.5):.2f} ms, p99 {pct(ms, 0.99):.2f} ms, max {max(ms):.2f} ms")
            print(f"%%background magic returns after: p50 {pct(rms, 0.5):.2f} ms, "
                  f"p99 {pct(rms, 0.99):.2f} ms")

            results: dict[str, list[float]] = {}
            rates: dict[str, int] = {}

            def fg(label: str, loop: str) -> None:
                start = len(kernel.messages)
                t = kernel.value(FOREGROUND.format(loop=loop), timeout=600)
                kernel.pump(0.3)
                results.setdefault(label, []).append(t)
                rates[label] = comm_updates_between(kernel, start, len(kernel.messages))

            def bg(label: str, loop: str) -> None:
                name = f"_b{len(results)}"
                start = len(kernel.messages)
                kernel.execute(BACKGROUND.format(name=name, label=repr(label), n=n, loop=loop))
                t = kernel.value(f"{name}.result(600)", timeout=600)
                kernel.pump(0.5)  # the card's final state
                results.setdefault(label, []).append(t)
                rates[label] = comm_updates_between(kernel, start, len(kernel.messages))

            for _ in range(args.repeat):
                fg("foreground bare", f"for _i in range({n}):\n    pass")
                fg("foreground tqdm.notebook", f"for _i in _tqdm_nb.tqdm(range({n})):\n    pass")
                fg("foreground tqdm.notebook update(1)",
                   f"with _tqdm_nb.tqdm(total={n}) as _p:\n    for _i in range({n}):\n"
                   "        _p.update(1)")
                bg("background bare", LOOPS["bare"])
                bg("background track() + card", LOOPS["track"])
                bg("background progress() every iteration + card", LOOPS["progress"])
                bg("background tqdm.notebook (in the card)", LOOPS["tqdm"])
        finally:
            kernel.shutdown()

    best = {k: min(v) for k, v in results.items()}
    per = {k: v / n * 1e9 for k, v in best.items()}
    print(f"\nTight loop of {n:,} iterations, best of {args.repeat} (ns per iteration; "
          f"widget update messages of the run):")
    for label, ns in per.items():
        print(f"  {label:<48} {ns:8.1f} ns/it   {rates[label]:4d} updates")
    tqdm_fg = per["foreground tqdm.notebook"] - per["foreground bare"]
    tqdm_bg = per["background tqdm.notebook (in the card)"] - per["background bare"]
    track_cost = per["background track() + card"] - per["background bare"]
    prog_cost = per["background progress() every iteration + card"] - per["background bare"]
    print("\nOverhead per iteration over the bare loop of the same kind:")
    print(f"  tqdm.notebook (foreground)            {tqdm_fg:7.1f} ns")
    print(f"  tqdm.notebook (in a background cell)  {tqdm_bg:7.1f} ns")
    print(f"  jupyter-tasks track() + card          {track_cost:7.1f} ns"
          f"   ratio to tqdm (fg) {track_cost / tqdm_fg:.2f}")
    tqdm_upd = per["foreground tqdm.notebook update(1)"] - per["foreground bare"]
    print(f"  tqdm.notebook update(1) (foreground)  {tqdm_upd:7.1f} ns")
    print(f"  jupyter-tasks progress() + card       {prog_cost:7.1f} ns"
          f"   ratio to tqdm update(1) {prog_cost / tqdm_upd:.2f}")


if __name__ == "__main__":
    main()
