"""The NAS-Bench-201 networks, ENAS on them, and the reports that read the table after a search."""
import json
import random

import pytest
import torch

from tests.conftest import NB201_CSV, kill_on_call, require
from torchnas.enas import ENASSearch
from torchnas.runs import RunDir
from torchnas.spaces import NB201Space
from torchnas.spaces import nb201 as nb201_module
from torchnas.strategies import Reinforce

pytestmark = pytest.mark.usefixtures("one_thread")
SPACE = NB201Space()
BEST_200EP = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_match_the_benchmark_code():
    """Counted by hand from AutoDL-Projects' cell_operations.py and cell_infers/tiny_network.py
    at N = 5, C = 16, CIFAR-10 (3 input channels, 10 classes):
    stem conv3x3 3->16 no bias 432 + BN 32 = 464; ReLUConvBN 3x3 at C: 9C^2 + 2C (16: 2,336;
    32: 9,280; 64: 36,992), 1x1: C^2 + 2C; ResNetBasicblock 16->32: 4,608 + 64 + 9,216 + 64 +
    1x1 shortcut 512 = 14,464; 32->64: 18,432 + 128 + 36,864 + 128 + 2,048 = 57,600; lastact BN
    128; classifier 64*10 + 10 = 650; skip, pooling and none have no parameters."""
    fixed = 464 + 14_464 + 57_600 + 128 + 650
    # the benchmark's best cell (94.37 % CIFAR-10 test at 200 epochs): five 3x3 convs and a skip
    best = fixed + 5 * 5 * (2_336 + 9_280 + 36_992)
    assert best == 1_288_506
    assert params(SPACE.child(SPACE.parse(BEST_200EP), 3, 10)) == best
    # six 3x3 convs: the largest network of the benchmark (its API reports 1.531546 MB)
    assert params(SPACE.child(SPACE.parse(ALL_CONV3), 3, 10)) == fixed + 5 * 6 * (2_336 + 9_280 + 36_992) == 1_531_546
    # the best cell of the 12-epoch table: one 3x3 conv of node 3 is a 1x1 conv
    one_by_one = fixed + 5 * (4 * (2_336 + 9_280 + 36_992) + (256 + 32) + (1_024 + 64) + (4_096 + 128))
    arch = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    assert params(SPACE.child(arch, 3, 10)) == one_by_one == 1_073_466


@pytest.mark.parametrize("track", [False, True])
def test_shared_network_equals_the_standalone_child(track):
    torch.manual_seed(0)
    shared = SPACE.shared(3, 10, channels=4, num_cells=2, track_running_stats=track)
    x = torch.randn(6, 3, 12, 12)
    rng = random.Random(0)
    for _ in range(8):
        arch = SPACE.random(rng)
        shared.train()
        shared(x, arch)          # moves the tracked statistics, if any
        for mode in (True, False):
            shared.train(mode)
            child = SPACE.child_from_shared(shared, arch)
            assert child.training == mode
            assert torch.allclose(child(x), shared(x, arch), atol=1e-6), (str(arch), mode)


