"""The one typed schema for params.yaml.

Every stage calls `load_params()`: the whole file is validated strictly (an unknown key or a
bad value fails before any work, naming the key), and the stage then uses only the sections it
declares in dvc.yaml, so DVC's dependency tracking stays honest. `load_params()` also reads
what curate found about the targets (reports/curate.json `scoring.free_text`), so a null
`task.scorer` resolves to the same scorer in every stage (TaskParams.resolved_scorer).
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import StageError
from .io import read_json
from .paths import CURATE_REPORT, PARAMS


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lora_r": 8}} -> {"train.lora_r": 8}, as `dvc exp show` names params
    (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseParams(Section):
    model: str = Field(
        "embedded:smollm2-135m-instruct",
        description="embedded:smollm2-135m-instruct, a local directory, or a hub id",
    )
    revision: str | None = Field(None, description="git revision to pin a hub model to")


Scorer = Literal["json_fields", "exact", "normalised", "regex", "numeric", "chrf", "rougeL"]
GRADED_SCORERS = ("chrf", "rougeL")
"""Scorers that give partial credit (a score in [0, 1]) to free-text outputs."""
EXACT_SCORERS = ("exact", "normalised")
"""Scorers that compare the whole answer: on free-text targets they score about 0."""
FREE_TEXT_SCORER = "chrf"
"""What a null scorer means for the free-text targets curate finds."""


class TaskParams(Section):
    target_format: Literal["json", "text"] = Field(
        "text",
        description="json: targets are JSON objects scored field by field; text: the whole answer",
    )
    fields: list[str] = Field(default_factory=list, description="keys every JSON target has")
    score_fields: list[str] = Field(default_factory=list, description="keys task accuracy compares")
    scorer: Scorer | None = Field(
        None,
        description="how an output is compared with its target; null = json_fields for "
        "json targets, chrf for text targets curate finds free text (reports/curate.json "
        "`scoring`), normalised for other text",
    )
    answer_pattern: str | None = Field(
        None, description="regex/numeric scorers: the answer is this pattern's first group"
    )
    tolerance: float = Field(0.0, ge=0, description="numeric scorer: absolute tolerance")
    min_score: float = Field(
        0.5, ge=0, le=1, description="chrf/rougeL: an output scoring this or more is correct"
    )

    # set from reports/curate.json by load_params (for_targets), never from params.yaml
    _free_text: bool = PrivateAttr(False)

    def for_targets(self, free_text: bool) -> "TaskParams":
        """This task for targets curate found to be free text (or not)."""
        task = self.model_copy()
        task._free_text = free_text and self.target_format == "text"
        return task

    @property
    def resolved_scorer(self) -> str:
        """The scorer every stage uses: the one set, else json_fields for JSON targets, chrf
        for free text (exact match on a sentence scores ~0 however close the output is), and
        normalised for short answers and labels."""
        if self.scorer is not None:
            return self.scorer
        if self.target_format == "json":
            return "json_fields"
        return FREE_TEXT_SCORER if self._free_text else "normalised"

    @property
    def graded(self) -> bool:
        """Whether the scorer gives partial credit: select then ranks by task_score."""
        return self.resolved_scorer in GRADED_SCORERS

    @model_validator(mode="after")
    def _consistent(self) -> "TaskParams":
        unknown = sorted(set(self.score_fields) - set(self.fields))
        if unknown:
            raise ValueError(f"score_fields {unknown} are not listed in fields")
        if self.resolved_scorer == "json_fields":
            if self.target_format != "json":
                raise ValueError("scorer json_fields needs target_format json")
            if not self.score_fields:
                raise ValueError("scorer json_fields needs at least one entry in score_fields")
        if self.graded and self.target_format != "text":
            raise ValueError(
                f"scorer {self.scorer} compares free text: use it with target_format text "
                "(JSON targets are scored per field by json_fields)"
            )
        if self.resolved_scorer == "regex" and not self.answer_pattern:
            raise ValueError("scorer regex needs answer_pattern")
        if self.answer_pattern is not None:
            try:
                re.compile(self.answer_pattern)
            except re.error as error:
                raise ValueError(f"answer_pattern is not a valid regex: {error}") from None
        return self


InputFormat = Literal["chat", "sharegpt", "prompt_completion", "alpaca", "preference"]


class QualityParams(Section):
    min_target_chars: int = Field(1, ge=1)
    max_target_chars: int = Field(20000, ge=1)
    max_repetition: float = Field(0.5, ge=0, le=1, description="share of repeated 3-grams")
    max_prompt_copy: float = Field(0.9, ge=0, le=1, description="share of target in prompt")
    scripts: Literal["auto"] | list[str] = Field(
        "auto",
        description="allowed Unicode scripts (LATIN, CYRILLIC, CJK, ...); auto = every script "
        "dominant in at least 2 % and 3 of the rows",
    )


class CurateParams(Section):
    formats: dict[str, InputFormat] = Field(
        default_factory=dict, description="file name -> format; other files are auto-detected"
    )
    max_reject_fraction: float = Field(
        0.5, ge=0, le=1, description="largest share of rows quarantined; more fails curate"
    )
    max_tokens: int | None = Field(None, ge=16, description="null = train.max_length")
    format_audit: Literal["quarantine", "keep"] = Field(
        "quarantine", description="JSON targets broken or drifting into prose: quarantine or keep"
    )
    near_dup_threshold: float = Field(0.7, gt=0, le=1, description="Jaccard: drop as duplicate")
    group_threshold: float = Field(0.5, gt=0, le=1, description="Jaccard: keep in one split")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    engine: Literal["local", "spark"] = Field(
        "local",
        description="where near-dup signatures and LSH buckets are computed: local (this "
        "machine) or spark (the `scale` extra); same decisions either way",
    )
    quality: QualityParams = QualityParams()
    max_target_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="most rows one normalised target may answer. Checked only when the targets "
        "are free text (at least half of the distinct targets written once): a label set (a "
        "3-class classifier, however imbalanced) repeats its labels by design and never fires",
    )
    dominant_target: Literal["quarantine", "warn", "fail"] = Field(
        "quarantine",
        description="a dominant or placeholder target (N/A, unknown, ...): quarantine the "
        "copies beyond keep_target_copies, warn (report only) or fail",
    )
    keep_target_copies: int = Field(
        3, ge=1, description="copies of a dominant/placeholder target kept by quarantine"
    )

    @model_validator(mode="after")
    def _group_below_dup(self) -> "CurateParams":
        if self.group_threshold > self.near_dup_threshold:
            raise ValueError("group_threshold must not exceed near_dup_threshold")
        return self


class SplitParams(Section):
    val_fraction: float = Field(0.15, ge=0.1, le=0.2, description="held out: picks the checkpoint")
    test_fraction: float = Field(
        0.15, ge=0.1, le=0.2, description="held out: reported once, for the selected checkpoint"
    )
    stratify_by: str | None = Field(
        "auto",
        description="a JSON target field or row metadata key; auto = the most imbalanced of "
        "task.score_fields (none for text targets); null = none",
    )
    contamination: Literal["remove", "warn", "fail"] = Field(
        "remove", description="train rows overlapping val/test/eval suites: remove, warn or fail"
    )
    ngram: int = Field(8, ge=4, le=64, description="words per n-gram of the overlap check")
    min_overlap: float = Field(0.7, gt=0, le=1, description="share of an item's n-grams")
    replay_fraction: float = Field(0.4, ge=0, lt=0.5, description="share of train from replay")
    replay_answers: Literal["base", "data"] = Field(
        "base",
        description="base: the base model's own answers to the replay prompts (self-"
        "distillation, the `replay` stage); data: data/replay's answers as written",
    )
    replay_max_new_tokens: int = Field(
        192, ge=1, description="the base's answer budget; an unfinished answer is dropped"
    )
    fraction_tolerance: float = Field(
        0.05,
        ge=0,
        le=0.5,
        description="realised val/test fraction may differ from the asked one by this much "
        "(more on small data: 3 standard deviations of hash assignment); else the stage fails",
    )


class SmokeParams(Section):
    fraction: float = Field(0.1, gt=0, le=1, description="share of train the smoke test uses")
    max_steps: int = Field(4, ge=2)
    min_rows: int = Field(8, ge=2)
    rl_steps: int = Field(
        3, ge=2, description="GRPO steps run and timed when rl.enabled (the first warms up)"
    )


Preset = Literal[
    "general", "customer-support", "code-generation", "style-format", "domain-knowledge"
]

PRESETS: dict[str, dict[str, float]] = {
    # a conventional starting point: rank 16, alpha 32, learning rate 1e-4, 2 epochs
    "general": {"lora_r": 16, "lora_alpha": 32, "learning_rate": 1e-4, "num_epochs": 2},
    "customer-support": {"lora_r": 8, "lora_alpha": 16, "learning_rate": 2e-4, "num_epochs": 2},
    "code-generation": {"lora_r": 64, "lora_alpha": 128, "learning_rate": 1e-4, "num_epochs": 3},
    # "rank 4-8 for style/format fine-tuning"; the default. On the support-triage demo (JSON
    # labels + a one-line reply), with 40 % replay of the base's own answers, lr 2e-3 x 3 epochs
    # learns the task (test 0.71) where 2e-4 x 2 stopped while still learning (0.17), and rank 4
    # forgets less than 8 (docs/decisions.md, "The style-format preset")
    "style-format": {"lora_r": 4, "lora_alpha": 8, "learning_rate": 2e-3, "num_epochs": 3},
    # "rank 16-64 for domain knowledge"
    "domain-knowledge": {"lora_r": 32, "lora_alpha": 64, "learning_rate": 1e-4, "num_epochs": 2},
}
"""LoRA starting points per task type (docs/decisions.md); `train.preset` picks one, and any of
these keys set (not null) in params.yaml overrides the preset's value."""


