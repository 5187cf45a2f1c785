"""Dark-knowledge lab: experiments that show *when and why* distillation works.

Each experiment takes a RunConfig (the students' settings; T, alpha and the T² switch included),
reports progress as kd_core.tasks Events through `on_event`, polls `should_stop()`, and returns a
JSON-serialisable dict that is also cached on disk, keyed by config, parameters and data fingerprint.
The app asks `task(name, cfg, dataset, parameters(name, ...))` for a ready Task.

- common:      default configs, the opening every experiment shares, students, statistics, keys, cache, Spec.
- budget:      data_budget: distilled vs scratch as the students see fewer labelled images.
- omitted:     omitted_class: Hinton et al. 2015 §3, a class the student never sees, and the output-bias fix.
- grid:        sweep: distilled accuracy over a T × alpha grid (cached per student, so it resumes).
- tsquared:    t_squared: the same distillation with and without the T² factor: gradient size and accuracy.
- layer_hints: hints: layer-wise (FitNets-style) hints on top of distillation: accuracy with and without.
- catalog:     every experiment by name: FUNCTIONS, parameters(), key() and task() for the app.

Every pair of students compared here shares architecture, initial weights, data order, optimizer
and step count; only the loss differs (see kd_core.experiment.train_student).
"""

from kd_core.lab.budget import DEFAULT_BUDGETS, data_budget, resolve_budgets
from kd_core.lab.catalog import FUNCTIONS, SPECS, key, parameters, task
from kd_core.lab.common import EXPERIMENTS, LAB_VERSION, default_config, noise_points
from kd_core.lab.grid import DEFAULT_ALPHAS, DEFAULT_TEMPERATURES, sweep
from kd_core.lab.layer_hints import DEFAULT_HINT_WEIGHTS, hints
from kd_core.lab.omitted import (DEFAULT_BIAS_GRID, EXAMPLES, HELDOUT_SEED, choose_bias, heldout_split, omitted_class,
                                 with_bias)
from kd_core.lab.tsquared import DEFAULT_T2_TEMPERATURES, gradient_norms, t_squared

__all__ = ["DEFAULT_ALPHAS", "DEFAULT_BIAS_GRID", "DEFAULT_BUDGETS", "DEFAULT_HINT_WEIGHTS", "DEFAULT_T2_TEMPERATURES",
           "DEFAULT_TEMPERATURES", "EXAMPLES", "EXPERIMENTS", "FUNCTIONS", "HELDOUT_SEED", "LAB_VERSION", "SPECS",
           "choose_bias", "data_budget", "default_config", "gradient_norms", "heldout_split", "hints", "key",
           "noise_points", "omitted_class", "parameters", "resolve_budgets", "sweep", "t_squared", "task", "with_bias"]
