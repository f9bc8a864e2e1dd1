"""OpenVocabInferencer on the offline OVShapes world with the tiny CLIP.

The shipped tiny CLIP (``mmovss/assets/ovshapes_tiny_clip.pt``) is used
when it exists; otherwise a seeded random CLIP of the same shape stands in
(every check here compares two code paths or recomputes a quantity, so it
holds for any weights).
"""
import json
import os
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mmovss.apis import (
    OpenVocabInferencer,
    OutputWouldOverwriteInput,
    UnreadableImageError,
    get_model_info,
    list_models,
    resolve_model,
    vocabulary_from_text,
)
from mmovss.ovshapes import world

ZERO_SHOT = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
REFINE = 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py'
ASSET = 'mmovss/assets/ovshapes_tiny_clip.pt'


@pytest.fixture(scope='module')
def clip_options(repo_root, tmp_path_factory):
    """``cfg_options`` that point both towers at the tiny CLIP weights."""
    path = repo_root / ASSET
    if not path.is_file():
        import open_clip

        from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
        torch.manual_seed(0)
        model = open_clip.CLIP(**OVSHAPES_CLIP_CFG)
        path = tmp_path_factory.mktemp('clip') / 'random_tiny_clip.pt'
        torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    return {'model.backbone.pretrained': str(path),
            'model.text_encoder.pretrained': str(path)}


