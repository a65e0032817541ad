"""Small, dependency-light helpers shared by every sub-package (the bottom layer of the library).

* :mod:`luffy.utils.files` -- atomic text and JSON writes (fsync + rename).
* :mod:`luffy.utils.jsonl` -- the one JSONL reader/writer (explicit torn-last-line policy).
* :mod:`luffy.utils.stats` -- mean, standard error and t-based confidence intervals.
* :mod:`luffy.utils.yamlfile` -- YAML files with ``inherit:`` chains (also read by the workflow,
  whose environment has PyYAML but not the library's other dependencies).
"""
