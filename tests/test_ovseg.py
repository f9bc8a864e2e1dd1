"""OVSeg: two-stage forward/loss on tiny models, the ensemble against
hand-computed values, mask prompt tuning trains only the prompts, the region
data (dataset, pseudo-labels)."""
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import mmovss  # noqa: F401
from mmovss.datasets.ovseg_region_builder import pseudo_label_regions
from mmovss.io import UnsafeOutputError
from mmovss.models.decode_heads.ovseg_head import ovseg_ensemble
from mmovss.models.segmentors.two_stage_mask_prompt_tuner import multi_positive_clip_loss
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample


def _load_tool():
    from mmovss.testing.tools import load_tool
    return load_tool('ovseg/build_region_data.py')


CLIP = tiny_clip_cfg('vit')
PROMPT_CLIP = dict(type='RegionCLIPClassifier', clip=dict(type='OpenCLIPViT', model_cfg=CLIP),
                   crop_size=16, mask_prompt_depth=1)
TEXT = dict(type='OpenCLIPTextEncoder', model_cfg=CLIP, templates='single')


def ovseg_cfg():
    return dict(
        type='TwoStageEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[120., 110., 100.],
                               std=[60., 60., 60.], bgr_to_rgb=True),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=8,
                      norm_cfg=dict(type='BN')),
        text_encoder=TEXT,
        decode_head=dict(type='OVSegHead', in_channels=[8, 16, 32, 64], embed_dim=32,
                         channels=32, mask_channels=32, num_queries=4, num_layers=1,
                         num_heads=2, ffn_channels=64, region_classifier=PROMPT_CLIP,
                         criterion=dict(type='MaskClassificationLoss', num_points=64)),
        vocabulary=['cat', 'dog', 'sky'])


def test_ovseg_two_stage_forward_loss_and_vocabulary_swap():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(ovseg_cfg()).train()
    s = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32)))
    s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 32)))
    losses = model.loss(torch.randn(2, 3, 32, 32), [s, s.clone()])
    assert set(losses) == {'decode.loss_cls', 'decode.loss_mask', 'decode.loss_dice'}
    sum(losses.values()).backward()
    assert model.decode_head.region_classifier.mask_prompts.grad is None  # inference only
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ensembled = model._forward(x)
        model.decode_head.ensemble_weight = 0.0
        mask_only = model._forward(x)
        model.set_vocabulary(['cat', 'dog', 'sky', 'road', 'tree'])
        five = model._forward(x)
    assert ensembled.shape == (1, 3, 8, 8) and five.shape == (1, 5, 8, 8)
    assert not torch.allclose(ensembled, mask_only)


def test_skip_score_threshold_is_exact_at_zero_and_bounded(monkeypatch):
    from test_zegformer import check_skipping
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(ovseg_cfg()).eval()
    # skipped proposals keep p_mask^(1 - w): at most t^(1 - w) from the ensemble
    check_skipping(model, 1 - model.decode_head.ensemble_weight, monkeypatch)


def test_ensemble_matches_hand_computed_values():
    p_mask = torch.tensor([[[0.6, 0.4], [0.2, 0.8]]])
    p_clip = torch.tensor([[[0.1, 0.9], [0.5, 0.5]]])
    valid = torch.tensor([[True, False]])
    out = ovseg_ensemble(p_mask, p_clip, valid, weight=0.7)
    expect = [[0.6 ** 0.3 * 0.1 ** 0.7, 0.4 ** 0.3 * 0.9 ** 0.7],
              [0.2 ** 0.3, 0.8 ** 0.3]]  # empty mask: p_clip = 1
    assert out[0].tolist()[0] == pytest.approx(expect[0], rel=1e-5)
    assert out[0].tolist()[1] == pytest.approx(expect[1], rel=1e-5)


def test_mask_prompts_replace_only_fully_masked_patches():
    init_default_scope('mmseg')
    classifier = MODELS.build(PROMPT_CLIP).eval()
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0] = True                 # nothing masked out: prompts unused
    masks[1, :8, :3] = True         # only the top-left patch (8x8) is covered
    assert classifier.masked_patches(masks).tolist() == [[False] * 4,
                                                         [False, True, True, True]]
    crops = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        with_prompts = classifier.encode(crops, masks)
        classifier.mask_prompt_depth, prompts = 0, classifier.mask_prompts
        classifier.mask_prompts = None
        plain = classifier.encode(crops)
        classifier.mask_prompt_depth, classifier.mask_prompts = 1, prompts
    torch.testing.assert_close(with_prompts[0], plain[0])
    assert not torch.allclose(with_prompts[1], plain[1])


