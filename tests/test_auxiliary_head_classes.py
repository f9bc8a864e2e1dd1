"""An mmseg auxiliary head (``FCNHead``) classifies into the channels it was
built with, so it cannot follow the vocabulary as the decode head does: a
training vocabulary of another class count is refused by name (it was an
``IndexError: Target 4 is out of bounds`` with more classes, a device-side
assert on GPU, and silently a channel never trained with fewer)."""
import copy

import pytest
import torch

from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

VIT = tiny_clip_cfg('vit')


def _fcn(num_classes=3):
    return dict(type='FCNHead', in_channels=64, in_index=0, channels=8, num_convs=1,
                concat_input=False, num_classes=num_classes)


def _build(vocabulary, auxiliary_head):
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return MODELS.build(copy.deepcopy(dict(
        type='OpenVocabEncoderDecoder', vocabulary=vocabulary,
        backbone=dict(type='OpenCLIPViT', out_indices=(0, 1, 1, 1), model_name=None,
                      model_cfg=VIT),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_name=None, model_cfg=VIT,
                          templates=['{}']),
        decode_head=dict(type='LSegHead', in_channels=64, in_index=(0, 1, 2, 3), embed_dim=32,
                         channels=16, post_process_channels=(8, 16, 32, 32), patch_size=8),
        auxiliary_head=auxiliary_head)))


def _loss(model, num_classes):
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(32, 32), pad_shape=(32, 32)))
        sample.gt_sem_seg = PixelData(data=torch.arange(32 * 32).view(1, 32, 32) % num_classes)
        samples.append(sample)
    return model.train().loss(torch.randn(2, 3, 32, 32), samples)


@pytest.mark.parametrize('vocabulary', [list('abcde'), list('ab')])
def test_a_training_vocabulary_of_another_class_count_is_refused(vocabulary):
    model = _build(list('abc'), [_fcn(3), _fcn(3)])
    assert 'aux_0.loss_ce' in _loss(model, 3)  # fits: trains
    model.set_vocabulary(vocabulary)
    with pytest.raises(ValueError) as error:
        _loss(model, len(vocabulary))
    message = str(error.value)
    assert message.startswith(f'model.auxiliary_head[0].num_classes=3, model.auxiliary_head[1]'
                              f'.num_classes=3 do not fit the vocabulary trained on '
                              f'({len(vocabulary)} classes: a, b')
    assert (f'set model.auxiliary_head[0].num_classes={len(vocabulary)} and '
            f'model.auxiliary_head[1].num_classes={len(vocabulary)}, or remove') in message


def test_a_single_auxiliary_head_is_named_and_testing_another_vocabulary_works():
    model = _build(list('abcde'), _fcn(3))
    with pytest.raises(ValueError, match=r'^model\.auxiliary_head\.num_classes=3 does not '):
        _loss(model, 5)
    model.set_vocabulary(list('ab'))  # not used in inference: no error
    with torch.no_grad():
        logits = model.eval().encode_decode(torch.randn(1, 3, 32, 32),
                                            [dict(img_shape=(32, 32))])
    assert logits.shape == (1, 2, 32, 32)
