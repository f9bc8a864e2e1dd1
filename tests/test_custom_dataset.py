"""Custom datasets (issue #23): class files, the data check, both layouts,
seen-only training labels, and the walk-through of docs/custom_dataset.md run
on a tiny world."""
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mmovss  # noqa: F401
from mmovss.datasets.custom import (
    DataCheck,
    OpenVocabCustomDataset,
    check_custom_dataset,
    find_pairs,
    read_class_file,
)
from mmovss.datasets.custom_config import find_layout, write_custom_configs, write_split_files


def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _pair(root, split, name, label, size=(8, 8), img_size=None, label_dir='ann_dir'):
    h, w = img_size or size
    _write(root / 'img_dir' / split / f'{name}.png', np.full((h, w, 3), 100, np.uint8))
    _write(root / label_dir / split / f'{name}.png', label)


def _one_image_dataset(tmp_path, class_text):
    """Layout and class list of a dataset of one 8 x 8 image per split
    (``tmp_path/data``) whose class file reads ``class_text``."""
    root = tmp_path / 'data'
    for split in ('train', 'val'):
        _pair(root, split, 'a', np.zeros((8, 8), np.uint8))
    (root / 'classes.txt').write_text(class_text)
    return find_layout(str(root), DataCheck()), read_class_file(str(root / 'classes.txt'))


# ----------------------------------------------------------------- class file
def test_class_file_synonyms_and_unseen(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('# my classes\nsky\n\ngrass,  lawn\ncar, automobile | unseen\nroad\n')
    classes = read_class_file(str(path), unseen=['ROAD'])
    assert classes.classes == ['sky', 'grass, lawn', 'car, automobile', 'road']
    assert classes.unseen == ['car', 'road']
    assert classes.seen == ['sky', 'grass, lawn']


@pytest.mark.parametrize('text, unseen, message', [
    ('sky\n', [], 'at least two'),
    ('sky\ngrass | unsen\n', [], 'unknown marker'),
    ('sky\ngrass,\n', [], 'empty class name'),
    ('sky\ngrass\n', ['tree'], "'tree' is not a class"),
    ('sky | unseen\ngrass | unseen\n', [], 'Every class'),
    ('sky\nSky\n', [], 'both named'),
])
def test_bad_class_files(tmp_path, text, unseen, message):
    path = tmp_path / 'classes.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_class_file(str(path), unseen)


# ----------------------------------------------------------------- data check
def test_check_names_every_problem_with_its_file(tmp_path):
    root = tmp_path / 'data'
    good = np.zeros((8, 8), np.uint8)
    good[4:] = 2
    good[0, 0] = 255
    _pair(root, 'train', 'ok', good)
    _pair(root, 'train', 'small', np.zeros((4, 4), np.uint8), img_size=(8, 8))
    bad = good.copy()
    bad[1, 1] = 7
    _pair(root, 'train', 'badvalue', bad)
    _write(root / 'img_dir/train/orphan.png', np.zeros((8, 8, 3), np.uint8))
    _write(root / 'ann_dir/train/lonely.png', good)
    _pair(root, 'train', 'colour', np.zeros((8, 8, 3), np.uint8))
    check = DataCheck()
    pairs = find_pairs(str(root / 'img_dir/train'), str(root / 'ann_dir/train'), check)
    check_custom_dataset(pairs, num_classes=3, ignore_index=255, check=check)
    errors = check.errors
    assert errors['images without a label file'] == [str(root / 'img_dir/train/orphan.png')]
    assert errors['label files without an image'] == [str(root / 'ann_dir/train/lonely.png')]
    assert len(errors['size mismatches']) == 1 and 'small.png is 4x4' in \
        errors['size mismatches'][0]
    assert len(errors['unknown label values']) == 1
    assert 'badvalue.png: values [7]' in errors['unknown label values'][0]
    assert 'colour.png (mode RGB)' in errors['colour or multi-channel label files'][0]
    # classes 0 and 2 have pixels (ok, badvalue; small is all 0), class 1 none
    assert check.pixels[1] == 0 and check.pixels[0] > 0 and check.pixels[2] > 0
    assert 'size mismatches: 1' in check.report()


def test_check_accepts_16_bit_and_palette_labels(tmp_path):
    root = tmp_path / 'data'
    wide = np.zeros((8, 8), np.uint16)
    wide[:, 4:] = 300
    _pair(root, 'train', 'wide', wide)
    palette = Image.fromarray(np.full((8, 8), 2, np.uint8), mode='P')
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] * 10)
    (root / 'img_dir/train/pal.png').parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'img_dir/train/pal.png')
    palette.save(root / 'ann_dir/train/pal.png')
    check = DataCheck()
    pairs = find_pairs(str(root / 'img_dir/train'), str(root / 'ann_dir/train'), check)
    check_custom_dataset(pairs, num_classes=301, ignore_index=65535, check=check)
    assert check.ok, check.report()
    assert check.label_bits == {8, 16}
    assert check.pixels[300] == 32 and check.pixels[2] == 64


