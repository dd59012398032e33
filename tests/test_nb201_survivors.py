"""Reference tests for what the mutation run over ``spaces/nb201.py`` left alive in reading and
reporting the NAS-Bench-201 tables (``read_table``, ``_lookup``, ``ground_truth``,
``baselines``) and in ``from_arch_str``'s errors: the messages word for word (they tell the
user what is wrong and how to fix it), and every key and value of the reports, worked out by
hand from stand-in tables whose accuracies follow one edge's op."""
import csv
import os
import shutil

import pytest

from tests.test_nb201_verdict import ALL_CONV3, GOOD, _write
from torchnas.data import DataFormatError
from torchnas.spaces import NB201Space
from torchnas.spaces import nb201 as nb201_module
from torchnas.spaces.base import ArchitectureError

SPACE = NB201Space()
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
VERDICT_FILE = "nasbench201/nb201_200epoch_cifar10.csv"
TABLE_FILE = "nasbench201/nb201_12epoch.csv"
VALID, TEST, VERDICT = "cifar10valid_xvalid_acc_12ep", "cifar10_oritest_acc_12ep", "cifar10_test_acc_200ep"
TABLE_HOW = ("It is the NAS-Bench-201 12-epoch table (15,625 rows: index, arch_str and accuracy columns); "
             "put it at <data root>/nasbench201/nb201_12epoch.csv or pass --data-dir.")
VERDICT_HOW = ("It is the NAS-Bench-201 200-epoch CIFAR-10 table (15,625 rows: index, arch_str, "
               "cifar10_test_acc_200ep); put it at <data root>/nasbench201/nb201_200epoch_cifar10.csv "
               "or pass --data-dir.")
WANT = ("'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with op one of "
        "none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3")
LARGEST_PARAMS = 1_531_546          # every edge nor_conv_3x3, the benchmark's network (issue 26)


def _ops(arch_str):
    """The six op indices of an arch_str, in edge order, read here without the code under test."""
    return [OPS.index(e.split("~")[0]) for node in arch_str.split("+") for e in node.strip("|").split("|")]


# The stand-ins: 200-epoch accuracy 60 + op of edge 1<-0 (or 70 + it); 12-epoch valid 44 − op of
# edge 3<-2 and test 30 + (op of edge 2<-0) mod 4. Each op is on 3,125 of the 15,625 cells, so for
# ALL_CONV3 (op 3 everywhere): 200-epoch 63, 3,125 cells above (rank 3,126), 9,375 below (60 %);
# valid 41, 9,375 above (rank 9,376), 3,125 below (20 %); test 33, the top, 12,500 below (80 %).
def _verdict(base):
    return lambda s: [base + _ops(s)[0]]


def _signal(s):
    v = _ops(s)
    return [44.0 - v[5], 30.0 + v[1] % 4]


def _missing(root, file, how):
    return f"data not found: {root / file} (data root {root}, from --data-dir). {how}"


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Four data roots: both tables (A); only a 200-epoch table of other numbers, the same size
    and modification time as A's (B); only A's 12-epoch table (C); nothing (D)."""
    a, b, c, d = (tmp_path_factory.mktemp(n) for n in "ABCD")
    _write(a / VERDICT_FILE, ["index", "arch_str", VERDICT], _verdict(60.0))
    _write(a / TABLE_FILE, ["index", "arch_str", VALID, TEST], _signal)
    _write(b / VERDICT_FILE, ["index", "arch_str", VERDICT], _verdict(70.0))
    st = (a / VERDICT_FILE).stat()
    assert (b / VERDICT_FILE).stat().st_size == st.st_size
    os.utime(b / VERDICT_FILE, ns=(st.st_atime_ns, st.st_mtime_ns))
    (c / TABLE_FILE).parent.mkdir(parents=True)
    shutil.copy(a / TABLE_FILE, c / TABLE_FILE)
    return a, b, c, d


def test_ground_truth_reports_every_field_by_hand(roots):
    """Both tables: the whole report, key for key (the 12-epoch metrics without the index
    column); B's table, as large and as old as A's, is read for itself, not taken from the
    cache under A's entry."""
    a, b, _, _ = roots
    signal = {"table": str(a / TABLE_FILE), "valid_acc": 41.0, "test_acc": 33.0, "valid_percentile": 20.0,
              "test_percentile": 80.0, "valid_rank": 9376, "cells": 15625, "metrics": {VALID: 41.0, TEST: 33.0}}
    assert SPACE.ground_truth(SPACE.parse(ALL_CONV3), a) == {
        "arch_str": ALL_CONV3, "params": LARGEST_PARAMS, "function_params": LARGEST_PARAMS,
        "verdict_table": str(a / VERDICT_FILE), "test_acc_200ep": 63.0, "rank_200ep": 3126,
        "percentile_200ep": 60.0, **signal}
    assert SPACE.ground_truth(SPACE.parse(ALL_CONV3), b) == {
        "arch_str": ALL_CONV3, "params": LARGEST_PARAMS, "function_params": LARGEST_PARAMS,
        "verdict_table": str(b / VERDICT_FILE), "test_acc_200ep": 73.0, "rank_200ep": 3126,
        "percentile_200ep": 60.0, "cells": 15625, "table": None,
        "note": _missing(b, TABLE_FILE, TABLE_HOW)}


