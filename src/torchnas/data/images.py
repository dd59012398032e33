"""Image data for child networks: CIFAR-10, scikit-learn's digits, or a folder of images.

Loaders return uint8 tensors (N, C, H, W). :func:`load_image_data` holds a seeded, stratified
validation split out of the training set (Zoph & Le 2017 §4.1: 5,000 of CIFAR-10's 50,000) and
never touches the test set. Where a data set has no test split (digits, a flat folder) it is
carved out with a fixed seed, so it is the same for every search seed.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .paths import DataFormatError, DataNotFoundError, find

PathLike = str | os.PathLike
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_HOW_TO_GET = (
    "Make the standard layout from the project's shared copy with "
    "`python ../shared/tools/cifar10_batches.py DIR` (writes DIR/cifar-10-batches-py; use "
    "DIR = DATA_ROOT/cifar10), or unpack the official cifar-10-python.tar.gz "
    "(https://www.cs.toronto.edu/~kriz/cifar.html) there.")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
ZCA_MAX_DIM = 3 * 64 * 64   # the largest image ZCA whitens (its float64 covariance: 1.2 GB)
ZCA_EPSILON = 0.1    # ZCA's regulariser on [0, 1] pixels: not given by Zoph & Le (docs/reference-settings.md)
TEST_SPLIT_SEED = 0  # fixed: the test set must not change with the search seed


@dataclass
class ImageData:
    """Train/valid/test uint8 images (N, C, H, W) with labels and train-set channel statistics.
    ``mirror_symmetric``: a mirrored image is still of its class (so augmentation may flip it);
    False for digits, where a mirrored 2 or 7 is no digit at all."""
    name: str
    train_x: torch.Tensor = field(repr=False)
    train_y: torch.Tensor = field(repr=False)
    valid_x: torch.Tensor = field(repr=False)
    valid_y: torch.Tensor = field(repr=False)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    num_classes: int
    classes: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    mirror_symmetric: bool = True
    _zca: "ZCA | None" = field(default=None, repr=False, compare=False)

    def zca(self) -> "ZCA":
        """ZCA whitening fitted on this training split (once; ``augment: zoph_le``)."""
        d = self.shape[0] * self.shape[1] * self.shape[2]
        if d > ZCA_MAX_DIM:
            raise ValueError(f"augment: zoph_le whitens the whole flattened image, {d:,} values here (a "
                             f"{d:,} x {d:,} matrix, {d * d * 8 / 1e9:,.0f} GB to fit); shrink the images "
                             f"(data.image_size: 64 or less) or use augment: auto")
        if self._zca is None:
            self._zca = ZCA.fit(self.train_x)
        return self._zca

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """float32 ``(x/255 - mean) / std`` for a batch (B, C, H, W) or one image; keeps memory format."""
        out = x_uint8.to(torch.float32, copy=True)
        m = self.mean.to(out.device).view(-1, 1, 1)
        s = self.std.to(out.device).view(-1, 1, 1)
        return out.div_(255.0).sub_(m).div_(s)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Loads CIFAR-10 batches (dicts of numpy arrays and lists) and refuses any other global."""
    ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}

    def find_class(self, module: str, name: str):
        # _codecs.encode: how Python 3 writes bytes in protocol-2 pickles
        if (module, name) == ("_codecs", "encode") or (module.split(".")[0] == "numpy" and name in self.ALLOWED):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 pickle")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataNotFoundError(f"data not found: {path} (CIFAR-10 batch file). {CIFAR_HOW_TO_GET}")
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # truncated or foreign pickles fail in many ways
        raise DataFormatError(f"{path}: is truncated or not a CIFAR-10 pickle "
                              f"({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a dict, got {type(obj).__name__}")
    return obj


