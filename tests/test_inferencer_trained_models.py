"""The inferencer with trained (mask-classification) models: class scores
from MaskFormer-style semantic scores, and no silent random weights.

Before 2026-12-07 the reported score of a SAN / FC-CLIP / ZegFormer / OVSeg
class was a softmax over its unnormalised scores S_c (about 1 / C whatever
the prediction), and a trained config without weights ran with random
learned layers without a word."""
import numpy as np
import pytest
import torch

from mmovss.apis import OpenVocabInferencer
from mmovss.apis.class_stats import class_scores
from mmovss.testing.tools import REPO_ROOT
from mmovss.trained_weights import MissingTrainedWeights

ZEGFORMER = str(REPO_ROOT / 'configs/ovshapes/zegformer_tiny-clip_1k_ovshapes-seen.py')
NAMES = ['sky', 'grass', 'sand', 'wall', 'striped red']


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def test_class_scores_of_unnormalised_mask_scores():
    scores = torch.tensor([[[0.02, 0.10]], [[0.01, 0.30]], [[0.01, 0.00]]])  # (3, 1, 2)
    labels = scores.argmax(0)
    got = class_scores(labels, scores, 'scores')
    np.testing.assert_allclose(got[:2], [0.5, 0.75])  # S_label / sum_c S_c
    assert np.isnan(got[2])
    softmax = class_scores(labels, scores, 'logits')
    assert abs(softmax[0] - 1 / 3) < 0.01  # what was reported before: about 1 / C
    with pytest.raises(ValueError, match='kind must be one of'):
        class_scores(labels, scores, 'odds')


def test_mask_classification_scores_are_normalised_over_classes():
    inferencer = OpenVocabInferencer(ZEGFORMER, device='cpu', vocabulary=NAMES,
                                     allow_random_weights=True)
    assert inferencer.model.decode_head.seg_logits_kind == 'scores'
    image = _image()
    result = inferencer(image)['predictions']
    sample = inferencer(image, return_datasamples=True)
    s = sample.seg_logits.data.float()
    assert (s >= 0).all()  # S_c = sum_q p_q(c) sigmoid(m_q): not logits
    labels = s.argmax(0)
    expected = class_scores(labels, s, 'scores')
    present = ~np.isnan(expected)
    np.testing.assert_allclose(np.asarray(result['scores'])[present], expected[present],
                               rtol=1e-5)
    top = np.nanmax(np.asarray(result['scores']))
    assert top > 1.5 / len(NAMES)  # a softmax of these scores stays near 1 / C


def test_trained_config_without_weights_is_refused_and_load_from_counts(tmp_path):
    with pytest.raises(MissingTrainedWeights, match=r'weights=CHECKPOINT.*'
                       r'allow_random_weights=True'):
        OpenVocabInferencer(ZEGFORMER, device='cpu', vocabulary=NAMES)
    random = OpenVocabInferencer(ZEGFORMER, device='cpu', vocabulary=NAMES,
                                 allow_random_weights=True)
    torch.manual_seed(1)
    for p in random.model.decode_head.parameters():
        p.data.normal_(0, 0.2)
    checkpoint = tmp_path / 'trained.pth'
    torch.save({'state_dict': random.model.state_dict()}, checkpoint)
    expected = random(_image(1))['predictions']['sem_seg']
    by_load_from = OpenVocabInferencer(ZEGFORMER, device='cpu', vocabulary=NAMES,
                                       cfg_options={'load_from': str(checkpoint)})
    np.testing.assert_array_equal(by_load_from(_image(1))['predictions']['sem_seg'], expected)


def _tiny_sclip(**kwargs):
    """SCLIP's published config with the OVShapes tiny CLIP swapped in (offline)."""
    from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
    weights = str(REPO_ROOT / 'mmovss/assets/ovshapes_tiny_clip.pt')
    options = {
        'model.backbone.model_name': None, 'model.backbone.model_cfg': OVSHAPES_CLIP_CFG,
        'model.backbone.pretrained': weights, 'model.text_encoder.model_name': None,
        'model.text_encoder.model_cfg': OVSHAPES_CLIP_CFG,
        'model.text_encoder.pretrained': weights,
        'model.text_encoder.templates': ['a {} object.'], 'model.text_encoder.cache_dir': None,
        'model.decode_head.in_channels': OVSHAPES_CLIP_CFG['embed_dim'],
        'model.test_cfg.crop_size': (64, 64), 'model.test_cfg.stride': (32, 32),
        'test_dataloader.dataset.pipeline.1.scale': (256, 96)}
    return OpenVocabInferencer('sclip', device='cpu', cfg_options=options, **kwargs)


