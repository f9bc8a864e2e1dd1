"""Vocabularies (classes named in text, with synonyms) and prompt templates."""
from .templates import TEMPLATE_SETS, get_templates
from .vocabulary import BACKGROUND_WORDS, Vocabulary, is_background_name

__all__ = ['Vocabulary', 'get_templates', 'TEMPLATE_SETS', 'BACKGROUND_WORDS',
           'is_background_name']

from .benchmarks import BENCHMARK_NAMES, load_benchmark_classes  # noqa: E402

__all__ += ['BENCHMARK_NAMES', 'load_benchmark_classes']
