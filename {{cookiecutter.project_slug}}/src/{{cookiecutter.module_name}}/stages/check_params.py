"""Stage `check_params`: validate params.yaml against the schema before any other stage runs.

DVC deletes a stage's outputs before running it, even when the stage then fails on a bad
param: without this stage a typo in `train` would cost the uncached reports/smoke.json. Every
stage is downstream of this one (base depends on its output), so `dvc repro` stops here,
naming the key, while every existing output is still in place (its own output is `persist`ed,
so DVC does not delete it either). The output's content never changes while params.yaml is
valid, so a valid change re-runs only the stages that read it.
"""

from ..cli import run_stage
from ..io import write_json
from ..params import load_params
from ..paths import PARAMS, PARAMS_CHECK


def main() -> None:
    load_params()
    write_json(PARAMS_CHECK, {"params": str(PARAMS), "valid": True})
    print(f"check_params: {PARAMS} is valid")


if __name__ == "__main__":
    run_stage("check_params", main)