def test_mask_prompt_tuning_changes_only_the_prompts():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    tuner = MODELS.build(dict(
        type='MaskPromptTuner', region_classifier=PROMPT_CLIP, text_encoder=TEXT,
        vocabulary=['cat', 'dog', 'sky'],
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.8, 116.7, 104.1],
                               std=[68.5, 66.6, 70.3], bgr_to_rgb=True,
                               size=(16, 16))))
    tuner.train()
    trainable = [n for n, p in tuner.named_parameters() if p.requires_grad]
    assert trainable == ['region_classifier.mask_prompts']
    before = {k: v.clone() for k, v in tuner.state_dict().items()}
    batch = []
    for label in (0, 1, 1, 2):
        mask = torch.zeros(1, 16, 16, dtype=torch.long)
        mask[:, 4:12, :6] = 1
        s = SegDataSample(metainfo=dict(region_label=label, img_shape=(16, 16)))
        s.gt_sem_seg = PixelData(data=mask)
        batch.append(s)
    data = dict(inputs=[torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8)
                        for _ in batch], data_samples=batch)
    optim = torch.optim.SGD([p for p in tuner.parameters() if p.requires_grad], lr=10.0)
    data = tuner.data_preprocessor(data, True)
    loss = tuner(**data, mode='loss')['loss_contrastive']
    loss.backward()
    optim.step()
    changed = [k for k, v in tuner.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ['region_classifier.mask_prompts']


def test_contrastive_loss_hand_computed():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    # distinct labels: CLIP's loss over the batch's classes {0, 1}
    loss = multi_positive_clip_loss(logits, torch.tensor([0, 1]))
    i2t = (-math.log(math.e ** 2 / (math.e ** 2 + 1)) - math.log(math.e / (1 + math.e))) / 2
    t2i = (-math.log(math.e ** 2 / (math.e ** 2 + 1)) - math.log(math.e / (1 + math.e))) / 2
    assert loss.item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)
    # repeated label: both images are positives of class 2
    loss = multi_positive_clip_loss(logits, torch.tensor([2, 2]))
    i2t = 0.0  # one class in the batch
    t2i = -(math.log(math.e / (math.e + 1)) + math.log(1 / (math.e + 1))) / 2
    assert loss.item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)


def test_pseudo_labels_pick_the_most_similar_noun():
    regions = torch.tensor([[1.0, 0.1], [0.0, 2.0], [-1.0, -1.0]])
    nouns = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -0.9]])
    labels, scores = pseudo_label_regions(regions, nouns)
    assert labels.tolist() == [0, 1, 2]
    assert scores[1].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match='no nouns'):
        pseudo_label_regions(regions, nouns[:0])


def test_region_crop_dataset_loads_regions(tmp_path):
    for sub in ('crops', 'masks'):
        (tmp_path / sub).mkdir()
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(tmp_path / 'crops/0.png')
    mask = np.zeros((16, 16), np.uint8)
    mask[2:9, 3:7] = 1
    Image.fromarray(mask).save(tmp_path / 'masks/0.png')
    (tmp_path / 'regions.json').write_text(json.dumps(dict(
        nouns=['cat', 'dog'],
        regions=[dict(crop='crops/0.png', mask='masks/0.png', noun='dog')])))
    dataset = DATASETS.build(dict(
        type='RegionCropDataset', data_root=str(tmp_path), ann_file='regions.json',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs',
                       meta_keys=('img_path', 'img_shape', 'ori_shape', 'region_label'))]))
    assert dataset.metainfo['classes'] == ('cat', 'dog')
    item = dataset[0]
    assert item['data_samples'].region_label == 1
    assert item['data_samples'].gt_sem_seg.data.sum() == 7 * 4
    (tmp_path / 'regions.json').write_text(json.dumps(dict(
        nouns=['cat'], regions=[dict(crop='crops/0.png', mask='masks/0.png', noun='dog')])))
    with pytest.raises(ValueError, match='not in "nouns"'):
        DATASETS.build(dict(type='RegionCropDataset', data_root=str(tmp_path)))


