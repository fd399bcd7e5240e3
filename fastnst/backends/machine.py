"""What this machine is, for caching measurements: the CPU's identity and the libraries' versions.

A CPU is known by its vendor, family, model and stepping and the instruction sets that decide how
fast each precision runs, never by its model name (every EPYC generation calls itself "AMD EPYC").
A precision that the CPU has no instructions for is emulated in software (bf16 without
AVX512-BF16 or AMX ran 170x slower than fp32 on a Zen 3): measuring it would cost minutes.
"""

from __future__ import annotations

import hashlib
import json
import platform
from functools import lru_cache
from pathlib import Path

import torch

# The flags that decide which precisions run in hardware and how fast.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def read_cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (or of ``text``); empty where it cannot be read."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: all cores of a machine are alike here
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_identity(cpuinfo: dict[str, str] | None = None) -> dict:
    """Vendor, family, model, stepping and the :data:`ISA_FLAGS` the CPU has (not its marketing name)."""
    info = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = set(info.get("flags", "").split())
    return {
        "vendor": info.get("vendor_id") or platform.machine(),
        "family": info.get("cpu family", ""),
        "model": info.get("model", ""),
        "stepping": info.get("stepping", ""),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "machine": platform.machine(),
    }


def cpu_name(cpuinfo: dict[str, str] | None = None) -> str:
    """The CPU's model name and family/model/stepping, for messages and benchmark tables."""
    info = read_cpuinfo() if cpuinfo is None else cpuinfo
    name = info.get("model name") or platform.processor() or platform.machine()
    ident = cpu_identity(info)
    isa = ", ".join(ident["isa"]) or "no AVX2"
    return f"{name} (family {ident['family']} model {ident['model']} stepping {ident['stepping']}; {isa})"


def emulated_precisions(identity: dict | None = None) -> set[str]:
    """Precisions this CPU would run in software: bf16 without AVX512-BF16 or AMX."""
    isa = set((identity or cpu_identity())["isa"])
    return set() if isa & set(BF16_FLAGS) else {"bf16"}


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """torch's version and those of the optional backends installed here."""
    versions = {"torch": torch.__version__}
    for name in ("onnxruntime", "openvino"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def machine_key(**extra) -> tuple[dict, str]:
    """(key, short hash): this CPU, the library versions and ``extra`` (say, a network's shape)."""
    key = {"cpu": cpu_identity(), "versions": library_versions(), **extra}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return key, digest