def test_ground_truth_with_one_table_or_none(roots):
    """The 12-epoch table alone still counts its cells; a missing table is named in ``note``
    with how to get it, both notes joined by a space when neither is there."""
    a, _, c, d = roots
    assert SPACE.ground_truth(SPACE.parse(ALL_CONV3), c) == {
        "arch_str": ALL_CONV3, "params": LARGEST_PARAMS, "function_params": LARGEST_PARAMS,
        "verdict_table": None, "table": str(c / TABLE_FILE), "valid_acc": 41.0, "test_acc": 33.0,
        "valid_percentile": 20.0, "test_percentile": 80.0, "valid_rank": 9376, "cells": 15625,
        "metrics": {VALID: 41.0, TEST: 33.0}, "note": _missing(c, VERDICT_FILE, VERDICT_HOW)}
    assert SPACE.ground_truth(SPACE.parse(ALL_CONV3), d) == {
        "arch_str": ALL_CONV3, "params": LARGEST_PARAMS, "function_params": LARGEST_PARAMS,
        "verdict_table": None, "table": None,
        "note": _missing(d, VERDICT_FILE, VERDICT_HOW) + " " + _missing(d, TABLE_FILE, TABLE_HOW)}


def test_baselines_report_by_hand(roots):
    """The optimum 64, the largest cell (63, rank 3,126), the uniform mean 62 and the cell
    count, under these keys; without the table, the note that says where to put it."""
    a, _, _, d = roots
    b = SPACE.baselines(a)
    distinct = b.pop("random_distinct_cell")
    assert 60.0 < distinct < 64.0          # its value is checked in test_nb201_verdict
    assert b == {"verdict_table": str(a / VERDICT_FILE), "optimum": 64.0,
                 "largest_cell": {"arch_str": ALL_CONV3, "params": LARGEST_PARAMS, "test_acc_200ep": 63.0,
                                  "rank_200ep": 3126},
                 "random_cell": 62.0, "cells": 15625}
    assert SPACE.baselines(d) == {"verdict_table": None, "note": _missing(d, VERDICT_FILE, VERDICT_HOW)}


def test_a_table_error_says_which_table_it_should_be(tmp_path):
    """A truncated 200-epoch table read for the baselines names the 200-epoch table in its
    advice, not the 12-epoch one; duplicated rows count once."""
    path = tmp_path / VERDICT_FILE
    path.parent.mkdir(parents=True)
    path.write_text(f"index,arch_str,{VERDICT}\n0,{GOOD},50.0\n1,{ALL_CONV3},60.0\n2,{GOOD},50.0\n")
    with pytest.raises(DataFormatError) as e:
        SPACE.baselines(tmp_path)
    assert str(e.value) == (f"{path}: 2 distinct architectures, the NAS-Bench-201 space has 15625; "
                            f"the file is truncated or not the table it should be. {VERDICT_HOW}")


