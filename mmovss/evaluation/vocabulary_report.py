"""How much a model's results depend on the words: one model, many vocabularies.

An open-vocabulary model is evaluated on the same images several times, each
time with a *variant* of the class names (nothing else changes):

* ``all names``: the dataset's classes with every synonym, the config's
  prompt templates (the reference);
* ``first name``: each class by its first name only;
* ``name #k`` (k >= 2): each class by its k-th synonym (classes with fewer
  names keep their first): the source of "the names that helped most";
* ``templates: SET``: every template set of :data:`mmovss.vocab.TEMPLATE_SETS`
  instead of the config's (models whose text encoder has ``templates``);
* ``+N distractors``: N extra classes that are not in the data (a pixel
  predicted as one is wrong for its true class);
* background handling, when background classes are named: ``background
  ignored`` (background classes leave the vocabulary and their pixels the
  evaluation, as VOC-20 / PC-59 do) and ``one "background" class`` (they
  are replaced by a single class named ``background``; only the other
  classes are scored).

Per class: its IoU under each variant, the mean, standard deviation, minimum
and maximum over the variants that score it. Summaries: each variant's mIoU
(MMSegmentation's rule: classes with an empty union are left out), the
**worst-case mIoU** (the mean over classes of each class's lowest IoU over
the variants) and the names whose use raised a class's IoU most over its
first name. :func:`format_report` writes the table, :func:`plot_report` the
figure; ``tools/analysis_tools/vocabulary_report.py`` is the command line.
"""
import copy
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..vocab import BACKGROUND_WORDS, TEMPLATE_SETS, Vocabulary, get_templates, is_background_name
from .ov_iou_metric import unseen_class_indices
from .side_by_side import build_test_loader

__all__ = ['Variant', 'build_variants', 'IoUCounts', 'evaluate_variants',
           'summarize_report', 'format_report', 'plot_report', 'run_vocabulary_report',
           'DISTRACTOR_BENCHMARK', 'BACKGROUND_WORDS']

#: Default distractors: class names of this benchmark that the data lacks.
DISTRACTOR_BENCHMARK = 'coco_stuff171'
# Class names treated as background when ``background`` is not given:
# BACKGROUND_WORDS (re-exported from mmovss.vocab).

_DISTRACTOR, _GENERIC_BG = -1, -2


@dataclass
class Variant:
    """One vocabulary under which the model is evaluated.

    Attributes:
        name (str): Row label of the report.
        kind (str): ``'reference'``, ``'names'``, ``'templates'``,
            ``'distractors'`` or ``'background'``.
        classes (list): Vocabulary entries (each a tuple of names).
        targets (list[int]): Per vocabulary class, the dataset label it
            stands for (-1 distractor, -2 generic background).
        templates (tuple, optional): Prompt templates (None: the config's).
        ignored (set[int]): Dataset labels left out of the evaluation.
        scored (set[int], optional): Dataset labels scored (None: all not
            ignored).
    """
    name: str
    kind: str
    classes: list
    targets: List[int]
    templates: Optional[tuple] = None
    ignored: set = field(default_factory=set)
    scored: Optional[set] = None


def _lowercase_names(vocabulary: Vocabulary) -> set:
    """Every name of every class (synonyms included), lower-cased."""
    return {n.lower() for names in vocabulary for n in names}


