"""Writes the class-name files of the released CAT-Seg / OVSeg evaluations.

    python tools/misc/official_class_names.py catseg /path/to/CAT-Seg
    python tools/misc/official_class_names.py ovseg /path/to/ov-seg --detectron2 /path/to/detectron2
    (add --check to compare the files in the repository instead of writing them)

The released evaluations embed their own class names, not mmovss's benchmark
vocabularies (``mmovss/vocab/names/``). This tool reads them from a clone of
the official code and writes one file per benchmark,
``configs/_base_/vocabularies/<method>/<key>.txt``, in mmovss's format (one
class per line, in the label order of mmovss's prepared dataset), which the
protocol bases ``configs/_base_/protocols/<method>/<key>.py`` name:

* ``catseg`` (github.com/KU-CVLAB/CAT-Seg): ``eval.sh`` sets
  ``MODEL.SEM_SEG_HEAD.TEST_CLASS_JSON datasets/<name>.json`` per benchmark;
  ``CATSegPredictor.get_text_embeds`` embeds ``classname.split(', ')[0]`` of
  each entry. The file holds that first name. PAS-20b (``voc20b``,
  ``datasets/voc20b.json`` on ``voc_2012_test_background_sem_seg``) lists the
  20 VOC classes and then 39 more names, all embedded as classes of their
  own; ``VOCbEvaluator`` of ``train_net.py`` maps a prediction on any of the
  39 (``pred[pred >= 20] = 20``) to the background label. The file writes
  those 39 as the synonyms of class 0, mmovss's VOC-21 background label,
  then the 20 VOC classes.
* ``ovseg`` (github.com/facebookresearch/ov-seg): ``OVSeg.get_class_name_list``
  takes ``c.strip()`` of the ``stuff_classes`` registered for the dataset
  (``open_vocab_seg/data/datasets/register_*.py``; ADE-150 is detectron2's
  ``ade20k_sem_seg_val``, ``ADE20K_SEM_SEG_CATEGORIES`` of ``builtin_meta.py``),
  and ``PredefinedPromptExtractor`` formats each name whole into the templates
  (``"road, route"`` is ONE prompt: ``text_encoder.whole_names=True``). OVSeg's
  PC-59 list follows ``59_labels.txt`` (the VOC classes first), mmovss's PC-59
  labels the ``labels.txt`` ids ascending: each name is written at the label of
  its ``labels.txt`` class.

The label order is checked, not assumed (:func:`label_order_problems`): the
id tables of the official preparation scripts against mmovss's
(``mmovss.datasets.label_conversion``), and each class-name file against the
dataset's registered names. Only data is read (JSON files and literal lists,
parsed with ``ast``); nothing of the clone is imported or run.
"""
import argparse
import ast
import json
import os
import os.path as osp
import sys
from typing import Dict, List

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)
from mmovss.datasets.label_conversion import (  # noqa: E402
    ADE20K_847_IDS,
    COCO_STUFF_UNUSED,
    PASCAL_CONTEXT_59_IDS,
)

