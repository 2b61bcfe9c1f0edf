"""Past one machine: the multi-node accelerate config, the launch the train stage builds from
it, and the SkyPilot task that runs the stage on a GPU cluster (configs/). accelerate reads
the configs and parses the commands; two launches on this machine rendezvous as two
"machines" on the CPU (gloo); the SkyPilot task's script runs against stand-ins for dvc and
python. No GPU and no cloud: a real cluster run is not tested here."""

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import free_port, stop_tree
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.paths import ACCELERATE_CONFIG, ACCELERATE_MULTI_NODE_CONFIG
from {{ cookiecutter.module_name }}.stages.train import LAUNCH_CONFIGS
from {{ cookiecutter.module_name }}.training import trainer

PROJECT = Path(__file__).parents[1]
PACKAGE = "{{ cookiecutter.module_name }}"
SKY_TASK = PROJECT / "configs" / "cloud" / "sky-train.yaml"
DVC_STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
MAIN_IP = "10.0.0.1"
# What a launcher leaves in a worker's environment: a test run from inside one must not see it.
LAUNCHER_ENV = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
MACHINE_ENV = ("NUM_MACHINES", "MACHINE_RANK", "MAIN_PROCESS_IP", "MAIN_PROCESS_PORT")


def load_accelerate_config(path: Path):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(path))


def torchrun_args(command: list[str]):
    """What `accelerate launch` would hand torchrun for `command`: accelerate's own parser
    and config merge, then its multi-GPU environment set-up (which starts nothing)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    assert command[1:3] == ["-m", "accelerate.commands.launch"], command
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(command[3:]))
    assert args.multi_gpu, "the config did not select accelerate's multi-process launcher"
    environment = prepare_multi_gpu_env(args)
    return args, environment


# --- the configs, read by accelerate -------------------------------------------------------


def test_multi_node_config_is_a_multi_machine_ddp_config() -> None:
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DistributedType

    config = load_accelerate_config(PROJECT / ACCELERATE_MULTI_NODE_CONFIG)
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.num_machines > 1
    assert config.rdzv_backend == "static"
    assert config.main_process_ip is None  # per cluster: --main_process_ip from the env
    assert config.num_processes == -1  # always passed: train.machines x train.processes


MACHINE_SETTINGS = {"num_machines", "machine_rank", "main_process_ip", "main_process_port"}


def test_the_two_configs_differ_only_in_the_machine_settings() -> None:
    """Precision, device and launcher settings agree: one machine or several, a run trains
    the same way. (same_network is set in accelerate.yaml only; `accelerate launch` ignores
    it in a config.)"""
    one = load_accelerate_config(PROJECT / ACCELERATE_CONFIG).to_dict()
    several = load_accelerate_config(PROJECT / ACCELERATE_MULTI_NODE_CONFIG).to_dict()
    keys = (one.keys() | several.keys()) - MACHINE_SETTINGS - {"same_network"}
    assert {key: one.get(key) for key in keys} == {key: several.get(key) for key in keys}
    assert one["num_machines"] == 1 and several["num_machines"] > 1


# --- the command the train stage builds ----------------------------------------------------


def multi_node_command(processes: int, machines: int, **environ: str) -> list[str]:
    command = trainer.launch_command(processes, machines, environ=environ, configs=LAUNCH_CONFIGS)
    assert command is not None
    return command


def test_several_machines_launch_with_the_multi_node_config(monkeypatch) -> None:
    monkeypatch.chdir(PROJECT)
    command = multi_node_command(4, 2, MACHINE_RANK="1", MAIN_PROCESS_IP=MAIN_IP)
    assert command[0] == sys.executable
    assert command[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE_MULTI_NODE_CONFIG),
        "--num_processes",
        "8",
        "--num_machines",
        "2",
        "--machine_rank",
        "1",
        "--main_process_ip",
        MAIN_IP,
        "-m",
        f"{PACKAGE}.stages.train",
    ]


def test_accelerate_turns_the_command_into_a_two_machine_torchrun(monkeypatch) -> None:
    """Machine 1 of 2, 4 processes each: accelerate merges the command line over the config
    and sets torchrun up for 2 nodes of 4 processes around machine 0's address."""
    monkeypatch.chdir(PROJECT)
    command = multi_node_command(
        4, 2, MACHINE_RANK="1", MAIN_PROCESS_IP=MAIN_IP, MAIN_PROCESS_PORT="29611"
    )
    args, environment = torchrun_args(command)
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("2", 1, "4")
    assert (args.rdzv_backend, args.rdzv_endpoint) == ("static", f"{MAIN_IP}:29611")
    assert args.module and args.training_script == f"{PACKAGE}.stages.train"
    assert environment["ACCELERATE_MIXED_PRECISION"] == "no"  # left to train.bf16