def test_missing_columns_and_a_bounded_cache(tmp_path, monkeypatch):
    """A 12-epoch table without the accuracy columns is an error listing what is missing and
    what the file has (not ``index``); the cache returns the same read for the same columns and
    holds at most five tables: the sixth read empties it first."""
    _write(tmp_path / TABLE_FILE, ["index", "arch_str", "a", "b", "c"], lambda s: [1.0, 2.0, 3.0])
    path = tmp_path / TABLE_FILE
    monkeypatch.setattr(nb201_module, "_TABLES", {})
    with pytest.raises(DataFormatError) as e:
        SPACE.ground_truth(SPACE.parse(GOOD), tmp_path)
    assert str(e.value) == f"{path}: no column {VALID}, {TEST} (it has a, b, c). {TABLE_HOW}"
    first = nb201_module._lookup(TABLE_FILE, TABLE_HOW, "a", tmp_path)
    assert nb201_module._lookup(TABLE_FILE, TABLE_HOW, ("a",), tmp_path) is first
    assert first[2] == {"a": [1.0] * 15625}
    for n, columns in enumerate([("b",), ("c",), ("a", "b"), ("a", "c")], start=2):
        nb201_module._lookup(TABLE_FILE, TABLE_HOW, columns, tmp_path)
        assert len(nb201_module._TABLES) == n
    nb201_module._lookup(TABLE_FILE, TABLE_HOW, ("b", "c"), tmp_path)
    assert list(nb201_module._TABLES) == [(str(path), path.stat().st_mtime_ns, path.stat().st_size, ("b", "c"))]


def _table(path, rows, header=("index", "arch_str", "acc")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _error(path, how=None):
    with pytest.raises(DataFormatError) as e:
        nb201_module.read_table(path) if how is None else nb201_module.read_table(path, how)
    return str(e.value)


def test_read_table_errors_name_the_file_and_line(tmp_path):
    """Each way a table can be wrong, word for word, with the line counted from the header's 1."""
    absent = tmp_path / "absent.csv"
    assert _error(absent) == (f"{absent}: cannot read the NAS-Bench-201 table "
                              f"([Errno 2] No such file or directory: '{absent}')")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert _error(empty) == (f"{empty}: not a NAS-Bench-201 table: the header must name an 'arch_str' "
                             f"column (got None). {TABLE_HOW}")
    p = _table(tmp_path / "h.csv", [], header=("index", "arch", "acc"))
    assert _error(p, "Fetch it.") == (f"{p}: not a NAS-Bench-201 table: the header must name an 'arch_str' "
                                      f"column (got ['index', 'arch', 'acc']). Fetch it.")
    p = _table(tmp_path / "short.csv", [[0, GOOD, 50.0], [1, ALL_CONV3]])
    assert _error(p) == f"{p}, line 3: 2 fields, the header has 3"
    p = _table(tmp_path / "arch.csv", [[0, "|none~0|", 50.0]])
    assert _error(p) == f"{p}, line 2: NAS-Bench-201 arch_str '|none~0|' must have 3 nodes: {WANT}"
    p = _table(tmp_path / "inf.csv", [[0, GOOD, 50.0], [1, ALL_CONV3, "inf"]])
    assert _error(p) == f"{p}, line 3: a metric is not finite: ['1', '{ALL_CONV3}', 'inf']"
    p = _table(tmp_path / "truncated.csv", [[0, GOOD, 50.0]])
    assert _error(p, "Fetch it.") == (f"{p}: 1 distinct architectures, the NAS-Bench-201 space has 15625; "
                                      f"the file is truncated or not the table it should be. Fetch it.")


def test_read_table_keeps_a_quoted_line_break(tmp_path):
    """The file is opened as the csv module asks (``newline=""``): a quoted field's ``\\r\\n``
    reaches the row as written, here in the message about a metric that is not a number."""
    p = _table(tmp_path / "nan.csv", [[0, GOOD, "5\r\n0"]])
    assert _error(p) == f"{p}, line 2: a metric is not a number: ['0', '{GOOD}', '5\\r\\n0']"


@pytest.mark.parametrize("text, message", [
    ("|none~0|+|none~0|none~1|", "must have 3 nodes: " + WANT),
    ("|none~0+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 '|none~0' is not " + WANT),
    ("|none~0|+|none~0|none~1|+none~0|none~1|none~2|", "node 3 'none~0|none~1|none~2|' is not " + WANT),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges, has 1: " + WANT),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "edge 'none~0' of node 2 must come from node 1"),
    ("|none~0~0|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 'none~0~0' of node 1 must come from node 0"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|",
     "edge 3<-2 op 'conv' is not one of none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"),
])
def test_from_arch_str_errors_word_for_word(text, message):
    """Each malformed arch_str is refused with the message that names the part at fault and,
    for the shape, the form it should have; a node open at either end is malformed, and an
    edge's source is what follows its first ``~``."""
    sep = " " if message.startswith("must") else ": "
    with pytest.raises(ArchitectureError) as e:
        SPACE.from_arch_str(text)
    assert str(e.value) == f"NAS-Bench-201 arch_str {text!r}{sep}{message}"
