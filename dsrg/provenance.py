"""Where a number comes from: the machine and software that produced it (for the book's captions)."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU (cores), GPU if any, Python, torch."""
    import torch

    parts = [f"{cpu_name()} ({os.cpu_count()} cores)"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(0))
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__}")
    return "; ".join(parts)