def test_flat_layout_is_split_reproducibly(tmp_path):
    root = tmp_path / 'flat'
    for i in range(10):
        _write(root / 'images' / f'{i:02d}.jpg', np.zeros((8, 8, 3), np.uint8))
        _write(root / 'labels' / f'{i:02d}.png', np.zeros((8, 8), np.uint8))
    layout = find_layout(str(root), DataCheck(), val_fraction=0.3, seed=1)
    assert not (root / 'splits').exists()  # nothing is written before the check
    assert write_split_files(layout) == [str(root / 'splits/train.txt'),
                                         str(root / 'splits/val.txt')]
    val = (root / 'splits/val.txt').read_text().split()
    train = (root / 'splits/train.txt').read_text().split()
    assert len(val) == 3 and len(train) == 7 and not set(val) & set(train)
    assert layout.img_suffix == '.jpg' and layout.seg_map_suffix == '.png'
    again = find_layout(str(root), DataCheck(), val_fraction=0.3, seed=1)
    assert write_split_files(again) == []  # the same split: left as it is
    # another seed would move training images of the configs written with the
    # first split into validation: refused, unless --overwrite
    other = find_layout(str(root), DataCheck(), val_fraction=0.3, seed=2)
    with pytest.raises(FileExistsError, match=r"splits/train.txt' exists with another split"):
        write_split_files(other)
    assert (root / 'splits/val.txt').read_text().split() == val
    assert (root / 'splits/train.txt').read_text().split() == train
    # the dataset reads the split file (mmseg's ann_file)
    info = layout.splits['val']
    dataset = OpenVocabCustomDataset(
        classes=['a', 'b'], data_root=str(root), ann_file=info['ann_file'],
        data_prefix=dict(img_path=info['img_path'], seg_map_path=info['seg_map_path']),
        img_suffix='.jpg', pipeline=[])
    assert sorted(dataset.get_data_info(i)['img_path'] for i in range(len(dataset))) == \
        sorted(str(root / 'images' / f'{n}.jpg') for n in val)


def test_dataset_trains_on_seen_classes_only(tmp_path):
    """seen_only: unseen labels -> ignore, seen labels renumbered; the
    evaluation split keeps every class. 16-bit files load through mmovss'
    label loader."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    root = tmp_path / 'data'
    label = np.array([[0, 1, 2, 3]] * 4, np.uint16)
    for split in ('train', 'val'):
        _pair(root, split, 'a', label, size=(4, 4))
    classes = ['sky', 'car, automobile', 'road', 'tree']
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadSegAnnotations')]
    common = dict(classes=classes, unseen_classes=['car'], data_root=str(root),
                  img_suffix='.png', pipeline=pipeline)
    train = OpenVocabCustomDataset(seen_only=True, data_prefix=dict(
        img_path='img_dir/train', seg_map_path='ann_dir/train'), **common)
    val = OpenVocabCustomDataset(data_prefix=dict(
        img_path='img_dir/val', seg_map_path='ann_dir/val'), **common)
    assert train.metainfo['classes'] == ['sky', 'road', 'tree']
    assert val.metainfo['classes'] == classes
    np.testing.assert_array_equal(train[0]['gt_seg_map'][0], [0, 255, 1, 2])
    np.testing.assert_array_equal(val[0]['gt_seg_map'][0], [0, 1, 2, 3])


# ----------------------------------------------------------------- the tool
def _tool(capsys, *args):
    """Runs the tool's main() in this process (no interpreter start-up)."""
    from mmovss.testing.tools import load_tool
    code = load_tool('dataset_converters/custom_dataset.py').main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_tool_refuses_bad_data_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / 'data'
    for split in ('train', 'val'):
        _pair(root, split, 'a', np.zeros((8, 8), np.uint8))
    _pair(root, 'train', 'b', np.full((8, 8), 5, np.uint8))
    (root / 'classes.txt').write_text('sky\ngrass | unseen\n')
    code, log = _tool(capsys, root, '--classes', root / 'classes.txt',
                      '--out-dir', tmp_path / 'configs')
    assert code == 1, log
    assert 'unknown label values: 1' in log and 'b.png: values [5]' in log
    assert not (tmp_path / 'configs').exists()


