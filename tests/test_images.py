import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from torchnas.data import (Augment, DataFormatError, DataNotFoundError, ImageData, iterate_batches,
                           load_cifar10, load_digits_data, load_image_data, load_image_folder)

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_cifar(root: Path, n: int = 20, seed: int = 0) -> Path:
    """A small copy of the real layout: same file names, keys and pickling, n images per batch."""
    out = root / "cifar-10-batches-py"
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for f in FILES:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batch = {b"batch_label": f.encode(), b"labels": [i % 10 for i in range(n)], b"data": data}
        (out / f).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in NAMES], b"num_cases_per_batch": n, b"num_vis": 3072}
    (out / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


def rewrite(path: Path, **changes) -> None:
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch.update({k.encode(): v for k, v in changes.items()})
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def cifar_dir(tmp_path):
    return write_cifar(tmp_path)


@pytest.fixture(scope="module")
def digits():
    return load_image_data("digits")


# --- CIFAR-10 -------------------------------------------------------------------------------

def test_cifar_fixture_layout_and_pixels(cifar_dir):
    rewrite(cifar_dir / "data_batch_2", data=np.zeros((20, 3072), np.uint8))
    raw = pickle.loads((cifar_dir / "data_batch_2").read_bytes(), encoding="bytes")
    raw[b"data"][3, 1 * 1024 + 5 * 32 + 7] = 200  # image 3: G plane, row 5, column 7
    raw[b"data"][4, 2 * 1024 + 31 * 32 + 0] = 99  # image 4: B plane, row 31, column 0
    (cifar_dir / "data_batch_2").write_bytes(pickle.dumps(raw, protocol=2))
    x, y, tx, ty, classes = load_cifar10(path=cifar_dir)
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert tx.shape == (20, 3, 32, 32) and y.dtype == ty.dtype == torch.int64
    assert classes == NAMES and y[:10].tolist() == list(range(10))
    img = x[20 + 3]
    assert img[1, 5, 7] == 200 and int(img.sum()) == 200
    assert x[20 + 4, 2, 31, 0] == 99 and int(x[20 + 4].sum()) == 99
    # the folder holding cifar-10-batches-py and the data root layout work too
    assert torch.equal(load_cifar10(path=cifar_dir.parent)[0], x)


def test_cifar_under_data_root(tmp_path):
    write_cifar(tmp_path / "cifar10")
    assert load_cifar10(data_dir=tmp_path)[0].shape == (100, 3, 32, 32)
    with pytest.raises(DataNotFoundError, match="cifar10_batches.py") as e:
        load_cifar10(data_dir=tmp_path / "empty")
    assert str(tmp_path / "empty" / "cifar10" / "cifar-10-batches-py") in str(e.value)


def test_cifar_truncated_batch(cifar_dir):
    blob = (cifar_dir / "data_batch_2").read_bytes()
    (cifar_dir / "data_batch_2").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match=r"data_batch_2: is truncated or not a CIFAR-10 pickle"):
        load_cifar10(path=cifar_dir)


def test_cifar_wrong_shape_dtype_and_labels(cifar_dir):
    rewrite(cifar_dir / "data_batch_3", data=np.zeros((20, 3000), np.uint8))
    with pytest.raises(DataFormatError, match=r"data_batch_3: expected an \(N, 3072\) uint8 array "
                                              r"under b'data'.*got \(20, 3000\) uint8"):
        load_cifar10(path=cifar_dir)
    rewrite(cifar_dir / "data_batch_3", data=np.zeros((20, 3072), np.float32))
    with pytest.raises(DataFormatError, match=r"data_batch_3: .*got \(20, 3072\) float32"):
        load_cifar10(path=cifar_dir)
    rewrite(cifar_dir / "data_batch_3", data=np.zeros((20, 3072), np.uint8), labels=[0] * 19)
    with pytest.raises(DataFormatError, match="data_batch_3: expected 20 labels in 0..9"):
        load_cifar10(path=cifar_dir)
    rewrite(cifar_dir / "data_batch_3", labels=[10] * 20)
    with pytest.raises(DataFormatError, match="data_batch_3: expected 20 labels in 0..9.*10"):
        load_cifar10(path=cifar_dir)


