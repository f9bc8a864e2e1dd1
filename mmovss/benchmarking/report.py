"""Reports of a segmentor benchmark: a readable table and a docs row."""
import os
import os.path as osp
import shlex
from typing import Sequence

from .memory import HUGE_PAGES_ENV

TOOL = 'tools/analysis_tools/benchmark.py'


def command_line(argv: Sequence[str], tool: str = TOOL) -> str:
    """The command that reproduces a run (repository-relative tool path).

    The output options (``--json PATH``, ``--markdown``, ``--overwrite``),
    which do not change what is measured, are left out.
    """
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == '--json':
            skip = True
        elif arg not in ('--markdown', '--overwrite') and not arg.startswith('--json='):
            kept.append(arg)
    return f'python {tool} ' + shlex.join(kept)


def format_report(result: dict) -> str:
    """A readable table of one result."""
    lat = result['latency_s']
    mem = result['memory']
    text = result['text']
    vocab = result['vocabulary']
    img = result['image']
    if 'gpu_peak_mb' in mem:
        memory = (f"{mem['gpu_peak_mb']:.0f} MiB max allocated "
                  f"(model {mem['gpu_model_mb']:.0f} MiB); process RSS peak "
                  f"{mem['peak_rss_mb']:.0f} MiB")
    else:
        above = mem['peak_rss_above_model_mb']
        memory = (f"{mem['peak_rss_mb']:.0f} MiB peak RSS, "
                  f"{above:.0f} MiB above the built model "
                  f"({mem['rss_model_mb']:.0f} MiB)" if above is not None
                  else f"{mem['peak_rss_mb']:.0f} MiB peak RSS")
        if mem.get('cpu_huge_pages') is not None:
            memory += ('; CPU tensors >= 2 MiB on huge pages: '
                       + ('yes' if mem['cpu_huge_pages'] else
                          f'no ({HUGE_PAGES_ENV}=1 before torch allocates)'))
    rows = [
        ('config', result['config'] + (f" --benchmark {result['benchmark']}"
                                       if result.get('benchmark') else '')),
        ('model', f"{result['model']}, {result['params_m']:.1f} M params, "
                  f"{result['weights']} weights"),
        ('device', f"{result['device']} ({result['device_name']}), "
                   f"{result['threads']} threads, {result['precision']}, "
                   f"torch {result['torch']}"),
        ('vocabulary', f"{vocab['num_classes']} classes "
                       f"({vocab['num_names']} names) from "
                       f"{vocab['source']}"),
        ('image', f"{img['source']} {img['ori_shape'][0]}x"
                  f"{img['ori_shape'][1]} -> network input "
                  f"{img['net_shape'][0]}x{img['net_shape'][1]} "
                  f"({result['test_mode']})"),
        ('latency / image', f"median {lat['median']:.3f} s, p90 "
                            f"{lat['p90']:.3f} s (min {lat['min']:.3f}, "
                            f"{result['repeat']} runs after "
                            f"{result['warmup']} warm-up)"),
        ('throughput', f"{result['images_per_s']:.2f} images/s"),
        ('CPU time / image', f"{result['cpu_s_per_image']:.3f} s (median, "
                             f"all threads; 1-min load average "
                             f"{result['load_average'][0]:.1f} -> "
                             f"{result['load_average'][1]:.1f} on "
                             f"{os.cpu_count()} cores"
                             f"{': CONTENDED' if result['contended'] else ''}"
                             f")"),
        ('peak memory', memory),
        ('text encoding', f"cold {text['cold_s']:.3f} s "
                          f"(CPU {text['cold_cpu_s']:.3f} s, "
                          f"{text['prompts']} prompts), warm from disk "
                          f"{text['warm_disk_s'] * 1e3:.1f} ms, warm "
                          f"{text['warm_s'] * 1e3:.2f} ms"),
        ('build', f"{result['build_s']:.1f} s"),
    ]
    rows += efficiency_rows(result)
    rows += [('note', n) for n in result['notes']]
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)


def _gflops(value: float) -> str:
    return f'{value:.1f}' if value < 1e4 else f'{value / 1e3:.2f} T'


