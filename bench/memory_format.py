"""Does channels_last pay off? Training-step time per model, contiguous vs channels_last. Prints JSON.

Run: `.venv/bin/python bench/memory_format.py`. Batch sizes are the presets' (32) and the student
benchmark's (256). Median of 15 timed steps after 3 warm-up steps, on a quiet machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from kd_core.models import create_model  # noqa: E402
from kd_core.train import configure_threads  # noqa: E402


def step_ms(name: str, batch: int, memory_format: torch.memory_format, steps: int = 15) -> float:
    """Median milliseconds of one Adam training step of model `name` at `batch`."""
    torch.manual_seed(0)
    model = create_model(name).to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.rand(batch, 1, 28, 28).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(3 + steps):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 3:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    """Time each conv model both ways and print the ratios."""
    threads = configure_threads()
    rows = []
    for name, batch in (("classroom-teacher", 32), ("keras-student", 32), ("keras-student", 256),
                        ("keras-teacher", 32)):
        plain = step_ms(name, batch, torch.contiguous_format)
        last = step_ms(name, batch, torch.channels_last)
        rows.append({"model": name, "batch": batch, "contiguous_ms": round(plain, 2),
                     "channels_last_ms": round(last, 2), "speedup": round(plain / last, 2)})
    print(json.dumps({"cores": os.cpu_count(), "threads": threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
