"""The pages' shared helpers, by concern; pages call them as `ui.X`.

- ui.state:     settings in session state, presets and tiny mode, the shareable link, page widgets, the config
- ui.data:      the data gate: which datasets are here, and the loaded dataset or how to get it
- ui.lifecycle: the one job lifecycle (task_section, again_button), the shared job runner, live progress
- ui.models:    trained models and results to show: latest comparison, teacher outputs, measured latency
- ui.widgets:   charts with PNG export (figures shared between sessions), CSV/JSON downloads, the noise verdict,
                lesson mode's panel
- ui.warm:      the default teacher trained in the background when a served app first runs
- ui.divergence: the forward-vs-reverse-KL toy as one page section (divergence_section)

torch is imported only inside functions that need a model or data, so the first screen paints before it loads.
"""

from ui.data import dataset_label, dataset_status, require_dataset
from ui.divergence import divergence_section
from ui.lifecycle import AGAIN_HELP, again_button, get_runner, parts, submit, task_section
from ui.models import (current_or_latest_result, efficiency_rows, measure_latency, result_models,
                       teacher_or_offer)
from ui.state import (PRECISION_HELP, PRESET_LABELS, TINY_CHANGES, TINY_ENV, base_preset, config_summary,
                      configure_logging, current_config, init_state, lab_settings, precision_label, reset_settings,
                      run_button_label, setting_widget, share_link, show_cache_problem, show_link_problems, sync_link,
                      tiny)
from ui.llm_distill import llm_distill_section
from ui.warm import start_teacher, warm_up
from ui.widgets import (ROLE_TITLES, chart, curve_note, dataset_image, download_buttons, lesson_panel, noise_verdict,
                        plain, script_download, shared_figure, show_verdict)

__all__ = [
    "AGAIN_HELP", "PRECISION_HELP", "PRESET_LABELS", "ROLE_TITLES", "TINY_CHANGES", "TINY_ENV", "again_button",
    "base_preset", "chart", "config_summary", "configure_logging", "current_config", "precision_label",
    "current_or_latest_result", "curve_note", "dataset_image", "dataset_label", "dataset_status", "divergence_section", "download_buttons",
    "efficiency_rows",
    "get_runner", "init_state", "lab_settings", "lesson_panel", "llm_distill_section",
    "measure_latency", "noise_verdict", "parts", "plain", "script_download", "shared_figure", "require_dataset", "reset_settings", "result_models",
    "run_button_label", "setting_widget", "share_link", "show_cache_problem", "show_link_problems",
    "show_verdict", "start_teacher", "submit", "sync_link", "task_section", "teacher_or_offer", "tiny", "warm_up",
]