METHODS = ('catseg', 'ovseg')
SOURCES = {
    'catseg': 'github.com/KU-CVLAB/CAT-Seg @ 6d3a188a',
    'ovseg': 'github.com/facebookresearch/ov-seg @ 36f49d49',
}
#: Benchmark key -> CAT-Seg's class json (eval.sh) and its registration
#: (cat_seg/data/datasets/<file>, literal name) of the evaluated dataset.
CATSEG_FILES = {
    'ade20k_150': ('ade150.json', 'register_ade20k_150.py', 'ade20k_150_classes'),
    'ade20k_847': ('ade847.json', 'register_ade20k_847.py', 'ADE20K_SEM_SEG_FULL_CATEGORIES'),
    'pascal_context_59': ('pc59.json', 'register_pascal_context.py', 'context_classes'),
    'pascal_context_459': ('pc459.json', 'register_pascal_context.py', 'context_459_classes'),
    'voc20': ('voc20.json', 'register_pascal_20.py', 'voc_classes'),
    # VOC-20's classes, then background names (the background label of VOC-21's data)
    'voc20b': ('voc20b.json', 'register_pascal_20.py', 'voc_classes'),
    # the configs' own TEST_CLASS_JSON (configs/vitb_384.yaml, vitl_336.yaml)
    'coco_stuff171': ('coco.json', 'register_coco_stuff.py', 'COCO_CATEGORIES'),
}
#: Benchmark key -> OVSeg's registration (open_vocab_seg/data/datasets/<file>,
#: literal name) of the dataset GETTING_STARTED.md evaluates; ADE-150: detectron2.
OVSEG_FILES = {
    'ade20k_150': (None, 'ADE20K_SEM_SEG_CATEGORIES'),
    'ade20k_847': ('register_ade20k_full.py', 'ADE20K_SEM_SEG_FULL_CATEGORIES'),
    'pascal_context_59': ('register_pascal_context.py', 'PASCALCONTEX59_NAMES'),
    'pascal_context_459': ('register_pascal_context.py', 'PASCALCONTEX459_NAMES'),
    'voc20': ('register_voc_seg.py', 'PASCALVOC20_NAMES'),
}
#: How each file was read, for its header.
CATSEG_HOW = ('datasets/{json} (MODEL.SEM_SEG_HEAD.TEST_CLASS_JSON of eval.sh{own}), the first '
              "name of each entry as CATSegPredictor.get_text_embeds embeds it "
              "(classname.split(', ')[0]; white space collapsed).")
#: What PAS-20b's file holds besides CATSEG_HOW.
CATSEG_VOC20B_HOW = (
    'Entries 20-58 are background names: train_net.py VOCbEvaluator scores a prediction on '
    'any of them as the background label (pred[pred >= 20] = 20); written as the synonyms of '
    'class 0 (the background label of mmovss\'s VOC-21 data), then entries 0-19 '
    '(labels 1-20).')
#: The line of CAT-Seg's train_net.py that maps PAS-20b's background names.
CATSEG_VOC20B_MAPPING = 'pred[pred >= 20] = 20'
OVSEG_HOW = ('the stuff_classes registered for the evaluated dataset ({where}), stripped as '
             'OVSeg.get_class_name_list does; each line is ONE prompt '
             '(text_encoder.whole_names=True).')


def literal(path: str, name: str):
    """The value of the literal assigned to ``name`` anywhere in ``path``;
    a list of dicts gives their ``'name'`` (``'id'`` with ``key='id'``)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f'{path} assigns no literal {name}')


def _names(value) -> List[str]:
    return [c['name'] if isinstance(c, dict) else c for c in value]


def _collapse(name: str) -> str:
    return ' '.join(name.split())


def catseg_names(repo: str) -> Dict[str, List[str]]:
    """Benchmark key -> the names CAT-Seg's evaluation embeds, in label order."""
    out = {}
    for key, (json_name, _, _) in CATSEG_FILES.items():
        with open(osp.join(repo, 'datasets', json_name), encoding='utf-8') as f:
            entries = json.load(f)
        out[key] = [_collapse(e.split(', ')[0]) for e in entries]
    out['voc20b'] = background_first(out['voc20b'], len(out['voc20']))
    return out


def background_first(names: List[str], num_objects: int) -> List[str]:
    """PAS-20b's json (objects, then background names) as mmovss's VOC-21
    label order: one line with every background name, then the objects."""
    return [', '.join(names[num_objects:]), *names[:num_objects]]


