"""ENAS on Penn Treebank at CPU scale: search a recurrent cell with shared weights, then
train the derived cell and a plain LSTM of the same size and compare their perplexity.

    python examples/enas_rnn_ptb.py [--epochs 6] [--final-epochs 3] [--data-dir ../shared/data]

(The enas-rnn-tiny preset: about 10 minutes for the search on 2 cores, 3 more per model.)
"""
import argparse

from torchnas import api


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--final-epochs", type=int, default=3)
    p.add_argument("--data-dir", default=None, help="data root with ptb/ptb.train.txt ...")
    p.add_argument("--out", default="runs/example-ptb")
    args = p.parse_args()

    run = api.search(preset="enas-rnn-tiny", data_dir=args.data_dir, out=f"{args.out}/search",
                     set={"enas.epochs": args.epochs, "train.epochs": args.final_epochs})
    lstm = api.train(arch=run, preset="enas-rnn-tiny", data_dir=args.data_dir, out=f"{args.out}/lstm",
                     set={"final_net.cell": "lstm", "train.epochs": args.final_epochs})
    print(f"derived cell {run.best['arch']}: test ppl {run.result['test_ppl']:.1f}")
    print(f"plain LSTM of the same size:          test ppl {lstm.result['test_ppl']:.1f}")
    api.show(run)


if __name__ == "__main__":    # worker processes import this file again
    main()
