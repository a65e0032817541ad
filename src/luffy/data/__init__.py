"""Training data: the row schema, loaders, chat templates and the embedded tiny task (method §3).

Also the paper data folder (:mod:`luffy.data.paper`) and the reference repository's data files with
their download and checksums (:mod:`luffy.data.reference`, shared with :mod:`luffy.eval.benchmarks`).
"""

from luffy.data.loaders import load_hub_dataset, load_rows, write_rows
from luffy.data.schema import DataFormatError, Trace, TrainRow
from luffy.data.synthetic import SplitSpec, TaskConfig, generate_task, write_task
from luffy.data.templates import (
    CHAT_TEMPLATES,
    LUFFY_SYSTEM_PROMPT,
    get_chat_template,
    render_prompt,
    strip_think_prefix,
)

__all__ = [
    "CHAT_TEMPLATES",
    "LUFFY_SYSTEM_PROMPT",
    "DataFormatError",
    "SplitSpec",
    "TaskConfig",
    "Trace",
    "TrainRow",
    "generate_task",
    "get_chat_template",
    "load_hub_dataset",
    "load_rows",
    "render_prompt",
    "strip_think_prefix",
    "write_rows",
    "write_task",
]