def apply_preset(raw: object, default: str) -> object:
    """Fill the preset's keys that params.yaml leaves out or sets to null."""
    if not isinstance(raw, dict):
        return raw
    preset = raw.get("preset", default)
    if preset not in PRESETS:
        return raw  # the Literal check names the key and the allowed values
    return {**raw, **{k: v for k, v in PRESETS[preset].items() if raw.get(k) is None}}


class TrainParams(Section):
    preset: Preset = Field("style-format", description="LoRA starting point (PRESETS)")
    method: Literal["lora", "qlora", "full"] = Field(
        "lora", description="lora, qlora (4-bit base: the qlora extra) or full (every weight)"
    )
    backend: Literal["trl", "unsloth"] = Field(
        "trl", description="unsloth: CUDA and the unsloth extra (faster kernels, less memory)"
    )
    lora_r: int = Field(ge=1)
    lora_alpha: int = Field(ge=1)
    lora_dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout on the LoRA inputs; at 0.0 PEFT skips the op"
    )
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = Field(gt=0, lt=1)
    num_epochs: float = Field(gt=0)
    batch_size: int = Field(4, ge=1, description="rows per step and process")
    grad_accum: int = Field(1, ge=1)
    processes: int = Field(
        1, ge=1, description="processes per machine: GPUs for DDP; 1 = plain python"
    )
    machines: int = Field(
        1, ge=1, description="machines (nodes) of a multi-node run, each with `processes` GPUs"
    )
    max_length: int = Field(512, ge=16)
    assistant_turns: Literal["all", "last"] = Field(
        "all",
        description="the assistant turns of a multi-turn chat the loss is computed on: all "
        "(each answer and its end-of-turn token) or last (the final one; earlier turns are "
        "context). Eval scores the last turn either way",
    )
    packing: bool = Field(False, description="pack rows into max_length blocks (no padding)")
    padding_free: bool = Field(
        False, description="concatenate each batch without padding (position ids mark rows)"
    )
    save_steps: int = Field(
        50, ge=1, description="a few hundred for runs of thousands of steps; the demo keeps 5"
    )
    logging_steps: int = Field(8, ge=1)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(0.0, ge=0)
    bf16: Literal["auto", True, False] = Field(
        "auto", description="auto: on where the hardware has native bf16 (not AVX2-only CPUs)"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, slower"
    )
    group_by_length: bool = Field(True, description="batch rows of similar length: less padding")
    max_loss_spike: float | None = Field(
        4.0,
        gt=1,
        description="stop when a logged loss exceeds this x the recent median; null = no spike "
        "check (NaN/inf always stops)",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, raw: object) -> object:
        return apply_preset(raw, "style-format")

    @model_validator(mode="after")
    def _backend_method(self) -> "TrainParams":
        if self.backend == "unsloth" and self.method == "full":
            raise ValueError("backend unsloth trains adapters: use method lora or qlora")
        return self


