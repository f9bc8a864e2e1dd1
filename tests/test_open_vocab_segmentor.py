"""OpenVocabEncoderDecoder: vocabulary swap, dataset vocabulary, batched
slide inference, chunked resize, and an end-to-end mmengine test run."""
import copy
from types import SimpleNamespace

import pytest
import torch

from mmovss.engine import DatasetVocabularyHook
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.structures import PixelData
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CFG = tiny_clip_cfg('vit')
MODEL = dict(
    type='OpenVocabEncoderDecoder',
    backbone=dict(type='OpenCLIPViT', model_cfg=CFG),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG,
                      templates='single'),
    decode_head=dict(type='CLIPCosineHead', in_channels=32),
    test_cfg=dict(mode='whole'))


@pytest.fixture(scope='module')
def model():
    model = MODELS.build(copy.deepcopy(MODEL))
    model.init_weights()
    return model.eval()


def sample(ori_shape, img_shape=None, **meta):
    img_shape = img_shape or ori_shape
    return SegDataSample(metainfo=dict(ori_shape=ori_shape, img_shape=img_shape,
                                       pad_shape=img_shape, **meta))


def test_vocabulary_swap_changes_output_channels(model):
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        model.set_vocabulary(['cat, kitty', 'dog', 'sky'])
        three = model._forward(x)
        out = model.predict(x, [sample((40, 48))])
        model.set_vocabulary(['cat, kitty', 'dog', 'sky', 'road', 'tree'])
        five = model._forward(x)
    assert three.shape == (1, 3, 5, 6) and five.shape == (1, 5, 5, 6)
    torch.testing.assert_close(five[:, :3], three)  # same weights
    assert model.num_classes == model.decode_head.num_classes == 5
    assert out[0].pred_sem_seg.shape == (40, 48)
    assert int(out[0].pred_sem_seg.data.max()) < 3


def test_explicit_vocabulary_beats_dataset_vocabulary():
    model = MODELS.build(dict(copy.deepcopy(MODEL), vocabulary=['a', 'b']))
    model.set_dataset_vocabulary(dict(classes=('x', 'y', 'z')))
    assert model.vocabulary.class_names == ('a', 'b')
    fresh = MODELS.build(copy.deepcopy(MODEL))
    with pytest.raises(RuntimeError, match='DatasetVocabularyHook'):
        fresh.class_embeddings()
    fresh.set_dataset_vocabulary(dict(classes=('x', 'y', 'z')))
    assert fresh.vocabulary.class_names == ('x', 'y', 'z')


def test_hook_follows_train_val_and_test_datasets(model):
    def loop(classes):
        dataset = SimpleNamespace(metainfo=dict(classes=classes))
        return SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))

    model._explicit_vocabulary = None
    runner = SimpleNamespace(model=model, train_loop=loop(('cat', 'dog')),
                             val_loop=loop(('sky', 'road', 'car')),
                             test_loop=loop(('a', 'b', 'c', 'd')))
    hook = DatasetVocabularyHook()
    hook.before_train(runner)
    assert model.vocabulary.class_names == ('cat', 'dog')
    hook.before_val(runner)
    assert model.vocabulary.num_classes == 3
    hook.after_val(runner)
    assert model.vocabulary.class_names == ('cat', 'dog')
    hook.before_test(runner)
    assert model.vocabulary.num_classes == 4
    runner.test_loop = loop(None)
    with pytest.raises(ValueError, match='classes'):
        hook.before_test(runner)


