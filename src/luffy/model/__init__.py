"""Models: the tiny base model of the embedded task and one loader for any HF model (method §8)."""

from luffy.model.load import ModelLoadError, load_model, load_tokenizer, pick_dtype
from luffy.model.tiny import TinyModelConfig, build_base_model, build_tokenizer, measure_accuracy

__all__ = [
    "ModelLoadError",
    "TinyModelConfig",
    "build_base_model",
    "build_tokenizer",
    "load_model",
    "load_tokenizer",
    "measure_accuracy",
    "pick_dtype",
]
