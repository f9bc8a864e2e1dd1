"""CAT-Seg's evaluation modes reduce a class's names at the original size.

CAT-Seg (github.com/KU-CVLAB/CAT-Seg @ 6d3a188a) evaluates PAS-20b with ``datasets/voc20b.json``:
the 20 VOC classes, then 39 names, each embedded and aggregated as a class of its own;
``VOCbEvaluator`` (``train_net.py``) takes the argmax of the original-size probabilities of the
59 names and maps every name after the 20 objects to the background label
(``pred[pred >= 20] = 20``). With the background names as the synonyms of one class,
``CATSegEncoderDecoder`` must give the same labels.
"""
import copy
import os.path as osp

import pytest
import torch

from mmseg.structures import SegDataSample


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
