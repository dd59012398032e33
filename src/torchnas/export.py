"""Export a trained network so that it runs without torchnas (``torchnas export``).

Formats, each written to ``out_dir``, loaded back and compared with the original model on
fresh random inputs (``atol = rtol = 1e-4``; the max abs difference goes to ``export.json``):

* ``python``: ``NAME.py``, a plain ``torch.nn.Module`` that imports only torch and the
  standard library, with ``load(path_to_state=None)`` (eval mode), plus ``NAME_state.pt`` (a
  state dict, ``torch.load(..., weights_only=True)``). Image networks are traced with
  :mod:`torch.fx` in eval mode by a tracer that evaluates the model alongside, so the shape
  arithmetic of TF "SAME" padding and zero-padded concatenation becomes constants: the file
  takes any batch size but only the example's image size. (``GraphModule.to_folder`` is not
  used: it pickles non-``torch.nn`` submodules and writes absolute paths into the code.) A
  language model is written by its cell (``export_source``: ENAS's, nas-rnn's tree, the LSTM,
  stacked cells), the cell's steps unrolled inside a Python loop over ``tokens.shape[0]``: any
  length, any batch.
* ``torchscript``: ``NAME.ts``, ``torch.jit.script`` of that module (``torch.jit.trace`` if
  scripting fails), for ``torch.jit.load``; the language model keeps its time loop.
* ``onnx``: ``NAME.onnx`` with a dynamic batch axis, checked with onnxruntime. torch 2.13's
  default (``dynamo=True``, needs onnxscript) is used; the legacy TorchScript exporter only
  if that fails (``export.json`` names the one used). The language model's time loop is
  unrolled: the ONNX graph takes exactly the example's sequence length (and needs ``state``).

Language models are exported as ``forward(tokens (L, B) int64, state) -> (logits (L, B, V),
next state)``; the state is ``(B, H)`` for the ENAS cell and ``(2 L, B, H)`` (h, c per layer) for
the LSTM and nas-rnn cells.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import torch
import torch.fx as fx
from torch import nn

from .runs import RunDir, RunError, run_kind

FORMATS = ("python", "torchscript", "onnx")
ATOL = RTOL = 1e-4


class ExportError(RuntimeError):
    """An export could not be written, or does not compute what the model computes."""


# -- tracing with concrete shapes -------------------------------------------------------------
class _ShapeProxy(fx.Proxy):
    def __getattr__(self, k):
        if k in ("shape", "size", "dim", "ndim"):      # concrete: shape arithmetic is baked in
            return getattr(self.tracer.values[self.node], k)
        return super().__getattr__(k)


class _ConcreteTracer(fx.Tracer):
    """Symbolic tracing that also runs every node on the example inputs, so that ``x.shape``
    is a concrete ``torch.Size``. While a node runs, module attribute access and module calls
    are plain (``getattr`` / ``call_module`` hooks)."""

    def __init__(self, inputs):
        super().__init__()
        self.inputs, self.values, self.concrete = list(inputs), {}, False

    def proxy(self, node):
        return _ShapeProxy(node, self)

    def getattr(self, attr, attr_val, cache):
        return attr_val if self.concrete else super().getattr(attr, attr_val, cache)

    def call_module(self, m, forward, args, kwargs):
        return forward(*args, **kwargs) if self.concrete else super().call_module(m, forward, args, kwargs)

    def create_proxy(self, kind, target, args, kwargs, *rest, **kw):
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
        a, k = fx.node.map_aggregate((args, kwargs), lambda x: self.values[x.node] if isinstance(x, fx.Proxy) else x)
        self.concrete = True
        try:
            if kind == "placeholder":
                v = self.inputs.pop(0)
            elif kind == "get_attr":
                v = _get(self.root, target)
            elif kind == "call_function":
                v = target(*a, **k)
            elif kind == "call_method":
                v = getattr(a[0], target)(*a[1:], **k)
            elif kind == "call_module":
                v = _get(self.root, target)(*a, **k)
            else:
                v = None
        finally:
            self.concrete = False
        self.values[proxy.node] = v
        return proxy


def _get(root, path: str):
    for name in path.split("."):
        root = getattr(root, name)
    return root


def trace(model: nn.Module, *inputs: torch.Tensor) -> fx.GraphModule:
    """An eval-mode ``torch.fx.GraphModule`` of ``model`` with its shapes fixed by ``inputs``."""
    tracer = _ConcreteTracer(inputs)
    with torch.no_grad():
        graph = tracer.trace(model)
    for node in graph.nodes:
        node.type = None                       # annotations would name torchnas-side types
    return fx.GraphModule(model, graph)


# -- python source ----------------------------------------------------------------------------
_PUT = '''
def _put(root, path, value):
    """Attach a module, parameter or buffer at a dotted path, making plain containers."""
    *parents, name = path.split(".")
    for p in parents:
        if p not in root._modules:
            root.add_module(p, nn.Module())
        root = root._modules[p]
    if isinstance(value, nn.Module):
        root.add_module(name, value)
    elif isinstance(value, nn.Parameter):
        root.register_parameter(name, value)
    else:
        root.register_buffer(name, value)
'''

_LOAD = '''

def load(path_to_state=None):
    """The network with its weights (default: {state} next to this file), in eval mode."""
    path = path_to_state or os.path.join(os.path.dirname(os.path.abspath(__file__)), "{state}")
    model = Model()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
'''


def _header(doc: str, meta: dict | None) -> str:
    lines = [doc, "", f"Exported with torch {torch.__version__}; needs only PyTorch."]
    if meta and "arch" in meta:
        lines.append(f"Architecture: {meta['arch']}")
    text = "\n".join(lines).replace("\\", "\\\\").replace('"""', "'''")
    return f'"""{text}\n"""\n'


