"""KD Lab's engine: everything that trains, measures, caches and draws; no Streamlit. Modules, by layer:

Foundations
- paths:        where files live: the cache folder and the optional local data folder (environment variables)
- store:        results and checkpoints on disk, keyed by config hash, written atomically, checked when read
- schema:       what every file read back from the cache must look like (types, finite numbers in range,
                structure, known names), as small declarative checks; a file that fails is moved aside
- memo:         in-process memoisation that computes a value once under concurrent first visits
- pyast:        parsing Python source safely from several threads at once
- config:       one run's settings (RunConfig) with checked defaults, and the named presets
- roles:        the one vocabulary of model roles: display names and colours
- data:         datasets (bundled MNIST sample, MNIST, Fashion-MNIST), IDX parsing, splits
- models:       architectures by name, parameter counts, FLOPs, memory layout

Distillation
- losses:       softened softmax and the KD loss, (1 - alpha)·CE + alpha·T²·KL (the formula lives here only)
- optim:        Adam with torch's fused kernel, without torch.optim's import of torch._dynamo
- convgrad:     bf16 training: a wide convolution's weight gradient as one matmul over its input's patches
- train:        one training loop for teacher and students: Progress snapshots, cooperative cancel, threads
- evaluate:     logits in inference mode, accuracy, per-class accuracy, confusion, agreement, latency
- hints:        layer-wise (FitNets-style) hint losses between a teacher and a student layer
- distributed:  where the students of a job train: here (side by side when the job has cores to spare), or on Ray
- threads:      torch's thread count for a block; one-thread trainings side by side in Python threads
- experiment:   the teacher -> distilled -> scratch comparison, its cache, and its Tasks
- modes:        forward vs reverse KL on a 1-D two-mode teacher (the mode-seeking lesson)
- standalone:   one run as a self-contained PyTorch script a learner can read and run

Long work
- tasks:        Task (key, label, cached, work), the one progress Event, the Tracker that makes Events
- jobs:         the process-wide background job runner: equal keys share one job; Stop cancels
- estimate:     measured throughput, a run's cost by phase, the ETA

Features (each a package of one module per idea)
- lab/:         the dark-knowledge experiments: data budget, omitted class, T × alpha sweep, T², hints
- compress/:    measuring, pruning, int8 quantization, export, and the pipeline that chains them
- lm/:          language models: corpus, character-level transformer, training, the comparison run, and a
                real pretrained LLM teacher (SmolLM2, pretrained.py)

Views and outputs
- charts/:      Plotly figure builders by domain (pure functions of plain data)
- export:       results as CSV rows and JSON documents
- history:      the run history: every finished comparison in the cache, listed, compared, deleted
- digits:       a user's drawn or uploaded digit, checked and prepared the MNIST way
- url_settings: the settings a shareable link carries, parsed strictly
- cli/:         `python -m kd_core ...`: one module per command, one progress printer, one table layout
"""