def test_build_region_data_keeps_one_split_of_a_mapping_caption_file(tmp_path):
    """tools/ovseg/build_region_data.py end to end on OVShapes-style captions
    (one file, every split): ``--file-prefix train/`` leaves val out."""
    rng = np.random.default_rng(0)
    captions = {}
    for split in ('train', 'val'):
        (tmp_path / 'img' / split).mkdir(parents=True)
        for i in range(2):
            name = f'{split}/{i}.png'
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(
                tmp_path / 'img' / name)
            captions[name] = [f'a red circle and a blue {split} square.']
    (tmp_path / 'captions.json').write_text(json.dumps(captions))
    torch.manual_seed(0)
    init_default_scope('mmseg')
    model = MODELS.build(ovseg_cfg())
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'model.pth')
    (tmp_path / 'cfg.py').write_text(f'model = {ovseg_cfg()!r}\n')
    tool = _load_tool()
    common = [str(tmp_path / 'cfg.py'), str(tmp_path / 'model.pth'),
              '--captions', str(tmp_path / 'captions.json'), '--images',
              str(tmp_path / 'img'), '--min-area', '0', '--device', 'cpu']
    regions = tool.main(common + ['--out', str(tmp_path / 'train'),
                                  '--file-prefix', 'train/'])
    every = tool.main(common + ['--out', str(tmp_path / 'all')])
    assert regions and {r['image'] for r in regions} <= {'0.png', '1.png'}
    nouns = {r['noun'] for r in regions}
    assert 'val' not in nouns and nouns <= {'red', 'circle', 'blue', 'train', 'square'}
    assert len(every) > len(regions)  # val images count without the prefix
    saved = json.loads((tmp_path / 'train' / 'regions.json').read_text())
    assert len(saved['regions']) == len(regions)
    assert (tmp_path / 'train' / regions[0]['crop']).is_file()


def test_build_region_data_refuses_an_out_inside_the_images(tmp_path):
    """The output guard (mmovss.io) runs before the model is built: an --out
    inside --images, or a non-empty --out without --overwrite, is refused and
    nothing is written."""
    (tmp_path / 'img').mkdir()
    (tmp_path / 'img' / 'a.png').write_bytes(b'not read')
    (tmp_path / 'captions.json').write_text('{}')
    tool = _load_tool()
    common = ['cfg.py', 'model.pth', '--captions', str(tmp_path / 'captions.json'),
              '--images', str(tmp_path / 'img'), '--device', 'cpu']
    with pytest.raises(ValueError, match='lies inside the protected folder'):
        tool.main(common + ['--out', str(tmp_path / 'img' / 'regions')])
    assert not (tmp_path / 'img' / 'regions').exists()
    (tmp_path / 'old').mkdir()
    (tmp_path / 'old' / 'regions.json').write_text('{}')
    with pytest.raises(ValueError, match='not empty'):
        tool.main(common + ['--out', str(tmp_path / 'old')])
    assert (tmp_path / 'old' / 'regions.json').read_text() == '{}'


def _ovshapes_model(name):
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(repo, 'configs', 'ovshapes', name))
    return MODELS.build(cfg.model)


def test_merged_mask_prompts_load_strictly_into_the_prompted_ovshapes_config():
    """OVSeg's two runs on OVShapes: the tuner's prompts go into the mask
    model's checkpoint, which loads strictly into the prompted config."""
    from mmovss.models.segmentors import merge_mask_prompts
    torch.manual_seed(0)
    mask_model = _ovshapes_model('ovseg_tiny-clip_3k_ovshapes-seen.py')
    tuner = _ovshapes_model('ovseg_tiny-clip_mask-prompt-tuning_ovshapes-regions.py')
    with torch.no_grad():
        tuner.region_classifier.mask_prompts.normal_()
    merged, taken = merge_mask_prompts(mask_model.state_dict(), tuner.state_dict())
    assert taken == ['decode_head.region_classifier.mask_prompts']
    prompted = _ovshapes_model('ovseg-mpt_tiny-clip_3k_ovshapes-seen.py')
    prompted.load_state_dict(merged, strict=True)
    assert torch.equal(prompted.decode_head.region_classifier.mask_prompts,
                       tuner.region_classifier.mask_prompts)
    for key, value in mask_model.state_dict().items():
        assert torch.equal(prompted.state_dict()[key], value), key
    # the prompts change the crop embeddings of masked crops
    pixels = torch.rand(3, 64, 64) * 255
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 10:20] = True  # an L: its box holds fully masked-out patches
    masks[0, 30:40, 10:50] = True
    prompted.eval()
    mask_model.eval()
    with torch.no_grad():
        with_prompts = prompted.decode_head.region_classifier.region_embeddings(pixels, masks)
        without = mask_model.decode_head.region_classifier.region_embeddings(pixels, masks)
    assert not torch.allclose(with_prompts, without, atol=1e-4)


