"""Speed and memory measurement of segmentors and their parts.

The library behind ``tools/analysis_tools/benchmark*.py`` (thin command-line
wrappers): one timing helper (:func:`timed_runs`, :func:`summarize_times`),
FLOP counting and the machine's matrix peak (:mod:`.flops`, :mod:`.peak`),
process memory, benchmark vocabularies, random stand-ins for every weight
source of a config, the benchmarked model, and the reports.
"""
from . import flops, peak
from .errors import BenchmarkError
from .flops import EncoderTimer, MatmulShapes, count_flops, encoder_modules
from .inputs import DEFAULT_IMAGE_SIZE, build_test_pipeline, first_image_or_noise, make_image
from .memory import (
    HUGE_PAGES_ENV,
    current_rss_mb,
    huge_page_allocations,
    peak_rss_mb,
    reset_peak_rss,
)
from .model import (
    DTYPES,
    build_model,
    choose_vocabulary,
    load_benchmark_config,
    load_checkpoint_strictly,
    precision_context,
)
from .options import parse_key_values, parse_literal
from .peak import bf16_falls_back, efficiency, matmul_peak, matmul_peaks
from .random_weights import (
    keep_activation,
    pop_sam_markers,
    quiet_init_weights,
    randomize_sam,
    sam_marker,
    use_random_weights,
)
from .report import (
    EFFICIENCY_HEADER,
    MARKDOWN_HEADER,
    command_line,
    efficiency_row,
    format_report,
    markdown_row,
)
from .segmentor import benchmark_segmentor, progress
from .text import measure_text, text_encoders
from .timing import (
    check_device,
    device_name,
    is_contended,
    summarize_times,
    synchronize,
    timed_call,
    timed_runs,
)
from .vocabulary import load_vocabulary, synthetic_vocabulary, unique_benchmark_classes

__all__ = [
    'BenchmarkError', 'DEFAULT_IMAGE_SIZE', 'DTYPES', 'EFFICIENCY_HEADER',
    'EncoderTimer', 'MARKDOWN_HEADER', 'MatmulShapes', 'bf16_falls_back',
    'count_flops', 'efficiency', 'efficiency_row', 'encoder_modules', 'flops',
    'matmul_peak', 'matmul_peaks', 'peak',
    'benchmark_segmentor', 'build_model', 'build_test_pipeline',
    'HUGE_PAGES_ENV', 'check_device', 'choose_vocabulary', 'command_line', 'current_rss_mb',
    'huge_page_allocations',
    'device_name', 'first_image_or_noise', 'format_report', 'is_contended',
    'keep_activation', 'load_benchmark_config', 'load_checkpoint_strictly',
    'load_vocabulary', 'make_image', 'markdown_row', 'measure_text',
    'parse_key_values', 'parse_literal', 'peak_rss_mb', 'pop_sam_markers',
    'precision_context', 'progress', 'quiet_init_weights', 'randomize_sam',
    'reset_peak_rss', 'sam_marker', 'summarize_times', 'synchronize',
    'synthetic_vocabulary', 'text_encoders', 'timed_call', 'timed_runs',
    'unique_benchmark_classes', 'use_random_weights'
]
