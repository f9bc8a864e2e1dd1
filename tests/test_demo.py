"""tools/demo.py on OVShapes images with the tiny CLIP (offline).

Uses ``mmovss/assets/ovshapes_tiny_clip.pt`` when it exists, else a seeded
random CLIP of the same shape (the checks compare files with what they must
contain, whatever the weights predict).
"""
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mmovss.testing.tools import load_tool
from mmovss.visualization import draw_legend, legend_entries, vocabulary_palette

CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
ASSET = 'mmovss/assets/ovshapes_tiny_clip.pt'
VOCABULARY = 'sky; grass; sand; wall; striped red, red stripes'
NAMES = ['sky', 'grass', 'sand', 'wall', 'striped red']


@pytest.fixture(scope='module')
def demo():
    return load_tool('demo.py').main


@pytest.fixture(scope='module')
def weight_options(repo_root, tmp_path_factory):
    path = repo_root / ASSET
    if not path.is_file():
        import open_clip

        from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
        torch.manual_seed(0)
        model = open_clip.CLIP(**OVSHAPES_CLIP_CFG)
        path = tmp_path_factory.mktemp('clip') / 'random_tiny_clip.pt'
        torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    return ['--cfg-options', f'model.backbone.pretrained={path}',
            f'model.text_encoder.pretrained={path}']


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('demo_world')
    write_world(root / 'world', seed=7, num_train=0, num_val=3)
    folder = root / 'photos'
    folder.mkdir()
    for path in sorted((root / 'world' / 'img_dir' / 'val').glob('*.png')):
        (folder / f'photo_{path.name}').write_bytes(path.read_bytes())
    (folder / 'readme.txt').write_text('not an image')
    return folder


