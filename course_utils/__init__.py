"""course_utils: the tested helpers behind the attention course.

One module per idea: ``env`` (device, seeds, doctor), ``data`` (vocabularies and seeded
tasks), ``seq2seq`` (RNN encoder-decoders), ``attention`` (masks, scaled dot-product, the
seq2seq scores, multi-head attention with a KV cache), ``transformer`` (positional encodings,
encoder layers, a tagger and a GPT), ``tasks`` (seeded token-level tasks for the Transformer
lessons), ``training`` (one fit loop, metrics), ``plots``, ``widgets`` (explorers),
``exercises`` (checkers), ``quizzes`` and ``token_ids`` (the check every model runs on its ids).
"""

from .data import (
    Batch,
    Vocab,
    collate_pairs,
    make_dates,
    make_loader,
    make_sequence_task,
    pad_sequences,
    split_dataset,
    task_target,
)
from .env import course_seed, doctor, get_device, seed_everything
from .seq2seq import BottleneckDecoder, Encoder, Seq2Seq, build_bottleneck_model, translate
from .training import (
    History,
    accuracy_by_length,
    count_parameters,
    evaluate,
    exact_match,
    fit,
    format_buckets,
    length_buckets,
    predict,
    seq2seq_loss,
    token_accuracy,
)

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "BottleneckDecoder",
    "Encoder",
    "History",
    "Seq2Seq",
    "Vocab",
    "accuracy_by_length",
    "build_bottleneck_model",
    "collate_pairs",
    "count_parameters",
    "course_seed",
    "doctor",
    "evaluate",
    "exact_match",
    "fit",
    "format_buckets",
    "get_device",
    "length_buckets",
    "make_dates",
    "make_loader",
    "make_sequence_task",
    "pad_sequences",
    "predict",
    "seed_everything",
    "seq2seq_loss",
    "split_dataset",
    "task_target",
    "token_accuracy",
    "translate",
]
