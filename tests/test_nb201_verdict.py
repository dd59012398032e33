"""The verdict on a NAS-Bench-201 cell (its 200-epoch CIFAR-10 test accuracy), the baselines a
reviewer tries first, and the ranking statistics of ``torchnas bench ws-rank``, each checked
against a stand-in table or a hand computation (issue 26)."""
import csv
import itertools
import random
import zlib

import pytest
from scipy.stats import kendalltau

from tests.conftest import SHARED, require
from torchnas.spaces import NB201Space
from torchnas.spaces import nb201 as nb201_module
from torchnas.ws_rank import distinct_cells, verdict_line, within_group_tau

SPACE = NB201Space()
GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
BAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _write(path, header, value_of):
    """A full stand-in table: every cell of the space, one row each, values from ``value_of``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, values in enumerate(itertools.product(range(5), repeat=6)):
            arch_str = SPACE.to_arch_str(SPACE.make(values))
            w.writerow([i, arch_str, *value_of(arch_str)])


@pytest.fixture
def stand_in(tmp_path):
    """Two cells stand out in the 200-epoch stand-in (GOOD 99, BAD 10, the largest cell 77, the
    rest 50 + a little by index); the 12-epoch stand-in ranks them the other way round."""
    def verdict(arch_str):
        return [{GOOD: 99.0, BAD: 10.0, ALL_CONV3: 77.0}.get(arch_str, 50.0 + zlib.crc32(arch_str.encode()) % 7 / 10)]

    def signal(arch_str):
        v = {GOOD: 11.0, BAD: 88.0}.get(arch_str, 40.0 + zlib.crc32(arch_str[::-1].encode()) % 13 / 10)
        return [v, v - 1]
    _write(tmp_path / nb201_module.VERDICT_FILE, ["index", "arch_str", nb201_module.VERDICT_COLUMN], verdict)
    _write(tmp_path / nb201_module.TABLE_FILE, ["index", "arch_str", nb201_module.VALID_COLUMN,
                                                nb201_module.TEST_COLUMN], signal)
    rows = {}
    with open(tmp_path / nb201_module.VERDICT_FILE) as f:
        for r in csv.DictReader(f):
            rows[r["arch_str"]] = float(r[nb201_module.VERDICT_COLUMN])
    return tmp_path, rows


def test_the_verdict_comes_from_the_200_epoch_file(stand_in):
    root, rows = stand_in
    good = SPACE.ground_truth(SPACE.parse(GOOD), root)
    assert good["test_acc_200ep"] == 99.0 and good["rank_200ep"] == 1 and good["cells"] == 15625
    assert good["percentile_200ep"] == pytest.approx(100 * 15624 / 15625, abs=0.01)
    assert good["valid_acc"] == 11.0 and good["test_acc"] == 10.0          # the 12-epoch signal, second
    assert good["verdict_table"].endswith("nb201_200epoch_cifar10.csv") and good["table"].endswith("nb201_12epoch.csv")
    bad = SPACE.ground_truth(SPACE.parse(BAD), root)
    assert bad["test_acc_200ep"] == 10.0 and bad["rank_200ep"] == 15625 and bad["percentile_200ep"] == 0
    assert bad["valid_rank"] == 1
    # tied cells share the best rank: cells at the same value as a middling cell
    mid = SPACE.parse("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|")
    v = rows[SPACE.to_arch_str(mid)]
    assert SPACE.ground_truth(mid, root)["rank_200ep"] == 1 + sum(x > v for x in rows.values())
    line = verdict_line({**good, "baselines": SPACE.baselines(root)})
    assert line.index("200-epoch test 99.00 %") < line.index("12-epoch valid 11.00 %") < line.index("largest cell 77.00 %")


def test_the_verdict_alone_and_neither_table(stand_in, tmp_path_factory):
    root, _ = stand_in
    (root / nb201_module.TABLE_FILE).unlink()
    t = SPACE.ground_truth(SPACE.parse(GOOD), root)
    assert t["test_acc_200ep"] == 99.0 and t["table"] is None and "nb201_12epoch.csv" in t["note"]
    empty = tmp_path_factory.mktemp("empty")
    t = SPACE.ground_truth(SPACE.parse(GOOD), empty)
    assert t["verdict_table"] is None and t["table"] is None and "nb201_200epoch_cifar10.csv" in t["note"]
    assert SPACE.baselines(empty)["verdict_table"] is None


def test_baselines_are_computed_from_the_table(stand_in):
    root, rows = stand_in
    b = SPACE.baselines(root)
    assert b["largest_cell"]["arch_str"] == ALL_CONV3 and b["largest_cell"]["test_acc_200ep"] == rows[ALL_CONV3]
    assert b["largest_cell"]["params"] == max(SPACE.param_count(SPACE.parse(a)) for a in rows)
    assert b["largest_cell"]["rank_200ep"] == 1 + sum(v > rows[ALL_CONV3] for v in rows.values())
    assert b["random_cell"] == pytest.approx(sum(rows.values()) / len(rows))
    assert b["optimum"] == max(rows.values()) == 99.0
    groups = {}
    for a, v in rows.items():
        groups.setdefault(SPACE.unique_str(SPACE.parse(a)), []).append(v)
    assert len(groups) == 6466
    assert b["random_distinct_cell"] == pytest.approx(sum(sum(g) / len(g) for g in groups.values()) / len(groups))


def test_baselines_of_the_real_table():
    """The numbers the issue quotes, recomputed from the shared file by a plain CSV read."""
    path = require(SHARED / nb201_module.VERDICT_FILE, "NAS-Bench-201 200-epoch table")
    with open(path) as f:
        rows = {r["arch_str"]: float(r[nb201_module.VERDICT_COLUMN]) for r in csv.DictReader(f)}
    b = SPACE.baselines(SHARED)
    assert b["largest_cell"]["test_acc_200ep"] == rows[ALL_CONV3] and b["largest_cell"]["params"] == 1_531_546
    assert round(b["random_cell"], 2) == round(sum(rows.values()) / len(rows), 2)
    assert b["optimum"] == max(rows.values())


def test_parameter_count_without_building_the_network():
    rng = random.Random(0)
    for channels, num_cells in ((16, 5), (8, 1), (4, 2)):
        for _ in range(4):
            a = SPACE.random(rng)
            net = SPACE.child(a, 3, 10, channels=channels, num_cells=num_cells)
            assert SPACE.param_count(a, channels, num_cells) == sum(p.numel() for p in net.parameters())


def test_within_size_tau_by_hand():
    """Six cells in two sizes, ranks known. Size A = cells 0-2: scores 3, 2, 1 against verdicts
    30, 10, 20: pairs (0,1) +, (0,2) +, (1,2) − → +1. Size B = cells 3-5: scores 1, 2, 3 against
    verdicts 1, 2, 3: three concordant pairs → +3. No ties: τ within sizes = (1 + 3) / 6; the
    pairs across sizes do not count (with them τ would be different)."""
    scores = [3, 2, 1, 1, 2, 3]
    verdicts = [30, 10, 20, 1, 2, 3]
    sizes = ["A", "A", "A", "B", "B", "B"]
    tau, pairs = within_group_tau(scores, verdicts, sizes)
    assert pairs == 6 and tau == pytest.approx(4 / 6)
    assert kendalltau(scores, verdicts).statistic != pytest.approx(4 / 6)
    # one group: Kendall's tau-b itself (SciPy), with and without ties
    x, y = [0.3, 0.1, 0.7, 0.5, 0.2, 0.9], [5, 1, 4, 6, 2, 3]
    assert within_group_tau(x, y, [0] * 6)[0] == pytest.approx(kendalltau(x, y).statistic)
    x, y = [1, 1, 2, 3, 3, 4], [2, 1, 1, 3, 5, 5]
    assert within_group_tau(x, y, [0] * 6)[0] == pytest.approx(kendalltau(x, y).statistic)
    # ties by hand: group {0, 1, 2}: pairs (0,1) tied in x, (0,2) +, (1,2) +; C − D = 2, P = 3,
    # Tx = 1, Ty = 0 → 2 / √(2 · 3)
    assert within_group_tau([1, 1, 2, 9], [1, 2, 3, 0], [0, 0, 0, 1]) == (pytest.approx(2 / 6 ** 0.5), 3)
    assert within_group_tau([1, 1, 2], [1, 2, 3], [0, 0, 1]) == (None, 1)       # every pair tied
    assert within_group_tau([1, 2], [1, 2], [0, 1]) == (None, 0)                 # no pair


def test_function_params_count_only_what_the_function_uses():
    """A conv on an edge out of a zero node, or into a node that reaches no output, counts
    nothing; a conv at work counts as in the network."""
    live = SPACE.parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    dead = SPACE.parse("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")   # node 2 unused
    assert SPACE.unique_str(live) == SPACE.unique_str(dead)
    skip_only = SPACE.parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert SPACE.function_params(live) == SPACE.function_params(dead) == SPACE.param_count(skip_only)
    assert SPACE.param_count(dead) > SPACE.param_count(live) > SPACE.param_count(skip_only)
    used = SPACE.parse(ALL_CONV3)
    assert SPACE.function_params(used) == SPACE.param_count(used)


class _StubSearch:
    """What ws_rank uses of a restored ENAS search: known shared-weight scores, a policy that
    draws the largest cell ``k`` times in ``n``."""

    def __init__(self, scores, k):
        import torch
        from types import SimpleNamespace
        self.scores = scores
        self.shared = SimpleNamespace(generator=torch.Generator(), reward_bn="train")
        self.strategy = SimpleNamespace(propose=lambda m: [SPACE.parse(ALL_CONV3)] * k + [SPACE.parse(BAD)] * (m - k))

    def valid_batch(self):
        return None, [0] * 4

    def reward(self, arch, batch):
        return self.scores(arch)


def test_ws_rank_statistics_on_known_scores(stand_in, tmp_path, monkeypatch):
    """The record's statistics equal SciPy's on the same numbers, each against its own column:
    shared-weight scores that follow the 200-epoch stand-in exactly give τ 1 against it, the
    size τ and the within-size τ are computed from function_params, and the largest cell's share
    of the policy's draws is k / n."""
    import json
    from scipy.stats import spearmanr
    from torchnas import ws_rank as module
    from torchnas.runs import RunDir
    root, rows = stand_in
    run = RunDir(tmp_path / "run")
    run.create({"test": True})
    scores = lambda a: rows[SPACE.to_arch_str(a)] / 100
    monkeypatch.setattr(module, "search_from_run", lambda r: ({"data_dir": None}, SPACE, _StubSearch(scores, 3)))
    r = module.ws_rank(run.path, samples=30, seed=0, batches=2, policy_samples=10, data_dir=root)
    cells = r["cells"]
    ws = [c["shared_acc"] for c in cells]
    verdict = [c["test_acc_200ep"] for c in cells]
    signal = [c["table_valid_acc"] for c in cells]
    size = [c["function_params"] for c in cells]
    assert verdict == [rows[SPACE.to_arch_str(SPACE.parse(c["arch"]))] for c in cells]
    assert size == [SPACE.function_params(SPACE.parse(c["arch"])) for c in cells]
    assert r["tau_200ep"] == pytest.approx(1.0) and r["rho_200ep"] == pytest.approx(1.0)
    assert r["tau_12ep"] == pytest.approx(kendalltau(ws, signal).statistic)
    assert r["params_tau_200ep"] == pytest.approx(kendalltau(size, verdict).statistic)
    assert r["params_rho_12ep"] == pytest.approx(spearmanr(size, signal).statistic)
    assert (r["within_size_tau_12ep"], r["within_size_pairs"]) == within_group_tau(ws, signal, size)
    assert r["policy"]["largest_cell_share"] == pytest.approx(0.3)
    assert r["policy"]["mean_200ep"] == pytest.approx((3 * rows[ALL_CONV3] + 7 * rows[BAD]) / 10)
    assert r["policy"]["distinct_cells_mean_200ep"] == pytest.approx(sum(verdict) / 30)
    assert (r["policy"]["draws"], r["policy"]["distinct"]) == (10, 2)      # 3 all-conv3 cells, 7 of BAD
    rng = random.Random(0)                                 # ws_rank's seed: the uniform sampler's own draws
    uniform = [rows[SPACE.to_arch_str(SPACE.random(rng))] for _ in range(10)]
    assert r["policy"]["uniform_draws_mean_200ep"] == pytest.approx(sum(uniform) / 10)
    assert set(r["policy"]) == {"draws", "mean_200ep", "distinct", "largest_cell_share",
                                "uniform_draws_mean_200ep", "distinct_cells_mean_200ep"}
    assert json.loads((run.path / "ws_rank.json").read_text())["tau_200ep"] == r["tau_200ep"]