def test_folder_outputs_overlay_and_legend(demo, images, weight_options,
                                           tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    out = tmp_path / 'out'
    with pytest.warns(UserWarning, match='readme.txt'):
        code = demo([str(images), '--vocabulary', VOCABULARY, '--config',
                     CONFIG, '--out', str(out), '--batch-size', '2',
                     '--opacity', '0.5', *weight_options])
    assert code == 0
    assert '"images": 3' in capsys.readouterr().out
    palette = vocabulary_palette(len(NAMES))
    for name in ('photo_000000', 'photo_000001', 'photo_000002'):
        labels = np.array(Image.open(out / 'pred' / f'{name}.png'))
        image = cv2.imread(str(images / f'{name}.png'))[..., ::-1]
        drawn = np.array(Image.open(out / 'vis' / f'{name}.png'))
        summary = json.loads((out / 'pred' / f'{name}.json').read_text())
        present = np.unique(labels)
        assert labels.shape == image.shape[:2] and present.max() < len(NAMES)
        # JSON: exactly the present classes, with their pixel counts
        assert sorted(c['label'] for c in summary['classes']) == \
            present.tolist()
        for c in summary['classes']:
            assert c['name'] == NAMES[c['label']]
            assert c['pixels'] == int((labels == c['label']).sum())
        assert summary['classes'][0]['pixels'] == max(
            c['pixels'] for c in summary['classes'])
        # left: the image blended with the class colours (mmseg's formula)
        h, w = labels.shape
        colours = np.array(palette, np.uint8)[labels]
        blended = (image * 0.5 + colours * 0.5).astype(np.uint8)
        np.testing.assert_array_equal(drawn[:h, :w], blended)
        # right: the legend rows are exactly the present classes
        entries = legend_entries(labels, NAMES, palette)
        assert sorted(e.label for e in entries) == present.tolist()
        panel = draw_legend(entries, h)
        assert drawn.shape[0] == panel.shape[0]
        legend = drawn[:, w:]
        np.testing.assert_array_equal(legend, panel)
        for entry in entries:
            x1, y1, x2, y2 = entry.swatch
            assert (legend[y1:y2, x1:x2] == palette[entry.label]).all()
        below = entries[-1].swatch[3] + 4
        assert (legend[below:, :entries[-1].swatch[2]] == 255).all()
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


def test_bad_vocabulary_and_model_are_reported(demo, images, tmp_path,
                                               capsys):
    out = tmp_path / 'out'
    assert demo([str(images), '-v', 'cat, dog', '-m', 'ovshapes-tiny',
                 '--out', str(out)]) == 2
    assert 'separate classes with ";"' in capsys.readouterr().err
    assert demo([str(images), '-v', 'cat; cat', '-m', 'ovshapes-tiny',
                 '--out', str(out)]) == 2
    assert 'both named' in capsys.readouterr().err
    assert demo([str(images), '-v', 'cat; dog', '-m', 'ovshapes-tinny',
                 '--out', str(out)]) == 2
    assert 'Did you mean: ovshapes-tiny' in capsys.readouterr().err
    assert demo([str(tmp_path / 'nope.jpg'), '-v', 'cat; dog', '-m',
                 'ovshapes-tiny', '--out', str(out)]) == 2
    assert 'nope.jpg' in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        demo([str(images), '-m', 'ovshapes-tiny', '--out', str(out)])
    assert '--vocabulary' in capsys.readouterr().err


def test_unreadable_file_and_overwrite_are_refused(demo, weight_options,
                                                   tmp_path, capsys):
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    assert demo([str(broken), '-v', 'sky; grass', '-c', CONFIG, '--out',
                 str(tmp_path / 'o'), *weight_options]) == 2
    assert 'Cannot read image' in capsys.readouterr().err
    vis = tmp_path / 'vis'
    vis.mkdir()
    image = vis / 'a.png'
    cv2.imwrite(str(image), np.full((16, 16, 3), 9, np.uint8))
    data = image.read_bytes()
    assert demo([str(image), '-v', 'sky; grass', '-c', CONFIG, '--out',
                 str(tmp_path), *weight_options]) == 2
    assert 'would overwrite an input' in capsys.readouterr().err
    assert image.read_bytes() == data


def test_list_models(demo, capsys):
    assert demo(['--list-models']) == 0
    names = capsys.readouterr().out.split()
    assert 'ovshapes-tiny' in names and 'sclip' in names


def test_visualizer_draws_a_legend_per_panel(tmp_path):
    """``add_datasample`` (tools/test.py --show-dir): ground truth and
    prediction side by side, each with the legend of its own classes."""
    import torch

    from mmovss.visualization import OpenVocabVisualizer

    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    visualizer = OpenVocabVisualizer(name='test_demo_legend_per_panel')
    visualizer.set_vocabulary(['cat, kitten', 'grass', 'sky'])
    assert visualizer.dataset_meta['classes'] == ['cat', 'grass', 'sky']
    gt = torch.zeros(1, 40, 50, dtype=torch.long)
    pred = torch.full((1, 40, 50), 2, dtype=torch.long)
    pred[:, :10] = 1
    sample = SegDataSample(gt_sem_seg=PixelData(data=gt),
                           pred_sem_seg=PixelData(data=pred))
    out = tmp_path / 'drawn.png'
    visualizer.add_datasample('x', np.zeros((40, 50, 3), np.uint8), sample,
                              out_file=str(out))
    drawn = np.array(Image.open(out))
    palette = visualizer.dataset_meta['palette']
    gt_panel = draw_legend(legend_entries(gt[0].numpy(), ['cat', 'grass', 'sky'],
                                          palette), 40)
    pred_entries = legend_entries(pred[0].numpy(), ['cat', 'grass', 'sky'],
                                  palette)
    assert [e.label for e in pred_entries] == [2, 1]
    pred_panel = draw_legend(pred_entries, 40)
    left = 50 + gt_panel.shape[1]
    assert drawn.shape[:2] == (max(gt_panel.shape[0], pred_panel.shape[0]),
                               left + 50 + pred_panel.shape[1])
    np.testing.assert_array_equal(drawn[:gt_panel.shape[0], 50:left], gt_panel)
    np.testing.assert_array_equal(
        drawn[:pred_panel.shape[0], left + 50:], pred_panel)