def test_ops_against_formulas():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(nb201_module.make_op("skip_connect", 3)(x), x)
    pool = nb201_module.make_op("avg_pool_3x3", 3)(x)
    # the corner averages its 4 in-image neighbours (count_include_pad=False), the centre 9
    assert torch.allclose(pool[:, :, 0, 0], x[:, :, :2, :2].mean((2, 3)))
    assert torch.allclose(pool[:, :, 2, 2], x[:, :, 1:4, 1:4].mean((2, 3)))
    conv = nb201_module.make_op("nor_conv_3x3", 3, affine=False, track_running_stats=False)
    w = conv[1].weight
    assert conv[1].bias is None
    z = torch.nn.functional.conv2d(x.relu(), w, padding=1)
    want = (z - z.mean((0, 2, 3), keepdim=True)) / torch.sqrt(z.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(conv(x), want, atol=1e-5)
    assert nb201_module.make_op("nor_conv_1x1", 3)[1].kernel_size == (1, 1)


def test_none_gives_zeros_and_cuts_gradients():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = nb201_module.make_op("none", 3)(x)
    assert torch.equal(y, torch.zeros_like(x))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    # a cell whose output node takes no edge is zeros: the stem and the first stage get no gradient
    torch.manual_seed(0)
    net = SPACE.shared(3, 10, channels=4, num_cells=1)
    cut = SPACE.parse("nb201:nor_conv_3x3,nor_conv_3x3,nor_conv_3x3,none,none,none")
    net(torch.randn(4, 3, 8, 8), cut).logsumexp(1).sum().backward()
    stem = [p.grad for p in net.stem.parameters()]
    assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in stem)
    # ... and its convolutions, which feed nothing, get none either
    assert all(p.grad is None for p in net.layers[0].parameters())
    # in a connected cell, exactly the sampled ops get gradients
    net.zero_grad(set_to_none=True)
    arch = SPACE.parse("nb201:nor_conv_3x3,none,skip_connect,nor_conv_1x1,avg_pool_3x3,none")
    net(torch.randn(4, 3, 8, 8), arch).logsumexp(1).sum().backward()
    for e, edge in enumerate(net.layers[0].edges):
        for v, op in enumerate(edge):
            for p in op.parameters():
                assert (p.grad is not None) == (arch.values[e] == v), (e, v)


def test_diagram_and_dry_run(capsys):
    from torchnas.cli import main
    from torchnas.viz.diagrams import graph_of
    g = graph_of(SPACE.parse(BEST_200EP))
    assert g.nodes and g.edges
    assert main(["train", "--preset", "enas-nb201-final", "--arch", BEST_200EP, "--dry-run"]) == 0
    assert "parameters: 1,288,506" in capsys.readouterr().out


def test_ground_truth_of_the_best_cell():
    require(NB201_CSV, "NAS-Bench-201 table")
    truth = SPACE.ground_truth(SPACE.parse(BEST_200EP), NB201_CSV.parent.parent)
    assert truth["arch_str"] == BEST_200EP and truth["cells"] == 15625
    assert truth["valid_acc"] == pytest.approx(84.746, abs=1e-3) and truth["valid_rank"] == 2
    assert truth["valid_percentile"] == pytest.approx(100 * 15623 / 15625, abs=0.01)
    worst = SPACE.ground_truth(SPACE.parse("nb201:none,none,none,none,none,none"), NB201_CSV.parent.parent)
    assert worst["valid_percentile"] < 1


def test_ground_truth_without_a_table(tmp_path):
    truth = SPACE.ground_truth(SPACE.parse(BEST_200EP), tmp_path)
    assert truth["table"] is None and "not found" in truth["note"] and truth["arch_str"] == BEST_200EP


# -- ENAS on the NAS-Bench-201 network ------------------------------------------------------------
REINFORCE = dict(batch_size=3, lr=0.001, adam_betas=(0.0, 0.999), adam_eps=1e-3, grad_clip=5.0, baseline_decay=0.99,
                 baseline_update="sample", entropy_weight=1e-4,
                 controller={"hidden_size": 32, "num_layers": 2, "tanh_constant": 2.5, "temperature": 5.0})


def _settings(cifar, **kw):
    return {"data": {"name": "cifar10", "path": str(cifar), "per_class": 30, "valid_size": 0.5},
            "net": {"channels": 4, "num_cells": 1}, "epochs": 2, "batch_size": 50, "train_steps": 2,
            "reward_batch": 50, "derive_samples": 8, "derive_batches": 2, "keep": 3, "warmup_epochs": 1,
            "lr_t0": 2, "lr_t_mul": 1, **kw}


def _search(run_dir, cifar, **kw):
    run = RunDir(run_dir)
    if not (run.path / RunDir.CONFIG).exists():
        run.create({"test": True})
    return ENASSearch(SPACE, Reinforce(SPACE, seed=3, **REINFORCE), seed=3, run_dir=run,
                      **_settings(cifar, **kw)).resume()