def test_ws_rank_draws_distinct_cells():
    cells = distinct_cells(SPACE, 100, seed=3)
    assert len({SPACE.function_key(a) for a in cells}) == 100
    assert cells == distinct_cells(SPACE, 100, seed=3) != distinct_cells(SPACE, 100, seed=4)


def test_top_k_by_score_ties_by_position_and_undefined_correlations():
    """The top-10 % hit rate's sets: the k best scores, a tie broken by position; a correlation
    with a constant column is undefined: None, not NaN (ws_rank.json is JSON)."""
    from torchnas.ws_rank import _top, rank_stats
    assert _top([0.1, 0.9, 0.5, 0.9, 0.7], 2) == {1, 3}
    assert _top([0.1, 0.9, 0.5, 0.9, 0.7], 3) == {1, 3, 4}
    assert _top([0.2, 0.2, 0.2], 1) == {0}
    assert rank_stats([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == (None, None)
    tau, rho = rank_stats([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    assert tau == pytest.approx(4 / 6) and rho == pytest.approx(0.8)
    with pytest.raises(ValueError, match="distinct cells"):
        distinct_cells(SPACE, 6467, seed=0)


def test_show_an_architecture_string_with_its_verdict(stand_in, tmp_path, capsys):
    from torchnas.cli import main
    root, _ = stand_in
    assert main(["show", "nb201:" + GOOD, "--out", str(tmp_path / "a"), "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "benchmark table: 200-epoch test 99.00 % (rank 1 of 15,625" in out and "largest cell 77.00 %" in out
    assert main(["show", "nb201:" + GOOD, "--out", str(tmp_path / "b"), "--data-dir", str(tmp_path / "none")]) == 0
    assert "benchmark table" not in capsys.readouterr().out


def test_param_free_dropout_only_while_the_shared_weights_train():
    """P-DARTS's operation-level dropout on skip_connect and avg_pool_3x3 outputs: random in a
    training step, absent when scoring (no gradient) or in eval mode, decayed linearly to 0 over
    the search, and never on a cell without parameter-free edges."""
    import torch
    torch.manual_seed(0)
    net = SPACE.shared(3, 10, channels=4, num_cells=1, param_free_dropout=0.5)
    plain = SPACE.shared(3, 10, channels=4, num_cells=1)
    plain.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 8, 8)
    skips = SPACE.parse("|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    convs = SPACE.parse(ALL_CONV3)
    net.train(), plain.train()
    assert not torch.equal(net(x, skips), net(x, skips))                  # masks drawn anew each step
    torch.manual_seed(1)
    a = net(x, convs)
    torch.manual_seed(1)
    assert torch.equal(a, plain(x, convs))                                # no parameter-free edge: no dropout
    with torch.no_grad():
        assert torch.equal(net(x, skips), plain(x, skips))                # a reward: no dropout
    plain.load_state_dict(net.state_dict())                              # the running BN statistics too
    net.eval(), plain.eval()
    assert torch.equal(net(x, skips), plain(x, skips))
    net.train(), plain.train()
    net.set_progress(0.5)
    assert {layer.drop for layer in net.layers if hasattr(layer, "drop")} == {0.25}
    net.set_progress(1.0)
    assert torch.equal(net(x, skips), plain(x, skips))
    with pytest.raises(ValueError, match="param_free_dropout must be in"):
        SPACE.shared(3, 10, param_free_dropout=1.0)


def test_ws_rank_scores_every_cell_on_the_same_batches_and_counts_top_hits_by_hand(stand_in, tmp_path, monkeypatch):
    """Each cell is scored on the same validation batches (drawn once), so their scores compare;
    the top-10 % hit rate is |top k by score ∩ top k by verdict| / k, counted here from the cells,
    with scores that agree with the verdict at the top only (a ranking taken the wrong way, or
    at the bottom, gives another number)."""
    from torchnas import ws_rank as module
    from torchnas.runs import RunDir
    root, rows = stand_in
    run = RunDir(tmp_path / "run")
    run.create({"test": True})
    seen = {}

    class Search(_StubSearch):
        drawn = 0

        def valid_batch(self):
            Search.drawn += 1
            return None, [Search.drawn] * 4

        def reward(self, arch, batch):
            seen.setdefault(str(arch), []).append(batch[1][0])
            v = rows[SPACE.to_arch_str(arch)]
            return v if v >= 50.4 else -v          # right order above 50.4, reversed below
    monkeypatch.setattr(module, "search_from_run", lambda r: ({"data_dir": None}, SPACE, Search(None, 1)))
    r = module.ws_rank(run.path, samples=40, seed=0, batches=3, policy_samples=5, data_dir=root)
    assert Search.drawn == 3 and all(ids == [1, 2, 3] for ids in seen.values()) and len(seen) == 40
    cells = r["cells"]
    k = r["top_k"]
    assert k == 4
    top = lambda key: {c["arch"] for c in sorted(cells, key=lambda c: -c[key])[:k]}
    by_score, by_verdict = top("shared_acc"), top("test_acc_200ep")
    assert r["top10_hit_rate"] == len(by_score & by_verdict) / k
    bottom = lambda key: {c["arch"] for c in sorted(cells, key=lambda c: c[key])[:k]}
    assert len(bottom("shared_acc") & bottom("test_acc_200ep")) / k != r["top10_hit_rate"]


def test_ws_rank_record_field_by_field(stand_in, tmp_path, monkeypatch):
    """Every entry of ws_rank.json from its definition (issue 27 item 11: the mutation tool's
    survivors in ``ws_rank``): the run's own data folder when none is given, the record's
    settings, images per cell, the top-k size, the sizes, the derived cell from best.json, the
    cells' columns, the figure's path; and the refusals, each at its boundary, before anything
    is written."""
    import json
    from torchnas import ws_rank as module
    from torchnas.runs import RunDir
    root, rows = stand_in
    run = RunDir(tmp_path / "run")
    run.create({"test": True})
    scores = lambda a: rows[SPACE.to_arch_str(a)] / 100
    SMALL = {"samples": 3, "seed": 0, "batches": 1, "policy_samples": 1}

    def restore(r):
        assert r.path == run.path                  # the run asked for, not another
        return {"data_dir": str(root)}, SPACE, _StubSearch(scores, 1)
    monkeypatch.setattr(module, "search_from_run", restore)
    for kw, what in ((dict(samples=2), "(got 2, 1, 1)"), (dict(batches=0), "(got 3, 0, 1)"),
                     (dict(policy_samples=0), "(got 3, 1, 0)")):
        args = {**SMALL, **kw}
        with pytest.raises(ValueError) as e:
            module.ws_rank(run.path, **args)
        assert str(e.value) == ("ws-rank needs --samples >= 3, --batches >= 1 and --policy-samples >= 1 " + what)
    with pytest.raises(ValueError) as e:
        module.ws_rank(run.path, **{**SMALL, "samples": 15626})
    assert str(e.value) == "--samples 15626 is more than the 15625 architectures of 'nb201'"
    with pytest.raises(ValueError, match="gave only 6466 distinct cells"):      # as many as the space: not refused
        module.ws_rank(run.path, **{**SMALL, "samples": 15625})
    for keep in (nb201_module.VERDICT_FILE, nb201_module.TABLE_FILE):     # one table of two is not enough
        half = tmp_path / f"half-{keep.replace('/', '_')}"
        (half / keep).parent.mkdir(parents=True)
        (half / keep).write_bytes((root / keep).read_bytes())
        note = SPACE.ground_truth(SPACE.parse(GOOD), half)["note"]
        assert note
        with pytest.raises(ValueError) as e:
            module.ws_rank(run.path, **SMALL, data_dir=half)
        assert str(e.value) == f"ws-rank needs the benchmark's tables: {note}"

    class NoTables(NB201Space):
        def ground_truth(self, arch, data_dir=None):
            return None
    monkeypatch.setattr(module, "search_from_run", lambda r: ({}, NoTables(), _StubSearch(scores, 1)))
    with pytest.raises(ValueError) as e:
        module.ws_rank(run.path, **SMALL)
    assert str(e.value) == "space 'nb201' has no benchmark table to rank against (ws-rank needs nb201)"
    monkeypatch.setattr(module, "search_from_run", restore)
    assert not (run.path / "ws_rank.json").exists() and not (run.path / "figures").exists()

    r = module.ws_rank(run.path, **SMALL)      # data_dir: the run's own
    assert (r["samples"], r["seed"], r["batches"], r["images_per_cell"], r["top_k"]) == (3, 0, 1, 4, 1)
    assert r["run"] == str(run.path) and r["reward_bn"] == "train" and "derived" not in r
    assert [c["test_acc_200ep"] for c in r["cells"]] == [rows[SPACE.to_arch_str(a)] for a in distinct_cells(SPACE, 3, 0)]

    best = SPACE.parse(GOOD)
    run.write_json(RunDir.BEST, {"arch": str(best)})
    r = module.ws_rank(run.path, samples=25, seed=5, batches=2, policy_samples=4, data_dir=root)
    assert (r["samples"], r["seed"], r["batches"], r["images_per_cell"], r["top_k"]) == (25, 5, 2, 8, 2)
    cells = distinct_cells(SPACE, 25, 5)
    assert [c["arch"] for c in r["cells"]] == [str(a) for a in cells]
    for c, a in zip(r["cells"], cells):
        s = SPACE.to_arch_str(a)
        truth = SPACE.ground_truth(a, root)
        assert c == {"arch": str(a), "shared_acc": rows[s] / 100, "test_acc_200ep": rows[s],
                     "table_valid_acc": truth["valid_acc"], "function_params": SPACE.function_params(a)}
    sizes = [c["function_params"] for c in r["cells"]]
    assert r["sizes"] == len(set(sizes)) and 1 <= r["sizes"] < 25
    assert r["within_size_pairs"] == sum(sizes[i] == sizes[j] for i in range(25) for j in range(i + 1, 25))
    truth = SPACE.ground_truth(best, root)
    assert r["derived"] == {"arch": str(best), "shared_acc": 0.99, "test_acc_200ep": 99.0, "rank_200ep": 1,
                            "table_valid_acc": truth["valid_acc"], "function_params": SPACE.function_params(best)}
    assert r["baselines"] == SPACE.baselines(root)
    assert r["figure"] == str(run.path / RunDir.FIGURES / "ws_rank.png") and (run.path / "figures" / "ws_rank.png").stat().st_size
    saved = json.loads((run.path / "ws_rank.json").read_text())
    assert saved == {k: v for k, v in r.items() if k != "figure"}
    lines = module.ranking_lines(saved)
    assert lines[0] == "25 distinct cells scored with the shared weights on 8 validation images each (reward_bn train)"
    assert lines[-1].startswith("derived cell: shared-weight accuracy 0.9900, 200-epoch test 99.00 % (rank 1), 12-epoch valid ")


def test_ws_rank_figure_draws_the_record(tmp_path, monkeypatch):
    """The figure shows the record's numbers: each cell at (100 x shared accuracy, verdict)
    coloured by its parameters in millions, the derived cell as its own point, the τs in the
    title ("n/a" where undefined), the axes and colour bar named."""
    from torchnas import ws_rank as module
    from torchnas.viz import figures
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    cells = [{"shared_acc": 0.5, "test_acc_200ep": 90.0, "function_params": 2e6},
             {"shared_acc": 0.25, "test_acc_200ep": 80.0, "function_params": 5e5}]
    record = {"cells": cells, "tau_200ep": 0.5, "params_tau_200ep": None, "within_size_tau_200ep": 0.25,
              "images_per_cell": 512}
    for derived in (None, {"shared_acc": 0.75, "test_acc_200ep": 93.0}):
        if derived:
            record["derived"], record["params_tau_200ep"] = derived, 0.75
        assert module.ws_rank_figure(record, tmp_path / "f.png") == tmp_path / "f.png"
        fig = drawn[-1]
        ax, bar = fig.axes
        assert ax.collections[0].get_offsets().tolist() == [[50.0, 90.0], [25.0, 80.0]]
        assert ax.collections[0].get_array().tolist() == [2.0, 0.5]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2 distinct cells"] + ["derived cell"] * bool(derived)
        assert len(ax.collections) == 1 + bool(derived)
        if derived:
            assert ax.collections[1].get_offsets().tolist() == [[75.0, 93.0]]
        assert ax.get_title() == f"τ 0.50 (size alone {'0.75' if derived else 'n/a'}), within sizes 0.25"
        assert ax.get_xlabel() == "shared-weight accuracy, % (512 validation images)"
        assert ax.get_ylabel() == "NAS-Bench-201: 200-epoch test accuracy, %"
        assert bar.get_ylabel() == "parameters (M)"


def test_verdict_baselines_and_ranking_lines_word_for_word(stand_in, tmp_path):
    """What a user reads after a search and after ws-rank, word for word, from a hand-made
    record and the stand-in table (its largest cell is second of 15,625, its optimum 99)."""
    from torchnas.runs import RunDir, RunError
    from torchnas.ws_rank import baselines_line, ranking_lines, report_ground_truth, search_from_run
    root, rows = stand_in
    b = SPACE.baselines(root)
    random_cell, distinct = sum(rows.values()) / len(rows), b["random_distinct_cell"]
    assert baselines_line(b) == (f"baselines (200-epoch test, from the table): largest cell 77.00 % (rank 2), "
                                 f"random cell {random_cell:.2f} % (distinct cells {distinct:.2f} %), optimum 99.00 %")
    assert baselines_line({"verdict_table": None, "note": "no file"}) == "no baselines (no file)"
    assert baselines_line({}) == "no baselines (no table)"
    truth = SPACE.ground_truth(SPACE.parse(BAD), root)
    assert verdict_line(truth) == ("200-epoch test 10.00 % (rank 15,625 of 15,625, percentile 0.0); 12-epoch valid "
                                   "88.00 %, test 87.00 % (percentile 100.0, rank 1)")
    assert verdict_line({"valid_acc": 70.0, "test_acc": 69.5, "valid_percentile": 12.25, "valid_rank": 1234}) == (
        "12-epoch valid 70.00 %, test 69.50 % (percentile 12.2, rank 1,234); (an older record without the "
        "200-epoch verdict: a new search or ws-rank gives it)")
    assert verdict_line({"note": "no tables here", "verdict_table": None}) == "(no tables here)"
    short = {"test_acc_200ep": 91.0, "rank_200ep": 12, "percentile_200ep": 50.0, "verdict_table": "t"}
    assert verdict_line(short) == "200-epoch test 91.00 % (rank 12 of 15,625, percentile 50.0)"
    assert verdict_line({**short, "cells": 6466}) == "200-epoch test 91.00 % (rank 12 of 6,466, percentile 50.0)"

    run = RunDir(tmp_path / "run")
    run.create({"space": {"name": "nb201"}})
    written = report_ground_truth(run, SPACE, str(SPACE.parse(GOOD)), root)
    assert written == {"arch": str(SPACE.parse(GOOD)), **SPACE.ground_truth(SPACE.parse(GOOD), root), "baselines": b}
    assert run.read_json(RunDir.GROUND_TRUTH) == written
    assert report_ground_truth(run, type("NoTable", (), {"ground_truth": lambda self, a, d: None,
                                                         "parse": lambda self, s: s})(), "x", root) is None
    with pytest.raises(RunError) as e:
        search_from_run(run)
    assert str(e.value) == f"{run.path} is not an ENAS run: ws-rank needs the shared weights of one"

    r = {"samples": 5, "images_per_cell": 256, "reward_bn": "train", "top10_hit_rate": 0.5, "top_k": 2,
         "within_size_pairs": 4, "sizes": 3, "baselines": b,
         "tau_200ep": 0.25, "rho_200ep": None, "params_tau_200ep": 0.5, "params_rho_200ep": 0.625,
         "within_size_tau_200ep": -0.125, "tau_12ep": 0.75, "rho_12ep": 0.875, "params_tau_12ep": None,
         "params_rho_12ep": 0.0, "within_size_tau_12ep": None,
         "policy": {"draws": 10, "distinct": 3, "mean_200ep": 91.234, "uniform_draws_mean_200ep": 87.5,
                    "distinct_cells_mean_200ep": 89.75, "largest_cell_share": 0.75},
         "derived": {"shared_acc": 0.71234, "test_acc_200ep": 93.5, "rank_200ep": 1234, "table_valid_acc": 72.25}}
    assert ranking_lines(r) == [
        "5 distinct cells scored with the shared weights on 256 validation images each (reward_bn train)",
        "against the 200-epoch test (the verdict): Kendall tau 0.250, Spearman rho n/a; parameter count alone "
        "0.500, 0.625; tau-b within equal sizes -0.125 (4 pairs in 3 sizes)",
        "against the 12-epoch valid (the signal): Kendall tau 0.750, Spearman rho 0.875; parameter count alone "
        "n/a, 0.000; tau-b within equal sizes n/a (4 pairs in 3 sizes)",
        "top-10% hit rate 0.50 against the verdict (top 2; chance 0.10)",
        "final policy, 10 draws (3 distinct): mean 200-epoch test 91.23 % against 87.50 % for as many draws of "
        "the run's uniform sampler and 89.75 % for the distinct cells above; 75 % of draws are the largest cell",
        baselines_line(b),
        "derived cell: shared-weight accuracy 0.7123, 200-epoch test 93.50 % (rank 1,234), 12-epoch valid 72.25 %"]
    assert ranking_lines({"samples": 7, "kendall_tau": 0.5, "spearman_rho": 0.25}) == [
        "7 uniform cells: Kendall tau 0.500 against the 12-epoch table, Spearman rho 0.250 (an older ws-rank: run "
        "it again for the 200-epoch verdict)"]


def test_search_from_run_restores_the_enas_checkpoint(tmp_path):
    """ws-rank's run loading: a run without a checkpoint is refused by name; with one, the search
    comes back with the checkpoint's state (a controller weight set by hand); another job's
    checkpoint is refused by its kind."""
    import torch
    from torchnas.config import search_config
    from torchnas.enas import build_enas
    from torchnas.runs import RunDir, RunError
    from torchnas.ws_rank import search_from_run
    rc = search_config(preset="enas-micro-tiny", data="digits", set=[
        "enas.net.channels=4", "enas.data.per_class=15", "enas.data.image_size=6", "enas.epochs=1"])
    run = RunDir(tmp_path / "run").create(rc.raw)
    with pytest.raises(RunError) as e:
        search_from_run(run)
    assert str(e.value) == f"{run.path} has no checkpoint yet: let the search finish an epoch first"
    _, search = build_enas(rc)
    weight = next(search.strategy.controller.parameters())
    with torch.no_grad():
        weight.fill_(0.125)
    run.save_checkpoint(search.state_dict(), "enas")
    cfg, space, restored = search_from_run(run)
    assert cfg == run.config() and space.name == "enas-micro"
    assert torch.equal(next(restored.strategy.controller.parameters()), torch.full_like(weight, 0.125))
    run.save_checkpoint({"epoch": 1}, "train")
    with pytest.raises(RunError, match="checkpoint of a network's training, not of an ENAS search"):
        search_from_run(run)