@pytest.fixture(scope='module')
def ovshapes(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('ovshapes_world')
    write_world(root, seed=3, num_train=0, num_val=5)
    return root


@pytest.fixture(scope='module')
def inferencer(repo_root, clip_options):
    return OpenVocabInferencer(str(repo_root / ZERO_SHOT), device='cpu',
                               cfg_options=clip_options)


def _val_images(root):
    return sorted(str(p) for p in (root / 'img_dir' / 'val').glob('*.png'))


def _tools_test_labels(repo_root, config, root, out, clip_options,
                       checkpoint=None):
    options = [f'{k}={v}' for k, v in clip_options.items()]
    options.append(f'test_dataloader.dataset.data_root={root}')
    cmd = [sys.executable, 'tools/test.py', config]
    if checkpoint:
        cmd.append(str(checkpoint))
    cmd += ['--out', str(out), '--work-dir', str(out.parent / 'work'),
            '--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return {p.stem: np.array(Image.open(p)) for p in sorted(out.glob('*.png'))}


def _refine_checkpoint(repo_root, clip_options, path):
    """A checkpoint of the trained config whose head is not the zero-shot
    start (seeded noise), so that loading it visibly matters."""
    from mmovss.runtime import load_config

    from mmseg.registry import MODELS
    cfg = load_config(str(repo_root / REFINE), clip_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.decode_head.parameters():
            param.add_(0.5 * torch.randn(param.shape, generator=generator))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@pytest.mark.parametrize('config', [ZERO_SHOT, REFINE])
def test_same_labels_as_tools_test(config, repo_root, ovshapes, clip_options,
                                   tmp_path):
    """Files (batched) and arrays give tools/test.py's labels."""
    checkpoint = None
    if config == REFINE:
        checkpoint = _refine_checkpoint(repo_root, clip_options,
                                        tmp_path / 'refine.pth')
    expected = _tools_test_labels(repo_root, config, ovshapes,
                                  tmp_path / 'out', clip_options, checkpoint)
    assert len(expected) == 5
    inferencer = OpenVocabInferencer(
        str(repo_root / config), weights=str(checkpoint) if checkpoint
        else None, device='cpu', cfg_options=clip_options,
        vocabulary=list(world.class_names()))
    paths = _val_images(ovshapes)
    from_files = inferencer(paths, batch_size=3)['predictions']
    arrays = [cv2.imread(p) for p in paths]
    from_arrays = inferencer(arrays, batch_size=2)['predictions']
    for path, f, a in zip(paths, from_files, from_arrays):
        stem = os.path.splitext(os.path.basename(path))[0]
        np.testing.assert_array_equal(f['sem_seg'], expected[stem])
        np.testing.assert_array_equal(a['sem_seg'], expected[stem])
        assert f['name'] == stem and f['img_path'] == path
    # the checkpoint changed the predictions (it was really loaded)
    if checkpoint is not None:
        plain = OpenVocabInferencer(str(repo_root / config), device='cpu',
                                    cfg_options=clip_options, allow_random_weights=True,
                                    vocabulary=list(world.class_names()))
        assert any((plain(p)['predictions']['sem_seg'] != f['sem_seg']).any()
                   for p, f in zip(paths, from_files))


def test_default_vocabulary_is_the_test_datasets(inferencer):
    assert inferencer.vocabulary.class_names == world.class_names()


def test_vocabulary_swap_needs_no_rebuild_and_reuses_embeddings(
        inferencer, ovshapes, repo_root, clip_options, monkeypatch):
    image = _val_images(ovshapes)[0]
    encoder = inferencer.model.text_encoder
    encoded = []
    original = encoder._embed_names_uncached

    def counting(names):
        encoded.extend(names)
        return original(names)

    monkeypatch.setattr(encoder, '_embed_names_uncached', counting)
    model, backbone = inferencer.model, inferencer.model.backbone
    first = inferencer(image, vocabulary=['sky', 'grass', 'wall'])
    first_names = list(encoded)
    again = inferencer(image)  # keeps the vocabulary, embeddings cached
    assert len(encoded) == len(first_names)
    second = inferencer(image, vocabulary=['sky', 'grass', 'wall',
                                           'striped red, red stripes'])
    # only the two new names were embedded
    assert encoded[len(first_names):] == ['striped red', 'red stripes']
    assert inferencer.model is model and inferencer.model.backbone is backbone
    assert first['predictions']['classes'] == ['sky', 'grass', 'wall']
    assert second['predictions']['classes'][-1] == 'striped red'
    np.testing.assert_array_equal(first['predictions']['sem_seg'],
                                  again['predictions']['sem_seg'])
    # the swapped vocabulary gives what a model built with it gives
    fresh = OpenVocabInferencer(
        str(repo_root / ZERO_SHOT), device='cpu',
        cfg_options=dict(clip_options, **{'model.vocabulary': [
            'sky', 'grass', 'wall', 'striped red, red stripes']}))
    np.testing.assert_array_equal(fresh(image)['predictions']['sem_seg'],
                                  second['predictions']['sem_seg'])
    assert second['predictions']['sem_seg'].max() < 4


def test_areas_and_scores(inferencer, ovshapes):
    image = _val_images(ovshapes)[1]
    vocabulary = ['sky', 'grass', 'sand', 'wall']
    pred = inferencer(image, vocabulary=vocabulary)['predictions']
    sample = inferencer(image, return_datasamples=True)
    labels = pred['sem_seg']
    counts = np.bincount(labels.ravel(), minlength=4)
    np.testing.assert_array_equal(pred['pixels'], counts)
    np.testing.assert_allclose(pred['areas'], counts / labels.size)
    assert pred['present'] == sorted(np.flatnonzero(counts).tolist(),
                                     key=lambda c: (-counts[c], c))
    logits = sample.seg_logits.data.double()
    probs = torch.softmax(logits, dim=0).numpy()
    for c in range(4):
        mask = labels == c
        if mask.any():
            assert pred['scores'][c] == pytest.approx(probs[c][mask].mean())
            assert 1 / 4 <= pred['scores'][c] <= 1
        else:
            assert np.isnan(pred['scores'][c])
    np.testing.assert_array_equal(sample.pred_sem_seg.data[0].numpy(), labels)


def test_images_of_different_sizes_in_one_batch(inferencer, tmp_path):
    from mmovss.ovshapes.writer import write_world
    write_world(tmp_path / 'small', seed=5, num_train=0, num_val=1, size=48)
    images = [cv2.imread(p) for p in
              _val_images(tmp_path / 'small')] + [np.zeros((64, 64, 3),
                                                          np.uint8)]
    batched = inferencer(images, vocabulary=['sky', 'grass', 'wall'],
                         batch_size=2)['predictions']
    for image, pred in zip(images, batched):
        alone = inferencer(image)['predictions']
        assert pred['sem_seg'].shape == image.shape[:2]
        np.testing.assert_array_equal(pred['sem_seg'], alone['sem_seg'])


def test_out_dir_files_and_folder_skips(inferencer, ovshapes, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    for path in _val_images(ovshapes)[:2]:
        (folder / os.path.basename(path)).write_bytes(open(path, 'rb').read())
    (folder / 'notes.txt').write_text('not an image')
    (folder / 'broken.png').write_bytes(b'not a png')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / 'out'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = inferencer(str(folder), vocabulary=['sky', 'grass', 'wall'],
                            out_dir=str(out), return_vis=True)
    messages = ' '.join(str(w.message) for w in caught)
    assert 'notes.txt' in messages and 'broken.png' in messages
    preds = result['predictions']
    assert [p['name'] for p in preds] == ['000000', '000001']
    for pred, vis in zip(preds, result['visualization']):
        labels = np.array(Image.open(out / 'pred' / f'{pred["name"]}.png'))
        np.testing.assert_array_equal(labels, pred['sem_seg'])
        drawn = np.array(Image.open(out / 'vis' / f'{pred["name"]}.png'))
        np.testing.assert_array_equal(drawn, vis)
        summary = json.loads(
            (out / 'pred' / f'{pred["name"]}.json').read_text())
        assert [c['label'] for c in summary['classes']] == pred['present']
        assert summary['vocabulary'] == ['sky', 'grass', 'wall']
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_bad_inputs_give_clear_errors(inferencer, tmp_path, repo_root):
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\x00' * 10)
    with pytest.raises(UnreadableImageError, match='broken.jpg'):
        inferencer(str(broken))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inferencer(str(tmp_path / 'missing.png'))
    with pytest.raises(ValueError, match='empty'):
        inferencer(np.zeros((8, 8, 3), np.uint8), vocabulary=[])
    with pytest.raises(ValueError, match='both named'):
        inferencer(np.zeros((8, 8, 3), np.uint8), vocabulary=['cat', 'Cat'])
    with pytest.raises(ValueError, match='uint8'):
        inferencer(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r'ovshapes-tiny'):
        OpenVocabInferencer('ovshapes-tinny')
    # an out_dir whose outputs would replace an input image is refused
    vis = tmp_path / 'vis'
    vis.mkdir()
    image = vis / 'a.png'
    cv2.imwrite(str(image), np.full((16, 16, 3), 7, np.uint8))
    data = image.read_bytes()
    with pytest.raises(OutputWouldOverwriteInput, match='a.png'):
        inferencer(str(image), out_dir=str(tmp_path))
    assert image.read_bytes() == data


def test_model_names(repo_root):
    assert 'ovshapes-tiny' in list_models() and 'sclip' in list_models()
    config, weights = resolve_model('OVShapes-Tiny')
    assert os.path.samefile(config, repo_root / ZERO_SHOT) and weights is None
    info = get_model_info('sclip')
    assert os.path.basename(info.config) == 'sclip_vit-b16_coco_stuff171.py'
    assert 'sclip' in info.aliases
    with pytest.raises(FileNotFoundError, match='nothere.py'):
        resolve_model('configs/nothere.py')


def test_metafile_names_and_aliases(tmp_path):
    """mmseg-style metafile entries (Name, Alias, Config, Weights)."""
    from mmovss.apis.model_zoo import _name_table
    root = tmp_path / 'configs'
    (root / 'foo').mkdir(parents=True)
    (root / 'foo' / 'foo_cfg.py').write_text('x = 1\n')
    (root / 'foo' / 'bar_cfg.py').write_text('x = 2\n')
    (root / 'foo' / 'metafile.yaml').write_text(
        'Models:\n- Name: foo_model\n  Alias: [foo, Foo-Short]\n'
        '  Config: configs/foo/foo_cfg.py\n  Weights: https://x/foo.pth\n')
    table = _name_table(str(root))
    assert table['foo-short'].weights == 'https://x/foo.pth'
    assert table['foo'].config == str(root / 'foo' / 'foo_cfg.py')
    assert table['bar_cfg'].weights is None


def test_vocabulary_text():
    vocab = vocabulary_from_text('cat, kitten; grass;\nsky;')
    assert vocab.classes == (('cat', 'kitten'), ('grass', ), ('sky', ))
    with pytest.raises(ValueError, match='ONE class'):
        vocabulary_from_text('cat, dog')
    with pytest.raises(ValueError, match='empty'):
        vocabulary_from_text(' ; ')
    with pytest.raises(ValueError, match='both named'):
        vocabulary_from_text('sky; grass; sky')


def test_training_free_config_scores_are_its_probabilities(
        repo_root, clip_options, ovshapes):
    """A training-free config (SCLIP, slide windows, the published resize)
    with the tiny CLIP swapped in: asking for scores (class probabilities)
    does not change the labels, and the scores are those probabilities."""
    from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
    weights = clip_options['model.backbone.pretrained']
    options = {
        'model.backbone.model_name': None,
        'model.backbone.model_cfg': OVSHAPES_CLIP_CFG,
        'model.backbone.pretrained': weights,
        'model.text_encoder.model_name': None,
        'model.text_encoder.model_cfg': OVSHAPES_CLIP_CFG,
        'model.text_encoder.pretrained': weights,
        'model.text_encoder.templates': ['a {} object.'],
        'model.text_encoder.cache_dir': None,
        'model.decode_head.in_channels': OVSHAPES_CLIP_CFG['embed_dim'],
        'model.test_cfg.crop_size': (64, 64),
        'model.test_cfg.stride': (32, 32),
        'test_dataloader.dataset.pipeline.1.scale': (256, 96),
    }
    inferencer = OpenVocabInferencer(
        'sclip', device='cpu', cfg_options=options,
        vocabulary=['sky', 'grass', 'wall', 'striped red, red stripes'])
    image = _val_images(ovshapes)[2]
    with_scores = inferencer(image)['predictions']
    without = inferencer(image, with_scores=False)['predictions']
    np.testing.assert_array_equal(with_scores['sem_seg'], without['sem_seg'])
    assert np.isnan(without['scores']).all()
    sample = inferencer(image, return_datasamples=True)
    probs = sample.seg_logits.data.double().numpy()
    labels = with_scores['sem_seg']
    assert probs.shape == (4, *labels.shape) == (4, 64, 64)
    for c in with_scores['present']:
        assert with_scores['scores'][c] == pytest.approx(
            probs[c][labels == c].mean())