def test_merge_mask_prompts_refuses_another_clip_or_depth():
    from mmovss.models.segmentors import merge_mask_prompts
    mask_state = {'decode_head.region_classifier.clip.w': torch.ones(2),
                  'decode_head.mask_decoder.q': torch.zeros(3)}
    tuner_state = {'region_classifier.clip.w': torch.ones(2),
                   'region_classifier.mask_prompts': torch.zeros(3, 4),
                   'text_encoder.t': torch.ones(1)}
    merged, taken = merge_mask_prompts(mask_state, tuner_state)
    assert taken == ['decode_head.region_classifier.mask_prompts']
    assert 'text_encoder.t' not in merged and 'decode_head.text_encoder.t' not in merged
    other = dict(tuner_state, **{'region_classifier.clip.w': torch.zeros(2)})
    with pytest.raises(ValueError, match='frozen CLIP weight'):
        merge_mask_prompts(mask_state, other)
    untrained = dict(mask_state, **{'decode_head.region_classifier.mask_prompts': torch.ones(3, 4)})
    replaced, _ = merge_mask_prompts(untrained, tuner_state)
    assert torch.equal(replaced['decode_head.region_classifier.mask_prompts'], torch.zeros(3, 4))
    deeper = dict(mask_state, **{'decode_head.region_classifier.mask_prompts': torch.zeros(1, 4)})
    with pytest.raises(ValueError, match='mask_prompt_depth'):
        merge_mask_prompts(deeper, tuner_state)
    with pytest.raises(ValueError, match='MaskPromptTuner'):
        merge_mask_prompts(mask_state, {'text_encoder.t': torch.ones(1)})
    with pytest.raises(ValueError, match='region classifier'):
        merge_mask_prompts({'decode_head.x': torch.ones(1)}, tuner_state)