def ovseg_names(repo: str, detectron2: str) -> Dict[str, List[str]]:
    """Benchmark key -> the names OVSeg's evaluation embeds, in mmovss's label order."""
    reg = osp.join(repo, 'open_vocab_seg', 'data', 'datasets')
    out = {}
    for key, (file, name) in OVSEG_FILES.items():
        path = (osp.join(detectron2, 'detectron2', 'data', 'datasets', 'builtin_meta.py')
                if file is None else osp.join(reg, file))
        out[key] = [c.strip() for c in _names(literal(path, name))]
    # PC-59: OVSeg's list is in 59_labels.txt order; mmovss's labels are the labels.txt ids
    # ascending (PASCAL_CONTEXT_59_IDS). Place each name at the label of its labels.txt class.
    full = out['pascal_context_459']  # labels.txt order (label = id - 1, as mmovss)
    official = out['pascal_context_59']
    ours = [full[i - 1] for i in PASCAL_CONTEXT_59_IDS]
    if sorted(ours) != sorted(official) or len(set(official)) != len(official):
        raise ValueError('OVSeg PC-59 names are not the labels.txt names of the 59 classes: '
                         f'{sorted(set(official) ^ set(ours))}')
    out['pascal_context_59'] = ours
    return out


def label_order_problems(method: str, repo: str, detectron2: str = None) -> List[str]:
    """What makes the official label values differ from mmovss's, or a name file's
    order differ from the registered dataset's (empty: none)."""
    problems = []

    def ade847(path):
        cats = literal(path, 'ADE20K_SEM_SEG_FULL_CATEGORIES')
        if [c['id'] for c in cats] != list(ADE20K_847_IDS):
            problems.append(f'{path}: ADE-847 ids differ from ADE20K_847_IDS')

    if method == 'catseg':
        ade847(osp.join(repo, 'datasets', 'prepare_ade20k_full.py'))
        mapping = literal_call_ints(osp.join(repo, 'datasets', 'prepare_pascal_context_59.py'),
                                    '_mapping')
        if sorted(mapping) != [0, *PASCAL_CONTEXT_59_IDS]:
            problems.append('prepare_pascal_context_59.py: _mapping is not background + '
                            'PASCAL_CONTEXT_59_IDS')
        cats = literal(osp.join(repo, 'datasets', 'prepare_coco_stuff.py'), 'COCO_CATEGORIES')
        values = [v for v in range(182) if v not in COCO_STUFF_UNUSED]
        if [(c['id'], c['trainId']) for c in cats] != [(v, i) for i, v in enumerate(values)]:
            problems.append('prepare_coco_stuff.py: id -> trainId differs from coco_stuff_to_171')
        reg = osp.join(repo, 'cat_seg', 'data', 'datasets')
        for key, (json_name, file, name) in CATSEG_FILES.items():
            with open(osp.join(repo, 'datasets', json_name), encoding='utf-8') as f:
                entries = json.load(f)
            registered = _names(literal(osp.join(reg, file), name))
            if [_collapse(e.split(', ')[0]) for e in entries][:len(registered)] != [
                    _collapse(r.split(', ')[0]) for r in registered]:
                problems.append(f'datasets/{json_name} is not in the order of {file} {name}')
        problems += voc20b_problems(repo)
    elif method == 'ovseg':
        ade847(osp.join(repo, 'datasets', 'prepare_ade20k_full_sem_seg.py'))
        ade847(osp.join(repo, 'open_vocab_seg', 'data', 'datasets', 'register_ade20k_full.py'))
    else:
        raise ValueError(f'unknown method {method!r}; one of {METHODS}')
    return problems


def voc20b_problems(repo: str) -> List[str]:
    """What makes CAT-Seg's PAS-20b differ from what mmovss reads: its labels
    (``prepare_voc.py``, background last: VOC value 0 -> 20, 1-20 -> 0-19) and
    the evaluator's mapping of every name after the 20 objects to background."""
    problems = []
    bg = literal(osp.join(repo, 'datasets', 'prepare_voc.py'), 'clsID_to_trID')
    if {k: v for k, v in bg.items() if k != 0} != {**{v: v - 1 for v in range(1, 21)},
                                                   255: 255}:
        problems.append('prepare_voc.py: clsID_to_trID is not VOC value v -> v - 1')
    with open(osp.join(repo, 'datasets', 'prepare_voc.py'), encoding='utf-8') as f:
        if 'clsID_to_trID_bg[0] = 20' not in f.read():
            problems.append('prepare_voc.py: background is not label 20 of '
                            'annotations_detectron2_bg')
    with open(osp.join(repo, 'train_net.py'), encoding='utf-8') as f:
        if CATSEG_VOC20B_MAPPING not in f.read():
            problems.append(f'train_net.py: no {CATSEG_VOC20B_MAPPING!r} (VOCbEvaluator)')
    return problems


