"""torchnas.export: standalone python / TorchScript / ONNX files that compute what the model computes."""
import ast
import json
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from torchnas.export import ExportError, LMWrapper, export_model, export_run, import_file
from torchnas.runs import RunDir, RunError
from torchnas.spaces import get_space

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")]
TOL = dict(atol=1e-4, rtol=1e-4)
V, H, L = 50, 8, 5                     # language model: vocabulary, hidden size, ONNX sequence length


def _image(space, arch_seed, in_ch, size, **net):
    torch.manual_seed(arch_seed)
    model = space.child(space.random(random.Random(arch_seed)), in_ch, 10, **net)
    with torch.no_grad():              # non-trivial batch-norm statistics, so eval mode matters
        model.train()
        for _ in range(2):
            model(torch.randn(8, in_ch, size, size))
    return model.eval(), (torch.randn(2, in_ch, size, size),)


def _lm(cell="enas"):
    torch.manual_seed(0)
    space = get_space("enas-rnn", num_nodes=4)
    model = space.language_model(space.random(random.Random(3)), V, H, init_range=0.5, cell=cell,
                                 dropout={"hidden": 0.2, "output": 0.3})
    return model.eval(), (torch.randint(0, V, (L, 3)),)


MODELS = {
    "nas-cnn": lambda: _image(get_space("nas-cnn", layers=4, num_filters=[4, 6], strides=[1, 2]), 0, 1, 8),
    # odd image sizes give TF "SAME" pads that are asymmetric at the stride-2 reductions
    "enas-micro": lambda: _image(get_space("enas-micro", num_nodes=2), 1, 3, 19, channels=4, num_layers=1,
                                 aux_head=True, image_size=19),
    "enas-macro": lambda: _image(get_space("enas-macro", num_layers=3), 2, 3, 11, channels=4),
    "enas-rnn": _lm,
    "lstm": lambda: _lm("lstm"),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each model exported once (all three formats; the LSTM baseline without ONNX, to keep this
    file fast -- its ONNX export works the same way): name -> (model, example, out_dir, record)."""
    cache = {}

    def get(name):
        if name not in cache:
            model, example = MODELS[name]()
            out = tmp_path_factory.mktemp(name)
            formats = ("python", "torchscript") if name == "lstm" else ("python", "torchscript", "onnx")
            model.train()                  # exported in eval mode (no aux logits, no dropout), then restored
            cache[name] = model, example, out, export_model(model, example, out, formats, meta={"arch": name})
            assert model.training
            model.eval()
        return cache[name]
    return get


def _fresh(name, example, same_length=False):
    """New random inputs with another batch size (and, for a language model, another length)."""
    g = torch.Generator().manual_seed(99)
    x = example[0]
    if x.dtype != torch.long:
        return [(torch.randn((5,) + tuple(x.shape[1:]), generator=g),)]
    state_shape = (2, 4, H) if name == "lstm" else (4, H)
    lengths = [L] if same_length else [L, 2 * L + 1]
    return [(torch.randint(0, V, (n, 4), generator=g), torch.randn(state_shape, generator=g)) for n in lengths]


def _reference(model):
    return LMWrapper(model) if hasattr(model, "vocab_size") else model


def _close(want, got):
    want = want if isinstance(want, (tuple, list)) else [want]
    got = got if isinstance(got, (tuple, list)) else [got]
    assert len(want) == len(got)
    for w, g in zip(want, got):
        torch.testing.assert_close(torch.as_tensor(g), w, **TOL)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_format_reproduces_the_model(exported, name):
    model, example, out, record = exported(name)
    assert json.loads((out / "export.json").read_text()) == json.loads(json.dumps(record))
    assert set(record["formats"]) == ({"python", "torchscript"} if name == "lstm" else {"python", "torchscript", "onnx"})
    for fmt, r in record["formats"].items():
        assert r["max_abs_diff"] <= 1e-4, fmt
        assert all((out / f).is_file() for f in r["files"]), fmt
    ref = _reference(model)

    # python: a fresh import of the file, weights from a weights-only state dict
    state = torch.load(out / "model_state.pt", weights_only=True)
    gen = import_file(out / "model.py").load()
    assert not gen.training and set(gen.state_dict()) == set(state)
    assert set(state) <= set(model.state_dict())          # the original names (aux head etc. dropped)
    assert (name == "enas-micro") == any(k.startswith("aux_head") for k in model.state_dict()) and \
        not any(k.startswith("aux_head") for k in state)
    ts = torch.jit.load(str(out / "model.ts"))
    with torch.no_grad():
        for case in _fresh(name, example):
            want = ref(*case)
            _close(want, gen(*case))
            _close(want, ts(*case))

    # onnx, with onnxruntime; a language model's graph has the exported sequence length
    if name == "lstm":                 # (ONNX of the LSTM baseline: left out to keep this file fast)
        return
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for case in _fresh(name, example, same_length=True):
        with torch.no_grad():
            want = ref(*case)
        _close(want, [torch.from_numpy(o) for o in sess.run(None, dict(zip(names, (t.numpy() for t in case))))])
    if name in ("enas-rnn", "lstm"):
        assert record["formats"]["onnx"]["sequence_length"] == L and "unrolled" in record["formats"]["onnx"]["limitation"]


def test_python_file_needs_only_torch(exported):
    dirs = {name: exported(name)[2] for name in MODELS}
    for out in dirs.values():
        src = (out / "model.py").read_text()
        assert "torchnas" not in src
        imported = {a.name.split(".")[0] for node in ast.walk(ast.parse(src))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for a in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])}
        assert imported <= {"os", "math", "typing", "torch"}, imported
    # run each file in a clean interpreter: torchnas is never imported
    runs = [(str(out / "model.py"), None if name in ("enas-rnn", "lstm") else list(exported(name)[1][0].shape))
            for name, out in dirs.items()]
    code = textwrap.dedent(f"""
        import importlib.util, sys, torch
        for path, shape in {runs!r}:
            spec = importlib.util.spec_from_file_location("exported", path)
            m = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(m)
            net = m.load()
            out = net(torch.randn(shape)) if shape else net(torch.randint(0, {V}, ({L}, 2)))[0]
            print(type(out).__name__)
        assert not any(k.startswith("torchnas") for k in sys.modules), sorted(sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(dirs["lstm"]),
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Tensor"] * len(dirs)


def test_a_failed_check_names_the_format(tmp_path):
    class Drifting(nn.Module):          # python state the trace bakes in: the next call differs
        def __init__(self):
            super().__init__()
            self.calls, self.lin = 0, nn.Linear(3, 2)

        def forward(self, x):
            self.calls += 1
            return self.lin(x) * self.calls
    with pytest.raises(ExportError, match="python export does not reproduce"):
        export_model(Drifting(), (torch.randn(2, 3),), tmp_path, formats=("python",))


def test_bad_requests(tmp_path, monkeypatch):
    model, example = MODELS["nas-cnn"]()
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(model, example, tmp_path, formats=("pickle",))
    space = get_space("enas-rnn", num_nodes=2)
    with pytest.raises(ValueError, match="standalone child"):
        export_model(space.language_model(None, V, H), (torch.randint(0, V, (3, 2)),), tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)          # not installed
    with pytest.raises(ExportError, match="pip install onnx onnxruntime"):
        export_model(model, example, tmp_path, formats=("onnx",))


# -- export_run -------------------------------------------------------------------------------
def test_export_run_of_a_real_training_run(tmp_path):
    from torchnas.cli import main
    from torchnas.config import load_preset
    from torchnas.spaces import space_from_config
    space = space_from_config(load_preset("nas-cnn-tiny")["space"])
    arch = space.format(space.random(random.Random(0)))
    run = tmp_path / "r"
    assert main(["train", "--arch", arch, "--preset", "nas-cnn-tiny", "--epochs", "1", "--out", str(run),
                 "--quiet"]) == 0
    record = export_run(run, formats=("python", "torchscript"))      # (ONNX: tested above, slow)
    out = run / "export"
    assert json.loads((out / "export.json").read_text())["formats"].keys() == {"python", "torchscript"}
    assert record["meta"]["arch"] == arch and "test_acc" in record["meta"]["result"]
    assert len(record["meta"]["input"]["normalize"]["mean"]) == 1 and record["input"]["shape"][1:] == [1, 8, 8]
    assert all(r["max_abs_diff"] <= 1e-4 for r in record["formats"].values())
    assert {"model.py", "model_state.pt", "model.ts", "export.json"} <= {p.name for p in out.iterdir()}
    # the exported file holds the trained weights
    trained = torch.load(run / "model.pt", weights_only=True)
    model = space.child(space.parse(arch), 1, 10)
    model.load_state_dict(trained)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        _close(model.eval()(x), import_file(out / "model.py").load()(x))
    # a stopped export (Ctrl-C in the middle) leaves the finished one as it was and no partial folder
    import torchnas.export as module
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = module._write_formats

    def stopped(ref, py, example, work, formats, vocab):
        real(ref, py, example, work, ("python",), vocab)
        raise KeyboardInterrupt
    module._write_formats = stopped
    try:
        with pytest.raises(KeyboardInterrupt):
            export_run(run, formats=("python", "torchscript"))
        with pytest.raises(KeyboardInterrupt):
            export_run(run, tmp_path / "new" / "export", formats=("python",))
    finally:
        module._write_formats = real
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in run.iterdir() if ".partial-" in p.name or ".old-" in p.name] == []
    assert not (tmp_path / "new" / "export").exists() and list((tmp_path / "new").iterdir()) == []


TOY_ARCH = "toy:op1,-,op1,0,0,op1,1,-"


def test_export_run_errors(tmp_path):
    from torchnas.train import train_config
    nas = {"name": "nas-cnn", "layers": 1, "num_filters": [4]}
    unfinished = RunDir(tmp_path / "unfinished").create(
        train_config("nas-cnn:3,3,4,-", nas, {"name": "digits"}, {"epochs": 1}))
    with pytest.raises(RunError, match="no model.pt.*torchnas train"):
        export_run(unfinished.path)
    search = RunDir(tmp_path / "search").create({"kind": "search", "space": nas})
    with pytest.raises(RunError, match="not a retraining run"):
        export_run(search.path)
    with pytest.raises(RunError, match="not a run directory"):
        export_run(tmp_path / "nothing")
    nb = RunDir(tmp_path / "nb201").create(train_config("nb201:none,none,none,none,none,none", {"name": "nb201"},
                                                         {"name": "digits"}, {"epochs": 1}))
    with pytest.raises(RunError, match="no model.pt"):     # the NAS-Bench-201 cell has a network now
        export_run(nb.path)
    toy = RunDir(tmp_path / "toy").create(train_config(TOY_ARCH, {"name": "toy"}, {"name": "digits"}, {"epochs": 1}))
    with pytest.raises(ValueError, match="no network to export"):
        export_run(toy.path)


def test_export_run_of_a_language_model(tmp_path):
    """A retraining run of the enas-rnn space (config and model.pt as train.py writes them):
    the vocabulary is written next to the model, the ONNX graph takes the run's bptt length."""
    from torchnas.train import train_config
    ptb = tmp_path / "ptb"
    ptb.mkdir()
    for split, text in (("train", "the cat sat\non the mat\n"), ("valid", "the cat\n"), ("test", "on the mat\n")):
        (ptb / f"ptb.{split}.txt").write_text(text)
    space = get_space("enas-rnn", num_nodes=3)
    arch = space.format(space.random(random.Random(5)))
    net = {"hidden_size": H, "init_range": 0.3, "output": "loose_ends"}
    run = RunDir(tmp_path / "lm").create(train_config(arch, space.config(), {"name": "ptb", "path": str(ptb)},
                                                      {"epochs": 1, "bptt": 6}, 0, net))
    torch.manual_seed(0)
    model = space.language_model(space.parse(arch), 6, **net)             # <eos> cat mat on sat the
    torch.save(model.state_dict(), run.path / "model.pt")
    record = export_run(run.path, formats=("python", "onnx"))
    out = run.path / "export"
    assert (out / "vocab.txt").read_text().split() == sorted({"the", "cat", "sat", "on", "mat", "<eos>"})
    assert record["meta"]["vocab"].startswith("vocab.txt") and record["formats"]["onnx"]["sequence_length"] == 6
    tokens, state = torch.randint(0, 6, (9, 2)), torch.randn(2, H)
    with torch.no_grad():
        _close(LMWrapper(model.eval())(tokens, state), import_file(out / "model.py").load()(tokens, state))