def build_variants(vocabulary: Vocabulary, template_sets: Sequence[str] = TEMPLATE_SETS,
                   distractors: Sequence[str] = (), background: Sequence[int] = (),
                   max_names: int = 4) -> List[Variant]:
    """The variants of the module doc for a dataset vocabulary.

    Args:
        vocabulary (Vocabulary): The dataset's classes (label ``i`` = class
            ``i``), synonyms included.
        template_sets (Sequence[str]): Template sets to try (empty: none).
        distractors (Sequence[str]): Names of extra classes (empty: none).
        background (Sequence[int]): Labels of the background classes.
        max_names (int): Try at most this many synonyms per class.
    """
    classes = list(vocabulary.classes)
    labels = list(range(len(classes)))
    variants = [Variant('all names', 'reference', classes, labels)]
    if any(len(c) > 1 for c in classes):
        variants.append(Variant('first name', 'names', [c[:1] for c in classes], labels))
        for k in range(1, min(max_names, max(len(c) for c in classes))):
            variants.append(Variant(f'name #{k + 1}', 'names',
                                    [(c[k], ) if len(c) > k else c[:1] for c in classes],
                                    labels))
    for template_set in template_sets:
        variants.append(Variant(f'templates: {template_set}', 'templates', classes, labels,
                                templates=get_templates(template_set)))
    known = _lowercase_names(vocabulary)
    extra = [d for d in dict.fromkeys(' '.join(d.split()) for d in distractors)
             if d and d.lower() not in known]
    if extra:
        variants.append(Variant(f'+{len(extra)} distractors', 'distractors',
                                classes + [(d, ) for d in extra],
                                labels + [_DISTRACTOR] * len(extra)))
    background = sorted(set(background))
    if background and len(background) < len(classes):
        objects = [i for i in labels if i not in background]
        variants.append(Variant('background ignored', 'background',
                                [classes[i] for i in objects], objects,
                                ignored=set(background)))
        if not any(n.lower() == 'background' for i in objects for n in classes[i]):
            variants.append(Variant('one "background" class', 'background',
                                    [classes[i] for i in objects] + [('background', )],
                                    objects + [_GENERIC_BG], scored=set(objects)))
    return variants


class IoUCounts:
    """Intersections and unions per dataset class for one variant."""

    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.intersect = np.zeros(num_classes, np.int64)
        self.union = np.zeros(num_classes, np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray, targets: np.ndarray,
               ignored: set) -> None:
        """Adds one image: ``pred`` in vocabulary indices, ``gt`` labels."""
        mapped = targets[pred.astype(np.int64)]
        valid = gt != self.ignore_index
        if ignored:
            valid &= ~np.isin(gt, list(ignored))
        gt, mapped = gt[valid].astype(np.int64), mapped[valid]
        n = self.num_classes
        if gt.size and (gt.min() < 0 or gt.max() >= n):
            raise ValueError(f'Label value {int(gt.max())} is neither a class (0..{n - 1}) nor '
                             f'the ignore index {self.ignore_index}.')
        area_gt = np.bincount(gt, minlength=n)
        area_pred = np.bincount(mapped[mapped >= 0], minlength=n)
        inter = np.bincount(gt[mapped == gt], minlength=n)
        self.intersect += inter
        self.union += area_gt + area_pred - inter

    def iou(self) -> np.ndarray:
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(self.union > 0, self.intersect / np.maximum(self.union, 1), np.nan)


def _unwrap(model):
    return getattr(model, 'module', model)


def _set_templates(model, templates) -> bool:
    encoder = getattr(_unwrap(model), 'text_encoder', None)
    if encoder is None or not hasattr(encoder, 'templates'):
        return False
    encoder.templates = tuple(templates)
    return True


@torch.no_grad()
def evaluate_variants(model, dataloader, variants: Sequence[Variant], num_classes: int,
                      ignore_index: int = 255, max_images: Optional[int] = None,
                      log=print) -> Dict[str, np.ndarray]:
    """Runs ``model`` over ``dataloader`` once per variant.

    Returns:
        dict[str, np.ndarray]: Variant name -> (C,) IoU (NaN: not scored
        or empty union).
    """
    segmentor = _unwrap(model)
    encoder = getattr(segmentor, 'text_encoder', None)
    original = tuple(encoder.templates) if encoder is not None and \
        hasattr(encoder, 'templates') else None
    results = {}
    try:
        for variant in variants:
            if variant.templates is not None and not _set_templates(model, variant.templates):
                log(f'skipped {variant.name!r}: the model has no text_encoder.templates')
                continue
            if variant.templates is None and original is not None:
                _set_templates(model, original)
            segmentor.set_vocabulary(Vocabulary(variant.classes, source=variant.name))
            targets = np.asarray(variant.targets, np.int64)
            counts = IoUCounts(num_classes, ignore_index)
            seen = 0
            for batch in dataloader:
                for sample in model.test_step(batch):
                    if max_images is not None and seen >= max_images:
                        break  # a batch of several images: only the first ones count
                    pred = sample.pred_sem_seg.data[0].cpu().numpy()
                    gt = sample.gt_sem_seg.data[0].cpu().numpy()
                    counts.update(pred, gt, targets, variant.ignored)
                    seen += 1
                if max_images is not None and seen >= max_images:
                    break
            iou = counts.iou()
            if variant.scored is not None:
                iou[[i for i in range(num_classes) if i not in variant.scored]] = np.nan
            if variant.ignored:
                iou[sorted(variant.ignored)] = np.nan
            results[variant.name] = iou
            log(f'{variant.name}: mIoU {100 * _nanmean(iou):.2f} ({seen} images)')
    finally:
        if original is not None:
            _set_templates(model, original)
    return results


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')