def test_the_config_port_applies_without_main_process_port(monkeypatch) -> None:
    monkeypatch.chdir(PROJECT)
    args, _ = torchrun_args(multi_node_command(2, 3, MACHINE_RANK="2", MAIN_PROCESS_IP=MAIN_IP))
    port = load_accelerate_config(PROJECT / ACCELERATE_MULTI_NODE_CONFIG).main_process_port
    assert (args.nnodes, args.node_rank, args.rdzv_endpoint) == ("3", 2, f"{MAIN_IP}:{port}")


def test_one_process_per_machine_still_launches(monkeypatch) -> None:
    monkeypatch.chdir(PROJECT)
    command = multi_node_command(1, 2, MACHINE_RANK="0", MAIN_PROCESS_IP=MAIN_IP)
    assert command[command.index("--num_processes") + 1] == "2"


def test_one_machine_keeps_the_single_machine_config(monkeypatch) -> None:
    monkeypatch.chdir(PROJECT)
    environ = {"MACHINE_RANK": "0", "MAIN_PROCESS_IP": MAIN_IP}  # ignored with one machine
    command = trainer.launch_command(2, 1, environ=environ, configs=LAUNCH_CONFIGS)
    assert command is not None
    assert command[command.index("--config_file") + 1] == str(ACCELERATE_CONFIG)
    assert "--num_machines" not in command


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MAIN_PROCESS_IP": MAIN_IP}, "needs MACHINE_RANK set on every machine"),
        ({"MACHINE_RANK": "0"}, "needs MAIN_PROCESS_IP set"),
        ({"MACHINE_RANK": "first", "MAIN_PROCESS_IP": MAIN_IP}, "MACHINE_RANK='first'"),
        ({"MACHINE_RANK": "2", "MAIN_PROCESS_IP": MAIN_IP}, "not below train.machines=2"),
        (
            {"MACHINE_RANK": "0", "MAIN_PROCESS_IP": MAIN_IP, "NUM_MACHINES": "4"},
            r"set train\.machines=4",
        ),
    ],
)
def test_a_machine_without_its_settings_stops_with_a_message(
    environ: dict[str, str], message: str, monkeypatch
) -> None:
    monkeypatch.chdir(PROJECT)
    with pytest.raises(StageError, match=message):
        trainer.launch_command(4, 2, environ=environ, configs=LAUNCH_CONFIGS)


def test_several_machines_need_the_multi_node_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match=str(ACCELERATE_MULTI_NODE_CONFIG)):
        trainer.launch_command(
            4, 2, environ={"MACHINE_RANK": "0", "MAIN_PROCESS_IP": MAIN_IP}, configs=LAUNCH_CONFIGS
        )


def test_a_launched_worker_on_any_machine_does_not_relaunch() -> None:
    assert (
        trainer.launch_command(4, 2, environ={"LOCAL_WORLD_SIZE": "4"}, configs=LAUNCH_CONFIGS)
        is None
    )


def test_dvc_tracks_the_multi_node_config() -> None:
    assert str(ACCELERATE_MULTI_NODE_CONFIG) in DVC_STAGES["train"]["deps"]


# --- two machines on this one, for real ----------------------------------------------------

PROBE = """
import json, os, sys
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
total = torch.tensor([float(dist.get_rank())])
dist.all_reduce(total)
report = {
    "rank": dist.get_rank(),
    "world": dist.get_world_size(),
    "sum": total.item(),
    "machine": int(os.environ["GROUP_RANK"]),
    "local_world": int(os.environ["LOCAL_WORLD_SIZE"]),
}
with open(os.path.join(sys.argv[1], f"rank{dist.get_rank()}.json"), "w") as out:
    json.dump(report, out)
dist.destroy_process_group()
"""


