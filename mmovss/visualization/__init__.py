"""Overlays of open-vocabulary predictions with a legend of present classes."""
from .legend import LegendEntry, draw_legend, legend_entries
from .open_vocab_visualizer import OpenVocabVisualizer, vocabulary_palette

__all__ = [
    'LegendEntry', 'draw_legend', 'legend_entries', 'OpenVocabVisualizer',
    'vocabulary_palette'
]