def _leaf_code(mod: nn.Module) -> str:
    """``nn.Xxx(...)`` from the module's repr, checked to rebuild an equal module."""
    cls = type(mod)
    code = "nn." + repr(mod)
    try:
        if getattr(nn, cls.__name__, None) is not cls or "\n" in code:
            raise ValueError
        new = eval(code, {"nn": nn, "torch": torch})
        same = {k: v.shape for k, v in new.state_dict().items()} == {k: v.shape for k, v in mod.state_dict().items()}
        if not same or repr(new) != repr(mod):
            raise ValueError
    except Exception:
        raise ExportError(f"python export: cannot write a constructor for submodule {cls.__name__} "
                          f"({cls.__module__}); only torch.nn modules can stay modules") from None
    return code


def _graph_source(gm: fx.GraphModule, example_shape, meta, state_name: str) -> tuple[str, dict]:
    """The python file and state dict of a traced image network."""
    pc = gm.graph.python_code("self")
    known = {"torch", "inf", "nan", "device", "NoneType"}
    extra = [g for g in pc.globals if g not in known and re.search(rf"\b{g}\b", pc.src)]
    if extra:
        raise ExportError(f"python export: the traced code needs {extra}, which the standalone file lacks")
    leaves, attrs, state = {}, {}, {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target not in leaves:
            leaves[node.target] = mod = gm.get_submodule(node.target)
            state.update({f"{node.target}.{k}": v for k, v in mod.state_dict().items()})
        elif node.op == "get_attr":
            attrs[node.target] = _get(gm, node.target)
    body = []
    for path, mod in leaves.items():
        body.append(f"        _put(self, {path!r}, {_leaf_code(mod)})")
    for path, t in attrs.items():
        if any(path.startswith(p + ".") for p in leaves):      # owned by a leaf module
            continue
        dtype = "" if t.dtype == torch.float32 else f", dtype={t.dtype}"
        new = f"torch.empty({tuple(t.shape)}{dtype})"
        body.append(f"        _put(self, {path!r}, " + (f"nn.Parameter({new}))" if isinstance(t, nn.Parameter)
                                                         else f"{new})"))
        state[path] = t
    c, h, w = example_shape[1:] if len(example_shape) == 4 else (None,) * 3
    doc = (f"A standalone network: input (B, {c}, {h}, {w}) float, any batch size, this image size only "
           f"(its padding was fixed by tracing)." if c else "A standalone network traced with torch.fx.")
    src = (_header(doc, meta) + "import os\nfrom math import inf, nan\n\nimport torch\nfrom torch import device, nn\n\n"
           "NoneType = type(None)\n\n" + _PUT + "\n\nclass Model(nn.Module):\n    def __init__(self):\n"
           "        super().__init__()\n" + "\n".join(body) + "\n\n"
           + "\n".join("    " + line if line else "" for line in pc.src.strip("\n").splitlines()) + "\n"
           + _LOAD.format(state=state_name))
    return src, {k: v.detach().clone() for k, v in state.items()}


def _lm_source(lm, meta, state_name: str) -> str:
    """The python file of a :class:`torchnas.nn.lm.LanguageModel`, written by its cell
    (``export_source``: parameters, a loop over the window per layer, the outputs and the last
    state's names; LSTM, ENAS's and nas-rnn's cells, stacked cells)."""
    if not hasattr(lm.cell, "export_source"):
        raise ValueError(f"cannot export a language model with a {type(lm.cell).__name__} cell; export the "
                         f"standalone child of an architecture (space.language_model(arch, ...))")
    src = lm.cell.export_source()
    V, H, n = lm.vocab_size, lm.hidden_size, src["states"]
    stacked = src.get("stacked", True)            # else one state tensor, (B, H)
    shape = f"({n}, B, {H})" if stacked else f"(B, {H})"
    doc = (f"A word-level language model ({src['what']}; tied {V} x {H} embedding). forward(tokens (L, B) "
           f"int64, state {shape} or None) -> (logits (L, B, {V}), next state); any length and batch size.")
    layers = set(re.findall(r"\.cells\[(\d+)\]", " ".join(src["init"])))           # stacked cells' modules
    init = [f"self.embedding = nn.Parameter(torch.zeros({V}, {H}))", "self.cell = nn.Module()"]
    if layers:
        init.append(f"self.cell.cells = nn.ModuleList([nn.Module() for _ in range({len(layers)})])")
    init = ["        " + line for line in init + src["init"]]
    zeros = f"{n}, tokens.shape[1], {H}" if stacked else f"tokens.shape[1], {H}"
    fwd = ["", "    def forward(self, tokens: torch.Tensor, state: Optional[torch.Tensor] = None"
           ") -> Tuple[torch.Tensor, torch.Tensor]:", "        E = self.embedding", "        if state is None:",
           f"            state = torch.zeros({zeros}, dtype=E.dtype, device=E.device)"]
    if not stacked:
        fwd.append("        state = state.unsqueeze(0)")
    fwd += ["        " + line for line in src["body"]]
    last = f"torch.stack([{', '.join(src['last'])}])" if stacked else src["last"][0]
    fwd.append(f"        return {src['out']} @ E.t(), {last}")
    return (_header(doc, meta) + "import os\nfrom typing import List, Optional, Tuple\n\nimport torch\nfrom torch "
            "import nn\n\n\nclass Model(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            + "\n".join(init + fwd) + "\n" + _LOAD.format(state=state_name))


class LMWrapper(nn.Module):
    """A language model as ``forward(tokens, state) -> (logits, next state)`` of tensors only
    (the LSTM's (h, c) stacked into one ``(2, B, H)`` tensor)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, tokens, state):
        stacked = state.dim() == 3                  # a state of several tensors, stacked
        out = self.lm(tokens, tuple(state.unbind(0)) if stacked else state)
        return out.logits, (torch.stack(list(out.state)) if stacked else out.state)


def import_file(path: Path, name: str | None = None):
    """Import a python file as a fresh module (not left in ``sys.modules``)."""
    name = name or f"_torchnas_export_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- checks -----------------------------------------------------------------------------------
def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [torch.as_tensor(out)]


def _check(fmt: str, ref, run, cases) -> float:
    """Max abs difference of ``run(*case)`` from ``ref(*case)``; raises if not within tolerance."""
    worst = 0.0
    for case in cases:
        with torch.no_grad():
            want, got = _flat(ref(*case)), _flat(run(*case))
        if len(want) != len(got) or any(w.shape != g.shape for w, g in zip(want, got)):
            raise ExportError(f"{fmt} export: outputs {[tuple(g.shape) for g in got]} differ in shape from the "
                              f"model's {[tuple(w.shape) for w in want]}")
        for w, g in zip(want, got):
            worst = max(worst, (w.float() - g.float()).abs().max().item())
            if not torch.allclose(g.float(), w.float(), atol=ATOL, rtol=RTOL):
                raise ExportError(f"{fmt} export does not reproduce the model: max abs difference "
                                  f"{worst:.3g} (tolerance atol={ATOL}, rtol={RTOL})")
    return worst


def _cases(example, vocab: int | None, same_length: bool = False):
    """The example plus fresh random inputs: another batch size (and for a language model
    another length, unless the export fixes it)."""
    g = torch.Generator().manual_seed(1234)
    x = example[0]
    if vocab is None:
        return [tuple(example), (torch.randn((x.shape[0] + 1,) + tuple(x.shape[1:]), generator=g),)]
    tokens, state = example

    def case(L, B):
        s = state.shape[:-2] + (B, state.shape[-1])
        return torch.randint(0, vocab, (L, B), generator=g), 0.5 * torch.randn(s, generator=g)
    cases = [tuple(example), case(tokens.shape[0], tokens.shape[1] + 1)]
    return cases if same_length else cases + [case(tokens.shape[0] + 3, tokens.shape[1])]


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install onnx onnxruntime onnxscript "
                          "(or pip install 'torchnas[export]')") from None


def _onnx(model, example, path: Path, lm: bool) -> str:
    """Write ``path``: torch's dynamo exporter, else the legacy one; returns which was used."""
    names = (["tokens", "state"], ["logits", "next_state"]) if lm else (["input"], ["logits"])
    dims = [1, example[1].dim() - 2] if lm else [0]          # the batch axis of each input (and output)
    if example[0].shape[dims[0]] == 1:                       # a batch of one would be specialised
        example = tuple(torch.cat([t, t], dim=d) for t, d in zip(example, dims))
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                batch = torch.export.Dim("batch")
                torch.onnx.export(model, example, str(path), dynamo=True, input_names=names[0],
                                  output_names=names[1], dynamic_shapes=tuple({d: batch} for d in dims), verbose=False)
                return "dynamo"
            except Exception as e:                                  # noqa: BLE001 (fallback below)
                first = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            dyn = {n: {d: "batch"} for n, d in zip(names[0] + names[1], dims + dims)}
            torch.onnx.export(model, example, str(path), dynamo=False, input_names=names[0],
                              output_names=names[1], dynamic_axes=dyn)
            return f"legacy (dynamo failed: {first[:200]})"
    finally:
        quiet.level = level


# -- the API ----------------------------------------------------------------------------------
def export_model(model: nn.Module, example_inputs, out_dir, formats=FORMATS, name: str = "model",
                 meta: dict | None = None) -> dict:
    """Export ``model`` (an image network, or a :class:`~torchnas.nn.lm.LanguageModel`) in
    eval mode; ``example_inputs``: ``(x,)`` or ``(tokens,)`` / ``(tokens, state)``. Returns the
    record written to ``out_dir/export.json`` (files and max abs difference per format)."""
    from .nn.lm import LanguageModel
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown export format(s) {bad}; choose from {', '.join(FORMATS)}")
    if "onnx" in formats:
        _require_onnx()
    example = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    example = tuple(t.cpu() for t in example)
    if any(p.device.type != "cpu" for p in model.parameters()):   # exports are made and checked on the CPU
        model = copy.deepcopy(model).cpu()
    lm = isinstance(model, LanguageModel)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    record = {"name": name, "meta": meta or {}, "tolerance": {"atol": ATOL, "rtol": RTOL}, "formats": {}}
    try:
        if lm:
            if len(example) < 2:
                state = model.init_state(example[0].shape[1])
                example = (example[0], torch.stack(list(state)) if isinstance(state, tuple) else state)
            ref, src = LMWrapper(model), _lm_source(model, meta, f"{name}_state.pt")
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            record["input"] = {"tokens": list(example[0].shape), "state": list(example[1].shape)}
        else:
            ref = model
            try:
                gm = trace(model, *example)
            except Exception as e:                                  # noqa: BLE001
                raise ExportError(f"torch.fx cannot trace {type(model).__name__} (every format starts from "
                                  f"that trace): {type(e).__name__}: {e}") from e
            src, state = _graph_source(gm, tuple(example[0].shape), meta, f"{name}_state.pt")
            record["input"] = {"shape": list(example[0].shape), "fixed": "image size (any batch size)"}
        with tempfile.TemporaryDirectory() as tmp:
            py = (out if "python" in formats else Path(tmp)) / f"{name}.py"
            py.write_text(src)
            torch.save(state, py.with_name(f"{name}_state.pt"))
            record["formats"] = _write_formats(ref, py, example, out, formats, model.vocab_size if lm else None)
    finally:
        model.train(was_training)
    (out / "export.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def _write_formats(ref, py: Path, example, out: Path, formats, vocab: int | None) -> dict:
    """Import the generated file ``py`` (+ its state), derive the other formats from it, check all."""
    name = py.stem
    st = py.with_name(f"{name}_state.pt")
    mod_name = f"_torchnas_export_{uuid.uuid4().hex}"
    gen_module = import_file(py, mod_name)
    gen = gen_module.load(str(st))
    cases, done = _cases(example, vocab), {}
    if "python" in formats:
        done["python"] = {"files": [py.name, st.name], "max_abs_diff": _check("python", ref, gen, cases)}
    if "torchscript" in formats:
        path = out / f"{name}.ts"
        sys.modules[mod_name] = gen_module                      # torch.jit.script reads the class source
        try:
            with warnings.catch_warnings():                     # TorchScript is deprecated in torch 2.13
                warnings.simplefilter("ignore")
                try:
                    ts, how = torch.jit.script(gen), "script"
                except Exception:                               # noqa: BLE001
                    ts, how = torch.jit.trace(gen, example), "trace (fixed input shape)"
                torch.jit.save(ts, str(path))
                loaded = torch.jit.load(str(path))
        finally:
            del sys.modules[mod_name]
        done["torchscript"] = {"files": [path.name], "method": how,
                               "max_abs_diff": _check("torchscript", ref, loaded, cases)}
    if "onnx" in formats:
        import onnxruntime as ort
        path = out / f"{name}.onnx"
        how = _onnx(gen, example, path, vocab is not None)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = [i.name for i in sess.get_inputs()]

        def run(*xs):
            return [torch.from_numpy(o) for o in sess.run(None, dict(zip(feeds, (x.numpy() for x in xs))))]
        done["onnx"] = {"files": [path.name], "exporter": how,
                        "max_abs_diff": _check("onnx", ref, run, _cases(example, vocab, same_length=True))}
        if vocab is not None:
            done["onnx"].update(sequence_length=int(example[0].shape[0]), limitation=(
                "time loop unrolled: the graph takes tokens of exactly this length and an explicit state"))
    return done


def export_run(run_dir, out_dir=None, formats=FORMATS) -> dict:
    """Export the trained model of a retraining run (``torchnas train``) to ``out_dir``
    (default ``RUN/export``): the network is rebuilt as train.py builds it and ``model.pt``
    loaded into it. The language model's ONNX file takes the run's ``bptt`` length."""
    from .spaces import space_from_config
    from .tasks import task_of
    run = RunDir(run_dir)
    cfg = run.config()
    if run_kind(cfg) != "train":
        raise RunError(f"{run.path} is not a retraining run (kind: {cfg.get('kind', 'search')}); retrain its "
                       f"architecture first: torchnas train --arch {run.path}, then export that run")
    space = space_from_config(cfg["space"])
    arch = space.parse(cfg["arch"])
    task = task_of(space)
    task.check_exportable(space, arch)
    model_path = run.path / RunDir.MODEL
    if not model_path.exists():
        raise RunError(f"{run.path} has no model.pt (the trained weights): the training has not finished; "
                       f"run torchnas train first, or continue it with torchnas train --resume {run.path}")
    state = torch.load(model_path, map_location="cpu", weights_only=True)
    net = dict(cfg.get("net") or {})
    meta = {"arch": str(arch), "space": cfg["space"], "data": cfg["data"], "net": copy.deepcopy(net),
            "run": str(run.path)}
    result = run.read_json(RunDir.RESULT) or {}
    meta["result"] = {k: result[k] for k in ("test_acc", "valid_acc", "test_ppl", "valid_ppl", "epochs", "params")
                      if k in result}
    out = Path(out_dir) if out_dir else run.path / RunDir.EXPORT
    with _staged(out) as work:
        model, example, more = task.export_network(space, arch, cfg, net, state, work)
        meta.update(more)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise RunError(f"{model_path} does not fit the network rebuilt from {run.path / RunDir.CONFIG}: {e}") from None
        return export_model(model, example, work, formats, meta=meta)


@contextlib.contextmanager
def _staged(out: Path):
    """A folder to write an export into, which becomes ``out`` only once it is complete (then
    it replaces an older export there); stopped or failed, it is removed and ``out`` is left as
    it was, so a half-written export never looks complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    work.rename(out)
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["export_model", "export_run", "trace", "import_file", "LMWrapper", "ExportError", "FORMATS"]