@pytest.mark.e2e
def test_two_machines_rendezvous_through_the_multi_node_config(tmp_path: Path) -> None:
    """The stage's launch for machines 0 and 1 of 2 (one process each), started side by side
    here with 127.0.0.1 as machine 0, runs a gloo all-reduce across both: the config and the
    command make a working two-machine DDP group. A probe stands in for the stage (training
    on two processes is tests/test_distributed.py)."""
    (tmp_path / "probe_ddp.py").write_text(PROBE)
    environ = {"MAIN_PROCESS_IP": "127.0.0.1", "MAIN_PROCESS_PORT": str(free_port())}
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV + MACHINE_ENV}
    env |= {"PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    launches = []
    for rank in ("0", "1"):
        command = trainer.launch_command(
            1, 2, environ=environ | {"MACHINE_RANK": rank}, configs=LAUNCH_CONFIGS
        )
        assert command is not None and command[-2:] == ["-m", f"{PACKAGE}.stages.train"]
        launches.append(
            subprocess.Popen(
                [*command[:-1], "probe_ddp", str(tmp_path)],
                cwd=PROJECT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for launch in launches:
            outputs.append(launch.communicate(timeout=180)[0])
    except subprocess.TimeoutExpired:
        for launch in launches:
            stop_tree(launch)
        pytest.fail("the two machines did not finish in 180 s (no rendezvous?)")
    for launch, output in zip(launches, outputs, strict=True):
        assert launch.returncode == 0, output[-4000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["machine"]) for r in reports] == [(0, 0), (1, 1)]
    assert all(r["world"] == 2 and r["local_world"] == 1 and r["sum"] == 1.0 for r in reports)


# --- the SkyPilot task ---------------------------------------------------------------------


def sky_task() -> dict:
    return yaml.safe_load(SKY_TASK.read_text(encoding="utf-8"))


def stages_from_train() -> list[str]:
    names = list(DVC_STAGES)
    return names[names.index("train") :]


def cached_outputs(stage: dict) -> set[str]:
    found = set()
    for item in stage.get("outs", []):
        path, options = next(iter(item.items())) if isinstance(item, dict) else (item, {})
        if (options or {}).get("cache", True):
            found.add(path)
    return found


def test_sky_task_has_the_fields_the_recipe_needs() -> None:
    task = sky_task()
    assert task["workdir"] == "."
    assert task["num_nodes"] >= 2
    assert ":" in task["resources"]["accelerators"]  # GPU type and count per node
    assert "make setup" in task["setup"]


def test_sky_task_keeps_secrets_out_of_the_file() -> None:
    """Credentials come from `--secret NAME` (the launcher's secret mechanism): the file
    holds their names only, and no env value looks like one."""
    task = sky_task()
    assert task["secrets"] and all(value is None for value in task["secrets"].values())
    assert not set(task.get("envs") or {}) & set(task["secrets"])
    for name in task.get("envs") or {}:
        assert not any(word in name.upper() for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))


def test_sky_task_pulls_what_train_and_the_later_stages_read() -> None:
    """Every DVC-cached input of train and the stages after it is an output of a stage the
    task pulls; the rest is in git (or made on the node by an earlier stage of the run)."""
    pulled = re.search(r"^\s*dvc pull (.+)$", sky_task()["run"], re.MULTILINE)
    assert pulled, "the task pulls nothing"
    targets = shlex.split(pulled.group(1))
    later = stages_from_train()
    written_before = {
        path: name
        for name in list(DVC_STAGES)[: list(DVC_STAGES).index("train")]
        for path in cached_outputs(DVC_STAGES[name])
    }
    needed = {
        stage
        for name in later
        for dep in DVC_STAGES[name].get("deps", [])
        for path, stage in written_before.items()
        if dep == path or dep.startswith(f"{path}/")
    }
    assert needed, "train reads no DVC-cached output: the test no longer checks anything"
    assert set(targets) == needed


def run_sky_script(tmp_path: Path, rank: int, nodes: int = 2) -> list[dict]:
    """The task's run script on node `rank`, with stand-ins for dvc and python that record
    each call (its arguments and the machine settings in its environment)."""
    log = tmp_path / f"calls-{rank}.jsonl"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    recorder = (
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"names = {list(MACHINE_ENV)!r}\n"
        "call = {'argv': [os.path.basename(sys.argv[0]), *sys.argv[1:]],\n"
        "        'env': {n: os.environ[n] for n in names if n in os.environ}}\n"
        f"open({str(log)!r}, 'a').write(json.dumps(call) + '\\n')\n"
    )
    for tool in ("dvc", "python"):
        (venv_bin / tool).write_text(recorder)
        (venv_bin / tool).chmod(stat.S_IRWXU)
    (tmp_path / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in MACHINE_ENV}
    env |= {
        "SKYPILOT_NODE_RANK": str(rank),
        "SKYPILOT_NUM_NODES": str(nodes),
        "SKYPILOT_NODE_IPS": "\n".join(f"10.0.0.{node + 1}" for node in range(nodes)) + "\n",
    }
    result = subprocess.run(
        ["bash", "-c", sky_task()["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_sky_node_0_runs_train_under_dvc_then_the_rest_and_pushes(tmp_path: Path) -> None:
    calls = run_sky_script(tmp_path, rank=0)
    commands = [call["argv"] for call in calls]
    assert commands[0][:2] == ["dvc", "pull"]
    assert commands[1:] == [
        ["dvc", "repro", "--single-item", "--force", "train"],
        ["dvc", "repro", "--downstream", "train"],
        ["dvc", "push", *stages_from_train()],
    ]
    settings = calls[1]["env"]  # what the train stage sees under `dvc repro`
    assert settings == {"NUM_MACHINES": "2", "MACHINE_RANK": "0", "MAIN_PROCESS_IP": MAIN_IP}
    assert not (tmp_path / "models" / "checkpoints").exists()  # multi-node starts clean


def test_sky_other_nodes_run_the_stage_command_with_their_rank(tmp_path: Path) -> None:
    calls = run_sky_script(tmp_path, rank=1)
    commands = [call["argv"] for call in calls]
    assert commands[0][:2] == ["dvc", "pull"]
    assert commands[1:] == [shlex.split(DVC_STAGES["train"]["cmd"])]  # no DVC on workers
    assert calls[1]["env"] == {"NUM_MACHINES": "2", "MACHINE_RANK": "1", "MAIN_PROCESS_IP": MAIN_IP}


def test_sky_settings_make_the_launch_of_each_node(tmp_path: Path, monkeypatch) -> None:
    """The environment the task gives node 1 is what launch_command needs: machine 1 of 2
    around node 0's address."""
    environ = run_sky_script(tmp_path, rank=1)[1]["env"]
    monkeypatch.chdir(PROJECT)
    args, _ = torchrun_args(trainer.launch_command(8, 2, environ=environ, configs=LAUNCH_CONFIGS))
    assert (args.nnodes, args.node_rank, args.rdzv_endpoint) == ("2", 1, f"{MAIN_IP}:29500")


def test_a_one_node_cluster_keeps_its_checkpoints_to_resume(tmp_path: Path) -> None:
    run_sky_script(tmp_path, rank=0, nodes=1)
    assert (tmp_path / "models" / "checkpoints").is_dir()


def test_skypilot_parses_the_task(monkeypatch) -> None:
    """SkyPilot's own loader and schema (no cloud needed). SkyPilot is the user's launcher,
    not a dependency of this project: skipped where it is not installed."""
    sky = pytest.importorskip("sky")
    monkeypatch.chdir(PROJECT)
    task = sky.Task.from_yaml(str(SKY_TASK))
    assert task.num_nodes == sky_task()["num_nodes"]
    accelerators = {name: count for r in task.resources for name, count in r.accelerators.items()}
    kind, count = sky_task()["resources"]["accelerators"].split(":")
    assert accelerators == {kind: int(count)}
    assert "dvc repro" in task.run