def test_protocol_background_rule_does_not_pick_the_users_first_class():
    """SCLIP's VOC-21 protocol sends pixels below prob_thd to class 0 (its
    background) and spares class 0 the area filter. With the user's classes
    the result must not depend on their order (before: the first class took
    the low-confidence pixels)."""
    inferencer = _tiny_sclip(benchmark='voc21')
    head = inferencer.model.decode_head
    assert head.prob_thd > 0 and head.background_index == 0
    names = ['sky', 'grass', 'sand', 'striped red']
    image = _image(2)
    with pytest.warns(UserWarning, match="class 0 of your vocabulary is 'sky'"):
        first = inferencer(image, vocabulary=names)['predictions']['sem_seg']
    assert head.prob_thd == 0 and head.background_index is None
    order = [3, 0, 2, 1]
    permuted = inferencer(image, vocabulary=[names[i] for i in order])['predictions']
    np.testing.assert_array_equal(np.asarray(order)[permuted['sem_seg']], first)
    inferencer(image, vocabulary=['background'] + names)  # a named background: rule back
    assert head.prob_thd > 0 and head.background_index == 0


def test_show_without_a_display_is_refused_and_a_foreign_checkpoint_names_no_cli_flag(
        tmp_path, monkeypatch):
    inferencer = _tiny_sclip(vocabulary=['sky', 'grass'])
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    with pytest.raises(ValueError, match='needs a display'):  # before: waited forever
        inferencer(_image(), show=True)
    foreign = tmp_path / 'other.pth'
    torch.save({'state_dict': {'decode_head.other.weight': torch.zeros(1)}}, foreign)
    from mmovss.apis.released_weights import ReleasedWeightsError
    with pytest.raises(ReleasedWeightsError, match='do not fit') as info:
        OpenVocabInferencer(ZEGFORMER, device='cpu', vocabulary=NAMES, weights=str(foreign))
    assert '--non-strict' not in str(info.value)  # a flag of tools/test.py, not of the API


def test_an_image_the_model_cannot_segment_is_named_and_a_folder_goes_on(tmp_path):
    """A 7 x 3 image is smaller than one 8 x 8 patch of the tiny CLIP (before:
    a model-internal error without the file, ending a folder run)."""
    import cv2

    from mmovss.apis import UnreadableImageError, UnsegmentableImageError
    inferencer = OpenVocabInferencer(
        str(REPO_ROOT / 'configs/ovshapes/sclip_tiny-clip_ovshapes.py'), device='cpu',
        vocabulary=['sky', 'grass'])
    folder = tmp_path / 'photos'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_normal.png'), _image())
    cv2.imwrite(str(folder / 'b_thin.png'), _image()[:7, :3])
    with pytest.warns(UserWarning, match=r"Cannot segment image .*b_thin.png' \(7x3 pixels\)"):
        results = inferencer(str(folder), batch_size=2)['predictions']
    assert [r['name'] for r in results] == ['a_normal']
    with pytest.raises(UnsegmentableImageError, match=r"b_thin.png' \(7x3 pixels\)"):
        inferencer(str(folder / 'b_thin.png'))
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'c.png').write_bytes(b'not a png')
    with pytest.warns(UserWarning), pytest.raises(UnreadableImageError, match='None of the 1'):
        inferencer(str(broken))


def test_stream_checks_its_arguments_when_called(tmp_path):
    """A generator would only check them at the first image (after setting up)."""
    inferencer = _tiny_sclip(vocabulary=['sky', 'grass'])
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        inferencer.stream(_image(), batch_size=0)
    with pytest.raises(ValueError, match='holds no image files'):
        inferencer.stream(str(tmp_path))


def test_a_released_file_with_another_releases_config_is_warned_about(tmp_path, monkeypatch):
    """The inferencer asks the same question as tools/test.py (is this the
    released file of another config?; released_config_mismatch, tested on
    ZegFormer's VOC / COCO releases in tests/test_converter_files.py) and warns."""
    from mmovss.apis import open_vocab_inferencer
    model = OpenVocabInferencer(ZEGFORMER, device='cpu', vocabulary=NAMES,
                                allow_random_weights=True).model
    checkpoint = tmp_path / 'trained.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    asked = []

    def mismatch(config, weights):
        asked.append((config, weights.source))
        return 'X.pth is the released checkpoint of Y (config y.py), but it is used with z.py.'
    monkeypatch.setattr(open_vocab_inferencer, 'released_config_mismatch', mismatch)
    with pytest.warns(UserWarning, match='is the released checkpoint of Y'):
        OpenVocabInferencer(ZEGFORMER, str(checkpoint), device='cpu', vocabulary=NAMES)
    assert asked == [(ZEGFORMER, str(checkpoint))]
