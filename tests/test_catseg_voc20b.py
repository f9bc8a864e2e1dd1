"""PAS-20b (``--benchmark voc20b``): CAT-Seg's VOC-21 evaluation with background names.

CAT-Seg (github.com/KU-CVLAB/CAT-Seg @ 6d3a188a) evaluates ``datasets/voc20b.json`` on
``voc_2012_test_background_sem_seg``: the 20 VOC classes, then 39 names, each embedded and
aggregated as a class of its own; ``VOCbEvaluator`` (``train_net.py``) takes the argmax of the
original-size probabilities of the 59 names and maps every name after the 20 objects to the
background label (``pred[pred >= 20] = 20``), then scores the 21 labels (background included).
mmovss writes the 39 names as the synonyms of class 0 (VOC-21's background label) and reduces
names to classes after the probabilities reach the original size.
"""
import copy
import os.path as osp

import pytest
import torch

from mmovss.protocols import apply_benchmark, protocol_benchmarks
from mmovss.testing.tools import load_tool
from mmovss.vocab import Vocabulary, load_benchmark_classes

from mmengine.config import Config
from mmseg.structures import SegDataSample

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
CATSEG_VOCAB = osp.join(CONFIGS, '_base_', 'vocabularies', 'catseg')
#: datasets/voc20b.json entries 20-58 (after the VOC classes), in the json's order.
BACKGROUND = (
    'bag', 'bed', 'bench', 'book', 'building', 'cabinet', 'ceiling', 'cloth', 'computer', 'cup',
    'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'keyboard', 'light',
    'mountain', 'mouse', 'curtain', 'platform', 'sign', 'plate', 'road', 'rock', 'shelves',
    'sidewalk', 'sky', 'snow', 'bedclothes', 'track', 'tree', 'truck', 'wall', 'water',
    'window', 'wood')


def _catseg_voc20():
    return [names[0] for names in Vocabulary.from_file(osp.join(CATSEG_VOCAB, 'voc20.txt'))]


def test_released_names_are_background_synonyms_then_the_voc_classes():
    vocab = Vocabulary.from_file(osp.join(CATSEG_VOCAB, 'voc20b.txt'))
    assert len(vocab) == 21 and vocab.classes[0] == BACKGROUND
    assert [names for names in vocab.classes[1:]] == [(n,) for n in _catseg_voc20()]
    assert vocab.names == BACKGROUND + tuple(_catseg_voc20())  # the 59 json entries
    # the benchmark's own names: the same background, VOC-20's classes
    ours = load_benchmark_classes('voc20b')
    assert ours[0] == ', '.join(BACKGROUND) and ours[1:] == load_benchmark_classes('voc20')


def test_catseg_protocol_embeds_every_background_name():
    cfg = Config.fromfile(osp.join(
        CONFIGS, 'catseg', 'catseg-official_vit-b16_80k_coco-stuff171-384x384.py'))
    assert 'voc20b' in protocol_benchmarks('catseg')
    out = apply_benchmark(cfg, 'voc20b')
    assert osp.samefile(out.model.vocabulary, osp.join(CATSEG_VOCAB, 'voc20b.txt'))
    assert out.model.text_encoder.synonyms == 'all'
    assert out.test_dataloader.dataset.type == 'PascalVOC20bDataset'
    assert out.test_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    assert out.model.test_cfg.mode == 'catseg_slide'
    back = apply_benchmark(out, 'voc20')  # no setting of voc20b is left behind
    assert back.model.text_encoder.synonyms == 'first'


def test_dataset_is_voc21_with_the_background_names():
    from mmovss.datasets import PascalVOC20bDataset, PascalVOC21Dataset
    assert issubclass(PascalVOC20bDataset, PascalVOC21Dataset)
    assert PascalVOC20bDataset.LAYOUTS == PascalVOC21Dataset.LAYOUTS
    assert PascalVOC20bDataset.METAINFO['classes'] == load_benchmark_classes('voc20b')


def _fake_clone(root, background_label=20, mapping='pred[pred >= 20] = 20'):
    """The two files of CAT-Seg that define PAS-20b's labels and its background mapping."""
    (root / 'datasets').mkdir(parents=True)
    table = {0: 255, **{v: v - 1 for v in range(1, 21)}, 255: 255}
    (root / 'datasets' / 'prepare_voc.py').write_text(
        f'clsID_to_trID = {table!r}\nclsID_to_trID_bg = clsID_to_trID.copy()\n'
        f'clsID_to_trID_bg[0] = {background_label}\n')
    (root / 'train_net.py').write_text(f'            {mapping}\n')
    return str(root)