def test_cifar_missing_file_and_foreign_pickle(cifar_dir):
    (cifar_dir / "test_batch").unlink()
    with pytest.raises(DataNotFoundError, match="cifar10_batches.py") as e:
        load_cifar10(path=cifar_dir)
    assert str(cifar_dir / "test_batch") in str(e.value) and "cifar-10-python.tar.gz" in str(e.value)
    # a pickle that would import anything but numpy is refused, not executed
    (cifar_dir / "test_batch").write_bytes(pickle.dumps({b"data": Path("x")}, protocol=2))
    with pytest.raises(DataFormatError, match="test_batch: is truncated or not a CIFAR-10 pickle.*not allowed"):
        load_cifar10(path=cifar_dir)


def test_cifar_numpy1_pickles(cifar_dir):
    """The official archive was pickled by numpy 1 (numpy.core.*): the allow-list accepts it."""
    blob = (cifar_dir / "data_batch_1").read_bytes()
    old = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (cifar_dir / "data_batch_1").write_bytes(old)
    assert load_cifar10(path=cifar_dir)[0].shape == (100, 3, 32, 32)


def test_cifar_image_data_from_fixture(cifar_dir):
    with pytest.raises(ValueError, match=r"valid_size=5000 .*only 1\.\.99 of 100"):
        load_image_data("cifar10", path=cifar_dir)  # the paper's 5,000 need the full set
    d = load_image_data("cifar10", path=cifar_dir, valid_size=0.2, seed=1)
    assert (len(d.train_y), len(d.valid_y), len(d.test_y)) == (80, 20, 20)
    assert torch.bincount(d.valid_y, minlength=10).tolist() == [2] * 10
    assert d.shape == (3, 32, 32) and d.num_classes == 10 and d.classes == NAMES
    small = load_image_data("cifar10", path=cifar_dir, per_class=5)  # default valid: 10 %
    assert (len(small.train_y), len(small.valid_y), len(small.test_y)) == (45, 5, 20)
    assert torch.bincount(torch.cat([small.train_y, small.valid_y])).tolist() == [5] * 10


def test_image_size_averages_each_block_of_pixels(cifar_dir):
    """``image_size`` (a low-resolution search proxy): every split shrunk by area averaging, each
    output pixel the rounded mean of its 2x2 block, labels and split sizes unchanged; it only
    shrinks."""
    full = load_image_data("cifar10", path=cifar_dir, valid_size=0.2, seed=1)
    half = load_image_data("cifar10", path=cifar_dir, valid_size=0.2, seed=1, image_size=16)
    assert half.shape == (3, 16, 16) and half.train_x.dtype == torch.uint8
    for a, b in ((full.train_x, half.train_x), (full.valid_x, half.valid_x), (full.test_x, half.test_x)):
        blocks = a.double().unflatten(2, (16, 2)).unflatten(4, (16, 2)).mean((3, 5))
        assert torch.equal(b, blocks.round().to(torch.uint8))    # .5 rounds to even, as torch.round
    assert torch.equal(half.train_y, full.train_y) and torch.equal(half.test_y, full.test_y)
    assert torch.equal(load_image_data("cifar10", path=cifar_dir, valid_size=0.2, image_size=32).train_x,
                       load_image_data("cifar10", path=cifar_dir, valid_size=0.2).train_x)
    for bad in (0, 33):
        with pytest.raises(ValueError, match=f"image_size={bad}: .* 32x32 .*only shrinks"):
            load_image_data("cifar10", path=cifar_dir, valid_size=0.2, image_size=bad)


