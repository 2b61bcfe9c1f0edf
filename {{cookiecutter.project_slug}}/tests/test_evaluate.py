"""The eval stage with a fake generator whose outputs are known: every metric, the few-shot
baseline, forgetting edge cases, the generation cache and the optional backends."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }} import paths
from {{ cookiecutter.module_name }}.data.chat import fewshot_prompt
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.evaluation import backend, eval_set, lmeval
from {{ cookiecutter.module_name }}.evaluation.cache import GenerationCache, cache_key, weights_digest
from {{ cookiecutter.module_name }}.evaluation.checkpoint_eval import run_eval
from {{ cookiecutter.module_name }}.evaluation.eval_set import EvalSet
from {{ cookiecutter.module_name }}.evaluation.generation import Request, VLLMGenerator
from {{ cookiecutter.module_name }}.params import parse_params

FIELDS = ["category", "priority", "needs_human", "reply"]
PARAMS = parse_params(
    {"task": {"target_format": "json", "fields": FIELDS, "score_fields": FIELDS[:3]}}
)
TARGETS = [
    {"category": "billing", "priority": "high", "needs_human": True, "reply": "On it."},
    {"category": "account", "priority": "low", "needs_human": False, "reply": "Done."},
    {"category": "technical", "priority": "medium", "needs_human": False, "reply": "Fixed."},
    {"category": "shipping", "priority": "low", "needs_human": True, "reply": "Sent."},
]


def target(i: int, **changes) -> str:
    return json.dumps({**TARGETS[i], **changes})


ROWS = [
    {
        "id": f"row{i}",
        "prompt": [{"role": "user", "content": f"ticket {i}"}],
        "completion": [{"role": "assistant", "content": target(i)}],
    }
    for i in range(4)
]
GENERAL = [
    ("general_qa", {"id": "q1", "question": "Capital of France?", "answers": ["Paris"]}),
    ("general_qa", {"id": "q2", "question": "2 + 2?", "answers": ["4", "four"]}),
    ("instruction_follow", {"id": "i1", "prompt": "lower", "checks": [{"type": "all_lowercase"}]}),
    (
        "instruction_follow",
        {"id": "i2", "prompt": "short", "checks": [{"type": "max_words", "value": 3}]},
    ),
]
# Prompts are stand-in token ids: task rows 0-3, general items 10-13, few-shot rows 20-23.
EVAL_SET = EvalSet(
    rows=ROWS,
    task=[Request((i,), 8) for i in range(4)],
    general_items=GENERAL,
    general=[Request((10 + i,), 8) for i in range(4)],
)
FEWSHOT = [Request((20 + i,), 8) for i in range(4)]

OUTPUTS = {
    "base": {
        **dict.fromkeys(range(4), "I cannot help with that."),
        10: "Paris.",  # right
        11: "five",  # wrong: the base never knew q2
        12: "hello there",  # right
        13: "one two three four",  # wrong
        **{20 + i: target(i) for i in range(4)},  # few-shot: all right
    },
    "checkpoint-2": {
        0: target(0),  # exact
        1: target(1, priority="high"),  # valid JSON, one field wrong
        2: target(2) + " Hope this helps!",  # right fields, then prose: drift
        3: '{"category": "shipping"',  # broken JSON
        10: "London",  # forgot q1: a regression
        11: "4",  # learned q2: not a regression
        12: "hello",
        13: "ok",
    },
}
OUTPUTS["checkpoint-4"] = OUTPUTS["base"] | {i: target(i) for i in range(4)}


class FakeGenerator:
    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def __call__(self, requests, desc):
        self.log.append((self.name, len(requests)))
        return [OUTPUTS[self.name][request.prompt_ids[0]] for request in requests]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in weight files: the cache keys on their hashes."""
    monkeypatch.chdir(tmp_path)
    for directory, name in (
        ("models/base", "model.safetensors"),
        ("models/checkpoints/checkpoint-2", "adapter_model.safetensors"),
        ("models/checkpoints/checkpoint-4", "adapter_model.safetensors"),
    ):
        Path(directory).mkdir(parents=True)
        (Path(directory) / name).write_bytes(directory.encode())
    return tmp_path


