"""Issue #17: the data and output side under a careful adversarial user.

One test per case: outputs never replace ground truth or inputs (the shared
guard of mmovss.io), every label is loaded by the checking loader (OVShapes
included), converters resume after a kill, no loader runs a pickle's code,
corrupted checkpoints are refused, resuming another model names the keys,
and a synonym shared by two classes of a vocabulary file is refused.
"""
import os
import os.path as osp
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from mmovss.io import UnsafeOutputError, UnsafePickleError, check_output_dir
from mmovss.testing.tools import load_tool

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = 'tests/data/configs/tiny_fcn.py'
DEMO_CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'


class _RunsShell:
    """A pickle payload that would create ``marker`` when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('round2') / 'world'
    write_world(root, seed=2, num_train=3, num_val=2)
    return root


@pytest.fixture
def fresh_world(tmp_path):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path / 'world'
    write_world(root, seed=4, num_train=2, num_val=1)
    return root


def _ovshapes_dataset(root, split='val'):
    """The dataset of the OVShapes base config (its own pipeline) on ``root``."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/ovshapes.py'))
    dataset_cfg = cfg[f'{split}_dataloader']['dataset']
    dataset_cfg['data_root'] = str(root)
    return DATASETS.build(dataset_cfg)


def _first_label(root, split='val'):
    return sorted((root / 'ann_dir' / split).glob('*.png'))[0]


# ---------------------------------------------------------------- outputs

def test_test_out_refuses_the_ground_truth_folder(tiny_dataset):
    root = tiny_dataset['data_root']
    ann = osp.join(root, 'ann_dir', 'val')
    before = {n: open(osp.join(ann, n), 'rb').read() for n in os.listdir(ann)}
    tool = load_tool('test.py')
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={root}']
    for out in (ann, osp.join(ann, 'preds'), osp.join(root, 'preds')):
        with pytest.raises(UnsafeOutputError, match='protected folder') as err:
            tool.main([TINY_CONFIG, '--out', out, '--overwrite', *options])
        assert root in str(err.value) or ann in str(err.value)
    after = {n: open(osp.join(ann, n), 'rb').read() for n in os.listdir(ann)}
    assert after == before


def test_test_out_refuses_a_non_empty_folder_and_hard_links(tiny_dataset, tmp_path):
    root = tiny_dataset['data_root']
    out = tmp_path / 'preds'
    out.mkdir()
    (out / 'notes.txt').write_text('keep me')
    tool = load_tool('test.py')
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={root}']
    with pytest.raises(UnsafeOutputError, match=r"preds' is not empty.*--overwrite"):
        tool.main([TINY_CONFIG, '--out', str(out), *options])
    # With --overwrite, a hard link of a ground-truth file is refused all the same.
    label = sorted(os.listdir(osp.join(root, 'ann_dir', 'val')))[0]
    os.link(osp.join(root, 'ann_dir', 'val', label), out / label)
    with pytest.raises(UnsafeOutputError, match=f'{label}.*hard link'):
        tool.main([TINY_CONFIG, '--out', str(out), '--overwrite', *options])
    (out / label).unlink()
    # A plain non-empty folder with --overwrite passes the guard.
    cfg = Config.fromfile(osp.join(REPO, TINY_CONFIG))
    cfg.test_dataloader.dataset.data_root = root
    cfg.work_dir = str(tmp_path / 'work')
    from mmovss.runtime import check_output_paths
    check_output_paths(cfg, str(out), overwrite=True)
    with pytest.raises(UnsafeOutputError, match='--work-dir'):
        cfg.work_dir = osp.join(root, 'img_dir', 'work')
        check_output_paths(cfg)


