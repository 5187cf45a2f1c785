"""Efficiency and compression: measure every model, then distil -> prune -> quantize, and export the result.

- `measure`: size on disk (raw and gzip), weight sparsity, CPU latency and throughput, peak memory; one row's figures.
- `prune`: global magnitude pruning of conv/linear weights and fine-tuning with the masks kept.
- `quantize`: int8 post-training static quantization in eager mode (and the int8 skeleton an export loads into),
  and the words for how its speed compares with float32.
- `exporting`: weights + JSON config (+ ONNX) export, and the checked loading of such files.
- `pipeline`: CompressConfig, the cached compress() run, its Task, row names and the plain-text table.
"""

from kd_core.compress.exporting import EXPORT_FORMAT, ExportError, export_model, load_export
from kd_core.compress.measure import state_dict_bytes, weight_sparsity
from kd_core.compress.pipeline import (EXPORTED, PIPELINE, CompressConfig, cached_compression, compress, compress_key,
                                       export_file, export_folder, task)
from kd_core.compress.prune import finetune_pruned, make_permanent, prune_magnitude
from kd_core.compress.quantize import quantize_int8, speed_note

__all__ = ["EXPORTED", "EXPORT_FORMAT", "PIPELINE", "CompressConfig", "ExportError", "cached_compression", "compress",
           "compress_key", "export_file", "export_folder", "export_model", "finetune_pruned", "load_export",
           "make_permanent", "prune_magnitude", "quantize_int8", "speed_note", "state_dict_bytes", "task",
           "weight_sparsity"]