def efficiency_rows(result: dict) -> list:
    """The report's FLOP, peak and efficiency rows (none when not counted)."""
    rows = []
    check = result.get('dtype_check')
    if check:
        m, k, n = check['shape']
        rows.append(('bf16 check', f"mm {m}x{k}x{n}: bf16 "
                     f"{check['bf16_gflops']:.1f} vs fp32 "
                     f"{check['fp32_gflops']:.1f} GFLOP/s -> "
                     f"{'bf16 kept' if check['kept'] else 'FELL BACK TO FP32'}"))
    eff = result.get('efficiency')
    if not eff:
        return rows
    peak = eff['peak']
    m, k, n = peak['shape']
    dominant = eff['dominant_matmul']
    share = (f", {dominant['share']:.0%} of the mm/addmm FLOPs"
             if dominant else '')
    rows.append(('matrix peak', f"{_gflops(peak['gflops'])} GFLOP/s "
                 f"({peak['dtype']} mm {m}x{k}x{n}{share}; best of "
                 f"{peak['repeat']} runs x {peak.get('rounds', 1)} rounds, "
                 f"{peak['threads']} threads)"))
    for name, key in (('predict', 'predict'), ('image encoder', 'encoder')):
        part = eff[key]
        if part is None:
            rows.append((name, 'not counted (no backbone/neck call)'))
            continue
        calls = (f", {eff['encoder_calls']} call(s), median "
                 f"{part['seconds']:.3f} s" if key == 'encoder' else '')
        rows.append((name, f"{part['gflop']:.4g} GFLOP{calls} -> "
                     f"{_gflops(part['achieved_gflops'])} GFLOP/s = "
                     f"{part['fraction']:.1%} of peak"))
    if peak.get('cpu_gflops'):
        parts = [f"{name} {eff[key]['fraction']:.1%}"
                 for name, key in (('predict', 'predict_cpu'),
                                   ('encoder', 'encoder_cpu'))
                 if eff.get(key)]
        rows.append(('on CPU time', f"peak {_gflops(peak['cpu_gflops'])} "
                     f"GFLOP per CPU second; " + ', '.join(parts) +
                     ' of it (compare these on a shared machine)'))
    paired = eff.get('paired')
    if paired:
        parts = [f"{name} {paired[key]:.1%}"
                 for name, key in (('predict', 'predict'), ('encoder', 'encoder'),
                                   ('on CPU time: predict', 'predict_cpu'),
                                   ('encoder', 'encoder_cpu'))
                 if paired.get(key) is not None]
        peaks = paired['peaks']
        rows.append(('beside each run', f"peak {_gflops(peaks['min'])}-"
                     f"{_gflops(peaks['max'])} GFLOP/s over {peaks['runs']} "
                     f"runs; each run against its own: " + ', '.join(parts) +
                     ' (median; for machines whose peak drifts)'))
    return rows


def _config_cell(result: dict) -> str:
    """The config's file name, with ``--benchmark KEY`` if one was given."""
    config = osp.basename(result['config'])
    if result.get('benchmark'):
        config += f" --benchmark {result['benchmark']}"
    return config


EFFICIENCY_HEADER = (
    '| method | config | input (net) | classes | device | threads | dtype | '
    'peak GFLOP/s, wall / CPU time (mm M x K x N) | predict GFLOP | predict GFLOP/s | '
    'predict % peak | encoder GFLOP | encoder GFLOP/s | encoder % peak | '
    'predict / encoder % peak on CPU time | load | command |\n'
    '| --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | '
    '---: | ---: | ---: | ---: | ---: | --- |')


def efficiency_row(result: dict) -> str:
    """One row of the efficiency table of ``docs/benchmarks.md``.

    Raises:
        ValueError: The result has no efficiency (``--no-efficiency``).
    """
    eff = result.get('efficiency')
    if not eff:
        raise ValueError('no efficiency in this result (run without '
                         '--no-efficiency).')
    img = result['image']
    peak = eff['peak']
    cells = [result['method'], f'`{_config_cell(result)}`',
             f"{img['net_shape'][0]}x{img['net_shape'][1]} "
             f"({result['test_mode']})",
             str(result['vocabulary']['num_classes']), result['device_name'],
             str(result['threads']), result['dtype'],
             f"{peak['gflops']:.1f}"
             + (f" / {peak['cpu_gflops']:.1f}" if peak.get('cpu_gflops') else '')
             + f" ({'x'.join(map(str, peak['shape']))})"]
    for key in ('predict', 'encoder'):
        part = eff[key]
        cells += (['-'] * 3 if part is None else [
            f"{part['gflop']:.4g}", f"{part['achieved_gflops']:.1f}",
            f"{part['fraction']:.1%}"])
    cells.append(' / '.join(
        f"{eff[key]['fraction']:.1%}" if eff.get(key) else '-'
        for key in ('predict_cpu', 'encoder_cpu')))
    load = result.get('load_average')
    cells.append(f'{load[0]:.1f} -> {load[1]:.1f}' if load else '-')
    cells.append(f"`{result['command']}`")
    return '| ' + ' | '.join(cells) + ' |'


MARKDOWN_HEADER = (
    '| method | config | input (net) | classes | median s/img | p90 s/img | '
    'img/s | CPU s/img | load | peak RSS MiB (above model) | text cold s '
    '(CPU s) / warm-disk ms / warm ms | command |\n'
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | '
    '---: | --- |')


def markdown_row(result: dict) -> str:
    """One ``docs/benchmarks.md`` row, with the exact command."""
    lat = result['latency_s']
    mem = result['memory']
    text = result['text']
    img = result['image']
    if 'gpu_peak_mb' in mem:
        memory = f"{mem['gpu_peak_mb']:.0f} (GPU max alloc.)"
    else:
        above = mem['peak_rss_above_model_mb']
        memory = f"{mem['peak_rss_mb']:.0f} ({above:.0f})" \
            if above is not None else f"{mem['peak_rss_mb']:.0f}"
    return (f"| {result['method']} | `{_config_cell(result)}` | "
            f"{img['net_shape'][0]}x{img['net_shape'][1]} "
            f"({result['test_mode']}) | "
            f"{result['vocabulary']['num_classes']} | {lat['median']:.2f} | "
            f"{lat['p90']:.2f} | {result['images_per_s']:.2f} | "
            f"{result['cpu_s_per_image']:.2f} | "
            f"{max(result['load_average']):.1f} | {memory} | "
            f"{text['cold_s']:.2f} ({text.get('cold_cpu_s', float('nan')):.2f})"
            f" / {text['warm_disk_s'] * 1e3:.1f} / "
            f"{text['warm_s'] * 1e3:.2f} | `{result['command']}` |")
