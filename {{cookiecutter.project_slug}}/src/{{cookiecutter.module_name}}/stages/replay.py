"""Stage `replay`: the replay rows split mixes into train (split.replay_fraction), with the
base model's own answers (split.replay_answers: base, the default) or data/replay's as written
(data). Writes data/replay_rows.jsonl and reports/replay.json (rows kept, dropped, seconds).

Greedy generation with eval's generator (evaluation/replay_answers.py), once per base and
replay data: DVC reruns the stage only when the base, data/replay or these params change. The
rows are a DVC output, so another machine (another precision) reuses them rather than generate
its own. With replay off it writes an empty file without loading a model."""

from ..cli import run_stage
from ..evaluation.replay_answers import replay_rows
from ..io import write_json, write_jsonl
from ..params import load_params
from ..paths import BASE_MODEL_DIR, REPLAY, REPLAY_REPORT, REPLAY_ROWS


def main() -> None:
    params = load_params()
    kept, report = replay_rows(params, REPLAY, BASE_MODEL_DIR)
    write_jsonl(REPLAY_ROWS, kept)
    write_json(REPLAY_REPORT, report)
    if not report["rows"]:
        print("replay: off (split.replay_fraction is 0): no replay rows")
        return
    print(
        f"replay: {report['kept']} of {report['rows']} rows with {report['answers']} answers "
        f"({report['dropped_unfinished']} unfinished in {report['max_new_tokens']} tokens "
        f"dropped) in {report['seconds']}s"
    )


if __name__ == "__main__":
    run_stage("replay", main)
