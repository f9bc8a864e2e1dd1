"""SAN's evaluation protocol (``protocol = 'san'``) and its two official behaviours.

* ``configs/_base_/protocols/san/<KEY>.py``: SAN's registered class names per benchmark
  (``configs/_base_/vocabularies/san/``), each ONE prompt even with commas
  (``text_encoder.whole_names``), and the official PIL 640 / 2560 test resize;
* ``MaskClassificationEncoderDecoder`` + ``SANHead(mask_upsample='original')``: mask logits
  resized to the original image before the sigmoid (official ``SAN.forward`` with
  ``SEM_SEG_POSTPROCESS_BEFORE_INFERENCE``; proven equal to the official code by the
  ``resized/`` stages of the SAN official-parity fixture).
"""
import ast
import os
import os.path as osp

import numpy as np
import pytest
import torch

from mmovss.protocols import apply_benchmark, protocol_benchmarks, protocol_of
from mmovss.vocab import Vocabulary, load_benchmark_classes

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
OFFICIAL = [f'san/san-official_vit-{b}_60k_coco-stuff171-640x640.py' for b in ('b16', 'l14')]
SAN_KEYS = ('coco_stuff171', 'voc20', 'pascal_context_59', 'ade20k_150', 'pascal_context_459',
            'ade20k_847')
FIXTURE = osp.join(REPO, 'tests', 'data', 'official_parity', 'san_official', 'seed0')
OFFICIAL_SAN = os.environ.get('SAN_OFFICIAL_REPO', '/work/official/SAN')
OFFICIAL_D2 = os.environ.get('DETECTRON2_REPO', '/work/official/detectron2')


def names_file(key):
    return osp.join(CONFIGS, '_base_', 'vocabularies', 'san', f'{key}.txt')


def published_lines(key):
    with open(names_file(key), encoding='utf-8') as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


@pytest.fixture(scope='module')
def official_cfgs():
    return [Config.fromfile(osp.join(CONFIGS, rel)) for rel in OFFICIAL]


def test_family_covers_the_benchmarks_san_evaluates():
    assert set(protocol_benchmarks('san')) == set(SAN_KEYS)


@pytest.mark.parametrize('key', SAN_KEYS)
def test_resolved_config_per_benchmark(official_cfgs, key):
    for cfg in official_cfgs:
        assert protocol_of(cfg) == 'san'
        out = apply_benchmark(cfg, key)
        assert osp.realpath(out.model.vocabulary) == osp.realpath(names_file(key))
        assert out.model.text_encoder.whole_names is True
        assert out.model.type == 'MaskClassificationEncoderDecoder'
        assert out.model.decode_head.mask_upsample == 'original'
        assert not any(h.get('type') == 'DatasetVocabularyHook' for h in out.custom_hooks or [])
        dataset = Config.fromfile(osp.join(CONFIGS, '_base_', 'datasets', f'{key}.py'))
        assert out.test_dataloader.dataset.type == dataset.test_dataloader.dataset.type
        pipeline = out.test_dataloader.dataset.pipeline
        assert pipeline == out.test_pipeline
        assert pipeline[0] == dict(type='LoadImageFromFile', imdecode_backend='pillow')
        assert pipeline[1] == dict(type='Resize', scale=(2560, 640), keep_ratio=True,
                                   backend='pillow')
        assert out.train_dataloader is None


def test_own_evaluation_equals_its_coco_stuff_protocol(official_cfgs):
    for cfg in official_cfgs:
        out = apply_benchmark(cfg, 'coco_stuff171')
        assert osp.realpath(cfg.model.vocabulary) == osp.realpath(out.model.vocabulary)
        assert cfg.model.text_encoder == out.model.text_encoder
        assert cfg.test_dataloader.dataset.pipeline == out.test_dataloader.dataset.pipeline


def test_other_benchmarks_are_refused_with_the_valid_keys(official_cfgs):
    with pytest.raises(ValueError, match="Protocol 'san' has no setting for benchmark 'voc21'"):
        apply_benchmark(official_cfgs[0], 'voc21')


