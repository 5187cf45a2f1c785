"""int8 against float32 for the students on this CPU: eager (the app's path) and compiled (torchao's PT2E). Prints JSON.

Per architecture, the median latency of one call at batch 1 and at batch 256 (1 torch thread, as the app's job
runner measures) for: float32 eager (channels_last, as kd_core.evaluate runs it), int8 eager
(kd_core.compress.quantize_int8: torch.ao.quantization, the Efficiency page's int8 row), float32 compiled
(torch.compile, inductor) and int8 by torchao's PT2E flow with the X86 inductor quantizer, compiled by inductor
(the flow PyTorch recommends for CPU CNNs from 2.x on). It answers whether int8 can be faster for a network of
20k parameters, and what each path costs to prepare.

torchao and a C++ compiler are needed for the PT2E rows only (they are left out, with the reason, without them):
  .venv/bin/python -m pip install torchao      # or: pip install --target DIR torchao, then PYTHONPATH=DIR
  .venv/bin/python bench/int8.py [--threads 1] [--architectures keras-student]
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

BATCHES = (1, 256)


def median_ms(call: Callable[[Any], Any], batch: int) -> float:
    """Median milliseconds of `call` on a random float batch of `batch` images, after a warm-up."""
    import torch

    x = torch.rand(batch, 1, 28, 28)
    runs = 300 if batch == 1 else 30
    with torch.inference_mode():
        for _ in range(10):
            call(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def pt2e_int8(model: Any, calibration: Any) -> Callable[[Any], Any]:
    """`model` quantized by torchao's PT2E flow (X86InductorQuantizer, static, calibrated) and compiled by inductor."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    batch = torch.export.Dim("batch", min=1, max=4096)
    exported = torch.export.export(model, (calibration[:4],), dynamic_shapes=({0: batch},)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        prepared(calibration)
    return torch.compile(convert_pt2e(prepared))


def measure(architecture: str) -> dict[str, Any]:
    """Latency per path and batch for a fresh `architecture`, the seconds each path took to prepare, and the
    largest logit difference from float32 eager on one batch."""
    import torch

    from kd_core.compress.quantize import quantize_int8
    from kd_core.models import create_model, memory_format

    torch.manual_seed(0)
    model = create_model(architecture).eval()
    model.to(memory_format=memory_format(model))
    calibration_images = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8)
    calibration = calibration_images.unsqueeze(1).float().div(255)
    paths: dict[str, Callable[[], Callable[[Any], Any]]] = {
        "float32 eager": lambda: (lambda x: model(x.contiguous(memory_format=memory_format(model)))),
        "int8 eager (torch.ao, the app's)": lambda: quantize_int8(model, calibration_images),
        "float32 compiled (inductor)": lambda: torch.compile(model),
        "int8 PT2E + inductor (torchao)": lambda: pt2e_int8(model, calibration),
    }
    out: dict[str, Any] = {}
    reference = model(calibration[:64]).detach()
    for name, make in paths.items():
        start = time.perf_counter()
        try:
            call = make()
            with torch.inference_mode():
                difference = float((call(calibration[:64]) - reference).abs().max())
        except Exception as exc:  # no torchao, no compiler: say so and go on
            out[name] = {"skipped": f"{type(exc).__name__}: {str(exc)[:300]}"}
            continue
        prepared = time.perf_counter() - start
        out[name] = {"prepare_seconds": prepared, "max_abs_logit_difference": difference,
                     **{f"batch_{b}_ms": median_ms(call, b) for b in BATCHES}}
    return out


def main() -> int:
    """Measure each architecture and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--architectures", nargs="+", default=["keras-student"])
    args = parser.parse_args()
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    report = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "threads": args.threads,
              "torch": torch.__version__, "load_average_before": os.getloadavg(),
              "architectures": {a: measure(a) for a in args.architectures}, "load_average_after": os.getloadavg()}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
