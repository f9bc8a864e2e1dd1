"""A CLIP swapped in one part of a config only is refused at build time.

The towers of an open-vocabulary model are one CLIP named several times
(backbone, text encoder, SAN's ``decode_head.clip``, a region classifier's
``clip``) and its input normalisation is the CLIP's. Changing one of them by
inheritance or ``--cfg-options`` used to build and run: image features of one
CLIP scored against text embeddings of another (OVShapes NACLIP 30.3 -> 19.5
mIoU), SigLIP fed OpenAI-normalised images. Both are refused before anything
is built or downloaded (:mod:`mmovss.models.utils.clip_consistency`).
"""
import copy
import os.path as osp

import pytest
import torch

from mmovss.models.utils.clip_consistency import clip_parts

from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _build(model_cfg):
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return MODELS.build(copy.deepcopy(model_cfg))


def _model(rel):
    return Config.fromfile(osp.join(REPO, rel)).model.to_dict()


def test_backbone_weights_swapped_alone_are_refused(tmp_path):
    """`--cfg-options model.backbone.pretrained=FILE` without the text encoder."""
    model = _model('configs/ovshapes/naclip_tiny-clip_ovshapes.py')
    state = torch.load(model['backbone']['pretrained'], map_location='cpu', weights_only=True)
    key = next(k for k in state if k.startswith('visual.'))
    state[key] = state[key] + 1  # another CLIP of the same architecture
    other = tmp_path / 'other_tiny_clip.pt'
    torch.save(state, other)
    model['backbone']['pretrained'] = str(other)
    with pytest.raises(ValueError, match=r'model\.backbone .*model\.text_encoder .*not the '
                                         r'same CLIP \(pretrained differ\)'):
        _build(model)
    # a copy of the same file is the same CLIP
    same = tmp_path / 'copy.pt'
    same.write_bytes(open(model['text_encoder']['pretrained'], 'rb').read())
    model['backbone']['pretrained'] = str(same)
    model['text_encoder']['templates'] = ['{}']
    assert _build(model) is not None


def test_other_tag_or_model_in_one_part_is_refused_before_any_download():
    model = _model('configs/sclip/sclip_vit-b16_voc21.py')
    tag = copy.deepcopy(model)
    tag['backbone']['pretrained'] = 'laion2b_s34b_b88k'
    with pytest.raises(ValueError, match=r"pretrained='laion2b_s34b_b88k'.*pretrained='openai'"
                                         r'.*\(pretrained differ\)'):
        _build(tag)
    name = copy.deepcopy(model)  # design.md's "swap model.backbone by inheritance", alone
    name['backbone']['model_name'] = 'ViT-L-14'
    with pytest.raises(ValueError, match=r'\(model_name differ\)'):
        _build(name)
    san = _model('configs/san/san_vit-b16_60k_coco-stuff171-640x640.py')
    san['backbone']['model_name'] = san['text_encoder']['model_name'] = 'ViT-L-14-336'
    with pytest.raises(ValueError, match=r'model\.decode_head\.clip'):
        _build(san)  # SAN's third copy of the CLIP forgotten