def summarize_report(ious: Dict[str, np.ndarray], vocabulary: Vocabulary,
                     variants: Sequence[Variant], unseen: Sequence[int] = (),
                     top: int = 10) -> dict:
    """Per-class spread, variant mIoUs, worst case and the most helpful names.

    Args:
        unseen (Sequence[int]): Labels of the unseen classes (adds
            ``mIoU_seen``/``mIoU_unseen`` per variant).

    IoUs in the result are percentages (0-100), as in MMSeg's tables.
    """
    names = [v.name for v in variants if v.name in ious]
    table = np.stack([ious[n] for n in names]) * 100  # (V, C)
    class_names = list(vocabulary.class_names)
    unseen_set = set(int(u) for u in unseen)
    per_class = []
    for c, cname in enumerate(class_names):
        col = table[:, c]
        scored = np.isfinite(col)
        row = dict(name=cname, unseen=c in unseen_set,
                   iou={n: (None if not np.isfinite(v) else round(float(v), 2))
                        for n, v in zip(names, col)})
        if scored.any():
            row.update(mean=float(np.mean(col[scored])), std=float(np.std(col[scored])),
                       min=float(np.min(col[scored])), max=float(np.max(col[scored])),
                       worst=names[int(np.nanargmin(col))])
        per_class.append(row)
    variant_rows = []
    for i, name in enumerate(names):
        row = dict(name=name, kind=next(v.kind for v in variants if v.name == name),
                   mIoU=_nanmean(table[i]))
        if unseen_set:
            mask = np.array([c in unseen_set for c in range(len(class_names))])
            row['mIoU_seen'] = _nanmean(table[i][~mask])
            row['mIoU_unseen'] = _nanmean(table[i][mask])
        variant_rows.append(row)
    mins = [r['min'] for r in per_class if 'min' in r]
    reference = table[0]
    helped = []
    for v in variants:
        if v.kind != 'names' or v.name not in ious or v.name == 'first name':
            continue
        k = int(v.name.split('#')[1]) - 1
        for c, names_c in enumerate(vocabulary.classes):
            if len(names_c) <= k:
                continue
            first = ious.get('first name', ious[names[0]])[c] * 100
            value = ious[v.name][c] * 100
            if np.isfinite(first) and np.isfinite(value):
                helped.append(dict(class_name=class_names[c], name=names_c[k],
                                   iou=float(value), first_name_iou=float(first),
                                   gain=float(value - first)))
    if 'first name' in ious:
        for c, names_c in enumerate(vocabulary.classes):
            first, both = ious['first name'][c] * 100, reference[c]
            if len(names_c) > 1 and np.isfinite(first) and np.isfinite(both):
                helped.append(dict(class_name=class_names[c], name=', '.join(names_c),
                                   iou=float(both), first_name_iou=float(first),
                                   gain=float(both - first)))
    helped.sort(key=lambda h: -h['gain'])
    worst_variant = min(variant_rows, key=lambda r: (math.inf if math.isnan(r['mIoU'])
                                                     else r['mIoU']))
    return dict(variants=variant_rows, classes=per_class,
                worst_case_mIoU=_nanmean(mins) if mins else float('nan'),
                worst_variant=worst_variant['name'], worst_variant_mIoU=worst_variant['mIoU'],
                reference_mIoU=variant_rows[0]['mIoU'],
                mean_class_std=_nanmean([r['std'] for r in per_class if 'std' in r]),
                names_that_helped=[h for h in helped if h['gain'] > 0][:top],
                unseen=[class_names[u] for u in sorted(unseen_set)])


