"""A run directory: everything a search or training job writes, and how it resumes. Every
file name is defined here, once (:class:`RunDir`).

    RUN/config.yaml          the resolved configuration (atomic; --resume --queries N raises its budget)
    RUN/checkpoint.pt        strategy, controller, optimizer, RNG states, counters
                             (written to a temp file, fsynced, then renamed over the old one)
    RUN/best.json            the best architecture so far (atomic)
    a search:       evaluations.jsonl (one line per evaluated architecture), steps.jsonl (one
                    line per strategy update), retrain/ (the best architecture retrained)
    an ENAS search: epochs.jsonl, steps.jsonl, derived.json, ground_truth.json, ws_rank.json,
                    retrain/
    a retraining:   history.jsonl (one line per epoch), result.json, model.pt, export/
    any run:        figures/, tensorboard/

Logs are appended, flushed and fsynced line by line. A process killed at any moment leaves at
worst a torn last line; :meth:`RunDir.restore` cuts each log back to what the checkpoint
covers, after checking that nothing it covers is missing.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import yaml


def rng_states() -> dict:
    """Every global RNG a run draws from (Python, NumPy, torch CPU and, where present, CUDA:
    dropout masks on a GPU come from the CUDA generators), for checkpoints."""
    import random

    import numpy as np
    import torch
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(state: dict) -> None:
    import random

    import numpy as np
    import torch
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def as_path(text: str) -> Path | None:
    """``text`` as a path, or None when it cannot name a file (a component longer than the
    255-byte file-name limit, a NUL, or longer than PATH_MAX): an architecture string such as
    the authors' 24-layer macro arc is then never handed to the file system, which would raise
    ``OSError: File name too long``."""
    if "\0" in text or len(text.encode()) >= 4096:
        return None
    p = Path(text)
    return p if all(len(part.encode()) <= 255 for part in p.parts) else None


def run_kind(cfg: dict) -> str:
    """``"train"`` (a retraining run), ``"enas"`` (an ENAS search) or ``"search"``."""
    return "train" if cfg.get("kind") == "train" else "enas" if "enas" in cfg else "search"


class RunError(RuntimeError):
    """A run directory is missing, incomplete or belongs to another kind of job."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, write) -> None:
    """``path`` written whole or not at all: ``write(f)`` fills a temp file beside it, which is
    fsynced and renamed over ``path``. Streamed, so a large checkpoint is never held in memory
    twice (at the recurrent search's peer size, 2.1 GB of shared weights were copied into a
    buffer before the write: issue 27 item 8)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:          # Ctrl-C or an error mid-write: the old file stays, the temp goes
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def writable_file(path: str, option: str) -> Path:
    """``path`` can be written as a file: checked before any work, so that an hour of it is not
    lost to a folder in the way or a read-only place."""
    p = Path(path)
    if p.is_dir():
        raise RunError(f"{option} {p}: is a folder; give a file name")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunError(f"{option} {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise RunError(f"{option} {p}: cannot write there (permission denied)")
    return p



class RunDir:
    CONFIG, CHECKPOINT, BEST, STEPS = "config.yaml", "checkpoint.pt", "best.json", "steps.jsonl"
    EVALS = "evaluations.jsonl"                                           # a search
    EPOCHS, DERIVED, GROUND_TRUTH, WS_RANK = "epochs.jsonl", "derived.json", "ground_truth.json", "ws_rank.json"
    HISTORY, RESULT, MODEL = "history.jsonl", "result.json", "model.pt"  # a retraining
    WHITENING = "whitening.pt"              # a retraining's ZCA whitening (augment: zoph_le)
    RETRAIN, FIGURES, TENSORBOARD, EXPORT = "retrain", "figures", "tensorboard", "export"
    LOCK, OWNER = ".lock", ".owner"                                       # one writer at a time
    LOGS = (EVALS, STEPS, EPOCHS, HISTORY)
    COUNTERS = {EVALS: "query", STEPS: "update", EPOCHS: "epoch", HISTORY: "epoch"}   # 1, 2, 3, ... by line

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.listeners: list = []      # fn(name, record) after each appended record (TensorBoard mirror)

    def create(self, config: dict) -> "RunDir":
        if (self.path / self.CONFIG).exists():
            raise RunError(f"{self.path} already holds a run; continue it with --resume {self.path} "
                           f"or choose another --out")
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} is a file, not a folder: choose another --out")
        self.made = not self.path.exists()         # new() removes only a folder it made
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.save_config(config)
        except OSError as e:
            raise RunError(f"cannot write the run folder {self.path}: {e.strerror or e}; choose another --out") from None
        return self

    def save_config(self, config: dict) -> None:
        atomic_write_bytes(self.path / self.CONFIG, yaml.safe_dump(config, sort_keys=False).encode())

    def config(self) -> dict:
        p = self.path / self.CONFIG
        if not p.exists():
            raise RunError(f"{self.path} is not a run directory: it has no {self.CONFIG}")
        try:
            cfg = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise RunError(f"{p} is not valid YAML{where}: {getattr(e, 'problem', None) or e}; "
                           f"the run cannot be read") from None
        if not isinstance(cfg, dict):
            raise RunError(f"{p} does not hold a run's settings (it is {'empty' if cfg is None else type(cfg).__name__}); "
                           f"the run cannot be read")
        if cfg.get("plugins"):                     # the user's own spaces, evaluators, ...: import them again
            from .registry import PluginError, load_plugins
            try:
                load_plugins(cfg["plugins"] if isinstance(cfg["plugins"], list) else [cfg["plugins"]])
            except PluginError as e:
                raise RunError(f"{p}: {e}") from None
        return cfg

    @contextlib.contextmanager
    def owned(self):
        """Hold the run for this process (an exclusive ``filelock`` on ``RUN/.lock``) while it
        writes; a second process gets a :class:`RunError` naming the holder's PID at once, so two
        writers can never interleave their records. The lock dies with its process."""
        from filelock import FileLock, Timeout
        lock = FileLock(str(self.path / self.LOCK))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            owner = (self.path / self.OWNER).read_text().strip() if (self.path / self.OWNER).exists() else "?"
            raise RunError(f"{self.path} is in use by another torchnas process (PID {owner}); wait for it to "
                           f"finish or stop it, then resume") from None
        self.held = True                     # new() may clean up only a run this process held
        try:
            (self.path / self.OWNER).write_text(f"{os.getpid()}\n")
            yield self
        finally:
            (self.path / self.OWNER).unlink(missing_ok=True)
            lock.release()

    @contextlib.contextmanager
    def new(self):
        """Around the first work of a run this process just created: if it fails (an error, not
        Ctrl-C) before writing anything but its config, the run directory is removed again, so
        a failed start leaves nothing behind (its whitening, fitted at the start, goes too). A run
        with any record, log line or checkpoint stays."""
        try:
            yield self
        except Exception:
            names = {p.name for p in self.path.iterdir()} if self.path.is_dir() else {None}
            if getattr(self, "held", False) and names <= {self.CONFIG, self.LOCK, self.OWNER, self.WHITENING}:
                for name in names:
                    (self.path / name).unlink(missing_ok=True)
                if getattr(self, "made", False):
                    self.path.rmdir()
            raise

    @property
    def kind(self) -> str:
        """``"train"`` (a retraining run), ``"enas"`` (an ENAS search) or ``"search"``."""
        return run_kind(self.config())

    @property
    def retrain(self) -> "RunDir | None":
        """The retraining run of a search's best architecture, once it exists."""
        sub = RunDir(self.path / self.RETRAIN)
        return sub if (sub.path / self.CONFIG).exists() else None

    # -- logs -----------------------------------------------------------------------------
    def append_jsonl(self, name: str, record: dict) -> None:
        with open(self.path / name, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for listener in self.listeners:
            listener(name, record)

    def records(self, name: str) -> list[dict]:
        """The complete records of a log, read only (never cut): safe on a run still writing."""
        return self._scan(name)[0]

    def _scan(self, name: str) -> tuple[list[dict], list[int], tuple[int, str] | None]:
        """(complete records up to the first bad line, the byte offset after each, damage): damage
        is (line number, what is wrong) for a bad line that more lines follow, or for a complete
        line whose counter (``COUNTERS``: query, update, epoch) is not its line number, a line
        repeated or edited by hand; a torn last line (a write cut by a kill) is not damage."""
        p = self.path / name
        if not p.exists():
            return [], [], None
        lines = p.read_bytes().splitlines(keepends=True)
        records, ends, end = [], [], 0
        counter = self.COUNTERS.get(name)
        for k, line in enumerate(lines):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError
                rec = json.loads(line)
            except ValueError:              # json.JSONDecodeError is a ValueError
                return records, ends, ((k + 1, "is not a record") if k + 1 < len(lines) else None)
            if not isinstance(rec, dict) or (counter and rec.get(counter) != k + 1):
                got = rec.get(counter) if isinstance(rec, dict) else None
                return records, ends, (k + 1, f"has {counter} {json.dumps(got)} where {k + 1} belongs"
                                       if isinstance(rec, dict) and counter else "is not a record")
            records.append(rec)
            end += len(line)
            ends.append(end)
        return records, ends, None

    def _cut(self, name: str, size: int) -> None:
        p = self.path / name
        if p.exists() and p.stat().st_size != size:
            with open(p, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())

    def restore(self, covered: dict[str, int], replay: tuple[str, ...] = ()) -> dict[str, list[dict]]:
        """After a stop or a crash: each log named in ``covered`` cut back to the number of records
        its checkpoint covers (a log in ``replay`` keeps its complete records past that number:
        a search re-admits them without re-evaluating). Checks every log first and raises,
        changing nothing, if one holds fewer complete records than the checkpoint covers, or a
        log to replay has a bad line in its middle; only a torn last line is dropped silently."""
        scans = {name: self._scan(name) for name in covered}
        for name, n in covered.items():
            records, _, damaged = scans[name]
            if len(records) < n or (damaged and name in replay):
                raise self._damage(name, records, damaged, f", and the checkpoint covers {n} records")
        out = {}
        for name, n in covered.items():
            records, ends, _ = scans[name]
            keep = len(records) if name in replay else n
            self._cut(name, ends[keep - 1] if keep else 0)
            out[name] = records[:keep]
        return out

    def _damage(self, name: str, records: list, damaged: tuple[int, str] | None, covers: str = "") -> RunError:
        where = f"line {damaged[0]} {damaged[1]}" if damaged else f"it has {len(records)} complete records"
        hint = (", or resume with --repair to set the damage aside and replay the records before it"
                if damaged and name == self.EVALS else "")
        return RunError(f"{self.path / name}: {where}{covers}: the log was edited or damaged (left as it is; "
                        f"restore it from a copy{hint})")

    def check_log(self, name: str) -> list[dict]:
        """The complete records of a log that must be whole (a search's evaluations before its
        budget grows): raises, naming the line, on damage anywhere but a torn last line."""
        records, _, damaged = self._scan(name)
        if damaged:
            raise self._damage(name, records, damaged)
        return records

    def set_aside(self, name: str, offset: int = 0, stamp: str | None = None) -> Path | None:
        """Move the bytes of ``name`` from ``offset`` on into ``name.damaged-STAMP`` (written and
        fsynced before ``name`` is cut): nothing is deleted. None if there is nothing to move."""
        p = self.path / name
        if not p.exists() or p.stat().st_size <= offset:
            return None
        aside = self.path / f"{name}.damaged-{stamp or time.strftime('%Y%m%d-%H%M%S')}"
        with open(p, "rb") as f:
            f.seek(offset)
            atomic_write_bytes(aside, f.read())
        if offset:
            self._cut(name, offset)
        else:
            p.unlink()
        return aside

    def repair(self, replay: str, restart: tuple[str, ...]) -> list[Path]:
        """``--repair``: the log ``replay`` keeps its records up to its first bad line and the rest
        is set aside; the checkpoint and the logs in ``restart`` are set aside whole, so the run
        starts again and replays the kept records (a deterministic search then writes what it
        would have written). Returns the files set aside; raises if there is no damage."""
        records, ends, damaged = self._scan(replay)
        if damaged is None:
            raise RunError(f"{self.path / replay} has no damaged line: nothing to repair; resume without --repair")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = [self.set_aside(replay, ends[-1] if ends else 0, stamp)]
        moved += [self.set_aside(name, 0, stamp) for name in (*restart, self.CHECKPOINT)]
        return [m for m in moved if m is not None]

    # -- checkpoint and best ----------------------------------------------------------------
    #: what each kind of checkpoint holds, as its refusal names it
    CHECKPOINT_KINDS = {"search": "a search (its strategy and controller)",
                        "enas": "an ENAS search (shared weights and controller)",
                        "train": "a network's training"}

    def save_checkpoint(self, state: dict, kind: str) -> None:
        """``state`` written whole (temp file then rename), stamped with its ``kind``
        (:attr:`CHECKPOINT_KINDS`) so that another kind of job refuses it by name."""
        import torch
        if kind not in self.CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind {kind!r}: one of {', '.join(self.CHECKPOINT_KINDS)}")
        atomic_write(self.path / self.CHECKPOINT, lambda f: torch.save({**state, "kind": kind}, f))

    def load_checkpoint(self, kind: str, restore=None, *, peek: bool = False) -> dict | None:
        """The run's checkpoint (None before the first), refused unless it is of ``kind``.
        ``restore(ckpt)``, given, loads it into the job; a checkpoint that does not fit the
        job's settings (a tensor of another shape, a missing entry) is refused by name too.
        ``peek``: mapped, not read (its kind checked at no memory cost before a job writes)."""
        import torch
        if kind not in self.CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind {kind!r}: one of {', '.join(self.CHECKPOINT_KINDS)}")
        p = self.path / self.CHECKPOINT
        if not p.exists():
            return None
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=False, mmap=peek)
        except Exception as e:  # a checkpoint is only ever replaced whole, so this is damage
            raise RunError(f"{p} is unreadable ({e}); the run cannot resume from it") from None
        # checkpoints written before the stamp are told apart by their entries
        found = ckpt.get("kind") if isinstance(ckpt, dict) else None
        if found is None and isinstance(ckpt, dict):
            found = "enas" if "net" in ckpt else "search" if "evaluations" in ckpt else \
                "train" if "training" in ckpt else None
        if found != kind:
            what = self.CHECKPOINT_KINDS.get(found, "no torchnas job")
            raise RunError(f"{p} is the checkpoint of {what}, not of {self.CHECKPOINT_KINDS[kind]}: "
                           f"the folder holds another job's files; resume the job they belong to, "
                           f"or start this one in a new folder")
        if restore is not None:
            try:
                restore(ckpt)
            except (KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as e:
                if isinstance(e, (RunError, torch.cuda.OutOfMemoryError)):
                    raise
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise RunError(f"{p} does not fit this run's settings ({type(e).__name__}: {first[:200]}); "
                               f"was it copied from another run? Resume the run it belongs to") from None
        return ckpt

    def write_json(self, name: str, obj) -> None:
        atomic_write_bytes(self.path / name, (json.dumps(obj, indent=2) + "\n").encode())

    def read_json(self, name: str):
        p = self.path / name
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunError(f"{p} is not valid JSON ({e}); restore it or remove it") from None
