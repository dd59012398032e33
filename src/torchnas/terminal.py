"""What the commands print: a Rich progress line per phase and the result lines, from the
events the API functions emit (``on_event(name, data)``).

Events: ``run`` {path, resumed} once a command has its run directory; ``step`` {done, total,
items, unit, seconds} after each training step of the current epoch; ``start`` {task, label, total, completed} and ``progress`` {completed, ...} and ``end``
{task} around each long phase (task ``search``, ``enas`` or ``retrain``); ``search_done``,
``enas_done``, ``ground_truth``, ``retrain_replaced``, ``retrain_start``, ``retrain_done``, ``figures``,
``tensorboard`` once each; ``seeds`` {completed, total} from ``bench nb201``.
"""
from __future__ import annotations

import builtins
import os
import sys
import threading
import time

from .runs import RunDir

_LOCK = threading.Lock()        # the heartbeat thread and the main thread print whole lines


def print(*args, **kwargs) -> None:  # noqa: A001 (the module's prints go through here)
    """``print``, except that a closed stdout (``torchnas search | head``) is sent to /dev/null:
    the run goes on to its end (retraining, figures) instead of stopping at a BrokenPipeError."""
    with _LOCK:
        try:
            builtins.print(*args, **kwargs)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), (kwargs.get("file") or sys.stdout).fileno())


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _best(best) -> str:
    return "-" if best is None else f"{best['reward']:.4f}"