def _fmt(value) -> str:
    return '-' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:.2f}'


def format_report(report: dict) -> str:
    """The report as Markdown tables."""
    variants = [v['name'] for v in report['variants']]
    lines = ['## Variants', '']
    seen_cols = 'mIoU_seen' in report['variants'][0]
    head = '| variant | kind | mIoU |' + (' mIoU seen | mIoU unseen |' if seen_cols else '')
    lines += [head, '|' + ' --- |' * (head.count('|') - 1)]
    for v in report['variants']:
        extra = f' {_fmt(v["mIoU_seen"])} | {_fmt(v["mIoU_unseen"])} |' if seen_cols else ''
        lines.append(f'| {v["name"]} | {v["kind"]} | {_fmt(v["mIoU"])} |{extra}')
    lines += ['', f'Reference mIoU (all names): {_fmt(report["reference_mIoU"])}; '
              f'worst variant: {report["worst_variant"]} ({_fmt(report["worst_variant_mIoU"])}); '
              f'worst-case mIoU (each class at its worst variant): '
              f'{_fmt(report["worst_case_mIoU"])}; mean per-class std: '
              f'{_fmt(report["mean_class_std"])}.', '', '## Per-class IoU', '']
    head = '| class | ' + ' | '.join(variants) + ' | mean | std | min | max | worst variant |'
    lines += [head, '|' + ' --- |' * (head.count('|') - 1)]
    for row in report['classes']:
        name = row['name'] + (' (unseen)' if row['unseen'] else '')
        cells = ' | '.join(_fmt(row['iou'][v]) for v in variants)
        stats = ' | '.join(_fmt(row.get(k)) for k in ('mean', 'std', 'min', 'max'))
        lines.append(f'| {name} | {cells} | {stats} | {row.get("worst", "-")} |')
    lines += ['', '## Names that helped most', '']
    if report['names_that_helped']:
        lines += ['| class | name(s) | IoU | IoU with first name | gain |',
                  '| --- | --- | --- | --- | --- |']
        for h in report['names_that_helped']:
            lines.append(f'| {h["class_name"]} | {h["name"]} | {_fmt(h["iou"])} | '
                         f'{_fmt(h["first_name_iou"])} | +{_fmt(h["gain"])} |')
    else:
        lines.append('No synonym raised a class above its first name (or no class has '
                     'synonyms: give them with --names FILE).')
    return '\n'.join(lines) + '\n'