def test_batched_slide_equals_one_crop_at_a_time(model):
    model.set_vocabulary(['cat', 'dog', 'sky, clouds', 'road'])
    x = torch.randn(2, 3, 50, 70)
    metas = [dict(ori_shape=(50, 70), img_shape=(50, 70), pad_shape=(50, 70))
             for _ in range(2)]
    model.test_cfg = dict(mode='slide', crop_size=(32, 32), stride=(20, 24),
                          crop_batch_size=5)
    with torch.no_grad():
        batched = model.inference(x, copy.deepcopy(metas))
        # the plain loop: one crop, one forward, summed and averaged
        boxes = model.crop_boxes((50, 70), (32, 32), (20, 24))
        assert len(boxes) == 2 * 3
        preds = torch.zeros(2, 4, 50, 70)
        count = torch.zeros(2, 1, 50, 70)
        for b in range(2):
            for y1, y2, x1, x2 in boxes:
                crop = x[b:b + 1, :, y1:y2, x1:x2]
                meta = [dict(metas[b], img_shape=crop.shape[2:])]
                preds[b, :, y1:y2, x1:x2] += model.encode_decode(crop, meta)[0]
                count[b, :, y1:y2, x1:x2] += 1
    model.test_cfg = dict(mode='whole')
    torch.testing.assert_close(batched, preds / count, atol=1e-5, rtol=1e-5)


def test_chunked_resize_equals_plain_resize(model):
    torch.manual_seed(0)
    logits = torch.randn(2, 37, 13, 17)
    logits[:, 20] = logits[:, 3]  # exact ties: the lower class must win
    logits[0, 30] = logits[0].amax(0) + 1e-3  # a late winner somewhere
    size = (50, 61)
    samples = [sample(size, (13, 17)), sample(size, (13, 17), flip=True,
                                               flip_direction='horizontal')]
    model.test_cfg = dict(mode='whole', resize_class_chunk=5,
                          return_logits=True)
    out = model.postprocess_result(logits, samples)
    model.test_cfg = dict(mode='whole')
    for i, flip in enumerate((False, True)):
        plain = resize(logits[i:i + 1].flip(3) if flip else logits[i:i + 1],
                       size=size, mode='bilinear', align_corners=False)[0]
        assert torch.equal(out[i].pred_sem_seg.data,
                           plain.argmax(0, keepdim=True))
        torch.testing.assert_close(out[i].seg_logits.data, plain)
    assert not (out[0].pred_sem_seg.data == 20).any()
    assert (out[0].pred_sem_seg.data == 30).any()
    # By default no full-size logits of all classes are kept.
    lean = model.postprocess_result(logits[:1], [sample(size, (13, 17))])
    assert 'seg_logits' not in lean[0]


def test_loss_trains_the_head_path(model):
    model.set_vocabulary(['cat', 'dog, puppy', 'sky'])
    x = torch.randn(2, 3, 32, 40)
    samples = []
    for _ in range(2):
        s = sample((32, 40))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 40)))
        samples.append(s)
    losses = model.loss(x, samples)
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    assert torch.isfinite(losses['decode.loss_ce'])


def test_head_rejects_class_sized_arguments():
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='CLIPCosineHead', in_channels=32,
                          num_classes=150))


def test_runner_evaluates_with_the_dataset_vocabulary(tiny_dataset, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    data = tiny_dataset
    cfg = Config(dict(
        default_scope='mmseg',
        work_dir=str(tmp_path),
        model=dict(copy.deepcopy(MODEL), data_preprocessor=dict(
            type='SegDataPreProcessor', mean=[122.8, 116.7, 104.1],
            std=[68.5, 66.6, 70.3], bgr_to_rgb=True, size_divisor=8)),
        test_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                type='BaseSegDataset', data_root=data['data_root'],
                metainfo=dict(classes=data['classes']),
                img_suffix=data['img_suffix'], seg_map_suffix='.png',
                data_prefix=dict(img_path=data['val']['img_path'],
                                 seg_map_path=data['val']['seg_map_path']),
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='LoadAnnotations'),
                          dict(type='PackSegInputs')])),
        test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        test_cfg=dict(type='TestLoop'),
        custom_hooks=[dict(type='DatasetVocabularyHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        log_level='WARNING'))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert runner.model.vocabulary.class_names == data['classes']
    assert 0.0 <= metrics['mIoU'] <= 100.0
