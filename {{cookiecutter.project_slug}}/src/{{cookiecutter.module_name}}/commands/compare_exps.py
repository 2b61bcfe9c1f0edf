"""`make compare-exps A=<exp> B=<exp>`: two experiments compared item by item.

An experiment is a DVC experiment name (`dvc exp ls`), any git revision (HEAD, a branch, a
commit) or `workspace` (the files on disk); B minus A on the items both were scored on, as
experiments/compare.py pairs them.
"""

import argparse

from ..cli import run_stage
from ..evaluation.metric_names import TASK_ACCURACY
from ..experiments.compare import compare_experiments, load, render
from ..params import load_params
from ..paths import EVAL_DIR, RL_EVAL_DIR, TEST_ITEMS
from ..selection.comparison import bootstrap_settings, item_values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="experiment A: a `dvc exp ls` name, a git revision or workspace")
    parser.add_argument("b", help="experiment B (the difference is B minus A)")
    args = parser.parse_args(argv)
    settings = bootstrap_settings(load_params())
    eval_dirs = {None: EVAL_DIR, "rl": RL_EVAL_DIR}
    a, b = (load(name, TEST_ITEMS, eval_dirs) for name in (args.a, args.b))
    models = (a["test"]["model"], b["test"]["model"])
    print(render((args.a, args.b), models, compare_experiments(a, b, settings), settings))
    ids = [set(item_values(x["test"], TASK_ACCURACY)) for x in (a, b)]
    if ids[0] != ids[1]:
        print(
            f"note: the test splits differ (A {len(ids[0])} items, B {len(ids[1])}): only the "
            f"{len(ids[0] & ids[1])} in both are compared"
        )


if __name__ == "__main__":
    run_stage("compare-exps", main)