def plot_report(report: dict, path: str) -> str:
    """Per-class IoU range over the variants (sorted by mean) and variant mIoUs."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = sorted((r for r in report['classes'] if 'mean' in r), key=lambda r: -r['mean'])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 0.25 * len(rows) + 6), 4.5),
                                   gridspec_kw=dict(width_ratios=[3, 1]))
    x = np.arange(len(rows))
    ax1.vlines(x, [r['min'] for r in rows], [r['max'] for r in rows], color='0.6', lw=3,
               label='min-max over variants')
    ax1.plot(x, [r['mean'] for r in rows], 'o', ms=4, color='C0', label='mean')
    ref = [r['iou'][report['variants'][0]['name']] for r in rows]
    ax1.plot(x, [np.nan if v is None else v for v in ref], '_', ms=10, color='C3',
             label='all names')
    ax1.set_xticks(x, [r['name'] + ('*' if r['unseen'] else '') for r in rows], rotation=90,
                   fontsize=7)
    ax1.set_ylabel('IoU (%)')
    ax1.set_title('per-class IoU over name variants (* unseen)')
    ax1.legend(fontsize=7)
    names = [v['name'] for v in report['variants']]
    ax2.barh(np.arange(len(names)), [v['mIoU'] for v in report['variants']], color='C0')
    ax2.axvline(report['worst_case_mIoU'], color='C3', ls='--', label='worst-case mIoU')
    ax2.set_yticks(np.arange(len(names)), names, fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel('mIoU (%)')
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _background_labels(vocabulary: Vocabulary, background) -> List[int]:
    if background is None:
        return [i for i, names in enumerate(vocabulary)
                if any(is_background_name(n) for n in names)]
    labels = []
    for name in background:
        key = name.strip().lower()
        match = [i for i, names in enumerate(vocabulary) if key in (n.lower() for n in names)]
        if not match:
            raise ValueError(f'--background {name!r} is not a class of the dataset.')
        labels += match
    return labels


def run_vocabulary_report(cfg, checkpoint: Optional[str] = None,
                          names: Optional[Vocabulary] = None,
                          template_sets: Sequence[str] = TEMPLATE_SETS,
                          distractors: Optional[Sequence[str]] = None,
                          num_distractors: int = 20, background=None,
                          max_images: Optional[int] = None, device: str = 'cpu',
                          allow_random_weights: bool = False, log=print) -> dict:
    """Builds the model and data of ``cfg`` and evaluates every variant.

    Args:
        cfg (Config): A config with a test dataloader (any method; a custom
            dataset config or a ``--benchmark`` switched one).
        checkpoint (str, optional): Trained weights (required for trained
            models, see :mod:`mmovss.trained_weights`).
        names (Vocabulary, optional): Names for the dataset classes (same
            count and order; synonyms separated by commas), replacing the
            dataset's.
        template_sets (Sequence[str]): Template sets to compare.
        distractors (Sequence[str], optional): Distractor names; None takes
            ``num_distractors`` names of COCO-Stuff-171 absent from the data.
        background (Sequence[str], optional): Background class names; None
            finds classes named ``background``/``other``/...
        max_images (int, optional): Evaluate the first N images only (>= 1).

    Raises:
        ValueError: ``max_images`` below 1, an empty test set, ``names`` of
            another class count, a trained model without checkpoint, a
            checkpoint of another model.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from ..runtime import load_model_checkpoint_strictly
    from ..trained_weights import require_trained_weights
    from ..vocab import load_benchmark_classes
    if max_images is not None and max_images < 1:
        raise ValueError(f'max_images must be >= 1, got {max_images}.')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataloader = build_test_loader(cfg, num_workers=0, persistent_workers=False)
    dataset = dataloader.dataset
    vocabulary = Vocabulary.build(dict(dataset.metainfo))
    # the metric's own rule, so the seen/unseen split equals tools/test.py's
    unseen = unseen_class_indices(cfg.get('test_evaluator') or {},
                                  dataset.metainfo['classes']) or []
    if names is not None:
        if len(names) != len(vocabulary):
            raise ValueError(f'--names has {len(names)} classes, the dataset {len(vocabulary)}; '
                             f'give one line per dataset class, in label order.')
        vocabulary = names
    ignore_index = int(getattr(dataset, 'ignore_index', 255))
    model = MODELS.build(copy.deepcopy(cfg.model))
    if checkpoint:
        # CRC check, weights_only and strict keys, as tools/test.py
        load_model_checkpoint_strictly(model, checkpoint)
    require_trained_weights(model, checkpoint, allow_random_weights)
    model.to(device).eval()
    if distractors is None:
        known = _lowercase_names(vocabulary)
        pool = [c.split(',')[0].strip() for c in load_benchmark_classes(DISTRACTOR_BENCHMARK)]
        pool = [p for p in pool if p.lower() not in known]
        step = max(1, len(pool) // max(num_distractors, 1))
        distractors = pool[::step][:num_distractors]
    variants = build_variants(vocabulary, template_sets, distractors,
                              _background_labels(vocabulary, background))
    ious = evaluate_variants(model, dataloader, variants, len(vocabulary), ignore_index,
                             max_images, log)
    report = summarize_report(ious, vocabulary, variants, unseen)
    report.update(num_images=min(len(dataset), max_images or len(dataset)),
                  distractors=list(distractors))
    return report