def _walkthrough(repo_root):
    text = (repo_root / 'docs/custom_dataset.md').read_text()
    block = re.search(r'<!-- walkthrough -->\n```bash\n(.*?)```', text, re.S).group(1)
    return [ln for ln in block.splitlines() if ln and not ln.startswith('#')]


def test_docs_walkthrough_on_a_tiny_world(repo_root, tmp_path):
    """The commands of docs/custom_dataset.md, with a tiny world, 2 training
    iterations and paths in a temporary folder."""
    commands = _walkthrough(repo_root)
    assert [c.split()[1] for c in commands] == [
        'tools/ovshapes/make_dataset.py', '-c', 'tools/dataset_converters/custom_dataset.py',
        'tools/train.py', 'tools/test.py']
    data, configs, work = tmp_path / 'my_shapes', tmp_path / 'custom', tmp_path / 'work'
    logs = []
    for cmd in commands:
        cmd = (cmd.replace('data/my_shapes', str(data))
               .replace('configs/custom', str(configs))
               .replace('work_dirs/my_shapes', str(work))
               .replace('--num-train 300 --num-val 60', '--num-train 6 --num-val 3')
               .replace('iter_1000.pth', 'iter_2.pth'))
        if 'tools/dataset_converters/custom_dataset.py' in cmd:
            cmd += f' --out-dir {shlex.quote(str(configs))}'
        if 'tools/train.py' in cmd:
            cmd += (' --cfg-options train_cfg.max_iters=2 train_cfg.val_interval=2 '
                    'default_hooks.checkpoint.interval=2 train_dataloader.batch_size=2')
        if 'tools/test.py' in cmd:
            cmd += f' --work-dir {shlex.quote(str(tmp_path / "test"))}'
        cmd = cmd.replace('python ', f'{shlex.quote(sys.executable)} ', 1)
        proc = subprocess.run(['bash', '-c', cmd], cwd=repo_root, capture_output=True,
                              text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, f'{cmd}\n{log[-3000:]}'
        logs.append(log)
    assert 'data check: 9 pairs OK' in logs[2]
    assert 'train vocabulary: Vocabulary(28 classes' in logs[3]
    assert (work / 'iter_2.pth').is_file()
    match = re.search(r'mIoU: ([\d.]+).*mIoU_seen: ([\d.]+)\s+mIoU_unseen: ([\d.]+)\s+'
                      r'hIoU: ([\d.]+)', logs[4])
    assert match, logs[4][-2000:]
    assert 'Load checkpoint from' in logs[4]


def test_written_configs_exist_check(tmp_path, repo_root):
    layout, classes = _one_image_dataset(tmp_path, 'sky\ngrass | unseen\n')
    method = str(repo_root / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py')
    files = write_custom_configs('d', layout, classes, str(tmp_path / 'c'), methods=[method])
    from mmengine.config import Config
    cfg = Config.fromfile(files[1])
    assert cfg.train_dataloader is None  # training-free method: no training loader
    assert cfg.test_dataloader.dataset.type == 'OpenVocabCustomDataset'
    assert cfg.test_evaluator.unseen_classes == ['grass']
    assert 'LoadSegAnnotations' in [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    # the same configs again: kept as they are (nothing to write)
    assert write_custom_configs('d', layout, classes, str(tmp_path / 'c'),
                                methods=[method]) == []
    # an edited dataset config survives adding a method; only the new one is written
    edited = tmp_path / 'c' / 'd.py'
    edited.write_text(edited.read_text() + 'my_edit = 1\n')
    other = str(repo_root / 'configs/ovshapes/naclip_tiny-clip_ovshapes.py')
    with pytest.warns(UserWarning, match='d.py is kept as it is'):
        written = write_custom_configs('d', layout, classes, str(tmp_path / 'c'),
                                       methods=[other])
    assert written == [str(tmp_path / 'c' / 'd_naclip_tiny-clip_ovshapes.py')]
    assert edited.read_text().endswith('my_edit = 1\n')
    # the dataset config alone, edited: replaced only with overwrite
    with pytest.raises(FileExistsError, match='d.py already exist with other content'):
        write_custom_configs('d', layout, classes, str(tmp_path / 'c'))
    write_custom_configs('d', layout, classes, str(tmp_path / 'c'), overwrite=True)
    assert 'my_edit' not in edited.read_text()


def test_label_files_with_an_ending_pair_with_label_suffix(tmp_path, capsys):
    """NAME.jpg + NAME_mask.png (a common export): the tool said "no pair"
    without a way to pair them; now the error names --label-suffix, which
    makes the configs' seg_map_suffix '_mask.png'."""
    root = tmp_path / 'flat'
    label = np.zeros((8, 8), np.uint8)
    label[4:] = 1
    for i in range(6):
        _write(root / 'images' / f'p{i}.jpg', np.zeros((8, 8, 3), np.uint8))
        _write(root / 'labels' / f'p{i}_mask.png', label)
    (root / 'classes.txt').write_text('sky\ngrass | unseen\n')
    args = [root, '--classes', root / 'classes.txt', '--out-dir', tmp_path / 'configs',
            '--no-check']
    code, log = _tool(capsys, *args)
    assert code == 2 and '--label-suffix _mask' in log, log
    code, log = _tool(capsys, *args, '--label-suffix', '_mask')
    assert code == 0 and 'labels *_mask.png' in log, log
    layout = find_layout(str(root), DataCheck(), label_suffix='_mask', split_dir='splits/flat')
    info = layout.splits['train']
    dataset = OpenVocabCustomDataset(
        classes=['sky', 'grass'], data_root=str(root), ann_file=info['ann_file'],
        data_prefix=dict(img_path=info['img_path'], seg_map_path=info['seg_map_path']),
        img_suffix=layout.img_suffix, seg_map_suffix=layout.seg_map_suffix, pipeline=[])
    assert len(dataset) == 5
    assert all(dataset.get_data_info(i)['seg_map_path'].endswith('_mask.png')
               for i in range(len(dataset)))
    # a label file without the ending would be looked for as NAME_mask.png
    _write(root / 'labels' / 'p9.png', label)
    _write(root / 'images' / 'p9.jpg', np.zeros((8, 8, 3), np.uint8))
    check = DataCheck()
    find_layout(str(root), check, label_suffix='_mask')
    assert 'label files without the label suffix' in check.report()


def test_class_file_without_unseen_classes_gives_a_buildable_metric(tmp_path, repo_root):
    """No `| unseen` line: the written evaluator reports plain mIoU (before:
    `unseen_classes=[]`, which OpenVocabIoUMetric refuses, so train / test
    stopped after the tool had accepted the data)."""
    layout, classes = _one_image_dataset(tmp_path, 'sky\ngrass\n')
    method = str(repo_root / 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py')
    files = write_custom_configs('d', layout, classes, str(tmp_path / 'c'), methods=[method])
    from mmengine.config import Config
    from mmseg.registry import METRICS
    for file in files:
        cfg = Config.fromfile(file)
        assert cfg.test_evaluator.unseen_classes is None
        METRICS.build(cfg.test_evaluator)
