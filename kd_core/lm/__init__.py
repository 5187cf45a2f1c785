"""Distillation for language models: a character-level causal transformer teacher and a much smaller student, and a
real pretrained LLM (SmolLM2-135M-Instruct) distilled into tiny students.

The same idea as for images, at every position of a text: the student predicts the next character and
is trained on `(1 - alpha)·CE + alpha·T²·KL(teacher_T || student_T)` (kd_core.losses.kd_loss on the
(batch·positions, vocabulary) logits), or on the reverse KL, or on text sampled from the teacher
(sequence-level KD). Corpus: the docstrings of Python's standard library read from its .py sources with
ast (never imported), or a user's own .txt.

Modules:
- corpus: the texts (stdlib docstrings, checked uploads, registered texts) as character ids with a split.
- model: the character-level transformer, sampling from it, its speed and its validation loss.
- threads: one torch thread while these tiny models run (the previous count restored afterwards).
- training: the token-level KD loss and the training loop, reporting kd_core.train.Progress.
- run: LMConfig, the cached teacher, the whole comparison (run_lm, cached by config) and its Task.
- pretrained: a real pretrained LLM (SmolLM2-135M-Instruct from a GGUF file) as teacher, loaded once and
  offline; its next-token dark knowledge (top-k at T = 1 and T, effective choices vs T) and samples.
- vocab: the teacher's tokenizer restricted to a corpus's tokens (the student's vocabulary), the corpus as tokens.
- topk: the teacher's sparse top-k targets (its top-k tokens + one "other" bucket) and the KD loss on them.
- teacher_passes: the teacher's batched passes for distillation (top-k over the corpus, held-out scores,
  continuations, scores of student samples) and their checked cache files.
- llm_distill: DistillConfig, scratch / token-level / sequence-level / on-policy (GKD) students from the same
  start, the comparison (run_distill, cached by config) and its Task.
"""

from kd_core.lm.corpus import (MAX_UPLOAD_BYTES, MIN_TEXT_CHARS, Corpus, CorpusError, corpus_title, load_corpus,
                               load_text, register_text, stdlib_docstrings, text_from_upload)
from kd_core.lm.model import (GPTSpec, CharGPT, bits_per_char, build_model, chars_per_second, generate,
                              generate_cached, next_char_logits, sample_text, validation_loss)
from kd_core.lm.pretrained import (CURVE_TEMPERATURES, GGUF_ENV, MAX_PROMPT_CHARS, READY_PROMPTS,
                                   PretrainedError, check_prompt, effective_choices, effective_choices_curve,
                                   load_teacher, next_token_logits, next_tokens, prompt_from_bytes, sample,
                                   teacher_file, teacher_info, token_text)
from kd_core.lm.run import (METHODS, SAMPLE_PROMPT, TINY, LMConfig, cached_result, cached_teacher, get_teacher,
                            load_student, run_key, run_lm, student_path, task)
from kd_core.lm.llm_distill import (DIVERGENCES, DistillConfig, OnPolicy, run_distill, sample_student,
                                    train_student)
from kd_core.lm.llm_distill import METHODS as DISTILL_METHODS
from kd_core.lm.llm_distill import TINY as DISTILL_TINY
from kd_core.lm.llm_distill import cached_result as cached_distill_result
from kd_core.lm.llm_distill import load_student as load_distilled_student
from kd_core.lm.llm_distill import task as distill_task
from kd_core.threads import torch_threads
from kd_core.lm.topk import TopK, coverage, topk_kd_loss
from kd_core.lm.training import token_kd_loss, train_lm
from kd_core.lm.vocab import TokenCorpus, Vocab, decode, encode_prompt, restrict, token_corpus

__all__ = ["MAX_UPLOAD_BYTES", "MIN_TEXT_CHARS", "Corpus", "CorpusError", "corpus_title", "load_corpus", "load_text",
           "register_text", "stdlib_docstrings", "text_from_upload", "GPTSpec", "CharGPT", "bits_per_char",
           "build_model", "chars_per_second", "generate", "generate_cached", "next_char_logits", "sample_text",
           "validation_loss", "METHODS", "SAMPLE_PROMPT", "TINY", "LMConfig", "cached_result", "cached_teacher",
           "get_teacher", "load_student", "run_key", "run_lm", "student_path", "task", "torch_threads",
           "token_kd_loss", "train_lm", "CURVE_TEMPERATURES", "GGUF_ENV", "MAX_PROMPT_CHARS", "READY_PROMPTS",
           "PretrainedError", "check_prompt", "effective_choices", "effective_choices_curve", "load_teacher",
           "next_token_logits", "next_tokens", "prompt_from_bytes", "sample", "teacher_file", "teacher_info",
           "token_text", "DIVERGENCES", "DISTILL_METHODS", "DISTILL_TINY", "DistillConfig", "OnPolicy", "run_distill",
           "sample_student", "train_student", "cached_distill_result", "load_distilled_student", "distill_task",
           "TopK", "coverage", "topk_kd_loss", "TokenCorpus", "Vocab", "decode", "encode_prompt", "restrict",
           "token_corpus"]