def load_cifar10(data_dir: PathLike | None = None, path: PathLike | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Read the standard python layout (data_batch_1..5, test_batch, batches.meta).

    ``path`` is the ``cifar-10-batches-py`` folder or the folder holding it; default
    ``DATA_ROOT/cifar10/cifar-10-batches-py``. Each batch is a pickle with ``b"data"``, an
    (N, 3072) uint8 array (R plane, G plane, B plane of 32x32 images), and ``b"labels"``, N
    labels in 0..9. The real files have N = 10000; any N is accepted (small test fixtures).
    """
    if path is not None:
        root = Path(path).expanduser()
        if (root / "cifar-10-batches-py").is_dir():
            root = root / "cifar-10-batches-py"
        if not root.is_dir():
            raise DataNotFoundError(f"data not found: {root} (CIFAR-10 folder). {CIFAR_HOW_TO_GET}")
    else:
        root = find("cifar10/cifar-10-batches-py", data_dir, CIFAR_HOW_TO_GET)
    names = _unpickle(root / "batches.meta").get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataFormatError(f"{root / 'batches.meta'}: expected 10 names under b'label_names'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    xs, ys = [], []
    for fname in CIFAR_FILES:
        d = _unpickle(root / fname)
        data, labels = d.get(b"data"), d.get(b"labels")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == 3072):
            got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataFormatError(f"{root / fname}: expected an (N, 3072) uint8 array under b'data' "
                                  f"(N = 10000 in the real files), got {got}")
        labels = np.asarray(labels if isinstance(labels, (list, np.ndarray)) else []).reshape(-1)
        if len(labels) != len(data) or not np.isin(labels, np.arange(10)).all():
            raise DataFormatError(f"{root / fname}: expected {len(data)} labels in 0..9 under b'labels', "
                                  f"got {len(labels)} with values {sorted(set(labels.tolist()))[:12]}")
        xs.append(data)
        ys.append(labels.astype(np.int64))
    x = torch.from_numpy(np.concatenate(xs[:5]).reshape(-1, 3, 32, 32))
    y = torch.from_numpy(np.concatenate(ys[:5]))
    tx = torch.from_numpy(np.ascontiguousarray(xs[5]).reshape(-1, 3, 32, 32))
    return x, y, tx, torch.from_numpy(ys[5]), classes


def load_image_folder(path: PathLike) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images in one sub-folder per class (sorted names), read with Pillow as RGB, one size."""
    from PIL import Image

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"data not found: {root} (an image folder with one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataFormatError(f"{root}: no class folders (expected one sub-folder of images per class)")
    if len(classes) < 2:
        raise DataFormatError(f"{root}: has one class folder ({classes[0]!r}); classification needs 2 classes or more")
    images, labels, first = [], [], None
    for label, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataFormatError(f"{root / cls}: class folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except OSError as e:
                raise DataFormatError(f"{f}: not a readable image ({e})") from e
            if first is None:
                first = (f, arr.shape)
            elif arr.shape != first[1]:
                h, w = arr.shape[:2]
                raise DataFormatError(f"{f}: is {w}x{h} (WxH) but {first[0]} is "
                                      f"{first[1][1]}x{first[1][0]}; all images must share one size")
            images.append(arr.transpose(2, 0, 1))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64), classes


def load_digits_data(seed: int = TEST_SPLIT_SEED
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's 8x8 digits (values 0..16 -> uint8 round(v*255/16)), 20 % stratified test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.rint(d.data * 255.0 / 16.0).astype(np.uint8).reshape(-1, 1, 8, 8))
    y = torch.from_numpy(d.target.astype(np.int64))
    keep, test = _stratified_split(y, _count(0.2, len(y), "test_size"), torch.Generator().manual_seed(seed))
    return x[keep], y[keep], x[test], y[test], [str(c) for c in range(10)]


def _count(size: int | float, n: int, what: str) -> int:
    """A hold-out size as a count: an int is a count in 1..n-1, a float a fraction in (0, 1)."""
    if isinstance(size, float) and 0.0 < size < 1.0:
        k = max(1, round(size * n))
    elif isinstance(size, int) and not isinstance(size, bool):
        k = size
    else:
        raise ValueError(f"{what}={size!r}: give an int count or a float fraction in (0, 1)")
    if not 0 < k < n:
        raise ValueError(f"{what}={size!r} -> {k} images, but only 1..{n - 1} of {n} can be held out")
    return k


def _stratified_split(y: torch.Tensor, k: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) sorted indices; each class gives its share of k (largest remainders)."""
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * k / len(y)
    take = quota.floor().long()
    extra = k - int(take.sum())
    take[torch.argsort(quota - take, descending=True, stable=True)[:extra]] += 1
    held = []
    for c, t in zip(classes.tolist(), take.tolist()):
        idx = torch.nonzero(y == c).flatten()
        held.append(idx[torch.randperm(len(idx), generator=g)[:t]])
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[torch.cat(held)] = True
    return torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean/std of uint8 images in [0, 1] units, from value histograms."""
    v = torch.arange(256, dtype=torch.float64) / 255.0
    hist = torch.stack([torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(x.shape[1])])
    p = hist.double() / hist.sum(1, keepdim=True)  # (C, 256) value frequencies
    mean = p @ v
    std = (p * (v - mean[:, None]) ** 2).sum(1).sqrt()
    return mean.float(), torch.where(std > 0, std, 1.0).float()


def _load_folder_splits(root: Path):
    """train/ and test/ sub-folders if both exist, else one folder with a fixed-seed 20 % test split."""
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        x, y, classes = load_image_folder(root)
        keep, test = _stratified_split(y, _count(0.2, len(y), "test_size"),
                                       torch.Generator().manual_seed(TEST_SPLIT_SEED))
        return x[keep], y[keep], x[test], y[test], classes
    x, y, classes = load_image_folder(root / "train")
    tx, ty, test_classes = load_image_folder(root / "test")
    if test_classes != classes or tx.shape[1:] != x.shape[1:]:
        raise DataFormatError(f"{root}: train/ and test/ must have the same class folders and image size "
                              f"({classes} {tuple(x.shape[1:])} vs {test_classes} {tuple(tx.shape[1:])})")
    return x, y, tx, ty, classes


def load_image_data(name: str = "digits", data_dir: PathLike | None = None, path: PathLike | None = None,
                    valid_size: int | float | None = None, per_class: int | None = None,
                    seed: int = 0, image_size: int | None = None) -> ImageData:
    """Load ``name`` ("digits", "cifar10" or "folder") and hold out a stratified, seeded valid split.

    valid_size defaults to 5,000 for CIFAR-10 (Zoph & Le 2017 §4.1), or 0.1 when per_class
    shrinks the training set (the same 10 %), and to 0.2 otherwise. per_class keeps the first
    per_class images of each class of the training set after a seeded shuffle (quick CPU runs);
    the test set is kept whole. image_size shrinks every split to image_size x image_size by
    area averaging (a low-resolution proxy for a search; docs/design.md). mean/std come from the
    final training split.
    """
    mirror_symmetric = name != "digits"        # a mirrored digit is no digit; photographs stay what they are
    if name == "digits":
        x, y, tx, ty, classes = load_digits_data()
    elif name == "cifar10":
        x, y, tx, ty, classes = load_cifar10(data_dir, path)
    elif name == "folder":
        if path is None:
            raise ValueError("name='folder' needs path= (a folder with one sub-folder per class)")
        x, y, tx, ty, classes = _load_folder_splits(Path(path).expanduser())
        name = Path(path).name
    else:
        raise ValueError(f"unknown image data set {name!r}; choose one of 'digits', 'cifar10', 'folder'")
    g = torch.Generator().manual_seed(seed)
    if per_class is not None:
        if per_class <= 0:
            raise ValueError(f"per_class={per_class}: must be a positive number of images per class")
        perm = torch.randperm(len(y), generator=g)
        keep = [perm[y[perm] == c][:per_class] for c in range(len(classes))]
        short = [(classes[c], int((y == c).sum())) for c, k in enumerate(keep) if len(k) < per_class]
        if short:
            raise ValueError(f"per_class={per_class}, but some classes have fewer training images: {short}")
        kept = torch.cat(keep).sort().values
        x, y = x[kept], y[kept]
    if image_size is not None:
        x, tx = downsample(x, image_size), downsample(tx, image_size)
    if valid_size is None:
        valid_size = (5000 if per_class is None else 0.1) if name == "cifar10" else 0.2
    train, valid = _stratified_split(y, _count(valid_size, len(y), "valid_size"), g)
    train_x = x[train].contiguous()
    mean, std = _channel_stats(train_x)
    return ImageData(name, train_x, y[train], x[valid].contiguous(), y[valid], tx.contiguous(), ty,
                     len(classes), list(classes), mean, std, mirror_symmetric)


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images (N, C, H, W) shrunk to size x size by area averaging, in chunks, same dtype
    (uint8 rounded); ``size`` must not exceed H or W."""
    h, w = x.shape[2:]
    if not 0 < size <= min(h, w):
        raise ValueError(f"image_size={size}: must be between 1 and the images' size {h}x{w} "
                         f"(it only shrinks them)")
    if size == h == w:
        return x
    wide = torch.promote_types(x.dtype, torch.float32)
    out = torch.cat([F.interpolate(c.to(wide), size=(size, size), mode="area") for c in x.split(4096)])
    return out.to(x.dtype) if x.dtype.is_floating_point else out.round_().to(x.dtype)


class Augment:
    """Standard CIFAR augmentation on a uint8 or float batch (B, C, H, W): zero-pad, random crop, flip.

    Pad 4 + random crop back to HxW + random horizontal flip (He et al. 2016; used by Zoph & Le
    2017 and Pham et al. 2018). One gather does crop and flip for the whole batch.
    """

    def __init__(self, pad: int = 4, flip: bool = True):
        if pad < 0:
            raise ValueError(f"pad={pad}: must be >= 0")
        self.pad, self.flip = pad, flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        (b, c, h, w), p, dev = x.shape, self.pad, x.device
        # per image: crop offsets (oy, ox) in 0..2p of the padded image, and a flip bit
        oy, ox = torch.randint(0, 2 * p + 1, (2, b, 1), generator=generator, device=generator.device).to(dev)
        cols = torch.arange(w, device=dev).expand(b, w)
        if self.flip:
            flip = torch.rand(b, 1, generator=generator, device=generator.device).to(dev) < 0.5
            cols = torch.where(flip, w - 1 - cols, cols)
        rows, cols = oy + torch.arange(h, device=dev), ox + cols  # (B, H), (B, W) into the padded batch
        out = F.pad(x, (p, p, p, p))[torch.arange(b, device=dev)[:, None, None, None],
                                     torch.arange(c, device=dev)[None, :, None, None],
                                     rows[:, None, :, None], cols[:, None, None, :]]
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out


@dataclass
class ZCA:
    """ZCA whitening of images in [0, 1] (Zoph & Le 2017 §4.1: "whitening all the images"):
    ``x -> W (x - mu)`` on the flattened image, ``W = U diag(1 / sqrt(lambda + epsilon)) U^T`` from
    the eigendecomposition of the training split's covariance (Krizhevsky 2009 App. A; the
    epsilon, unstated in the paper, is ours: docs/reference-settings.md)."""
    mean: torch.Tensor        # (D,) of the training images, D = C * H * W
    matrix: torch.Tensor      # (D, D), symmetric

    @classmethod
    def fit(cls, train_x: torch.Tensor, epsilon: float = ZCA_EPSILON) -> "ZCA":
        """From uint8 training images (N, C, H, W) only; float64 for the covariance, summed over
        chunks of 4,096 images (CIFAR-10's 45,000 whole in float64 would be 1.1 GB)."""
        x = train_x.reshape(len(train_x), -1)
        mean = sum(c.to(torch.float64).sum(0) for c in x.split(4096)) / (255.0 * len(x))
        cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        for c in x.split(4096):
            d = c.to(torch.float64) / 255.0 - mean
            cov.addmm_(d.T, d)
        lam, u = torch.linalg.eigh(cov / len(x))
        matrix = (u * (lam.clamp_min(0) + epsilon).rsqrt()) @ u.T
        return cls(mean.float(), matrix.float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Whitened float32 images (B, C, H, W) from images in [0, 1] of the fitted shape."""
        from ..nn.ops import zca_whiten
        return zca_whiten(x, self.mean.to(x.device), self.matrix.to(x.device))

    def state_dict(self) -> dict:
        return {"mean": self.mean, "matrix": self.matrix}


class UpsampleCrop:
    """The rest of Zoph & Le's pipeline (§4.1), on whitened float images (B, C, H, W): "upsample
    each image then choose a random 32x32 crop of this upsampled image. Finally, we use random
    horizontal flips". Upsampled to 9/8 of the size, rounded half up and at least one pixel more
    (36 for CIFAR-10; the paper gives no size: ours, docs/reference-settings.md), bilinear."""

    def __init__(self, flip: bool = True, ratio: float = 9 / 8):
        self.flip, self.ratio = flip, ratio

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        (b, c, h, w), dev = x.shape, x.device
        size = [max(n + 1, int(n * self.ratio + 0.5)) for n in (h, w)]      # at least one row and column more
        big = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        oy = torch.randint(0, big.shape[2] - h + 1, (b, 1), generator=generator, device=generator.device).to(dev)
        ox = torch.randint(0, big.shape[3] - w + 1, (b, 1), generator=generator, device=generator.device).to(dev)
        cols = torch.arange(w, device=dev).expand(b, w)
        if self.flip:
            flip = torch.rand(b, 1, generator=generator, device=generator.device).to(dev) < 0.5
            cols = torch.where(flip, w - 1 - cols, cols)
        rows, cols = oy + torch.arange(h, device=dev), ox + cols
        return big[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]


def iterate_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                    generator: torch.Generator | None = None, shuffle: bool = True,
                    drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (xb, yb) batches; shuffled with ``generator`` when ``shuffle``, else in order (views)."""
    if batch_size <= 0 or len(x) != len(y):
        raise ValueError(f"batch_size={batch_size} must be > 0 and len(x)={len(x)} == len(y)={len(y)}")
    n = len(x)
    dev = generator.device if generator is not None else "cpu"
    order = torch.randperm(n, generator=generator, device=dev).to(x.device) if shuffle else None
    for i in range(0, n - n % batch_size if drop_last else n, batch_size):
        idx = slice(i, i + batch_size) if order is None else order[i:i + batch_size]
        yield x[idx], y[idx]


_DATA_CACHE: dict = {}


def load_data_cached(cfg: dict):
    """One copy of a data set per process, keyed by its config."""
    key = repr(sorted(cfg.items()))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_image_data(**cfg)
    return _DATA_CACHE[key]