def test_merge_mask_prompts_command_line_never_overwrites(tmp_path, capsys):
    """The refusals through the tool's ``main`` in this process; the merge
    itself once through its command line."""
    import subprocess
    import sys

    from mmovss.testing.tools import load_tool
    tool = load_tool('ovseg/merge_mask_prompts.py')
    tool_path = tool.__file__
    mask = str(tmp_path / 'mask.pth')
    prompts = str(tmp_path / 'prompts.pth')
    torch.save(dict(state_dict={'decode_head.region_classifier.clip.w': torch.ones(2)},
                    meta=dict(iter=3)), mask)
    torch.save(dict(state_dict={'region_classifier.clip.w': torch.ones(2),
                                'region_classifier.mask_prompts': torch.full((1, 4), 2.0)}),
               prompts)
    out = tmp_path / 'merged.pth'

    def refused(*args):
        with pytest.raises((SystemExit, UnsafeOutputError)) as exc:
            tool.main(list(args))
        assert exc.type is UnsafeOutputError or exc.value.code not in (0, None)
        return str(exc.value) + capsys.readouterr().err

    assert 'would overwrite an input' in refused(mask, prompts, mask)  # never the output
    assert torch.load(mask, weights_only=True)['meta'] == dict(iter=3)
    done = subprocess.run([sys.executable, tool_path, mask, prompts, str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    merged = torch.load(str(out), weights_only=True)
    assert torch.equal(merged['state_dict']['decode_head.region_classifier.mask_prompts'],
                       torch.full((1, 4), 2.0))
    assert merged['meta']['iter'] == 3
    assert '--overwrite' in refused(mask, prompts, str(out))
    tool.main([mask, prompts, str(out), '--overwrite'])
    assert 'none.pth' in refused(str(tmp_path / 'none.pth'), prompts, str(tmp_path / 'x.pth'))
    # a folder as OUT, even with --overwrite (was IsADirectoryError from the rename)
    (tmp_path / 'folder').mkdir()
    assert 'is a folder' in refused(mask, prompts, str(tmp_path / 'folder'), '--overwrite')


def _tiny_region_inputs(tmp_path, unseen=None):
    """Two training images with captions, a tiny OVSeg mask model and its config;
    with ``unseen``, a ``split.json`` beside the captions as in an OVShapes world."""
    rng = np.random.default_rng(0)
    (tmp_path / 'img' / 'train').mkdir(parents=True)
    captions = {}
    for i in range(2):
        name = f'train/{i}.png'
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(tmp_path / 'img' / name)
        captions[name] = ['a plain red circle and a blue square.']
    (tmp_path / 'captions.json').write_text(json.dumps(captions))
    if unseen is not None:
        (tmp_path / 'split.json').write_text(json.dumps(dict(seen=['circle'], unseen=unseen)))
    torch.manual_seed(0)
    init_default_scope('mmseg')
    torch.save(dict(state_dict=MODELS.build(ovseg_cfg()).state_dict()), tmp_path / 'model.pth')
    (tmp_path / 'cfg.py').write_text(f'model = {ovseg_cfg()!r}\n')
    return [str(tmp_path / 'cfg.py'), str(tmp_path / 'model.pth'),
            '--captions', str(tmp_path / 'captions.json'), '--images', str(tmp_path / 'img'),
            '--min-area', '0', '--device', 'cpu']


def test_build_region_data_refuses_unseen_names_among_the_nouns(tmp_path):
    """A phrase vocabulary holding an unseen class name of the world (e.g. its
    classes.txt) labelled regions with it: the mask prompts trained on an unseen
    class without a word. Refused before anything is written; the ablation opts in."""
    common = _tiny_region_inputs(tmp_path, unseen=['plain red'])
    (tmp_path / 'names.txt').write_text('plain red\ncircle\nsquare\n')
    common += ['--word-vocabulary', str(tmp_path / 'names.txt')]
    tool = _load_tool()
    with pytest.raises(ValueError, match=r"unseen class names \['plain red'\]"):
        tool.main(common + ['--out', str(tmp_path / 'r')])
    assert not (tmp_path / 'r').exists()
    regions = tool.main(common + ['--out', str(tmp_path / 'r'), '--allow-unseen-nouns'])
    assert regions and {r['noun'] for r in regions} <= {'plain red', 'circle', 'square'}


@pytest.mark.parametrize('option', [['--max-regions', '0'], ['--max-regions', '-1'],
                                    ['--min-area', '-0.1'], ['--min-area', '1']])
def test_build_region_data_refuses_limits_that_drop_regions(tmp_path, capsys, option):
    """``--max-regions -1`` dropped the smallest proposal of every image (a slice
    ``[:-1]``), ``0`` wrote an empty regions.json; ``--min-area`` is a fraction."""
    (tmp_path / 'captions.json').write_text('{}')
    with pytest.raises(SystemExit) as exc:
        _load_tool().main(['cfg.py', 'model.pth', '--captions', str(tmp_path / 'captions.json'),
                           '--images', str(tmp_path), '--out', str(tmp_path / 'r'),
                           '--device', 'cpu', *option])
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err


def test_an_interrupted_overwrite_leaves_no_index_of_the_earlier_regions(tmp_path, monkeypatch):
    """``--overwrite`` over earlier region data, killed after the first new crop:
    before, the earlier regions.json stayed and named the new crops with the old
    nouns (a later training read them without a word)."""
    from mmovss.datasets import ovseg_region_builder as builder
    common = _tiny_region_inputs(tmp_path)
    tool = _load_tool()
    out = str(tmp_path / 'r')
    assert tool.main(common + ['--out', out])
    real = builder.image_regions

    def killed(*args, **kwargs):
        monkeypatch.setattr(builder, 'image_regions', lambda *a, **k: 1 / 0)
        return real(*args, **kwargs)

    monkeypatch.setattr(builder, 'image_regions', killed)
    with pytest.raises(ZeroDivisionError):
        tool.main(common + ['--out', out, '--overwrite'])
    assert not (tmp_path / 'r' / 'regions.json').exists()
    with pytest.raises(FileNotFoundError):
        DATASETS.build(dict(type='RegionCropDataset', data_root=out))


def test_merging_into_a_merged_checkpoint_is_refused(tmp_path, capsys):
    """A merged checkpoint given as MASK_CKPT (merged twice, or another tuner's
    prompts over the first): before, its tuned prompts were replaced without a
    word; now refused, ``--replace-prompts`` opts in."""
    from mmovss.testing.tools import load_tool
    tool = load_tool('ovseg/merge_mask_prompts.py')
    mask, first, second = (str(tmp_path / n) for n in ('mask.pth', 'a.pth', 'b.pth'))
    torch.save(dict(state_dict={'decode_head.region_classifier.clip.w': torch.ones(2)},
                    meta=dict(iter=3)), mask)
    for path, value in ((first, 1.0), (second, 2.0)):
        torch.save(dict(state_dict={'region_classifier.clip.w': torch.ones(2),
                                    'region_classifier.mask_prompts': torch.full((1, 4), value)}),
                   path)
    merged, again = str(tmp_path / 'merged.pth'), str(tmp_path / 'again.pth')
    tool.main([mask, first, merged])
    with pytest.raises(SystemExit) as exc:
        tool.main([merged, second, again])
    assert exc.value.code not in (0, None) and 'already holds mask prompts merged from' in \
        str(exc.value) and 'a.pth' in str(exc.value)
    assert not osp.exists(again)
    tool.main([merged, second, again, '--replace-prompts'])
    state = torch.load(again, weights_only=True)
    assert torch.equal(state['state_dict']['decode_head.region_classifier.mask_prompts'],
                       torch.full((1, 4), 2.0))
    assert state['meta']['mask_prompts_from'] == osp.abspath(second)