def test_guard_compares_inodes_not_paths(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (tmp_path / 'alias').symlink_to(data)
    with pytest.raises(UnsafeOutputError, match='protected folder'):
        check_output_dir(str(tmp_path / 'alias' / 'out'), protected_dirs=[str(data)])
    with pytest.raises(UnsafeOutputError, match='protected folder'):
        check_output_dir(str(data / 'x' / '..'), protected_dirs=[str(data)])
    check_output_dir(str(tmp_path / 'elsewhere'), protected_dirs=[str(data)])


def test_demo_refuses_a_hard_linked_input_and_a_non_empty_out(tmp_path, capsys):
    demo = load_tool('demo.py').main
    image = tmp_path / 'photo.png'
    Image.fromarray(np.full((16, 16, 3), 9, np.uint8)).save(image)
    data = image.read_bytes()
    out = tmp_path / 'out'
    (out / 'pred').mkdir(parents=True)
    os.link(image, out / 'pred' / 'photo.png')  # not the same path, the same file
    args = [str(image), '-v', 'sky; grass', '-c', DEMO_CONFIG, '--out', str(out)]
    assert demo(args + ['--overwrite']) == 2
    err = capsys.readouterr().err
    assert 'would overwrite an input' in err and 'photo.png' in err
    assert image.read_bytes() == data
    other = tmp_path / 'out2'
    other.mkdir()
    (other / 'report.png').write_bytes(b'unrelated')
    assert demo([str(image), '-v', 'sky; grass', '-c', DEMO_CONFIG, '--out', str(other)]) == 2
    assert "out2' is not empty" in capsys.readouterr().err
    assert (other / 'report.png').read_bytes() == b'unrelated'


def test_inferencer_compares_inodes(tmp_path):
    from mmovss.apis.inputs import collect_inputs
    from mmovss.apis.open_vocab_inferencer import OpenVocabInferencer, OutputWouldOverwriteInput
    image = tmp_path / 'a.png'
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
    (tmp_path / 'o' / 'vis').mkdir(parents=True)
    os.link(image, tmp_path / 'o' / 'vis' / 'a.png')
    with pytest.raises(OutputWouldOverwriteInput, match='a.png'):
        OpenVocabInferencer._check_no_overwrite(
            OpenVocabInferencer.__new__(OpenVocabInferencer), collect_inputs(str(image)),
            str(tmp_path / 'o'))


# ---------------------------------------------------------------- labels

def test_16bit_label_does_not_wrap_on_ovshapes(fresh_world):
    path = _first_label(fresh_world)
    label = np.array(Image.open(path)).astype(np.uint16)
    label[0, 0] = 261  # would wrap to class 5 in 8 bits
    Image.fromarray(label).save(path)
    dataset = _ovshapes_dataset(fresh_world)
    with pytest.raises(ValueError, match=f'{path.name}.*261'):
        dataset[0]


def test_out_of_range_label_in_training_names_the_file(fresh_world):
    path = _first_label(fresh_world, 'train')
    label = np.array(Image.open(path))
    label[:2, :2] = 200
    Image.fromarray(label).save(path)
    dataset = _ovshapes_dataset(fresh_world, 'train')
    index = [osp.basename(d['seg_map_path']) for d in dataset.load_data_list()].index(path.name)
    with pytest.raises(ValueError, match=rf'Label file .*{path.name} holds value\(s\) \[200\]'):
        dataset[index]


def test_ade150_reports_the_stored_value_not_the_shifted_one(tmp_path):
    from mmovss.testing.benchmark_data import make_benchmark_tree

    from mmseg.registry import DATASETS
    tree = make_benchmark_tree('ade20k_150', 'mmseg', str(tmp_path), 150, num_samples=1)
    ann_dir = osp.join(tree.data_root, 'annotations', 'validation')
    bad = osp.join(ann_dir, sorted(os.listdir(ann_dir))[0])
    Image.fromarray(np.full((12, 16), 200, np.uint8)).save(bad)
    dataset = DATASETS.build(dict(type='ADE20K150Dataset', data_root=tree.data_root,
                                  layout='mmseg', pipeline=[dict(type='LoadSegAnnotations')]))
    with pytest.raises(ValueError, match=r'holds value\(s\) \[200\]'):
        dataset[0]


def test_label_of_another_size_names_both_files(fresh_world):
    path = _first_label(fresh_world, 'train')
    label = np.array(Image.open(path))
    Image.fromarray(label[:-3]).save(path)  # 3 rows short
    dataset = _ovshapes_dataset(fresh_world, 'train')
    index = [osp.basename(d['seg_map_path']) for d in dataset.load_data_list()].index(path.name)
    with pytest.raises(ValueError, match=rf'{path.name} is \d+x\d+ .*image .*{path.stem}'):
        dataset[index]  # batch size 1 used to train on the misaligned pair


def test_empty_ovshapes_image_folder_names_the_folder(fresh_world):
    for path in (fresh_world / 'img_dir' / 'val').glob('*.png'):
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r'no samples found in .*img_dir/val'):
        _ovshapes_dataset(fresh_world)