class DpoParams(Section):
    """Direct preference optimisation after SFT, on curate's preference pairs (off by default)."""

    enabled: bool = Field(False, description="DPO on the last SFT checkpoint")
    beta: float = Field(0.1, gt=0, description="strength of the pull towards the SFT model")
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    num_epochs: float = Field(1, gt=0)
    batch_size: int = Field(
        4, ge=1, description="preference pairs per step (each a chosen and a rejected sequence)"
    )
    grad_accum: int = Field(1, ge=1)
    lora_r: int = Field(
        8, ge=1, description="rank of a fresh adapter on the SFT model (merged into the base)"
    )
    lora_alpha: int = Field(16, ge=1)
    max_length: int | None = Field(None, ge=16, description="null = train.max_length")
    save_steps: int = Field(
        20, ge=1, description="steps between models/dpo checkpoints (and the last step)"
    )
    logging_steps: int = Field(5, ge=1)
    min_pairs: int = Field(8, ge=1, description="fail below this many usable preference pairs")


REWARD_HOOK = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class RewardWeights(Section):
    """The weight of each built-in reward in GRPO's summed reward (0 = leave it out)."""

    task_score: float = Field(
        1.0, ge=0, description="the task scorer's item score (what select ranks checkpoints by)"
    )
    format_correct: float = Field(
        0.5, ge=0, description="1 when the output passes the format check"
    )
    field_share: float = Field(
        0.0, ge=0, description="JSON targets: the share of score_fields right (partial credit)"
    )


