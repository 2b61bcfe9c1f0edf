"""Every path the pipeline reads or writes, in one place (dvc.yaml names the same paths;
tests/test_dvc_yaml.py checks that the two agree)."""

from pathlib import Path

PARAMS = Path("params.yaml")
ACCELERATE_CONFIG = Path("accelerate.yaml")
ACCELERATE_MULTI_NODE_CONFIG = Path("configs/accelerate/multi-node.yaml")  # train.machines > 1

RAW_DIR = Path("data/raw")
SUITES_DIR = Path("data/suites")
GENERAL_QA_SUITE = SUITES_DIR / "general_qa.jsonl"
INSTRUCTION_SUITE = SUITES_DIR / "instruction_follow.jsonl"
REPLAY = Path("data/replay/general_instructions.jsonl")
REPLAY_ROWS = Path("data/replay_rows.jsonl")  # what split mixes in: the base's answers by default
LM_EVAL_TASKS_DIR = Path("data/lm_eval")

CURATED_DIR = Path("data/curated")
CURATED = CURATED_DIR / "train_pool.jsonl"
PREFERENCES = CURATED_DIR / "preferences.jsonl"
DUPLICATES = CURATED_DIR / "duplicates.jsonl"
QUARANTINE = Path("data/quarantine.jsonl")
SPLITS_DIR = Path("data/splits")
TRAIN_SPLIT = SPLITS_DIR / "train.jsonl"
VAL_SPLIT = SPLITS_DIR / "val.jsonl"
TEST_SPLIT = SPLITS_DIR / "test.jsonl"

BASE_MODEL_DIR = Path("models/base")
# Intermediate checkpoints stay on the machine that trained them (persisted for resume, not
# cached or pushed); the stages' DVC output is the manifest naming them with their hashes.
CHECKPOINTS_DIR = Path("models/checkpoints")
CHECKPOINTS_MANIFEST = Path("models/checkpoints.json")
DPO_DIR = Path("models/dpo")
DPO_MANIFEST = Path("models/dpo.json")
DPO_DISABLED_MARKER = DPO_DIR / "disabled.json"
RL_DIR = Path("models/rl")
RL_MANIFEST = Path("models/rl.json")
RL_DISABLED_MARKER = RL_DIR / "disabled.json"
SELECTED_DIR = Path("models/selected")
EXPORT_DIR = Path("models/export")  # what people deploy: export.formats, one folder each
MERGED_EXPORT = EXPORT_DIR / "merged"
GGUF_EXPORT = EXPORT_DIR / "gguf"

REPORTS_DIR = Path("reports")
PARAMS_CHECK = REPORTS_DIR / "params_check.json"
CURATE_REPORT = REPORTS_DIR / "curate.json"
TOKEN_PLOT_DATA = REPORTS_DIR / "token_lengths.json"
FIGURES_DIR = REPORTS_DIR / "figures"
TOKEN_PLOT = FIGURES_DIR / "token_lengths.png"
TARGET_PLOT = FIGURES_DIR / "targets.png"
DATA_REPORT = REPORTS_DIR / "data.md"
SPLIT_REPORT = REPORTS_DIR / "split.json"
REPLAY_REPORT = REPORTS_DIR / "replay.json"
SMOKE_REPORT = REPORTS_DIR / "smoke.json"
SMOKE_PASSED = REPORTS_DIR / "smoke_passed.json"
TRAINING_EXAMPLE = REPORTS_DIR / "training_example.html"
TRAIN_LOG_DIR = REPORTS_DIR / "train"
TRAIN_STATS = TRAIN_LOG_DIR / "stats.json"
DPO_LOG_DIR = REPORTS_DIR / "dpo"
DPO_STATS = DPO_LOG_DIR / "stats.json"
RL_LOG_DIR = REPORTS_DIR / "rl"  # rewards, KL and completion lengths by step (dvclive)
RL_STATS = RL_LOG_DIR / "stats.json"
RL_FIGURE = RL_LOG_DIR / "curves.png"  # rewards, KL, completion length: in the report
EVAL_DIR = REPORTS_DIR / "eval"
EVAL_PLOT = REPORTS_DIR / "eval_by_step.json"
RL_EVAL_DIR = REPORTS_DIR / "eval_rl"  # the RL checkpoints' eval reports
RL_EVAL_OFF = RL_EVAL_DIR / "off.txt"  # why it holds none (DVC warns on an empty output)
METRICS = REPORTS_DIR / "metrics.json"
DIAGNOSIS = REPORTS_DIR / "diagnosis.json"  # findings and guardrail failures: `make improve`
TEST_ITEMS = REPORTS_DIR / "test_items.json"
REPORT_MD = REPORTS_DIR / "report.md"
EXPORT_REPORT = REPORTS_DIR / "export.json"  # export parity: the `dvc exp show` columns
EXPORT_MD = REPORTS_DIR / "export.md"  # the same as a table, with the exports' sizes
REPORT_HTML = REPORTS_DIR / "report.html"
LOSS_FIGURE = FIGURES_DIR / "loss_curves.png"
METRICS_FIGURE = FIGURES_DIR / "metrics_by_step.png"
TRACKING = REPORTS_DIR / "tracking.json"  # where `track` logged the run (MLflow, W&B)

# Local caches: not DVC outputs, safe to delete (they only save time).
CACHE_DIR = Path(".cache")
EVAL_CACHE_DIR = CACHE_DIR / "eval"
LM_EVAL_CACHE_DIR = CACHE_DIR / "lm_eval"