def test_ovshapes_configs_use_the_checking_loader():
    import glob
    for path in glob.glob(osp.join(REPO, 'configs/ovshapes/*.py')) + [
            osp.join(REPO, 'configs/_base_/datasets/ovshapes.py')]:
        text = open(path).read()
        assert "'LoadAnnotations'" not in text, path


# ---------------------------------------------------------------- converters

def test_coco_stuff_resume_after_a_kill_mid_write(tmp_path):
    src_dir = tmp_path / 'coco' / 'annotations' / 'val2017'
    src_dir.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(3):
        valid = np.array([0, 10, 12, 89, 91, 181, 255], np.uint8)
        Image.fromarray(valid[rng.randint(0, len(valid), (6, 8))]).save(
            src_dir / f'00000{i}.png')
    script = osp.join(REPO, 'tools/dataset_converters/coco_stuff.py')
    # Killed (os._exit, as SIGKILL: no clean-up) while writing the 2nd label.
    killer = textwrap.dedent(f'''
        import os, runpy, sys
        from PIL import Image
        calls = []
        def save(self, fp, *args, **kwargs):
            calls.append(fp)
            with open(fp, 'wb') as f:
                f.write(b'')
            if len(calls) == 2:
                os._exit(9)
            return original(self, fp, *args, **kwargs)
        original = Image.Image.save
        Image.Image.save = save
        sys.argv = [{script!r}, {str(tmp_path / 'coco')!r}, '--splits', 'val2017']
        runpy.run_path({script!r}, run_name='__main__')
    ''')
    proc = subprocess.run([sys.executable, '-c', killer], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 9, proc.stdout + proc.stderr
    tool = load_tool('dataset_converters/coco_stuff.py')
    tool.main([str(tmp_path / 'coco'), '--splits', 'val2017', '--resume'])
    names = sorted(os.listdir(src_dir))
    assert names == [f'00000{i}{suffix}' for i in range(3)
                     for suffix in ('.png', '_labelTrainIds.png')], names
    from mmovss.datasets.label_conversion import coco_stuff_to_171
    for i in range(3):
        raw = np.array(Image.open(src_dir / f'00000{i}.png'))
        out = np.array(Image.open(src_dir / f'00000{i}_labelTrainIds.png'))
        assert (out == coco_stuff_to_171(raw)).all()


def test_converter_never_writes_over_its_source(tmp_path):
    from mmovss.datasets.label_file_conversion import convert_label_files
    src = tmp_path / 'a.png'
    Image.fromarray(np.ones((2, 2), np.uint8)).save(src)
    os.link(src, tmp_path / 'b.png')
    data = src.read_bytes()
    with pytest.raises(UnsafeOutputError, match=r"b\.png' would overwrite an input.*a\.png"):
        convert_label_files([(str(src), str(tmp_path / 'b.png'))],
                            lambda p: np.zeros((2, 2), np.uint8), overwrite=True,
                            log=lambda line: None)
    assert src.read_bytes() == data


# ---------------------------------------------------------------- pickles

def test_san_converter_never_runs_checkpoint_code(tmp_path):
    marker = tmp_path / 'ran'
    src = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={'decode_head.x': torch.zeros(1)},
                    meta=dict(payload=_RunsShell(marker))), src)
    proc = subprocess.run(
        [sys.executable, 'tools/model_converters/san_mmseg_to_mmovss.py', str(src),
         str(tmp_path / 'out.pth')], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert not marker.exists()
    assert proc.returncode != 0
    assert "evil.pth' holds objects that weights-only loading does not allow" in proc.stderr
    assert 'posix.system' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_ade_index_is_unpickled_without_running_code(tmp_path):
    root = tmp_path / 'ADE20K_2021_17_01'
    root.mkdir()
    marker = tmp_path / 'ran'
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(dict(folder=[_RunsShell(marker)], filename=['ADE_val_1.jpg']), f)
    tool = load_tool('dataset_converters/ade20k_847.py')
    with pytest.raises(UnsafePickleError, match=r"index_ade20k\.pkl.*'posix\.system'"):
        tool.main([str(root)])
    assert not marker.exists()
    # The real index (lists and NumPy arrays, any protocol) still loads.
    from mmovss.io import load_restricted_pickle
    index = dict(folder=['a'], filename=['ADE_val_1.jpg'],
                 objectPresence=np.arange(6, dtype=np.int16).reshape(2, 3),
                 scene=np.array(['x', None], dtype=object))
    for protocol in (2, 4, 5):
        with open(tmp_path / 'i.pkl', 'wb') as f:
            pickle.dump(index, f, protocol=protocol)
        loaded = load_restricted_pickle(str(tmp_path / 'i.pkl'))
        assert (loaded['objectPresence'] == index['objectPresence']).all()
        assert loaded['filename'] == ['ADE_val_1.jpg']


# ---------------------------------------------------------------- checkpoints

def _flip_tensor_byte(path):
    """Flips one byte inside a tensor's data; the zip structure stays intact."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if '/data/' in i.filename
                    and i.file_size > 64)
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), np.uint16)
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + 17
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    return info.filename


def test_corrupted_tensor_bytes_are_refused(tmp_path):
    from mmovss.runtime import check_checkpoint_file, find_resumable_checkpoint
    work = tmp_path / 'work'
    work.mkdir()
    for step in (1, 2):
        torch.save(dict(state_dict={'w': torch.arange(64, dtype=torch.float32) * step}),
                   work / f'iter_{step}.pth')
    member = _flip_tensor_byte(work / 'iter_2.pth')
    torch.load(work / 'iter_2.pth', weights_only=True)  # loads silently: the danger
    with pytest.raises(ValueError, match=rf"iter_2\.pth' is truncated or corrupt "
                                         rf"\(CRC mismatch in member '{member}'"):
        check_checkpoint_file(str(work / 'iter_2.pth'))
    path, skipped = find_resumable_checkpoint(str(work))
    assert path.endswith('iter_1.pth') and skipped[0].endswith('iter_2.pth')
    check_checkpoint_file(str(work / 'iter_1.pth'))


def test_resume_from_another_model_names_the_keys(tiny_dataset, tmp_path):
    other = tmp_path / 'other.pth'
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    torch.save(dict(state_dict={'head.weight': torch.zeros(2)}, meta=dict(epoch=0, iter=3),
                    optimizer=optimizer.state_dict()), other)
    root = tiny_dataset['data_root']
    options = [f'{k}.dataset.data_root={root}' for k in
               ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', TINY_CONFIG, '--work-dir', str(tmp_path / 'work'),
         '--resume', str(other), '--cfg-options', *options],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "other.pth' does not fit the model of this config" in log, log[-2000:]
    assert 'missing keys' in log and 'unexpected keys (e.g. head.weight)' in log
    assert 'different number of parameter groups' not in log


# ---------------------------------------------------------------- vocabulary

def test_synonym_shared_by_two_classes_is_reported(tmp_path):
    from mmovss.vocab import Vocabulary
    path = tmp_path / 'classes.txt'
    path.write_text('cat, kitty\ndog\ntiger, Kitty\n')
    message = r"classes.txt.*'Kitty' in classes 0 \('cat'\) and 2 \('tiger'\)"
    with pytest.warns(UserWarning, match=message):
        Vocabulary.from_file(path)
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_file(path, duplicate_synonyms='error')
    with pytest.warns(UserWarning, match="'kitty' in classes 0"):
        Vocabulary(['cat, kitty', 'lion, kitty'])
    # Deliberate sharing (a published list) is declared in the file.
    path.write_text('# allow-shared-synonyms (as published)\n' + path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert len(Vocabulary.from_file(path)) == 3
    # A synonym repeated inside one class is not harmless: it counts twice in
    # the softmax over names (prob_thd), see
    # tests/test_vocabulary.py::test_a_name_repeated_in_one_class_is_reported.
    with pytest.warns(UserWarning, match="'Kitty' in class 0"):
        assert len(Vocabulary(['cat, kitty, Kitty', 'dog'])) == 2
