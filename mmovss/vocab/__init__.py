"""Vocabularies (classes named in text, with synonyms) and prompt templates."""
from .templates import TEMPLATE_SETS, get_templates
from .vocabulary import Vocabulary

__all__ = ['Vocabulary', 'get_templates', 'TEMPLATE_SETS']

from .benchmarks import BENCHMARK_NAMES, load_benchmark_classes  # noqa: E402

__all__ += ['BENCHMARK_NAMES', 'load_benchmark_classes']