CHECKPOINTS = [Path("models/checkpoints/checkpoint-2"), Path("models/checkpoints/checkpoint-4")]


def run(cache: GenerationCache, log: list) -> dict[str, dict]:
    def generator_for(checkpoint):
        return FakeGenerator(checkpoint.name if checkpoint else "base", log)

    reports = run_eval(
        PARAMS, EVAL_SET, FEWSHOT, CHECKPOINTS, paths.BASE_MODEL_DIR, generator_for, cache
    )
    return {report["model"]: report for report in reports}


def test_known_outputs_give_known_scores(workspace: Path) -> None:
    reports = run(GenerationCache(None), [])
    assert list(reports) == ["base", "fewshot", "checkpoint-2", "checkpoint-4"]
    base, tuned = reports["base"]["metrics"], reports["checkpoint-2"]["metrics"]
    assert base == {
        "task_accuracy": 0.0,
        "task_score": 0.0,
        "exact_match": 0.0,
        "format_correct": 0.0,
        "format_drift": 0.0,
        "field_category": 0.0,
        "field_priority": 0.0,
        "field_needs_human": 0.0,
        "general_qa": 0.5,
        "instruction_follow": 0.5,
        "forgetting_score": 0.0,
    }
    assert tuned == {
        "task_accuracy": 0.5,  # rows 0 and 2 (drift does not change the fields)
        "task_score": 0.5,  # json_fields is all or nothing
        "exact_match": 0.25,  # row 0 only
        "format_correct": 0.5,  # rows 0 and 1
        "format_drift": 0.25,  # row 2
        "field_category": 0.75,
        "field_priority": 0.5,
        "field_needs_human": 0.75,
        "general_qa": 0.5,
        "instruction_follow": 1.0,
        "forgetting_score": 0.5,  # of q1 and i1 (base right), q1 is lost
    }
    assert reports["checkpoint-2"]["regressions"] == ["general_qa/q1"]  # q2 learned: not one
    assert reports["checkpoint-4"]["metrics"]["forgetting_score"] == 0.0
    assert reports["checkpoint-4"]["metrics"]["task_accuracy"] == 1.0
    assert reports["fewshot"]["metrics"] == {
        "task_accuracy": 1.0,
        "task_score": 1.0,
        "exact_match": 1.0,
        "format_correct": 1.0,
        "format_drift": 0.0,
        "field_category": 1.0,
        "field_priority": 1.0,
        "field_needs_human": 1.0,
    }
    assert [r["step"] for r in reports.values()] == [0, 0, 2, 4]


def test_items_record_the_output_and_why(workspace: Path) -> None:
    report = run(GenerationCache(None), [])["checkpoint-2"]
    drift = report["items"]["task"][2]
    assert drift["output"].endswith("Hope this helps!")
    assert (drift["correct"], drift["format_ok"], drift["drift"]) == (True, False, True)
    assert len(drift["prompt_hash"]) == 12
    follow = {item["id"]: item for item in report["items"]["instruction_follow"]}
    assert follow["i2"]["failed_checks"] == [] and follow["i2"]["correct"] is True
    base = run(GenerationCache(None), [])["base"]
    failed = {item["id"]: item["failed_checks"] for item in base["items"]["instruction_follow"]}
    assert failed == {"i1": [], "i2": ["max_words"]}