def test_enas_on_cifar10_never_reads_the_table_and_resumes_exactly(tmp_path, monkeypatch, shared_cifar):
    """A search on 300 CIFAR-10 images with the table unreadable (a folder where the file
    should be, and the readers raising): it trains, logs, derives and, killed in its second
    controller phase, resumes to the same result; the table is read only for the report."""
    blocked = tmp_path / "blocked"
    (blocked / "nasbench201" / "nb201_12epoch.csv").mkdir(parents=True)
    (blocked / "nasbench201" / "nb201_200epoch_cifar10.csv").mkdir(parents=True)
    monkeypatch.setenv("TORCHNAS_DATA", str(blocked))

    def peek(*a, **k):
        raise AssertionError("the search read a NAS-Bench-201 table")
    monkeypatch.setattr(nb201_module, "read_table", peek)
    monkeypatch.setattr(nb201_module, "_lookup", peek)
    monkeypatch.setattr(NB201Space, "ground_truth", peek)
    monkeypatch.setattr(NB201Space, "baselines", peek)
    ref = _search(tmp_path / "ref", shared_cifar).run()
    s = _search(tmp_path / "run", shared_cifar)
    restore = kill_on_call(monkeypatch, ENASSearch, "train_controller", 1)   # epoch 2 (epoch 1 is the warm-up)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    restore()
    resumed = _search(tmp_path / "run", shared_cifar)
    assert resumed.epoch == 1
    assert resumed.run() == ref
    run = resumed.run_dir
    epochs = run.records("epochs.jsonl")
    assert [e["controller_updates"] for e in epochs] == [0, 2] and epochs[0]["images"] == 150
    assert len(run.records("steps.jsonl")) == 2
    assert run.records("steps.jsonl") == RunDir(tmp_path / "ref").records("steps.jsonl")
    assert json.loads((run.path / "best.json").read_text())["arch"] == ref[0]["arch"]
    monkeypatch.undo()
    require(NB201_CSV, "NAS-Bench-201 table")
    from torchnas.ws_rank import report_ground_truth
    truth = report_ground_truth(run, SPACE, ref[0]["arch"], NB201_CSV.parent.parent)
    assert 0 <= truth["valid_percentile"] <= 100 and (run.path / "ground_truth.json").exists()
    assert 1 <= truth["rank_200ep"] <= 15625 and truth["baselines"]["largest_cell"]["params"] == 1_531_546


def test_warmup_samples_uniform_cells_and_leaves_the_controller_alone(tmp_path):
    from torchnas.strategies import RandomSearch
    s = ENASSearch(SPACE, Reinforce(SPACE, seed=0, **REINFORCE), seed=0,
                   **{**_settings(None, warmup_epochs=1), "data": {"name": "digits", "per_class": 10}})
    a = s.sampler()(50)
    assert a == s.sampler()(50)          # seeded by the epoch: a resumed run draws the same
    assert len(set(a)) == 50                       # uniform over 15,625 cells: no repeats expected
    before = {k: v.clone() for k, v in s.strategy.controller.state_dict().items()}
    s.train_shared_epoch()
    assert all(torch.equal(before[k], v) for k, v in s.strategy.controller.state_dict().items())
    s.epoch = 1
    assert s.sampler()(3) != a[:3]
    with pytest.raises(ValueError, match="warmup_epochs"):
        ENASSearch(SPACE, RandomSearch(SPACE), warmup_epochs=5, epochs=2, data={"name": "digits", "per_class": 10})