def literal_call_ints(path: str, name: str) -> List[int]:
    """The integers of ``name = f(g([...]))`` (CAT-Seg's ``np.sort(np.array([...]))``)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == name for t in node.targets):
            value = node.value
            while isinstance(value, ast.Call):
                value = value.args[0]
            return list(ast.literal_eval(value))
    raise KeyError(f'{path} assigns no {name}')


def markers(names: List[str]) -> List[str]:
    """The comment lines mmovss's Vocabulary needs for a published list kept as
    published: a first name or a synonym given to two classes."""
    from mmovss.vocab.vocabulary import ALLOW_DUPLICATE_NAMES, ALLOW_SHARED_SYNONYMS
    split = [[s.strip() for s in n.split(',') if s.strip()] for n in names]
    out = []
    firsts = [s[0] for s in split]
    if len(set(firsts)) != len(firsts):
        out.append(ALLOW_DUPLICATE_NAMES)
    every = [x for s in split for x in dict.fromkeys(s)]
    if len(set(every)) != len(every):
        out.append(ALLOW_SHARED_SYNONYMS)
    return out


def render(method: str, key: str, names: List[str]) -> str:
    if method == 'catseg':
        own = ", the released configs' own" if key == 'coco_stuff171' else ''
        how = CATSEG_HOW.format(json=CATSEG_FILES[key][0], own=own)
        if key == 'voc20b':
            how += ' ' + CATSEG_VOC20B_HOW
    else:
        file, name = OVSEG_FILES[key]
        where = ('detectron2 data/datasets/builtin_meta.py ' + name if file is None
                 else f'open_vocab_seg/data/datasets/{file} {name}')
        how = OVSEG_HOW.format(where=where)
        if key == 'pascal_context_59':
            how += (' Reordered: the official list follows 59_labels.txt (VOC classes first); '
                    "each name is at the mmovss label of its labels.txt class.")
    header = [f'# {method} ({SOURCES[method]}) class names of {key}, in label order:',
              f'# {how}', '# Written by tools/misc/official_class_names.py.']
    return '\n'.join(header + markers(names) + names) + '\n'


def out_path(method: str, key: str) -> str:
    return osp.join(REPO_ROOT, 'configs', '_base_', 'vocabularies', method, f'{key}.txt')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('method', choices=METHODS)
    parser.add_argument('repo', help='clone of the official code')
    parser.add_argument('--detectron2', help='detectron2 clone (ovseg: ADE-150 names)')
    parser.add_argument('--check', action='store_true',
                        help='compare with the files in the repository; write nothing')
    args = parser.parse_args(argv)
    if args.method == 'ovseg' and not args.detectron2:
        parser.error('ovseg needs --detectron2 (ADE-150 is detectron2\'s registration)')
    problems = label_order_problems(args.method, args.repo, args.detectron2)
    if problems:
        print('label order differs:\n  ' + '\n  '.join(problems), file=sys.stderr)
        return 1
    names = (catseg_names(args.repo) if args.method == 'catseg'
             else ovseg_names(args.repo, args.detectron2))
    stale = []
    for key, value in names.items():
        path, text = out_path(args.method, key), render(args.method, key, value)
        if args.check:
            if not osp.isfile(path) or open(path, encoding='utf-8').read() != text:
                stale.append(path)
            continue
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        print(f'wrote {path} ({len(value)} classes)')
    if stale:
        print('differ from the official clone:\n  ' + '\n  '.join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