def test_the_cache_serves_unchanged_models_and_misses_changed_ones(workspace: Path) -> None:
    log: list = []
    cache = GenerationCache(workspace / "cache")
    first = run(cache, log)
    assert sorted(log) == sorted(
        [("base", 4), ("base", 4), ("base", 4), *[(f"checkpoint-{s}", 4) for s in (2, 2, 4, 4)]]
    )
    log.clear()
    again = run(cache, log)
    assert log == []  # nothing generated
    for name, report in first.items():
        assert again[name]["items"] == report["items"]
        assert again[name]["generated"] == 0
    # new weights for one checkpoint: only that model is generated again
    Path("models/checkpoints/checkpoint-4/adapter_model.safetensors").write_bytes(b"retrained")
    run(cache, log)
    assert log == [("checkpoint-4", 4), ("checkpoint-4", 4)]


def test_the_cache_key_covers_weights_prompts_budgets_and_settings(workspace: Path) -> None:
    digest = weights_digest([Path("models/base")])
    settings = {"backend": "hf", "bf16": False}
    key = cache_key(digest, EVAL_SET.task, settings)
    assert key == cache_key(digest, list(EVAL_SET.task), dict(settings))
    longer = [Request(r.prompt_ids, 9) for r in EVAL_SET.task]
    keys = {
        key,
        cache_key("other", EVAL_SET.task, settings),
        cache_key(digest, EVAL_SET.task[:3], settings),
        cache_key(digest, longer, settings),
        cache_key(digest, EVAL_SET.task, {**settings, "bf16": True}),
    }
    assert len(keys) == 5
    two_dirs = weights_digest([Path("models/base"), CHECKPOINTS[0]])
    assert two_dirs != digest != weights_digest([Path("models/base"), CHECKPOINTS[1]])


def test_a_disabled_cache_always_generates(workspace: Path) -> None:
    log: list = []
    run(GenerationCache(None), log)
    run(GenerationCache(None), log)
    assert len(log) == 2 * 7


# --------------------------------------------------------------------------- few-shot


def test_fewshot_prompt_puts_the_examples_before_the_row() -> None:
    system = {"role": "system", "content": "Triage."}
    examples = [
        {
            "prompt": [system, {"role": "user", "content": f"example {i}"}],
            "completion": [{"role": "assistant", "content": f"answer {i}"}],
        }
        for i in range(2)
    ]
    prompt = fewshot_prompt([system, {"role": "user", "content": "the ticket"}], examples)
    assert [turn["content"] for turn in prompt] == [
        "Triage.",
        "example 0",
        "answer 0",
        "example 1",
        "answer 1",
        "the ticket",
    ]
    assert [turn["role"] for turn in prompt].count("system") == 1


def test_fewshot_examples_are_seeded_and_bounded() -> None:
    rows = [{"id": f"r{i}"} for i in range(20)]
    picked = eval_set.fewshot_examples(rows, 3, seed=1)
    assert len(picked) == 3 and picked == eval_set.fewshot_examples(rows[::-1], 3, seed=1)
    assert picked != eval_set.fewshot_examples(rows, 3, seed=2)
    assert len(eval_set.fewshot_examples(rows[:2], 3, seed=1)) == 2
    replay = [{"id": f"replay-{i}", "origin": "replay"} for i in range(20)]
    picked = eval_set.fewshot_examples(rows[:2] + replay, 3, seed=1)
    assert sorted(row["id"] for row in picked) == ["r0", "r1"]  # task rows only


