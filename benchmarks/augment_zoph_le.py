"""Zoph & Le's data pipeline (``augment: zoph_le``) against pad-and-crop, by test accuracy (issue 28).

    python benchmarks/augment_zoph_le.py [--data digits|cifar10] [--epochs 10] [--per-class N] [--seeds 0 1]

Trains one fixed child of the Zoph & Le space (``--arch``) on the data set with each input
pipeline and prints its validation and test accuracy: ``auto`` (per-channel normalisation, pad
H/8 and crop, flips where the data allow), ``whiten`` (ZCA whitening only, no augmentation) and
``zoph_le`` (whitening, then upsampling to 9/8, a random crop and flips). Same seed, settings and
architecture for each; only the pipeline differs. The figures in docs/reference-settings.md
("Zoph & Le's Table 1") come from this script.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from torchnas.config import build_space, load_preset
from torchnas.data.images import load_image_data
from torchnas.training import Training

PIPELINES = {"auto": "auto", "whiten": "zoph_le", "zoph_le": "zoph_le"}


def run(data, space, arch, pipeline: str, epochs: int, seed: int) -> tuple[float, float, float]:
    torch.manual_seed(seed)
    model = space.child(arch, data.shape[0], data.num_classes)
    t = Training(model, data, epochs=epochs, batch_size=64, lr=0.05, augment=PIPELINES[pipeline], seed=seed,
                 device="cpu")
    if pipeline == "whiten":
        t.augment = lambda x, generator: x                    # whitening without the upsampling and crop
    t0 = time.perf_counter()
    for _ in range(epochs):
        t.train_epoch()
    return t.accuracy("valid"), t.accuracy("test"), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="digits", choices=["digits", "cifar10"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--per-class", type=int, default=None, help="training images per class (CIFAR-10 on a CPU)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arch", default="nas-cnn:3,3,24,-,5,5,16,0",
                    help="a nas-cnn-tiny architecture (default: two layers, 3x3 then 5x5)")
    args = ap.parse_args()
    data = load_image_data(args.data, data_dir=args.data_dir, per_class=args.per_class)
    space = build_space(load_preset("nas-cnn-tiny"))
    arch = space.parse(args.arch)
    print(f"{args.data}: {len(data.train_y)} training, {len(data.valid_y)} validation, {len(data.test_y)} test "
          f"images of {'x'.join(map(str, data.shape))}; {args.arch}, {args.epochs} epochs, seeds {args.seeds}")
    for pipeline in PIPELINES:
        runs = [run(data, space, arch, pipeline, args.epochs, s) for s in args.seeds]
        valid, test = [r[0] for r in runs], [r[1] for r in runs]
        print(f"{pipeline:8s} valid {statistics.mean(valid):.4f}  test {statistics.mean(test):.4f} "
              f"({', '.join(f'{x:.4f}' for x in test)})  {statistics.mean(r[2] for r in runs):.1f} s a run")


if __name__ == "__main__":
    main()