class RlParams(Section):
    """GRPO after SFT, rewarded by the task's own scorer and format check (off by default)."""

    enabled: bool = Field(
        False, description="GRPO on the SFT checkpoint select's rule picks on val"
    )
    prompts_per_step: int = Field(4, ge=1, description="train prompts sampled per step")
    num_generations: int = Field(
        4, ge=2, description="completions per prompt: the group each reward is compared within"
    )
    max_completion_length: int = Field(
        56, ge=1, description="tokens per sampled completion, as eval.max_new_tokens_task"
    )
    temperature: float = Field(0.7, gt=0, description="sampling temperature of the completions")
    beta: float = Field(
        0.04, ge=0, description="KL pull towards the SFT model; 0 = no KL term (none logged)"
    )
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    max_steps: int = Field(32, ge=1, description="optimizer steps (prompts_per_step prompts each)")
    lora_r: int = Field(
        8, ge=1, description="rank of a fresh adapter on the SFT model (merged into the base)"
    )
    lora_alpha: int = Field(16, ge=1)
    save_steps: int = Field(
        8, ge=1, description="steps between models/rl checkpoints (and the last)"
    )
    logging_steps: int = Field(1, ge=1, description="steps between logged rewards, KL and lengths")
    reward_weights: RewardWeights = RewardWeights()
    reward: str | None = Field(
        None, description="module:function, your own reward added to the two (docs/training.md)"
    )
    reward_weight: float = Field(1.0, ge=0, description="the weight of rl.reward")

    @field_validator("reward")
    @classmethod
    def _reward_hook(cls, spec: str | None) -> str | None:
        if spec is not None and not REWARD_HOOK.match(spec):
            raise ValueError(
                "must be module:function (e.g. my_rewards:brevity), a function importable "
                "from the project root with TRL's reward signature (docs/training.md)"
            )
        return spec

    @model_validator(mode="after")
    def _some_reward(self) -> "RlParams":
        weights = self.reward_weights
        if not (any(weights.model_dump().values()) or (self.reward and self.reward_weight)):
            raise ValueError("every reward weight is 0: GRPO would have nothing to learn from")
        return self