def test_ws_rank_on_a_toy_run(tmp_path, capsys):
    """An ENAS run on digits, then ``torchnas bench ws-rank``: tau and rho in [-1, 1], hits in
    [0, 1], the figure and the JSON written."""
    require(NB201_CSV, "NAS-Bench-201 table")
    from torchnas.cli import main
    run = tmp_path / "run"
    sets = ["enas.data={name: digits, per_class: 20}", "enas.net={channels: 4, num_cells: 1}", "enas.epochs=2",
            "enas.warmup_epochs=1", "enas.train_steps=2", "enas.reward_batch=32", "enas.derive_samples=5",
            "enas.derive_batches=1"]
    assert main(["search", "--preset", "enas-nb201-tiny", "--out", str(run), "--quiet", "--data-dir",
                 str(NB201_CSV.parent.parent)] + [a for s in sets for a in ("--set", s)]) == 0
    out = capsys.readouterr().out
    assert "derived cell |" in out and "200-epoch test" in out and out.index("200-epoch test") < out.index("12-epoch")
    truth = json.loads((run / "ground_truth.json").read_text())
    assert truth["arch"] == json.loads((run / "best.json").read_text())["arch"]
    assert main(["bench", "ws-rank", str(run), "--samples", "12", "--batches", "2", "--policy-samples", "7"]) == 0
    printed = capsys.readouterr().out
    assert "Kendall tau" in printed and "parameter count alone" in printed and "largest cell" in printed
    r = json.loads((run / "ws_rank.json").read_text())
    for k in ("tau_200ep", "rho_200ep", "tau_12ep", "rho_12ep", "params_tau_200ep", "params_tau_12ep"):
        assert -1 <= r[k] <= 1, k
    assert 0 <= r["top10_hit_rate"] <= 1 and r["within_size_pairs"] >= 0
    assert len(r["cells"]) == 12 and len({SPACE.unique_str(SPACE.parse(c["arch"])) for c in r["cells"]}) == 12
    assert r["policy"]["draws"] == 7 and 0 <= r["policy"]["largest_cell_share"] <= 1
    assert (run / "figures" / "ws_rank.png").stat().st_size > 1000
    assert r["derived"]["arch"] == truth["arch"] and r["derived"]["test_acc_200ep"] == truth["test_acc_200ep"]
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "benchmark table" in shown and "shared-weight ranking" in shown


def test_unique_cells_and_sampling_them():
    """``unique_str`` merges the encodings of one computation: 6,466 distinct cells of 15,625
    (the count of AutoDL-Projects' ``to_unique_str(consider_zero=True)`` and Ning et al. 2021);
    ``sampling: unique`` draws each of them with the same probability."""
    import collections
    import itertools
    from torchnas.spaces import space_from_config
    s = NB201Space()
    every = [s.make(v) for v in itertools.product(range(5), repeat=6)]
    assert len({s.unique_str(a) for a in every}) == 6466
    p = s.parse
    # a skip is its input; none, and any edge out of a zero node, is zero ("#")
    assert s.unique_str(p("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")) == \
        s.unique_str(p("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|")) == \
        "#+#+#+(0)@nor_conv_3x3"
    assert s.unique_str(p("|none~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|")) == \
        s.unique_str(p("|none~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|")) == \
        "#+#+#+(0)@avg_pool_3x3"
    # a node's terms are sorted whole: with a zero term inside, swapping nodes 1 and 2 is not merged
    # (the reference's definition, which gives its 6,466)
    a = p("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    b = p("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    assert s.unique_str(a) == "#+(0)@nor_conv_3x3+(0)@nor_conv_1x1+0" != s.unique_str(b)
    # uniform over the 6,466 cells (not the encodings), seeded
    u = space_from_config({"name": "nb201", "sampling": "unique"})
    draws = [u.random(random.Random(k)) for k in range(3)]
    assert draws == [u.random(random.Random(k)) for k in range(3)]
    rng = random.Random(0)
    n = 64_660
    counts = collections.Counter(u.unique_str(u.random(rng)) for _ in range(n))
    zero = s.unique_str(p("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert len(counts) == 6466 and 2 <= counts[zero] <= 22           # 10 expected; 225 encodings compute it
    rng = random.Random(0)
    assert sum(s.unique_str(s.random(rng)) == zero for _ in range(n)) > 800   # uniform encodings: 931 expected
    with pytest.raises(ValueError, match="space nb201: sampling must be 'uniform' or 'unique', not 'fair'"):
        NB201Space("fair")