class Printer:
    """``on_event`` for the command line: result lines on stdout; progress on stderr, as a Rich
    bar on a terminal, else (a log file, a batch job) as one plain line per child or epoch and at
    least one every ``heartbeat`` seconds. Rates and ETAs count only the work done by this
    process (a resumed search replays its logged children without counting them)."""

    def __init__(self, progress: bool = True, plain: bool | None = None, heartbeat: float = 60.0):
        self.show_progress = progress
        self.plain = (not sys.stderr.isatty()) if plain is None else plain
        self.heartbeat = heartbeat
        self.bar = self.task = self._beat = self.step_task = None
        self.t0 = self.done0 = 0
        self.last = {}
        self.run_path = None           # the run being written: the Ctrl-C message names it

    def __call__(self, name: str, data: dict) -> None:
        getattr(self, f"on_{name}", lambda d: None)(data)

    def on_run(self, d):
        self.run_path = d["path"]
        about = ", ".join(f"{k} {d[k]}" for k in ("preset", "strategy", "budget", "device", "workers")
                          if d.get(k) is not None)
        print(f"{'resuming' if d['resumed'] else 'run directory:'} {d['path']}" + (f"  ({about})" if about else ""),
              flush=True)

    def on_set_aside(self, d):
        print(f"set aside: {d['path']}", flush=True)

    # -- progress -------------------------------------------------------------------------
    def on_start(self, d):
        self.t0, self.done0 = time.perf_counter(), d["completed"] + d.get("replay", 0)
        self.last = {"label": d["label"], "total": d["total"], "completed": d["completed"],
                     "best": f"best {_best(d.get('best'))}" if d["task"] == "search" else "", "rate": "",
                     "t": self.t0}
        if not self.show_progress:
            return
        if self.plain:
            self._line("start")
            self._beat = threading.Event()
            self._beat_thread = threading.Thread(target=self._heartbeat, args=(self._beat,), daemon=True)
            self._beat_thread.start()
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[best]}"), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                            console=Console(stderr=True), transient=False)
        self.bar.start()
        self.task = self.bar.add_task(d["label"], total=d["total"], completed=d["completed"],
                                      best=self.last["best"], rate="", eta="eta -")

    def on_step(self, d):
        """A training step inside the current epoch (or child): a second bar, or part of the
        plain heartbeat line."""
        rate = d["items"] / max(d["seconds"], 1e-9)
        text = f"step {d['done']}/{d['total'] or '?'}, {rate:,.0f} {d['unit']}/s"
        self.last["step"] = text
        if self.bar is not None and self.show_progress:
            if self.step_task is None:
                self.step_task = self.bar.add_task("  steps", total=d["total"], best="", rate="", eta="")
            self.bar.update(self.step_task, total=d["total"], completed=d["done"], rate=f"{rate:,.0f} {d['unit']}/s")

    def _eta(self, completed: int, total) -> str:
        done = completed - self.done0
        if done <= 0 or not total:
            return "-"
        left = (time.perf_counter() - self.t0) / done * max(total - completed, 0)
        return time.strftime("%H:%M:%S", time.gmtime(left))

    def on_progress(self, d):
        if "best" in d:                                   # a search: queries done, best reward, rate
            rate = max(d["completed"] - self.done0, 0) / max(time.perf_counter() - self.t0, 1e-9)
            best, rate = f"best {_best(d['best'])}", (f"{rate:.1f} q/s" if rate >= 1 else f"{60 * rate:.1f} q/min")
        elif "metric" in d:                               # an ENAS epoch
            m = d["valid"]
            best = "valid " + ("-" if m is None else f"{m:.3f}" if d["metric"] == "valid_acc" else f"ppl {m:.1f}")
            rate = f"shared loss {d['loss']:.3f}"
        else:                                             # a retraining epoch
            best = f"valid ppl {d['valid_ppl']:.2f}" if "valid_ppl" in d else f"valid {d['valid_acc']:.4f}"
            rate = f"loss {d['loss']:.3f}"
        self.last.update(completed=d["completed"], best=best, rate=rate)
        if self.plain and self.show_progress:
            self._line("progress")
        elif self.bar is not None:
            self.bar.update(self.task, completed=d["completed"], best=best, rate=rate,
                            eta="eta " + self._eta(d["completed"], self.last["total"]))

    def _line(self, why: str) -> None:
        """One plain progress line on stderr."""
        last = self.last
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - self.t0))
        best = f" {last['best']}" if last["best"] else ""
        rate = f" {last['rate']}" if last["rate"] else ""
        step = f", {last['step']}" if why == "beat" and last.get("step") else ""
        print(f"[{time.strftime('%H:%M:%S')}] {last['label']} {last['completed']}/{last['total']}{best}{rate} "
              f"elapsed {elapsed} eta {self._eta(last['completed'], last['total'])}"
              f"{f' (still running{step})' if why == 'beat' else ''}", file=sys.stderr, flush=True)
        last["t"] = time.perf_counter()

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(min(1.0, self.heartbeat / 3)):
            if time.perf_counter() - self.last.get("t", 0) >= self.heartbeat:
                self._line("beat")

    def on_end(self, d):
        if self._beat is not None:
            self._beat.set()
            self._beat_thread.join(timeout=5)    # no "still running" line after the results
            self._beat = None
        if self.bar is not None:
            self.bar.stop()
        self.bar = self.step_task = None
        self.last.pop("step", None)

    # -- results --------------------------------------------------------------------------
    def on_search_done(self, d):
        print(f"search run: {d['path']}  (config.yaml, evaluations.jsonl, steps.jsonl, best.json)")
        if d["stopped_early"]:
            print(f"stopped after {d['proposals']} proposals with {d['distinct']} distinct "
                  f"architectures: the strategy kept proposing ones already evaluated (max_proposals)")
        if d.get("cancelled"):
            print(f"{d['distinct']} architectures logged; {d['cancelled']} more that were asked were dropped: "
                  f"stopped while training, or done behind a slower child of their batch (search.finish: cancel)")
        best = d["best"]
        if best:
            print(f"best reward {best['reward']:.4f} at query {best['query']}: {best['arch']}")
            print("  " + ", ".join(f"{k} {_num(v)}" for k, v in best["metrics"].items()))

    def on_enas_done(self, d):
        print(f"search run: {d['path']}  (config.yaml, epochs.jsonl, steps.jsonl, derived.json, best.json)")
        for a in d["derived"]:
            ppl = f"  (valid ppl {a['valid_ppl']:.1f} on one window)" if "valid_ppl" in a else ""
            print(f"  {a['reward']:.4f}  {a['arch']}{ppl}")

    def on_ground_truth(self, d):
        from .ws_rank import verdict_line
        print(f"derived cell {d['truth']['arch_str']}: {verdict_line(d['truth'])}; {d['path'] / RunDir.GROUND_TRUTH}")

    def on_retrain_replaced(self, d):
        print(f"the best architecture changed since the last retraining ({d['old']} -> {d['new']}): "
              f"that retraining is kept in {d['kept']}")

    def on_retrain_start(self, d):
        print(f"retraining the best architecture from scratch for {d['epochs']} epochs")

    def on_retrain_done(self, d):
        r, s = d["result"], d["seconds"]
        if "test_ppl" in r:
            print(f"perplexity: valid {r['valid_ppl']:.2f}, test {r['test_ppl']:.2f} ({r['test_tokens']:,} "
                  f"test tokens; {r['cell']} cell, {r['params']:,} parameters, {r['epochs']} epochs, {s:.0f} s)")
        else:
            print(f"test accuracy {r['test_acc']:.4f} on {r['test_images']} {r['data']} test images "
                  f"({r['params']:,} parameters, {r['flops'] / 1e6:.2f} MFLOPs, {r['epochs']} epochs, {s:.0f} s)")
        print(f"retrain run: {d['path']}  (result.json, model.pt, history.jsonl)")

    def on_figures(self, d):
        print(f"figures: {d['dir']}  ({', '.join(d['names'])}; summary: torchnas show {d['path']})")

    def on_tensorboard(self, d):
        print(f"TensorBoard logs: {d['log_dir']}")

    def on_seeds(self, d):
        if self.show_progress:
            done, total, el, what = d["completed"], d["total"], d["seconds"], d.get("what", "seeds")
            rate = f"{done / el:.1f}/s" if done >= el else f"{el / done:.1f} s each"
            print(f"{'' if self.plain else chr(13)}{what} {done}/{total}  {rate}  eta "
                  f"{el / done * (total - done):.0f}s", end="\n" if done == total or self.plain else "   ",
                  file=sys.stderr, flush=True)