def test_tool_writes_the_background_names_first_and_checks_the_mapping(tmp_path):
    tool = load_tool('misc/official_class_names.py')
    assert tool.background_first(['cat', 'dog', 'sky', 'wall'], 2) == ['sky, wall', 'cat', 'dog']
    text = tool.render('catseg', 'voc20b', ['sky, wall', 'cat', 'dog'])
    assert 'pred[pred >= 20] = 20' in text and text.endswith('sky, wall\ncat\ndog\n')
    assert tool.voc20b_problems(_fake_clone(tmp_path / 'a')) == []
    assert len(tool.voc20b_problems(_fake_clone(tmp_path / 'b', background_label=0))) == 1
    assert len(tool.voc20b_problems(_fake_clone(tmp_path / 'c', mapping='pred = pred'))) == 1


@pytest.fixture(scope='module')
def model():
    from mmovss.converters import catseg_official
    from mmovss.testing.official_parity import default_fixture_root, load_fixture
    from mmovss.testing.official_parity.catseg import regenerate, tiny_model_cfg

    from mmseg.registry import MODELS
    fixture = load_fixture(osp.join(default_fixture_root(), 'catseg', 'seed0'))
    state = {k: v.float() for k, v in fixture.state_dict.items()}
    for key, spec in fixture.meta['regenerated'].items():
        state[key] = regenerate(spec)
    cfg = tiny_model_cfg(fixture.meta, 'catseg_slide')
    cfg['text_encoder']['synonyms'] = 'all'  # the protocol's setting
    # small views (4 windows and the global one) keep the test fast; the rule is the same
    cfg['test_cfg'].update(crop_size=(64, 64), stride=(32, 32), resize_to=(96, 96))
    model = MODELS.build(copy.deepcopy(cfg))
    model.load_state_dict(catseg_official.convert(state), strict=True)
    return model.eval()


#: A PAS-20b-like vocabulary small enough for a fast test: objects, then background names.
OBJECTS = ('aeroplane', 'bicycle', 'bird', 'boat')
BACKGROUND_NAMES = ('bag', 'bed', 'wall', 'sky', 'tree', 'road')


def _sample():
    """A test image resized by the pipeline from 75 x 90 to the 50 x 60 input."""
    return [SegDataSample(metainfo=dict(ori_shape=(75, 90), img_shape=(50, 60),
                                        pad_shape=(50, 60), padding_size=[0, 0, 0, 0]))]


def _released_evaluation(model, x):
    """VOCbEvaluator: the argmax of the names' original-size probabilities, a background name
    mapped to the background label (``pred[pred >= 20] = 20`` for its 20 objects), in mmovss's
    label order (background 0); and the names' probabilities at the input size."""
    model.set_vocabulary([[n] for n in (*OBJECTS, *BACKGROUND_NAMES)])
    model.test_cfg['return_logits'] = True
    probs = model.predict(x, _sample())[0].seg_logits.data  # one map per name
    pred = probs.argmax(0)
    num = len(OBJECTS)
    pred[pred >= num] = num
    names = model.inference(x, model.batch_img_metas(x))[0]
    return torch.where(pred == num, 0, pred + 1), names


@pytest.mark.parametrize('mode', ['catseg_slide', 'catseg_whole'])
def test_a_prediction_on_a_background_name_is_background(model, mode):
    """Names are reduced to classes once the views are averaged and resized to the original
    size, where the released evaluator maps them, not per view in the head."""
    x = torch.randn(1, 3, 50, 60, generator=torch.Generator().manual_seed(0))
    model.test_cfg['mode'] = mode
    with torch.no_grad():
        expected, names = _released_evaluation(model, x)
        model.set_vocabulary([BACKGROUND_NAMES, *((n,) for n in OBJECTS)])
        for return_logits in (False, True):
            model.test_cfg['return_logits'] = return_logits
            result = model.predict(x, _sample())[0]
            assert torch.equal(result.pred_sem_seg.data[0], expected), return_logits
        probs = result.seg_logits.data
        inferred = model.inference(x, model.batch_img_metas(x))[0]
    # both cases occur: pixels won by a background name and by an object
    assert (expected == 0).any() and (expected > 0).any()
    assert probs.shape == (5, 75, 90) and torch.equal(probs.argmax(0), expected)
    num = len(OBJECTS)
    torch.testing.assert_close(inferred[0], names[num:].amax(0))
    torch.testing.assert_close(inferred[1:], names[:num])