def test_input_normalisation_of_another_clip_is_refused():
    # NACLIP's SigLIP base without its mean/std line: OpenAI CLIP's constants
    model = _model('configs/_base_/models/naclip_siglip-b16.py')
    assert model['data_preprocessor']['mean'] == [127.5] * 3
    model['data_preprocessor'].update(mean=[122.771, 116.746, 104.094],
                                      std=[68.501, 66.632, 70.323])
    with pytest.raises(ValueError, match=r'mean=\[122\.771, .*ViT-B-16-SigLIP.*'
                                         r'mean=\[127\.5, 127\.5, 127\.5\]'):
        _build(model)
    # ImageNet's constants on an OpenAI CLIP are another normalisation too
    clip = _model('configs/_base_/models/clip-cosine_vit-b16.py')
    clip['data_preprocessor'].update(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    with pytest.raises(ValueError, match=r'data_preprocessor\.mean=\[122\.7709'):
        _build(clip)


def test_shipped_configs_name_one_clip_in_every_part():
    """SAN's three copies and a region classifier's CLIP are found."""
    san = _model('configs/san/san_vit-b16_60k_coco-stuff171-640x640.py')
    assert [p for p, _ in clip_parts(san)] == ['backbone', 'text_encoder', 'decode_head.clip']
    zeg = _model('configs/zegformer/zegformer_r101-vit-b16_60k_coco-stuff171-640x640.py')
    assert [p for p, _ in clip_parts(zeg)] == ['text_encoder',
                                              'decode_head.region_classifier.clip']
    proxy = _model('configs/proxyclip/proxyclip_vit-b16-dino-b8_voc21.py')
    assert [p for p, _ in clip_parts(proxy)] == ['backbone', 'text_encoder']  # DINO is not


def test_a_clip_variable_set_in_a_child_config_is_warned_about(tmp_path, capsys):
    """mmengine substitutes a base's ``clip_model`` where the base uses it: a
    child that sets only the variable built the base's CLIP, silently."""
    from mmovss.runtime import load_config

    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmovss_clip_variable_test')
    child = tmp_path / 'clip-cosine_vit-l14.py'
    child.write_text(f"_base_ = ['{REPO}/configs/_base_/models/clip-cosine_vit-b16.py']\n"
                     "clip_model = 'ViT-L-14'\n")
    cfg = load_config(str(child))
    text = ''.join(capsys.readouterr())
    assert cfg.model.backbone.model_name == 'ViT-B-16'  # what mmengine does
    assert "WARNING: the config sets clip_model='ViT-L-14', but no CLIP part" in text
    assert 'model.backbone.model_name=ViT-L-14 model.text_encoder.model_name=ViT-L-14' in text
    load_config(osp.join(REPO, 'configs/_base_/models/clip-cosine_vit-b16.py'),
                {'clip_pretrained': 'laion2b_s34b_b88k'})
    assert "clip_pretrained='laion2b_s34b_b88k'" in ''.join(capsys.readouterr())


def test_shipped_configs_clip_variables_name_their_clip():
    """The ViT-L/14 and ViT-H/14 bases kept the ViT-B/16 base's ``clip_model``
    (a reader of ``cfg.clip_model`` got the wrong CLIP); they name theirs once."""
    import glob

    from mmovss.models.utils.clip_consistency import stale_clip_variables
    stale = []
    # the model bases (a method config is a delta over one; every config:
    # tests/test_every_config_builds.py loads them all) and the one method
    # config that names a text tower of its own
    paths = sorted(glob.glob(osp.join(REPO, 'configs/_base_/models/*.py'))) + [osp.join(
        REPO, 'configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py')]
    for path in paths:
        cfg = Config.fromfile(path)
        if stale_clip_variables(cfg):
            stale.append(osp.relpath(path, REPO))
    assert stale == []


def test_parts_that_undo_the_input_normalisation_must_use_the_inputs():
    """ProxyCLIP / CorrCLIP / Trident backbones and the mask-vote refinement turn
    the input back into pixels with OpenAI CLIP's constants by default: a CLIP
    swap that fixed data_preprocessor (as the check above asks) but not them
    fed their DINO / SAM / mask generator wrongly coloured images silently."""
    import mmovss  # noqa: F401  (registers the types whose defaults are read)
    from mmovss.models.utils.clip_consistency import check_input_unnormalisation
    siglip = dict(mean=[127.5] * 3, std=[127.5] * 3)
    backbone = dict(type='ProxyCLIPViT', model_name='ViT-B-16-SigLIP', pretrained='webli')
    with pytest.raises(ValueError, match=r'model.backbone turns the input back into pixels '
                                         r'with input_mean=\[122.771'):
        check_input_unnormalisation(dict(backbone=backbone), siglip)
    fixed = dict(backbone, input_mean=[127.5] * 3, input_std=[127.5] * 3)
    check_input_unnormalisation(dict(backbone=fixed), siglip)
    head = dict(mask_refinement=dict(type='MaskVoteRefinement', generator=dict(type='X')))
    with pytest.raises(ValueError, match='model.decode_head.mask_refinement'):
        check_input_unnormalisation(dict(backbone=fixed, decode_head=head), siglip)
    openai = dict(mean=[122.7709383, 116.7460125, 104.09373615],
                  std=[68.5005327, 66.6321579, 70.32316305])
    check_input_unnormalisation(dict(backbone=backbone, decode_head=head), openai)


def test_the_crop_classifier_normalises_as_its_clip():
    """ZegFormer / OVSeg / SAM + CLIP crops: clip_mean / clip_std default to
    OpenAI CLIP's whatever the region classifier's CLIP is."""
    from mmovss.models.utils.clip_consistency import check_region_classifier_normalisation
    siglip = dict(type='OpenCLIPTimmViT', model_name='ViT-B-16-SigLIP', pretrained='webli')
    head = dict(region_classifier=dict(type='RegionCLIPClassifier', clip=siglip))
    with pytest.raises(ValueError, match=r'region_classifier normalises its crops with '
                                         r'clip_mean=\[122.7709'):
        check_region_classifier_normalisation(dict(decode_head=head))
    head['region_classifier'].update(clip_mean=[127.5] * 3, clip_std=[127.5] * 3)
    check_region_classifier_normalisation(dict(decode_head=head))
    openai = dict(type='OpenCLIPViT', model_name='ViT-B-16', pretrained='openai')
    check_region_classifier_normalisation(
        dict(decode_head=dict(region_classifier=dict(type='RegionCLIPClassifier', clip=openai))))


def test_registered_default_is_the_types_init_default():
    """The defaults the checks (and the tag download of tools/test.py) read for
    the keys a config part leaves out."""
    from mmovss.models.utils.config_defaults import registered_default
    assert registered_default(dict(type='OpenCLIPViT'), 'model_name') == 'ViT-B-16'
    assert registered_default(dict(type='OpenCLIPViT', model_name='RN50'),
                              'model_name') == 'ViT-B-16'  # the type's, not the part's
    assert registered_default(dict(type='RegionCLIPClassifier'), 'clip_mean') is None
    assert registered_default(dict(type='RegionCLIPClassifier'), 'clip') is None  # required
    assert registered_default(dict(type='OpenCLIPViT'), 'no_such_argument') is None
    assert registered_default(dict(type='NoSuchType'), 'pretrained') is None
    assert registered_default(dict(), 'pretrained') is None