def test_shared_cifar10_copy(shared_cifar):
    x, y, tx, ty, classes = load_cifar10(path=shared_cifar)
    assert x.shape == (50000, 3, 32, 32) and tx.shape == (10000, 3, 32, 32) and x.dtype == torch.uint8
    assert classes == NAMES
    assert torch.bincount(y).tolist() == [5000] * 10 and torch.bincount(ty).tolist() == [1000] * 10
    d = load_image_data("cifar10", path=shared_cifar)
    assert (len(d.train_y), len(d.valid_y), len(d.test_y)) == (45000, 5000, 10000)
    assert torch.bincount(d.valid_y).tolist() == [500] * 10
    # the well-known CIFAR-10 channel means (R, G, B): checks the plane layout end to end
    assert d.mean.tolist() == pytest.approx([0.4914, 0.4822, 0.4465], abs=0.01)


# --- image folders ------------------------------------------------------------------------------

def make_folder(root: Path, classes=("cat", "dog", "emu"), n: int = 5, size=(6, 5)) -> Path:
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), 10 * c + i, np.uint8)
            arr[0, 0] = (255, 128, 1)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    root = make_folder(tmp_path / "pets")
    Image.fromarray(np.full((5, 6), 77, np.uint8), mode="L").save(root / "dog" / "gray.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    x, y, classes = load_image_folder(root)
    assert classes == ["cat", "dog", "emu"] and x.shape == (16, 3, 5, 6) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [5, 6, 5]
    assert x[0, :, 0, 0].tolist() == [255, 128, 1] and x[1, 0, 4, 5] == 1
    assert x[y == 1][-1].unique().tolist() == [77]  # grayscale converted to RGB
    d = load_image_data("folder", path=root, valid_size=3)
    assert d.name == "pets" and d.shape == (3, 5, 6) and d.num_classes == 3
    assert (len(d.train_y), len(d.valid_y), len(d.test_y)) == (10, 3, 3)  # test: 20 %, one per class
    assert torch.bincount(d.test_y).tolist() == [1, 1, 1]


def test_image_folder_train_test_form(tmp_path):
    make_folder(tmp_path / "ds" / "train", n=4)
    make_folder(tmp_path / "ds" / "test", n=2)
    d = load_image_data("folder", path=tmp_path / "ds", valid_size=0.25)
    assert (len(d.train_y), len(d.valid_y), len(d.test_y)) == (9, 3, 6)
    assert d.classes == ["cat", "dog", "emu"] and torch.bincount(d.valid_y).tolist() == [1, 1, 1]
    make_folder(tmp_path / "bad" / "train", n=4)
    make_folder(tmp_path / "bad" / "test", classes=("cat", "dog"), n=2)
    with pytest.raises(DataFormatError, match="same class folders"):
        load_image_data("folder", path=tmp_path / "bad")


def test_image_folder_errors(tmp_path):
    root = make_folder(tmp_path / "odd")
    Image.fromarray(np.zeros((7, 6, 3), np.uint8)).save(root / "dog" / "big.png")
    with pytest.raises(DataFormatError, match=r"big\.png: is 6x7 \(WxH\) but .*0\.png is 6x5"):
        load_image_folder(root)
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataFormatError, match="no class folders"):
        load_image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "empty").mkdir()
    with pytest.raises(DataFormatError, match="has one class folder \\('empty'\\); classification needs 2"):
        load_image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "other").mkdir()
    with pytest.raises(DataFormatError, match="empty: class folder has no images"):
        load_image_folder(tmp_path / "flat")
    with pytest.raises(DataNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs path="):
        load_image_data("folder")


# --- digits and splits --------------------------------------------------------------------------

def test_digits(digits):
    d = digits
    assert isinstance(d, ImageData) and d.shape == (1, 8, 8) and d.num_classes == 10
    assert d.train_x.dtype == torch.uint8 and d.train_x.is_contiguous() and d.train_y.dtype == torch.int64
    assert len(d.train_y) + len(d.valid_y) + len(d.test_y) == 1797
    assert (len(d.test_y), len(d.valid_y)) == (359, 288)  # 20 % of 1797, then 20 % of the rest
    assert int(d.train_x.max()) == 255 and set(torch.unique(d.train_x).tolist()) <= {
        round(v * 255 / 16) for v in range(17)}
    x, y, tx, ty, classes = load_digits_data()
    assert torch.equal(tx, d.test_x) and classes == [str(i) for i in range(10)]


def test_split_seeding_and_stratification(digits):
    again = load_image_data("digits", seed=0)
    other = load_image_data("digits", seed=1)
    assert torch.equal(again.valid_x, digits.valid_x) and torch.equal(again.train_y, digits.train_y)
    assert not torch.equal(other.valid_x, digits.valid_x)
    assert torch.equal(other.test_x, digits.test_x)  # the test set does not depend on the search seed
    full = torch.bincount(torch.cat([digits.train_y, digits.valid_y])).double()
    assert torch.allclose(torch.bincount(digits.valid_y).double(), full * 288 / 1438, atol=1)
    small = load_image_data("digits", per_class=20, valid_size=50, seed=3)
    assert (len(small.train_y), len(small.valid_y), len(small.test_y)) == (150, 50, 359)
    assert torch.bincount(small.valid_y).tolist() == [5] * 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(valid_size=0), "valid_size=0"), (dict(valid_size=1.0), "valid_size=1.0"),
    (dict(valid_size=1438), r"only 1\.\.1437 of 1438"), (dict(valid_size=-0.5), "fraction in"),
    (dict(per_class=1000), "per_class=1000"), (dict(per_class=0), "positive"),
    (dict(name="mnist"), "'digits', 'cifar10', 'folder'")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image_data(**kwargs)