# -- one-shot outputs -----------------------------------------------------------------------------
def print_dry_run(d: dict) -> None:
    """``torchnas train --dry-run``: the architecture and its parameter count."""
    if "vocab" in d:
        print(d["arch"] + (f"\narc (enas_lm format): {d['arc']}" if "arc" in d else ""))
        print(f"parameters: {d['params']:,} ({d['cell_params']:,} in the cell, {d['embedding_params']:,} in the "
              f"tied embedding); vocabulary {d['vocab']:,}; network settings {d['net']}")
        if "arithmetic" in d:
            print(f"  = {d['arithmetic']}")
        return
    c, h, w = d["input"]
    aux = d.get("aux_params") or 0
    print(d["arch"])
    if d.get("layers"):
        print(", ".join(f"{kind}: {n}" for kind, n in d["layers"].items()))
    print(f"parameters: {d['params']:,}" + (f" ({d['params'] - aux:,} without the auxiliary head)" if aux else "")
          + f"; input {c}x{h}x{w}, {d['classes']} classes; network settings {d['net']}")
    for note in d.get("notes", ()):
        print(note)


def print_ws_rank(r: dict, path) -> None:
    from .ws_rank import ranking_lines
    for line in ranking_lines(r):
        print(line)
    print(f"wrote {path / RunDir.WS_RANK} and {r['figure']}")


def print_scale(result: dict) -> None:
    """``bench scale``: one row per simulated search, then one JSON line per search."""
    import json
    print(f"simulated: {result['children']:,} distinct children per search, {result['strategy']} on preset "
          f"{result['preset']}; {result['model']}")
    print("| mode | workers | replicas x batch | utilisation: children used (busy until the last child starts) | children / h | updates "
          "| staleness median / p90 / max | simulated h | best 200-ep test % | at the common time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    def trained(r):         # a converged policy that keeps proposing known cells stops at max_proposals
        return "" if r["trained"] == result["children"] else f" ({r['trained']:,} trained)"

    def mode(r):            # utilisation counts used children only: a cancelled child's time is wasted
        return r["mode"] if r["finish"] == "drain" else f"{r['mode']}, cancel ({r['cancelled']} cancelled)"
    for r in result["rows"]:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        print(f"| {mode(r)} | {r['workers']} | {r['replicas']} x {r['batch']} | {r['utilisation']:.1%} "
              f"({r['utilisation_steady']:.1%}) | "
              f"{r['children_per_hour']:,.1f}{trained(r)} | {r['updates']} | {r['staleness_median']} / {r['staleness_p90']} / "
              f"{r['staleness_max']} | {r['hours']:.1f} | {fmt(r['best_test_200ep'])} | "
              f"{fmt(r['best_test_200ep_at_common_time'])} ({r['common_hours']:.1f} h) |")
    for r in result["rows"]:
        print(json.dumps({k: r[k] for k in ("mode", "workers", "utilisation", "children_per_hour", "best_test_200ep",
                                            "replicas", "utilisation_steady", "finish", "utilisation_busy",
                                            "cancelled", "seed")}))


def print_bench(result: dict, stats: dict) -> None:
    """``torchnas bench nb201``: mean ± std over seeds of each metric of the returned cells."""
    runs = result["runs"]
    print(f"{result['strategy']}: {len(runs)} seeds x {result['queries']} queries ({result['seconds']} s)")
    for c, (m, s) in stats.items():
        print(f"  {c:32s} {m:7.2f} ± {s:.2f}")
    if result.get("baselines"):
        from .ws_rank import baselines_line
        print("  " + baselines_line(result["baselines"]))
    early = sum(r["stopped_early"] for r in runs)
    if early:
        print(f"  {early} of {len(runs)} searches stopped early (max_proposals) before the budget")


def print_export(record: dict) -> None:
    from pathlib import Path
    for fmt, r in record["formats"].items():
        print(f"{fmt:12s} {', '.join(r['files'])}  (reloaded: max abs difference {r['max_abs_diff']:.2g})")
    print(f"wrote {Path(record['out_dir']) / 'export.json'}")
