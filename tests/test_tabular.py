import pytest

from torchnas.data import DataFormatError, DataNotFoundError, data_root
from torchnas.evaluators import NB201Table
from torchnas.spaces import NB201Space

HEADER = "index,arch_str,cifar10valid_xvalid_acc_12ep,cifar10_oritest_acc_12ep\n"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_shared_table_lookup(nb201_table):
    space = NB201Space()
    ev = nb201_table.evaluate(space.from_arch_str(ARCH))
    assert ev.reward == pytest.approx(0.82834, abs=1e-5)
    assert ev.metrics["cifar10_oritest_acc_12ep"] == pytest.approx(88.22)
    assert len(nb201_table.rows) == 15625 and len(nb201_table.columns) == 6


def test_reward_column_is_selectable(nb201_table):
    t = NB201Table(reward="cifar100_xvalid_acc_12ep", path=nb201_table.path)
    ev = t.evaluate(NB201Space().from_arch_str(ARCH))
    assert ev.reward == pytest.approx(ev.metrics["cifar100_xvalid_acc_12ep"] / 100)
    with pytest.raises(DataFormatError, match="reward column 'top1' is not in the table; its metric columns are"):
        NB201Table(reward="top1", path=nb201_table.path)


def test_missing_table_names_path_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHNAS_DATA", raising=False)
    with pytest.raises(DataNotFoundError) as e:
        NB201Table(data_dir=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path / "nasbench201" / "nb201_12epoch.csv") in msg and "--data-dir" in msg


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHNAS_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("TORCHNAS_DATA")
    assert str(data_root()).endswith(".torchnas/data")


def _write(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, needle", [
    ("index,name,acc\n0,x,1\n", "header must name an 'arch_str' column"),
    (HEADER + f"0,{ARCH},82.8\n", "line 2: 3 fields, the header has 4"),
    (HEADER + f"0,{ARCH},82.8,abc\n", "line 2: a metric is not a number"),
    (HEADER + "0,|conv~0|,1,2\n", "line 2: NAS-Bench-201 arch_str"),
    (HEADER + f"0,{ARCH},82.8,88.2\n", "1 distinct architectures, the NAS-Bench-201 space has 15625"),
    ("", "header must name an 'arch_str' column"),
])
def test_corrupt_tables_are_rejected(tmp_path, text, needle):
    with pytest.raises(DataFormatError, match=needle):
        NB201Table(path=_write(tmp_path, text))