def test_normalize(digits, cifar_dir):
    z = digits.normalize(digits.train_x)
    assert z.dtype == torch.float32 and z.shape == digits.train_x.shape
    assert z.mean((0, 2, 3)).abs().max() < 1e-5 and (z.std((0, 2, 3)) - 1).abs().max() < 1e-3
    d = load_image_data("cifar10", path=cifar_dir, valid_size=10)
    z = d.normalize(d.train_x.contiguous(memory_format=torch.channels_last))
    assert z.is_contiguous(memory_format=torch.channels_last)
    assert z.mean((0, 2, 3)).abs().max() < 1e-5 and (z.std((0, 2, 3)) - 1).abs().max() < 1e-3
    xf = d.train_x[:2].float()
    d.normalize(xf)
    assert torch.equal(xf, d.train_x[:2].float())  # input untouched


# --- augmentation and batches -------------------------------------------------------------------

def test_augment_identity_and_types():
    x = torch.randint(0, 256, (8, 3, 10, 12), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(Augment(pad=0, flip=False)(x, g), x)
    for inp in (x, x.float(), x.float().contiguous(memory_format=torch.channels_last)):
        out = Augment()(inp, g)
        assert out.shape == inp.shape and out.dtype == inp.dtype
    assert out.is_contiguous(memory_format=torch.channels_last)
    a = Augment()(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, Augment()(x, torch.Generator().manual_seed(5)))


def test_augment_flip():
    x = torch.randint(0, 256, (64, 3, 6, 6), dtype=torch.uint8)
    out = Augment(pad=0, flip=True)(x, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and 10 < int(mirrored.sum()) < 54


def test_augment_crops_are_translations():
    c, h, w, pad = 2, 6, 5, 2
    onehot = torch.eye(c * h * w, dtype=torch.uint8).view(-1, c, h, w).repeat(8, 1, 1, 1) * 255
    out = Augment(pad=pad, flip=False)(onehot, torch.Generator().manual_seed(0))
    src, dst = onehot.flatten(1).argmax(1), out.flatten(1).argmax(1)
    kept = out.flatten(1).count_nonzero(1)
    assert kept.max() == 1 and 0 < int(kept.sum()) < len(out)  # some pixels are shifted out
    (sc, si, sj), (dc, di, dj) = np.unravel_index(src.numpy(), (c, h, w)), np.unravel_index(dst.numpy(), (c, h, w))
    k = kept.bool().numpy()
    assert (sc[k] == dc[k]).all() and (abs(di - si)[k] <= pad).all() and (abs(dj - sj)[k] <= pad).all()
    # every output is exactly the zero-padded input shifted by one offset in [-pad, pad]^2 (or mirrored)
    x = torch.randint(1, 256, (32, 3, 7, 7), dtype=torch.uint8)
    out, padded = Augment(pad=3)(x, torch.Generator().manual_seed(1)), torch.nn.functional.pad(x, (3,) * 4)
    shifts = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(7) for dx in range(7) for img in (padded[i], padded[i].flip(-1))
                if torch.equal(out[i], img[:, dy:dy + 7, dx:dx + 7])]
        assert hits
        shifts.update(hits)
    assert len(shifts) > 10


def test_iterate_batches():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    batches = list(iterate_batches(x, y, 4, generator=torch.Generator().manual_seed(0)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    assert all(torch.equal(xb[:, 0], yb) for xb, yb in batches)
    assert torch.cat([b[1] for b in batches]).tolist() != list(range(10))
    again = list(iterate_batches(x, y, 4, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    ordered = list(iterate_batches(x, y, 4, shuffle=False, drop_last=True))
    assert [b[1].tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_batches(x, y, 0))


def test_cutout_zeroes_exactly_a_size_square_clipped_at_the_border():
    """Issue 16: the old mask zeroed 15 rows for size 16. 'center' (DeVries & Taylor) centres a
    16x16 square anywhere; 'corner' (the ENAS authors' models.py) puts its top-left corner
    anywhere; both are clipped at the border."""
    from torchnas.training.images import cutout
    x = torch.ones(512, 1, 32, 32)
    for at in ("center", "corner"):
        out = cutout(x, 16, torch.Generator().manual_seed(0), at)
        for img in out[:, 0]:
            rows = torch.nonzero((img == 0).any(1)).flatten()
            cols = torch.nonzero((img == 0).any(0)).flatten()
            r0, r1, c0, c1 = rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()
            assert (img[r0:r1 + 1, c0:c1 + 1] == 0).all() and (img == 0).sum() == (r1 - r0 + 1) * (c1 - c0 + 1)
            if at == "corner":                           # a corner anywhere, the square cut at the far border
                assert r1 - r0 + 1 == min(16, 32 - r0) and c1 - c0 + 1 == min(16, 32 - c0)
            else:                                        # a centre anywhere, cut at either border
                assert (r1 - r0 + 1 == 16 or r0 == 0 or r1 == 31) and (c1 - c0 + 1 == 16 or c0 == 0 or c1 == 31)
        full = [(img == 0).sum().item() for img in out[:, 0]]
        assert max(full) == 256 and full.count(256) > (40 if at == "center" else 100)


def test_describe_counts_the_network_for_its_data():
    """``torchnas train --dry-run``'s description (ImageClassification.describe): the input and
    classes of the named data set, CIFAR-10's shape for data it does not know, and the
    auxiliary head's parameters apart (mutation-testing survivors, issue 11)."""
    from torchnas.spaces import get_space
    from torchnas.tasks.images import ImageClassification
    space = get_space("enas-micro")
    arch = space.random(random.Random(0))
    task = ImageClassification()
    for data, shape in (({"name": "digits"}, (1, 8, 8)), ({"name": "cifar10"}, (3, 32, 32)),
                        ({"name": "my-own"}, (3, 32, 32)), ({}, (3, 32, 32))):
        d = task.describe(space, arch, data, {"channels": 8, "num_layers": 2})
        assert d["input"] == shape and d["classes"] == 10 and d["aux_params"] == 0
        assert d["arch"] == str(arch) and d["net"] == {"channels": 8, "num_layers": 2}
        model = space.child(arch, shape[0], 10, channels=8, num_layers=2)
        assert d["params"] == sum(p.numel() for p in model.parameters())
    net = {"channels": 8, "num_layers": 2, "aux_head": True}
    d = task.describe(space, arch, {"name": "cifar10"}, net)
    model = space.child(arch, 3, 10, **net)
    aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith("aux"))
    assert 0 < aux < d["params"] and d["aux_params"] == aux and d["params"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="at least 5x5, got 2x2"):   # the head is built for 8x8 digits
        task.describe(space, arch, {"name": "digits"}, net)


def test_the_flip_follows_the_data_sets_description_not_its_name(tmp_path):
    """Issue 27 item 9: "auto" augmentation flips where the data says a mirrored image keeps its
    class; digits say no (a mirrored 7 is no digit); a folder of images named "digits" says yes."""
    from PIL import Image
    from torchnas.data.images import load_image_data
    from torchnas.training import make_augment
    digits = load_image_data("digits")
    assert digits.mirror_symmetric is False and make_augment("auto", digits).flip is False
    folder = tmp_path / "digits"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((8, 8, 3), 50 * i, np.uint8)).save(folder / c / f"{i}.png")
    data = load_image_data("folder", path=folder, valid_size=2)
    assert data.name == "digits" and data.mirror_symmetric and make_augment("auto", data).flip is True


def test_augment_defaults_and_layout():
    """He et al.'s pad 4 and flip by default; the output keeps the input's memory layout
    (mutation survivors of data/images.py, issue 27)."""
    assert (Augment().pad, Augment().flip) == (4, True)
    x = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    out = Augment()(x, torch.Generator().manual_seed(0))
    assert out.is_contiguous() and not out.is_contiguous(memory_format=torch.channels_last)


def test_upsample_crop_is_seeded_and_sized_per_side():
    """Zoph & Le's upsample-and-crop on non-square images: each side upsampled to 9/8 rounded half
    up (32 -> 36, 24 -> 27), bilinear; the offsets and flips come from the given generator alone,
    drawn row offsets, column offsets, flips in that order, so the output is written here by hand."""
    from torchnas.data.images import UpsampleCrop
    assert UpsampleCrop().flip
    x = torch.randn(16, 2, 32, 24)
    torch.manual_seed(123)                                   # the global generator must not matter
    out = UpsampleCrop()(x, torch.Generator().manual_seed(7))
    torch.manual_seed(456)
    assert torch.equal(out, UpsampleCrop()(x, torch.Generator().manual_seed(7)))
    big = torch.nn.functional.interpolate(x, size=(36, 27), mode="bilinear", align_corners=False)
    g = torch.Generator().manual_seed(7)
    oy, ox = torch.randint(0, 5, (16, 1), generator=g), torch.randint(0, 4, (16, 1), generator=g)
    flip = torch.rand(16, 1, generator=g) < 0.5
    for i in range(16):
        crop = big[i, :, oy[i]:oy[i] + 32, ox[i]:ox[i] + 24]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    assert len(set(oy.flatten().tolist())) > 2 and 0 < int(flip.sum()) < 16


def test_per_class_selection_is_seeded():
    """``per_class`` keeps the same images for the same seed whatever the global generator, and
    other images for another seed."""
    torch.manual_seed(1)
    a = load_image_data("digits", per_class=30, seed=3)
    torch.manual_seed(2)
    b = load_image_data("digits", per_class=30, seed=3)
    c = load_image_data("digits", per_class=30, seed=4)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.valid_y, b.valid_y)
    assert not torch.equal(a.train_x, c.train_x)