class EvalParams(Section):
    backend: Literal["hf", "vllm"] = Field("hf", description="vllm: CUDA and the vllm extra")
    batch_size: int = Field(64, ge=1, description="prompts per generate call")
    max_new_tokens_task: int = Field(56, ge=1)
    max_new_tokens_qa: int = Field(16, ge=1)
    max_new_tokens_instruction: int = Field(48, ge=1)
    general_qa_limit: int | None = Field(None, ge=1, description="first N items; null = all")
    instruction_limit: int | None = Field(16, ge=1, description="first N items; null = all")
    fewshot_k: int = Field(3, ge=0, description="train examples in the few-shot baseline; 0 = off")
    cache: bool = Field(True, description="reuse generations of an unchanged model and prompt set")
    lm_eval_tasks: list[str] = Field(
        default_factory=list, description="lm-evaluation-harness tasks (the lm-eval extra)"
    )
    lm_eval_limit: int | None = Field(None, ge=1, description="items per lm-eval task; null = all")
    bf16: Literal["auto", True, False] = "auto"


class SelectParams(Section):
    # guardrails: a checkpoint breaking one is not selected while another passes
    max_forgetting: float = Field(
        0.5, ge=0, le=1, description="share of the base's correct general items lost"
    )
    min_format_correct: float = Field(
        0.8, ge=0, le=1, description="share of val outputs in the target format"
    )
    min_general_qa_ratio: float = Field(
        0.8, ge=0, le=1, description="general QA at least this share of the base's"
    )
    # diagnosis: when a failure mode is reported
    forgetting_alert: float = Field(
        0.19, ge=0, le=1, description="forgetting score that needs a look (docs/decisions.md)"
    )
    max_format_drift: float = Field(0.05, ge=0, le=1, description="share of drifting outputs")
    overfit_tolerance: float = Field(
        0.05, ge=0, le=1, description="val loss rise (relative) / accuracy drop that counts"
    )
    contamination_gap: float = Field(
        0.15, ge=0, le=1, description="test minus val task accuracy that suggests a leak"
    )
    min_task_gain: float = Field(
        0.05, ge=0, le=1, description="val task accuracy over the base/few-shot: else underfit"
    )
    # uncertainty: intervals in metrics.json, the report and the diagnosis
    bootstrap_samples: int = Field(2000, ge=100, description="resamples per graded interval")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="interval coverage")
    power: float = Field(
        0.8, gt=0.5, lt=1, description="power of each suite's smallest detectable difference"
    )


ExportFormat = Literal["merged", "gguf"]
GgufType = Literal["f16", "q8_0", "q4_0"]  # export/gguf.py GGUF_TYPES


class ExportParams(Section):
    """What the export stage writes under models/export (cached with each experiment) and how
    closely every export must reproduce the adapter's answers."""

    formats: list[ExportFormat] = Field(
        default_factory=lambda: ["merged", "gguf"],
        description="merged: safetensors for transformers/vLLM; gguf: llama.cpp/Ollama",
    )
    dtype: Literal["bf16", "f16", "f32"] = Field(
        "f16", description="the merged model's dtype (f16 kept the demo's answers, bf16 not)"
    )
    gguf_types: list[GgufType] = Field(
        default_factory=lambda: ["q8_0"], min_length=1, description="one GGUF file each"
    )
    parity_rows: int | None = Field(64, ge=1, description="first N test rows; null = all")
    parity_tolerance: float = Field(
        0.1, ge=0, le=1, description="largest drop in task accuracy or stop rate vs the adapter"
    )
    on_parity_failure: Literal["fail", "mark"] = Field(
        "fail", description="fail the stage, or mark the export in reports/export.json"
    )