@pytest.mark.parametrize('key', SAN_KEYS)
def test_names_count_equals_the_benchmark(key):
    vocab = Vocabulary.from_file(names_file(key))
    assert len(vocab) == len(load_benchmark_classes(key))
    assert len(published_lines(key)) == len(vocab)


def test_whole_names_give_the_tokens_of_the_published_names():
    """A line is re-joined with ', ' after parsing; CLIP's tokenizer ignores the white space
    around commas, so the prompt's tokens equal those of the name as published (ADE-847 has
    'c p u , central processor')."""
    import open_clip
    tokenizer = open_clip.tokenizer.SimpleTokenizer()
    checked = 0
    for key in SAN_KEYS:
        for line, names in zip(published_lines(key), Vocabulary.from_file(names_file(key))):
            joined = ', '.join(names)
            if joined != line:
                assert torch.equal(tokenizer([line]), tokenizer([joined])), (key, line)
                checked += 1
    assert checked >= 1  # the 'c p u , ...' name


@pytest.mark.skipif(not osp.isdir(OFFICIAL_SAN) or not osp.isdir(OFFICIAL_D2),
                    reason='official SAN / detectron2 clones not present')
def test_names_equal_the_official_registration_files():
    def literal(path, name):
        for node in ast.parse(open(path).read()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == name
                                                    for t in node.targets):
                return [c['name'] if isinstance(c, dict) else c
                        for c in ast.literal_eval(node.value)]
        raise KeyError(name)
    reg = osp.join(OFFICIAL_SAN, 'san', 'data', 'datasets')
    official = {
        'coco_stuff171': literal(osp.join(reg, 'register_coco_stuff_164k.py'), 'COCO_CATEGORIES'),
        'voc20': literal(osp.join(reg, 'register_voc.py'), 'CLASS_NAMES'),
        'pascal_context_59': literal(osp.join(reg, 'register_pcontext.py'),
                                     'PCONTEXT_SEM_SEG_CATEGORIES'),
        'ade20k_150': literal(osp.join(OFFICIAL_D2, 'detectron2', 'data', 'datasets',
                                       'builtin_meta.py'), 'ADE20K_SEM_SEG_CATEGORIES'),
        'pascal_context_459': literal(osp.join(reg, 'register_pcontext.py'),
                                      'PCONTEXT_FULL_SEM_SEG_CATEGORIES'),
        'ade20k_847': literal(osp.join(reg, 'register_ade20k_full.py'),
                              'ADE20K_SEM_SEG_FULL_CATEGORIES'),
    }
    for key, names in official.items():
        assert published_lines(key) == [n.strip() for n in names], key


# ------------------------------------------------------------------ text encoder option
@pytest.fixture(scope='module')
def tiny_encoders():
    from mmovss.models.text_encoders import OpenCLIPTextEncoder
    from mmovss.testing.official_parity.san_official import TINY
    torch.manual_seed(0)
    split = OpenCLIPTextEncoder(model_name=None, model_cfg=TINY['clip_cfg'], templates='vild')
    whole = OpenCLIPTextEncoder(model_name=None, model_cfg=TINY['clip_cfg'], templates='vild',
                                whole_names=True)
    whole.load_state_dict(split.state_dict())
    return split, whole


def test_comma_names_are_one_prompt_with_whole_names(tiny_encoders):
    split, whole = tiny_encoders
    vocab = Vocabulary(Vocabulary.from_file(names_file('ade20k_150')).classes[:8])
    road = next(i for i, names in enumerate(vocab) if names == ('road', 'route'))
    ours = whole(vocab)
    assert ours.num_names == ours.num_classes == len(vocab)
    assert torch.equal(ours.name_to_class, torch.arange(len(vocab)))
    torch.testing.assert_close(ours.embeds[road], whole.embed_names(['road, route'])[0])
    default = split(vocab)  # default unchanged: one prompt per synonym
    assert default.num_names == vocab.num_names > len(vocab)
    assert default.has_synonyms and not ours.has_synonyms
    assert not torch.allclose(ours.embeds[road], default.embeds[list(vocab.names).index('road')])


