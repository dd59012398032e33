"""The README's main job from Python: NAS-RL on scikit-learn's digits, then look at it and
take the network away.

    python examples/nas_rl_digits.py [--queries 40] [--out runs/example-digits]

1. search: an LSTM controller designs CNNs layer by layer, each child is trained on digits,
   REINFORCE updates the controller; the best child is retrained from scratch;
2. show: a summary in the terminal and figures (reward curve, best-so-far, the child's
   diagram) in the run directory;
3. export: the retrained child as a plain PyTorch file + state dict, TorchScript and ONNX,
   each loaded back and checked against the original.
"""
import argparse

from torchnas import api


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=40)
    p.add_argument("--epochs", type=int, default=None, help="retraining epochs (default: the preset's)")
    p.add_argument("--out", default="runs/example-digits")
    args = p.parse_args()

    overrides = {"train.epochs": args.epochs} if args.epochs else {}
    run = api.search(preset="nas-cnn-tiny", queries=args.queries, out=args.out, set=overrides, resume=None)
    print("best child:", run.best["arch"], "reward", round(run.best["reward"], 4))
    print("retrained test accuracy:", run.result["test_acc"])
    api.show(run)
    exported = api.export(run)
    for fmt, r in exported["formats"].items():
        print(f"exported {fmt}: {', '.join(r['files'])} (max abs difference {r['max_abs_diff']:.1g})")


if __name__ == "__main__":    # worker processes import this file again
    main()