NOT_ECHOED = {"track.mlflow.tracking_uri"}
"""Keys whose bad value an error message does not repeat: it may hold a credential."""


class MlflowParams(Section):
    enabled: bool = False
    tracking_uri: str | None = Field(
        None,
        description="null = a local store, mlflow.db in the project (SQLite); or a server, "
        "http(s)://host:5000 (credentials: MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD)",
    )
    experiment: str | None = Field(None, description="null = the project's name")

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, uri: str | None) -> str | None:
        if uri is not None and "@" in urlsplit(uri).netloc:
            raise ValueError(
                "holds credentials (user:password@), and params.yaml is committed: set "
                "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD in the environment"
            )
        return uri


class WandbParams(Section):
    enabled: bool = False
    project: str | None = Field(None, description="null = the project's name")
    entity: str | None = Field(None, description="W&B team or user; null = your default")
    mode: Literal["offline", "online"] = Field(
        "offline",
        description="offline: files under wandb/, `wandb sync` uploads them; online: needs "
        "WANDB_API_KEY in the environment",
    )


class TrackParams(Section):
    """Optional trackers next to dvclive: the `track` stage logs params, losses and the
    headline metrics to each enabled one (tracking/track.py)."""

    mlflow: MlflowParams = MlflowParams()
    wandb: WandbParams = WandbParams()


class Params(Section):
    seed: int = 42
    base: BaseParams = BaseParams()
    task: TaskParams = TaskParams()
    curate: CurateParams = CurateParams()
    split: SplitParams = SplitParams()
    smoke: SmokeParams = SmokeParams()
    train: TrainParams = TrainParams()
    dpo: DpoParams = DpoParams()
    rl: RlParams = RlParams()
    eval: EvalParams = EvalParams()
    select: SelectParams = SelectParams()
    export: ExportParams = ExportParams()
    track: TrackParams = TrackParams()

    @model_validator(mode="after")
    def _rl_checkpoints_evaluable(self) -> "Params":
        if self.rl.enabled and self.eval.backend == "vllm":
            raise ValueError(
                "rl.enabled: eval.backend vllm applies one LoRA adapter per model, and an RL "
                "checkpoint is two stacked on the base: use eval.backend hf"
            )
        return self

    @model_validator(mode="after")
    def _padding_free_rows_fit(self) -> "Params":
        limit = self.curate.max_tokens
        if self.train.padding_free and limit is not None and limit > self.train.max_length:
            raise ValueError(
                f"train.padding_free does not truncate rows: curate.max_tokens ({limit}) must "
                f"be null or at most train.max_length ({self.train.max_length})"
            )
        return self


class ParamsError(StageError):
    """params.yaml is missing, unreadable or fails the schema; the message names the key."""


def format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (typo? see params.py for the valid keys)")
        elif key in NOT_ECHOED:
            lines.append(f"  {key}: {item['msg']}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_params(raw: dict | None, source: str = str(PARAMS)) -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as error:
        raise ParamsError(f"{source} is invalid:\n{format_errors(error)}") from None


def curated_free_text(path: Path) -> bool:
    """Whether the curate report at `path` found the task's targets to be free text (False
    before curate has run)."""
    if not path.exists():
        return False
    return bool(read_json(path).get("scoring", {}).get("free_text", False))


def load_params(path: Path = PARAMS, curate_report: Path | None = CURATE_REPORT) -> Params:
    """Read and validate params.yaml; a null task.scorer is resolved with what curate found
    about the targets (`curate_report`, relative to params.yaml's folder; None: not read)."""
    if not path.exists():
        raise ParamsError(f"{path} not found: run stages from the project root")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path} must be a mapping of sections, got {type(raw).__name__}")
    params = parse_params(raw, str(path))
    if curate_report is None or not curated_free_text(path.parent / curate_report):
        return params
    return params.model_copy(update={"task": params.task.for_targets(True)})