def test_duplicate_names_need_the_file_marker(tmp_path):
    lines = ['pot, flowerpot', 'pot']
    path = tmp_path / 'names.txt'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match='both named'):
        Vocabulary.from_file(path)
    path.write_text('# allow-duplicate-names\n# allow-shared-synonyms\n' + '\n'.join(lines))
    assert len(Vocabulary.from_file(path)) == 2


# ------------------------------------------------------------------ final resize order
@pytest.fixture(scope='module')
def fixture_model():
    from mmovss.testing.official_parity import load_fixture
    from mmovss.testing.official_parity.san_official import build_model
    fixture = load_fixture(FIXTURE)
    return fixture, build_model(fixture)


def test_official_resize_order_matters_on_the_fixture(fixture_model):
    """Our default order (scores resized) misses the official ``resized/semantic`` by far more
    than the parity tolerance (1e-4): the fixture proves ``mask_upsample='original'``."""
    from mmovss.testing.official_parity.san_official import predict_resized
    fixture, model = fixture_model
    image = fixture.inputs['resized_image']
    size = fixture.meta['resized_image_original_size']
    want = fixture.stages['resized/semantic']
    got = predict_resized(model, image, size).seg_logits.data.numpy()
    assert np.abs(got - want).max() <= 1e-4
    model.decode_head.mask_upsample = 'logits'
    try:
        other = predict_resized(model, image, size).seg_logits.data.numpy()
    finally:
        model.decode_head.mask_upsample = 'original'
    assert other.shape == want.shape
    assert np.abs(other - want).max() > 5e-4


def test_chunked_labels_equal_the_full_argmax(fixture_model, monkeypatch):
    from mmovss.testing.official_parity.san_official import predict_resized
    fixture, model = fixture_model
    head = model.decode_head
    final_sets = head.final_sets
    gen = torch.Generator().manual_seed(0)

    def random_sets(inputs, class_embeds):  # varied labels (the fixture's hold one class)
        masks, cls = final_sets(inputs, class_embeds)
        return (torch.randn(masks.shape, generator=gen) * 3,
                torch.randn(cls.shape, generator=gen) * 3)
    monkeypatch.setattr(head, 'final_sets', random_sets)
    gen.manual_seed(0)
    full = predict_resized(model, fixture.inputs['image'], (70, 101))
    model.test_cfg.update(return_logits=False, resize_class_chunk=2)
    try:
        gen.manual_seed(0)
        chunked = predict_resized(model, fixture.inputs['image'], (70, 101))
    finally:
        model.test_cfg.update(return_logits=True, resize_class_chunk=16)
    assert 'seg_logits' not in chunked
    assert len(full.pred_sem_seg.data.unique()) > 2
    assert torch.equal(chunked.pred_sem_seg.data, full.pred_sem_seg.data)
    assert torch.equal(full.pred_sem_seg.data, full.seg_logits.data.argmax(0, keepdim=True))


def test_official_order_refuses_slide_and_flip(fixture_model):
    from mmseg.structures import SegDataSample
    _, model = fixture_model
    inputs = torch.zeros(1, 3, 32, 64)
    sample = SegDataSample(metainfo=dict(ori_shape=(32, 64), img_shape=(32, 64), flip=True,
                                         flip_direction='horizontal'))
    with pytest.raises(NotImplementedError, match='does not undo flips'):
        model.predict(inputs, [sample])
    model.test_cfg['mode'] = 'slide'
    try:
        with pytest.raises(ValueError, match="mask_upsample='original'.*whole-image"):
            model.predict(inputs, [SegDataSample(metainfo=dict(ori_shape=(32, 64)))])
    finally:
        model.test_cfg['mode'] = 'whole'


def test_san_head_rejects_an_unknown_order():
    from mmovss.models.decode_heads import SANHead
    from mmovss.testing.official_parity.san_official import TINY
    with pytest.raises(ValueError, match="mask_upsample must be 'logits' or 'original'"):
        SANHead(clip=dict(model_cfg=TINY['clip_cfg']), start_block=4, mask_upsample='scores')