# ------------------------------------------------------------------- optional backends


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None, reason="needs the lm-eval extra")
def test_lm_eval_runs_a_local_task_on_the_tiny_model(project: Path) -> None:
    """A YAML task of the user's own under data/lm_eval/, read offline from a JSONL file."""
    tasks = paths.LM_EVAL_TASKS_DIR
    tasks.mkdir(parents=True)
    rows = [
        {"question": f"Is {i} even?", "choices": ["yes", "no"], "answer": i % 2} for i in range(6)
    ]
    (tasks / "tiny.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    opening, closing = "{" * 2, "}" * 2  # Jinja fields, written so the template stays plain
    (tasks / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {(tasks / 'tiny.jsonl').resolve()}\ntest_split: test\n"
        "output_type: multiple_choice\n"
        f'doc_to_text: "{opening}question{closing}"\n'
        f'doc_to_choice: "{opening}choices{closing}"\n'
        f'doc_to_target: "{opening}answer{closing}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    params = parse_params({"eval": {"lm_eval_tasks": ["tiny_mc"], "batch_size": 4}}).eval
    reports = [{"model": "base", "role": "base", "metrics": {"task_accuracy": 0.0}}]
    dirs = lmeval.LmEvalDirs(
        paths.BASE_MODEL_DIR, paths.CHECKPOINTS_DIR, tasks, paths.LM_EVAL_CACHE_DIR
    )
    lmeval.add_lm_eval(reports, params, dirs)
    assert set(reports[0]["lm_eval"]) == {"lm_eval/tiny_mc/acc"}
    assert 0.0 <= reports[0]["metrics"]["lm_eval/tiny_mc/acc"] <= 1.0
    assert reports[0]["metrics"]["task_accuracy"] == 0.0


def test_vllm_without_a_gpu_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "has_gpu", lambda: False)
    with pytest.raises(StageError, match="needs a CUDA GPU; use eval.backend: hf"):
        backend.check_backend(parse_params({"eval": {"backend": "vllm"}}).eval)


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StageError, match=r"pip install -e '\.\[lm-eval\]'"):
        backend.check_backend(parse_params({"eval": {"lm_eval_tasks": ["arc_easy"]}}).eval)
    backend.check_backend(parse_params({}).eval)  # the default path needs neither


def test_lm_eval_results_become_flat_metrics() -> None:
    results = {
        "arc_easy": {
            "alias": "arc_easy",
            "sample_len": 2376,
            "acc,none": 0.61234,
            "acc_stderr,none": 0.01,
        },
        "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1},
    }
    assert lmeval.flat_metrics(results) == {
        "lm_eval/arc_easy/acc": 0.6123,
        "lm_eval/gsm8k/exact_match": 0.25,
    }


def test_vllm_generator_sends_token_ids_budgets_and_the_adapter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """vLLM is a CUDA-only extra; a stand-in module checks what the generator sends it."""
    sent: dict = {}

    class LLM:
        def __init__(self, **kwargs):
            sent["engine"] = kwargs

        def generate(self, prompts, sampling, lora_request, use_tqdm):
            sent.update(prompts=prompts, sampling=sampling, lora=lora_request)
            return [
                types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" out {i} ")])
                for i in range(len(prompts))
            ]

    def record(**kwargs):
        return kwargs

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, record
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = record
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda *args: args
    for name, module in (
        ("vllm", fake),
        ("vllm.inputs", inputs),
        ("vllm.lora", types.ModuleType("vllm.lora")),
        ("vllm.lora.request", lora),
    ):
        monkeypatch.setitem(sys.modules, name, module)

    (tmp_path / "config.json").write_text("{}")  # a materialised base (hub ids: test_hub_base)
    generator = VLLMGenerator(tmp_path, stops=[2, 7])
    assert sent["engine"]["model"] == str(tmp_path)
    assert sent["engine"]["trust_remote_code"] is False and sent["engine"]["enable_lora"]
    generator.use_adapter(CHECKPOINTS[0], 3)
    outputs = generator([Request((1, 2), 5), Request((3,), 9)], "test")
    assert outputs == ["out 0", "out 1"]
    assert sent["prompts"] == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]
    assert [s["max_tokens"] for s in sent["sampling"]] == [5, 9]
    assert all(s["temperature"] == 0.0 and s["stop_token_ids"] == [2, 7] for s in sent["sampling"])
    assert sent["lora"] == ("checkpoint-2", 3, str(CHECKPOINTS[0]))
    generator.use_adapter(None, 0)
    generator([Request((1,), 1)], "base")
    assert sent["lora"] is None
