"""REINFORCE against random search on NAS-Bench-201 (tabular: seconds on a laptop).

    python examples/search_nb201.py [--queries 100] [--data-dir ../shared/data]

Each strategy proposes cells; the NAS-Bench-201 table gives each cell's 12-epoch CIFAR-10
validation accuracy as the reward. Prints the best cell of each and its test accuracy.
"""
import argparse

from torchnas.evaluators import NB201Table
from torchnas.search import Search
from torchnas.spaces import NB201Space
from torchnas.strategies import make_strategy


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--data-dir", default=None, help="data root with nasbench201/nb201_12epoch.csv")
    args = p.parse_args()

    space, table = NB201Space(), NB201Table(data_dir=args.data_dir)
    settings = {"reinforce": {"lr": 0.01, "baseline_decay": 0.9, "batch_size": 1, "controller": {"tanh_constant": 1.5}},
                "random": {}}
    for name, kwargs in settings.items():
        result = Search(space, make_strategy(name, space, seed=0, **kwargs), table, budget=args.queries).run()
        best = result.best
        print(f"{name:9s} best valid {best['reward']:.2f}  test {best['metrics']['cifar10_oritest_acc_12ep']:.2f}  "
              f"{space.to_arch_str(space.parse(best['arch']))}")


if __name__ == "__main__":    # worker processes import this file again
    main()
