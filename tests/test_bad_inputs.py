"""Bad inputs: each gets a clear error or a documented, tested recovery.

docs/bad_inputs.md lists every bad input of issue 12 with the test that
covers it; the items not covered elsewhere are tested here: over-long and
non-ASCII class names, unusual image files (grayscale, RGBA, palette,
16-bit, corrupt) through the standard pipelines and the inferencer, images
smaller than the crop and extreme aspect ratios, empty dataset folders, and
a vocabulary that does not match the benchmark being evaluated.
"""
import copy
import os.path as osp
import warnings
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import mmovss  # noqa: F401  (registers the modules)
from mmovss.apis import OpenVocabInferencer, UnreadableImageError
from mmovss.engine import DatasetVocabularyHook
from mmovss.evaluation import OpenVocabIoUMetric
from mmovss.models.text_encoders import OpenCLIPTextEncoder
from mmovss.testing.benchmark_data import make_benchmark_tree
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.vocab import Vocabulary

from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ZERO_SHOT = osp.join(REPO, 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py')
ADE_PIPELINE = osp.join(REPO, 'configs/_base_/datasets/ade20k_150.py')
CFG = tiny_clip_cfg('vit')


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def encoder():
    torch.manual_seed(0)
    return OpenCLIPTextEncoder(model_cfg=CFG, templates='single')


# ------------------------------------------------------------ model names
@pytest.mark.parametrize('name, suggestion', [
    ('ViT-B-61', 'ViT-B-16'), ('vit-b-16', 'ViT-B-16'),
    ('convnext_large_d320', 'convnext_large_d_320')])
def test_unknown_open_clip_model_name_suggests_close_names(name, suggestion):
    with pytest.raises(ValueError, match=rf"Unknown open_clip model name "
                       rf"'{name}'; did you mean '{suggestion}'.*"
                       rf'list_models'):
        MODELS.build(dict(type='OpenCLIPTextEncoder', model_name=name))


# ------------------------------------------------------------ class names
def _words(n):
    """A name of ``n`` BPE tokens (every 'cat' word is one token)."""
    return ' '.join(['cat'] * n)


def test_truncation_is_detected_at_the_context_boundary(encoder):
    encode = encoder.tokenizer.encode
    assert len(encode(_words(10))) == 10
    context = encoder.tower.context_length  # 77: SOT + 75 tokens + EOT fit
    fits, cut = _words(context - 2), _words(context - 1)
    assert encoder.truncated_prompts([fits, 'a dog', cut]) == [2]
    assert encoder.truncated_prompts(['a dog']) == []


def test_long_class_names_are_truncated_with_a_warning_naming_them(encoder):
    long_name = 'stop sign ' + _words(80)
    encoder.clear_memory_cache()
    with pytest.warns(UserWarning, match='too long') as caught:
        embeds = encoder(['dog', long_name, 'sky'])
    message = ' '.join(str(w.message) for w in caught)
    assert repr(long_name) in message
    assert "'dog'" not in message and "'sky'" not in message
    assert embeds.embeds.shape[0] == 3
    assert torch.isfinite(embeds.embeds).all()
    # what is encoded is the beginning of the prompt, as open_clip does
    prompt = encoder.templates[0].format(long_name)
    context = encoder.tower.context_length
    prefix = ' '.join(prompt.split()[:context - 2])  # one token per word
    assert len(encoder.tokenizer.encode(prefix)) == context - 2
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.testing.assert_close(encoder.encode_prompts([prompt]),
                                   encoder.encode_prompts([prefix]))
    # short names alone give no warning
    encoder.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        encoder(['dog', 'sky'])


NON_ASCII = ['猫', '狗', 'café', 'crème brûlée', 'Straße', '東京タワー', 'ελιά']


def test_non_ascii_names_encode_without_loss(encoder):
    tokenizer = encoder.tokenizer
    for name in NON_ASCII:
        ids = tokenizer.encode(name)
        assert ids and tokenizer.decode(ids).strip() == name.lower()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        embeds = encoder(Vocabulary(NON_ASCII)).embeds
    assert torch.isfinite(embeds).all()
    distance = torch.cdist(embeds, embeds)
    off_diagonal = distance[~torch.eye(len(NON_ASCII), dtype=torch.bool)]
    assert off_diagonal.min() > 1e-4  # every name has its own embedding


def test_composed_and_decomposed_accents_are_one_name(encoder, tmp_path):
    composed, decomposed = 'caf\u00e9', 'cafe\u0301'
    assert composed != decomposed
    vocab = Vocabulary([decomposed, 'tea'])
    assert vocab.class_names[0] == composed
    with pytest.raises(ValueError, match='both named'):
        Vocabulary([composed, decomposed])
    torch.testing.assert_close(encoder.embed_names([decomposed]),
                               encoder.embed_names([composed]))


def test_utf8_files_with_bom_and_other_encodings(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('猫, 小猫\ncafé\n', encoding='utf-8-sig')  # Notepad style
    assert path.read_bytes().startswith(b'\xef\xbb\xbf')
    assert Vocabulary.build(str(path)).classes == (('猫', '小猫'), ('café', ))
    latin = tmp_path / 'latin1.txt'
    latin.write_bytes('café\nthé\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=r'latin1\.txt.*not UTF-8'):
        Vocabulary.build(str(latin))


# ------------------------------------------------------------ image files
@pytest.fixture(scope='module')
def image_files(tmp_path_factory):
    """One colour image written in many formats, and the BGR array each
    should read as (what a user means by that file)."""
    root = tmp_path_factory.mktemp('formats')
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)
    grey = rgb[..., 0]
    files = {}

    def add(name, array):
        files[name] = (str(root / name), array)

    Image.fromarray(rgb).save(root / 'rgb.png')
    add('rgb.png', rgb[..., ::-1])
    Image.fromarray(grey).save(root / 'grey.png')
    add('grey.png', np.repeat(grey[..., None], 3, 2))
    Image.fromarray(np.dstack([rgb, np.full(grey.shape, 90, np.uint8)]),
                    'RGBA').save(root / 'rgba.png')
    add('rgba.png', rgb[..., ::-1])
    palette = Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE)
    palette.save(root / 'palette.png')
    add('palette.png', np.array(palette.convert('RGB'))[..., ::-1])
    cv2.imwrite(str(root / 'rgb16.png'), rgb[..., ::-1].astype(np.uint16) * 257)
    add('rgb16.png', rgb[..., ::-1])
    Image.fromarray(grey.astype(np.uint16) * 257).save(root / 'grey16.png')
    add('grey16.png', np.repeat(grey[..., None], 3, 2))
    assert Image.open(root / 'grey16.png').mode.startswith('I;16')
    return files


@pytest.mark.parametrize('name', ['grey.png', 'rgba.png', 'palette.png',
                                  'rgb16.png', 'grey16.png'])
def test_image_modes_through_the_standard_test_pipeline(image_files, name):
    """The benchmark test pipeline (LoadImageFromFile, Resize, Pack) gives
    the same network input for the file as for its 8-bit BGR meaning."""
    pipeline = [t for t in Config.fromfile(ADE_PIPELINE).test_pipeline
                if 'Annotation' not in t['type']]
    transforms = [TRANSFORMS.build(copy.deepcopy(t)) for t in pipeline]
    path, expected = image_files[name]
    results = dict(img_path=path)
    for transform in transforms:
        results = transform(results)
    assert results['data_samples'].ori_shape == expected.shape[:2]
    reference = dict(img=expected.copy(), img_path='ref.png',
                     img_shape=expected.shape[:2],
                     ori_shape=expected.shape[:2])
    for transform in transforms[1:]:
        reference = transform(reference)
    assert results['inputs'].shape[0] == 3
    torch.testing.assert_close(results['inputs'], reference['inputs'],
                               rtol=0, atol=0)


@pytest.fixture(scope='module')
def inferencer(tmp_path_factory):
    """The OVShapes zero-shot config with a random tiny CLIP, sliding
    windows of 64 px with stride 40."""
    import open_clip

    from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('clip') / 'tiny.pt'
    torch.save(open_clip.CLIP(**OVSHAPES_CLIP_CFG).state_dict(), path)
    options = {'model.backbone.pretrained': str(path),
               'model.text_encoder.pretrained': str(path),
               'model.test_cfg': dict(mode='slide', crop_size=(64, 64),
                                      stride=(40, 40))}
    inferencer = OpenVocabInferencer(ZERO_SHOT, device='cpu',
                                     cfg_options=options)
    inferencer.set_vocabulary(['red circle', 'blue square', 'background'])
    return inferencer


def test_image_modes_through_the_inferencer(inferencer, image_files):
    for name, (path, expected) in image_files.items():
        from_file = inferencer(path)['predictions']['sem_seg']
        from_array = inferencer(expected)['predictions']['sem_seg']
        assert from_file.shape == expected.shape[:2], name
        np.testing.assert_array_equal(from_file, from_array, err_msg=name)
    grey_path, grey = image_files['grey.png']
    np.testing.assert_array_equal(
        inferencer(grey[..., 0])['predictions']['sem_seg'],
        inferencer(grey_path)['predictions']['sem_seg'])


def test_arrays_that_are_not_8bit_bgr_are_refused_with_the_fix(inferencer):
    with pytest.raises(ValueError, match=r'>> 8'):
        inferencer(np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(ValueError, match=r'alpha channel.*\[\.\.\., :3\]'):
        inferencer(np.zeros((8, 8, 4), np.uint8))


def _corrupt_files(folder):
    data = cv2.imencode('.jpg', np.full((24, 24, 3), 100, np.uint8))[1]
    (folder / 'truncated.jpg').write_bytes(data.tobytes()[:len(data) // 2])
    png = cv2.imencode('.png', np.arange(24 * 24 * 3, dtype=np.uint8)
                       .reshape(24, 24, 3))[1].tobytes()
    (folder / 'truncated.png').write_bytes(png[:len(png) // 2])
    (folder / 'empty.png').write_bytes(b'')
    return ['truncated.jpg', 'truncated.png', 'empty.png']


def test_corrupt_image_files_in_the_inferencer(inferencer, tmp_path):
    names = _corrupt_files(tmp_path)
    for name in names:
        with pytest.raises(UnreadableImageError, match=name.replace('.', r'\.')):
            inferencer(str(tmp_path / name))
    cv2.imwrite(str(tmp_path / 'good.png'), np.zeros((16, 16, 3), np.uint8))
    with pytest.warns(UserWarning) as caught:
        result = inferencer(str(tmp_path))
    assert [p['name'] for p in result['predictions']] == ['good']
    message = ' '.join(str(w.message) for w in caught)
    assert all(name in message for name in names)


@pytest.mark.parametrize('bad', ['truncated.jpg', 'truncated.png',
                                 'empty.png'])
def test_corrupt_image_files_in_a_benchmark_dataset(tmp_path, bad):
    tree = make_benchmark_tree('ade20k_150', 'mmseg', str(tmp_path), 150,
                               num_samples=2)
    dataset = DATASETS.build(
        dict(type='ADE20K150Dataset', data_root=tree.data_root,
             test_mode=True, pipeline=[dict(type='LoadImageFromFile')]))
    path = dataset.get_data_info(1)['img_path']
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    _corrupt_files(scratch)
    with open(path, 'wb') as f:
        f.write((scratch / bad).read_bytes())
    assert dataset[0]['img'].shape[:2] == (12, 16)
    with pytest.raises(Exception) as info:
        dataset[1]
    text = str(info.value) + ' '.join(getattr(info.value, '__notes__', []))
    assert path in text and 're-download' in text


def test_empty_dataset_folder_is_an_error(tmp_path):
    tree = make_benchmark_tree('ade20k_150', 'mmseg', str(tmp_path), 150,
                               num_samples=1)
    for folder in ('images', 'annotations'):
        for file in (tmp_path / tree.data_root / folder).rglob('*.*'):
            file.unlink()
    with pytest.raises(FileNotFoundError, match='no samples found'):
        DATASETS.build(dict(type='ADE20K150Dataset',
                            data_root=tree.data_root))


# ------------------------------------------------------------ image sizes
@pytest.fixture(scope='module')
def segmentor():
    model = MODELS.build(dict(
        type='OpenVocabEncoderDecoder',
        backbone=dict(type='OpenCLIPViT', model_cfg=CFG),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG,
                          templates='single'),
        decode_head=dict(type='CLIPCosineHead', in_channels=32),
        vocabulary=['cat', 'dog', 'sky'],
        test_cfg=dict(mode='slide', crop_size=(32, 32), stride=(32, 32))))
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('size', [(1, 1), (5, 7), (20, 31)])
def test_image_smaller_than_the_crop_is_one_window(segmentor, size):
    x = torch.randn(1, 3, *size)
    metas = [dict(ori_shape=size, img_shape=size, pad_shape=size)]
    assert segmentor.crop_boxes(size, (32, 32), (21, 21)) == [
        (0, size[0], 0, size[1])]
    with torch.no_grad():
        slide = segmentor.slide_inference(x, metas)
        whole = segmentor.whole_inference(x, metas)
        pred = segmentor.predict(x, [SegDataSample(metainfo=metas[0])])
    assert slide.shape == (1, 3, *size)
    torch.testing.assert_close(slide, whole)
    assert pred[0].pred_sem_seg.shape == size


@pytest.mark.parametrize('size', [(3, 320), (320, 3), (32, 1024)])
def test_extreme_aspect_ratios_tile_exactly(segmentor, size):
    """With stride == crop the windows tile the image, so slide inference
    equals whole inference on each tile (sizes are multiples of the
    crop along the long side; mmseg moves a last partial window inside)."""
    x = torch.randn(1, 3, *size)
    metas = [dict(ori_shape=size, img_shape=size, pad_shape=size)]
    with torch.no_grad():
        slide = segmentor.slide_inference(x, metas)
        boxes = segmentor.crop_boxes(size, (32, 32), (32, 32))
        assert len(boxes) == -(-size[0] // 32) * -(-size[1] // 32)
        for y1, y2, x1, x2 in boxes:
            crop = x[:, :, y1:y2, x1:x2]
            meta = [dict(metas[0], img_shape=crop.shape[2:])]
            torch.testing.assert_close(slide[:, :, y1:y2, x1:x2],
                                       segmentor.whole_inference(crop, meta))
    assert torch.isfinite(slide).all()


@pytest.mark.parametrize('shape', [(1, 1), (3, 400), (400, 3), (70, 200)])
def test_odd_sizes_through_the_inferencer(inferencer, shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), np.uint8)
    pred = inferencer(image)['predictions']
    assert pred['sem_seg'].shape == shape
    assert set(np.unique(pred['sem_seg'])) <= {0, 1, 2}


# ------------------------------------------------- vocabulary vs benchmark
def _runner(model, classes):
    dataset = SimpleNamespace(metainfo=dict(classes=classes))
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    return SimpleNamespace(model=model, train_loop=loop, val_loop=loop,
                           test_loop=loop)


def test_explicit_vocabulary_with_another_class_count_is_refused(segmentor):
    runner = _runner(segmentor, ('cat', 'dog', 'sky', 'road'))
    with pytest.raises(ValueError, match=r'3 classes.*test dataset.*4 '
                       r'classes.*model\.vocabulary'):
        DatasetVocabularyHook().before_test(runner)


def test_reordered_explicit_vocabulary_warns_and_renaming_does_not(
        segmentor):
    hook = DatasetVocabularyHook()
    with pytest.warns(UserWarning, match='looks reordered') as got:
        hook.before_val(_runner(segmentor, ('dog', 'cat', 'sky')))
    message = str(got[0].message)
    assert "vocabulary class 0 'cat' is dataset label 1 'cat'" in message
    assert "vocabulary class 1 'dog' is dataset label 0 'dog'" in message
    assert "'sky'" not in message
    assert segmentor.vocabulary.class_names == ('cat', 'dog', 'sky')
    # renaming (the published name lists do it), another case, more
    # synonyms or other spacing: no warning
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for classes in (('cat', 'horse', 'sky'), ('Cat, kitty', 'dog', 'sky'),
                        ('c a t', 'puppy, DOG', 'sky')):
            hook.before_test(_runner(segmentor, classes))


def test_shipped_explicit_vocabularies_fit_their_benchmarks():
    """Every config with ``model.vocabulary`` (and every protocol base with a
    ``protocol_model.vocabulary``) names one class per label of its test
    dataset, in order (renamings allowed, no reordering)."""
    import glob
    checked = 0
    paths = sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py')))
    paths += sorted(glob.glob(osp.join(REPO, 'configs', '_base_', 'protocols', '*', '*.py')))
    for path in paths:
        if osp.basename(osp.dirname(path)) == '_base_':
            continue
        cfg = Config.fromfile(path)
        model = cfg.get('model') or cfg.get('protocol_model') or {}
        vocabulary = model.get('vocabulary')
        if vocabulary is None or not cfg.get('test_dataloader'):
            continue
        dataset = cfg.test_dataloader.dataset
        metainfo = dataset.get('metainfo') or DATASETS.get(
            dataset.type).METAINFO
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            DatasetVocabularyHook.check_explicit_vocabulary(
                Vocabulary.build(vocabulary), Vocabulary.build(metainfo),
                osp.relpath(path, REPO))
        checked += 1
    # 48 cited training-free configs + the protocol bases with published class files
    assert checked >= 90, checked


def test_metric_refuses_labels_outside_the_dataset_classes():
    """Without the hook, a vocabulary larger than the dataset shows up as
    predictions >= num_classes: refused, not silently dropped."""
    gt = torch.tensor([[0, 1], [2, 255]])

    def evaluate(pred, label=gt):
        metric = OpenVocabIoUMetric()
        metric.dataset_meta = dict(classes=('a', 'b', 'c'))
        sample = dict(pred_sem_seg=dict(data=torch.as_tensor(pred)[None]),
                      gt_sem_seg=dict(data=label[None]), img_path='x/0.jpg')
        metric.process({}, [sample])
        return metric.compute_metrics(metric.results)

    assert evaluate([[0, 1], [2, 0]])['mIoU'] == 100.0
    with pytest.raises(ValueError, match=r"prediction of 'x/0\.jpg' has "
                       r'label 3.*model\.vocabulary'):
        evaluate([[0, 1], [3, 0]])
    with pytest.raises(ValueError, match=r"ground truth of 'x/0\.jpg' has "
                       r'label 7'):
        evaluate([[0, 1], [2, 0]], torch.tensor([[0, 7], [2, 255]]))
