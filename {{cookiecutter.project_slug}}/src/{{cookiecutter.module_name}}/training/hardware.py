"""This machine, as training sees it: CPU or CUDA GPUs, memory per device, cores, native bf16
and a measured matmul rate (what `make advise` and the smoke stage's advice are computed for)."""

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ..models.loading import cpu_has_fast_bf16

GIB = 1024**3


@dataclass(frozen=True)
class Hardware:
    kind: Literal["cpu", "cuda"]
    name: str
    memory_bytes: int  # per device: VRAM of one GPU, or the system RAM
    devices: int = 1
    cores: int = 1
    bf16: bool = False  # native bf16 matmuls
    matmul_flops: float | None = None  # measured peak of one device in the training dtype


def compute_bytes(bf16_setting: bool | str, hw: Hardware) -> int:
    """Bytes per activation value: 2 under bf16 (train.bf16, `auto` = native bf16), else 4."""
    on = hw.bf16 if bf16_setting == "auto" else bool(bf16_setting)
    return 2 if on else 4


def describe_hardware(hw: Hardware) -> str:
    if hw.kind == "cuda":
        count = f"{hw.devices} x " if hw.devices > 1 else ""
        return f"CUDA: {count}{hw.name}, {hw.memory_bytes / GIB:.1f} GiB each"
    bf16 = "native bf16" if hw.bf16 else "no native bf16 (fp32)"
    return f"CPU: {hw.name}, {hw.cores} cores, {hw.memory_bytes / GIB:.1f} GiB RAM, {bf16}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def cpu_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def total_ram() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        import psutil

        return psutil.virtual_memory().total


def measure_matmul_flops(device: str, dtype, seconds: float = 0.3) -> float:
    """Peak matmul FLOP/s of one device: square matmuls repeated for ~`seconds`."""
    import torch

    size = 4096 if device == "cuda" else 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    a @ b  # warm-up: kernel selection, thread pool start
    sync()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(4):
            a @ b
        sync()
        runs += 4
    return 2 * size**3 * runs / (time.perf_counter() - started)


def detect_hardware(bf16_setting: bool | str = "auto", measure: bool = True) -> Hardware:
    """This machine: the first CUDA GPU (and how many), else the CPU; optionally its
    measured matmul rate in the dtype training will use."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        hw = Hardware(
            kind="cuda",
            name=props.name,
            memory_bytes=props.total_memory,
            devices=torch.cuda.device_count(),
            cores=cpu_cores(),
            bf16=torch.cuda.is_bf16_supported(),
        )
    else:
        hw = Hardware(
            kind="cpu",
            name=cpu_name(),
            memory_bytes=total_ram(),
            cores=cpu_cores(),
            bf16=cpu_has_fast_bf16(),
        )
    if not measure:
        return hw
    dtype = torch.bfloat16 if compute_bytes(bf16_setting, hw) == 2 else torch.float32
    flops = measure_matmul_flops(hw.kind, dtype)
    return Hardware(**{**asdict(hw), "matmul_flops": flops})
