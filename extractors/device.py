"""Where models run and in which precision: one rule for training and inference.

``auto`` is CUDA when a GPU is visible, else the CPU. On CUDA, matrix work
runs under bf16 autocast (weights stay fp32, outputs are read as fp32): about
twice the throughput of fp32 on Ampere and later, with no loss scaling to
tune. On the CPU everything stays fp32, where bf16 is slower on most chips.
"""
from __future__ import annotations

import contextlib

import torch

CPU_BATCH = 32  # posts per forward pass: the CPU's sweet spot (benchmarks/extractor_speed)
GPU_BATCH = 128  # a GPU needs bigger batches to fill; `benchmarks.extractor_speed --gpu` measures the range


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; any other name (``cuda:1``, ``cpu``) is kept as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def default_batch(device: str) -> int:
    return GPU_BATCH if device.startswith("cuda") else CPU_BATCH


def autocast(device: str, precision: str = "auto"):
    """A context for forward passes: bf16 autocast on CUDA (``auto`` or ``bf16``), else nothing."""
    if device.startswith("cuda") and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
