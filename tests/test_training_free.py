"""Training-free methods: last-block modes, ProxyCLIP, PAMR, post-processing,
the segmentor and the configs (tiny random models; no weights)."""
import copy
import glob
import math
import os

import pytest
import torch
import torch.nn.functional as F

from mmovss.models.backbones import LAST_BLOCK_MODES
from mmovss.models.backbones.proxyclip_vit import build_timm_vfm
from mmovss.models.backbones.training_free_modes import neighbourhood_bias
from mmovss.models.backbones.training_free_vit import resize_pos_embed_by_scale
from mmovss.models.text_encoders import ClassEmbeddings
from mmovss.models.utils import PAMR
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.vocab import Vocabulary

from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = tiny_clip_cfg('vit')  # patch 8, width 64, 2 heads, joint dim 32
TINY_VFM = dict(model_name='vit_base_patch8_224.dino', pretrained=None,
                model_kwargs=dict(embed_dim=32, depth=1, num_heads=2,
                                  img_size=32))
MODES = ('maskclip', 'maskclip_noresidual', 'vanilla_noresidual', 'sclip',
         'clearclip', 'naclip')


def backbone(mode='vanilla', **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(type='TrainingFreeCLIPViT', model_cfg=CFG,
                             last_block_mode=mode, **kwargs)).eval()


@pytest.fixture(scope='module')
def tokens():
    """Tokens entering the last block of a tiny ViT, on a 3x4 grid."""
    bb = backbone()
    torch.manual_seed(1)
    x, grid = bb.embed(torch.randn(2, 3, 24, 32))
    for block in bb.visual.transformer.resblocks[:-1]:
        x = block(x)
    return bb.visual.transformer.resblocks[-1], x, grid


def per_head(block, x):
    """q, k, v per head, computed with a loop (independent of the modes)."""
    y = block.ln_1(x)
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    c = x.shape[-1]
    heads = block.attn.num_heads
    q, k, v = (y @ w[i * c:(i + 1) * c].T + b[i * c:(i + 1) * c]
               for i in range(3))
    d = c // heads
    split = [[t[..., h * d:(h + 1) * d] for h in range(heads)]
             for t in (q, k, v)]
    return split, d**-0.5


def merge(block, outs):
    return block.attn.out_proj(torch.cat(outs, dim=-1))


# ------------------------------------------------------------ last block
def test_modes_without_residual_match_torch_attention(tokens):
    block, x, grid = tokens
    y = block.ln_1(x)
    n = x.shape[1]
    only_self = torch.full((n, n), float('-inf')).fill_diagonal_(0)
    with torch.no_grad():
        torch.testing.assert_close(
            LAST_BLOCK_MODES['vanilla_noresidual'](block, x, grid),
            block.attn(y, y, y, need_weights=False)[0])
        masked = block.attn(y, y, y, attn_mask=only_self,
                            need_weights=False)[0]
        torch.testing.assert_close(
            LAST_BLOCK_MODES['maskclip_noresidual'](block, x, grid), masked)
        residual = x + masked
        torch.testing.assert_close(
            LAST_BLOCK_MODES['maskclip'](block, x, grid),
            residual + block.mlp(block.ln_2(residual)))


def test_sclip_clearclip_naclip_formulas(tokens):
    block, x, grid = tokens
    (q, k, v), s = per_head(block, x)
    omega = torch.zeros(x.shape[1], x.shape[1])
    for p in range(grid[0] * grid[1]):
        for r in range(grid[0] * grid[1]):
            (r0, c0), (r1, c1) = divmod(p, grid[1]), divmod(r, grid[1])
            omega[1 + p, 1 + r] = math.exp(-((r0 - r1)**2 + (c0 - c1)**2) /
                                           (2 * 3.0**2))
    heads = range(len(q))
    sclip_attn = merge(block, [
        ((q[h] @ q[h].transpose(1, 2) * s).softmax(-1) +
         (k[h] @ k[h].transpose(1, 2) * s).softmax(-1)) @ v[h] for h in heads
    ])
    sclip_x = x + sclip_attn
    expected = {
        'sclip': sclip_x + block.mlp(block.ln_2(sclip_x)),
        'clearclip': merge(block, [
            (q[h] @ q[h].transpose(1, 2) * s).softmax(-1) @ v[h]
            for h in heads
        ]),
        'naclip': merge(block, [
            (k[h] @ k[h].transpose(1, 2) * s + omega).softmax(-1) @ v[h]
            for h in heads
        ]),
    }
    with torch.no_grad():
        for mode, want in expected.items():
            options = dict(gaussian_std=3.0) if mode == 'naclip' else {}
            got = LAST_BLOCK_MODES[mode](block, x, grid, **options)
            torch.testing.assert_close(got, want.detach(), msg=mode)


def test_neighbourhood_bias_is_a_gaussian_of_grid_distance():
    omega = neighbourhood_bias((3, 5), std=2.0)
    assert omega.shape == (16, 16)
    assert omega[0].abs().sum() == 0 and omega[:, 0].abs().sum() == 0
    # patch (0, 0) -> token 1, patch (2, 4) -> token 15, patch (1, 2) -> 8
    assert omega[1, 1] == 1
    torch.testing.assert_close(omega[1, 15], torch.tensor(math.exp(-20 / 8)))
    torch.testing.assert_close(omega[8, 1], torch.tensor(math.exp(-5 / 8)))
    torch.testing.assert_close(omega, omega.T)
    with pytest.raises(ValueError, match='gaussian_std'):
        neighbourhood_bias((3, 5), std=0)


@pytest.mark.parametrize('mode', MODES + ('proxyclip', ))
def test_every_method_changes_the_dense_output(mode):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        vanilla = backbone()(x)[-1]
        if mode == 'proxyclip':
            torch.manual_seed(0)
            model = MODELS.build(dict(type='ProxyCLIPViT', model_cfg=CFG,
                                      vfm=TINY_VFM)).eval()
        else:
            model = backbone(mode)
        out = model(x)[-1]
    assert out.shape == vanilla.shape == (1, 32, 4, 4)
    assert (out - vanilla).abs().max() > 1e-3


def test_last_block_options_are_checked():
    assert backbone('naclip', last_block_options=dict(
        gaussian_std=2.0)).last_block_options == dict(gaussian_std=2.0)
    with pytest.raises(TypeError, match='gaussian_sdt'):
        backbone('naclip', last_block_options=dict(gaussian_sdt=2.0))
    with pytest.raises(TypeError, match='do not fit'):
        backbone('sclip', last_block_options=dict(gaussian_std=2.0))


def test_reference_geometry():
    pos = torch.randn(1 + 4 * 4, 8)
    assert resize_pos_embed_by_scale(pos, (4, 4), (4, 4)) is pos
    scaled = resize_pos_embed_by_scale(pos, (4, 4), (3, 6))
    assert scaled.shape == (1 + 18, 8)
    torch.testing.assert_close(scaled[0], pos[0])
    by_size = F.interpolate(pos[1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2),
                            size=(3, 6), mode='bicubic', align_corners=False)
    by_size = by_size.permute(0, 2, 3, 1).reshape(18, 8)
    assert (scaled[1:] - by_size).abs().max() > 1e-3  # a different grid
    # incomplete patches are dropped, not padded
    bb = backbone(incomplete_patches='drop')
    x = torch.randn(1, 3, 30, 37)
    with torch.no_grad():
        out = bb(x)[-1]
        torch.testing.assert_close(out, bb(x[:, :, :24, :32])[-1])
    assert out.shape[2:] == (3, 4)
    assert backbone(incomplete_patches='pad')(x)[-1].shape[2:] == (4, 5)
    with pytest.raises(ValueError, match='pos_embed_resize'):
        backbone(pos_embed_resize='nearest')


# ------------------------------------------------------------ ProxyCLIP
def test_proxy_attention_thresholds_and_vfm_file(tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ProxyCLIPViT', model_cfg=CFG,
                              vfm=TINY_VFM, beta=1.2, gamma=3.0)).eval()
    x = torch.randn(2, 3, 40, 32)
    with torch.no_grad():
        proxy = model.proxy_features(x)
        out = model(x)[0]
        again = model(x[1:])[0]
    assert proxy.shape == (2, 32, 5, 4) and out.shape == (2, 32, 5, 4)
    torch.testing.assert_close(out[1:], again)  # per-image mean
    # the VFM sees the image renormalised from CLIP's mean/std to ImageNet's;
    # at its native size no position-embedding resize happens
    x32 = torch.randn(1, 3, 32, 32)
    rgb = x32 * torch.tensor([68.501, 66.632, 70.323]).view(1, 3, 1, 1) + \
        torch.tensor([122.771, 116.746, 104.094]).view(1, 3, 1, 1)
    imagenet = (rgb / 255 - torch.tensor([0.485, 0.456, 0.406]).view(
        1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = model.vfm.forward_features(imagenet)[:, 1:]
        got = model.proxy_features(x32).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # Eq. 3-5: thresholded, sharpened VFM similarities attend CLIP's values
    with torch.no_grad():
        tokens, grid = model.embed(x)
        for block in model.visual.transformer.resblocks[:-1]:
            tokens = block(tokens)
        block = model.visual.transformer.resblocks[-1]
        (_, _, v), _ = per_head(block, tokens)
        f = F.normalize(proxy.flatten(2), dim=1)
        outs = []
        for i in range(2):
            sim = f[i].T @ f[i]
            sim = (sim - sim.mean() * 1.2) * 3.0
            attn = torch.where(sim < 0, float('-inf'), sim).softmax(-1)
            heads = []
            for vh in v:
                vh = vh[i:i + 1, 1:].reshape(1, grid[0], grid[1], -1)
                vh = F.interpolate(vh.permute(0, 3, 1, 2), size=(5, 4),
                                   mode='bilinear', align_corners=False)
                heads.append(attn @ vh.flatten(2)[0].T)
            outs.append(merge(block, heads))
        want = model.visual.ln_post(torch.stack(outs)) @ model.visual.proj
    torch.testing.assert_close(out.flatten(2).transpose(1, 2), want)
    # weights from a local file (DINO training checkpoint layout)
    path = tmp_path / 'dino.pth'
    state = {f'backbone.{k}': v for k, v in model.vfm.state_dict().items()}
    torch.save({'teacher': state}, path)
    loaded = build_timm_vfm(TINY_VFM['model_name'], str(path),
                            TINY_VFM['model_kwargs'])
    for k, v in model.vfm.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    with pytest.raises(FileNotFoundError, match='VFM weight file'):
        build_timm_vfm(TINY_VFM['model_name'], str(tmp_path / 'no.pth'))


def test_vfm_from_an_open_clip_file_is_that_clip_vision_tower(tmp_path):
    """A CLIP's own image tower as the proxy (configs/ovshapes ProxyCLIP):
    timm converts the open_clip keys and the projection (``head.*`` after
    the conversion) is dropped; the VFM's features are then CLIP's
    ``ln_post`` tokens (float32 rounding, atol 1e-5)."""
    from mmovss.testing.clip import build_tiny_clip
    clip = build_tiny_clip(CFG, seed=3)
    path = tmp_path / 'clip.pt'
    torch.save(clip.state_dict(), path)
    v = CFG['vision_cfg']
    vfm = build_timm_vfm('vit_base_patch16_clip_224', str(path), dict(
        img_size=v['image_size'], patch_size=v['patch_size'], embed_dim=v['width'],
        depth=v['layers'], num_heads=v['width'] // v['head_width']))
    x = torch.randn(2, 3, 32, 32)
    visual = clip.visual
    with torch.no_grad():
        t = visual.conv1(x).flatten(2).transpose(1, 2)
        t = torch.cat([visual.class_embedding.expand(2, 1, -1), t], dim=1)
        t = visual.ln_post(visual.transformer(visual.ln_pre(t + visual.positional_embedding)))
        torch.testing.assert_close(vfm.forward_features(x), t, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------ PAMR
def naive_pamr(image, mask, num_iter, dilations):
    """PAMR written out pixel by pixel (Araslanov & Roth, Eq. 3-5)."""
    _, k, h, w = image.shape

    def at(t, y, x):
        return t[0, :, min(max(y, 0), h - 1), min(max(x, 0), w - 1)]

    offsets = [(dy * d, dx * d) for d in dilations
               for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1),
                              (1, -1), (1, 0), (1, 1))]
    aff = torch.zeros(len(offsets), h, w)
    for y in range(h):
        for x in range(w):
            window = torch.stack([at(image, y + dy * d, x + dx * d)
                                  for d in dilations for dy in (-1, 0, 1)
                                  for dx in (-1, 0, 1)])
            sigma = window.std(dim=0)
            kern = torch.stack([
                (-(at(image, y, x) - at(image, y + oy, x + ox)).abs() /
                 (1e-8 + 0.1 * sigma)).mean() for oy, ox in offsets
            ])
            aff[:, y, x] = kern.softmax(0)
    for _ in range(num_iter):
        new = torch.zeros_like(mask)
        for y in range(h):
            for x in range(w):
                new[0, :, y, x] = sum(aff[p, y, x] * at(mask, y + oy, x + ox)
                                      for p, (oy, ox) in enumerate(offsets))
        mask = new
    return mask


def test_pamr_matches_pixelwise_definition():
    torch.manual_seed(3)
    image, mask = torch.randn(1, 3, 7, 9), torch.randn(1, 5, 7, 9)
    want = naive_pamr(image, mask, 3, (1, 2))
    torch.testing.assert_close(PAMR(3, (1, 2))(image, mask), want)
    torch.testing.assert_close(PAMR(3, (1, 2), class_chunk=2)(image, mask),
                               want)
    with pytest.raises(ValueError, match='same batch and size'):
        PAMR()(image, mask[..., :4])


def test_pamr_default_chunks_by_bytes_with_the_same_result(monkeypatch):
    """Without ``class_chunk`` the classes are refined in chunks of about
    ``CHUNK_BYTES`` of masks (cache-sized), with the values of all at once."""
    from mmovss.models.utils import pamr as pamr_module
    torch.manual_seed(4)
    image, mask = torch.randn(1, 3, 16, 20), torch.randn(1, 7, 16, 20)
    chunks = []  # classes per propagate call; 'strided' after a chunk whose
    propagate = PAMR.propagate  # class planes are not contiguous

    def recording_propagate(self, masks, affinity):
        chunks.append(masks.shape[1])
        if masks.stride()[1:] != (masks[0, 0].numel(), masks.shape[-1], 1):
            chunks.append('strided')
        return propagate(self, masks, affinity)

    monkeypatch.setattr(PAMR, 'propagate', recording_propagate)
    everything = PAMR(2, (1, 3), class_chunk=7)(image, mask)
    assert chunks == [7]
    chunks.clear()
    monkeypatch.setattr(pamr_module, 'CHUNK_BYTES', 3 * 16 * 20 * 4)  # 3 classes
    torch.testing.assert_close(PAMR(2, (1, 3))(image, mask), everything,
                               rtol=0, atol=0)
    assert chunks == [3, 3, 1]
    chunks.clear()
    monkeypatch.setattr(pamr_module, 'CHUNK_BYTES', 1)  # never below one class
    PAMR(2, (1, 3))(image, mask)
    assert chunks == [1] * 7
    chunks.clear()  # the bytes of a chunk count every image of the batch
    monkeypatch.setattr(pamr_module, 'CHUNK_BYTES', 2 * 3 * 16 * 20 * 4)
    PAMR(2, (1, 3))(image.expand(2, -1, -1, -1), mask.expand(2, -1, -1, -1))
    assert chunks == [3, 3, 1]
    # channels-last masks (as a resize may return) are refined as contiguous
    # chunks, with the same values
    chunks.clear()
    monkeypatch.setattr(pamr_module, 'CHUNK_BYTES', 3 * 16 * 20 * 4)
    last = mask.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(PAMR(2, (1, 3))(image, last), everything,
                               rtol=0, atol=0)
    assert chunks == [3, 3, 1]


# ------------------------------------------------------------ head
VOCAB = Vocabulary(['sky, road, wall', 'bus', 'car, van', 'person', 'tree'])


def head(**kwargs):
    return MODELS.build(dict(type='TrainingFreeHead', in_channels=4,
                             **kwargs))


def embeds(vocab=VOCAB):
    e = F.normalize(torch.randn(vocab.num_names, 4), dim=-1)
    return ClassEmbeddings(e, torch.tensor(vocab.name_to_class), vocab)


def direct_labels(sims, vocab, size, scale, prob_thd, area_thd, bg):
    """The published post-processing, unchunked (SCLIP's postprocess)."""
    logits = F.interpolate(sims[None], size=size, mode='bilinear',
                           align_corners=False)[0]
    probs = (logits * scale).softmax(0)
    index = torch.tensor(vocab.name_to_class)
    cls = torch.stack([probs[index == c].max(0)[0]
                       for c in range(vocab.num_classes)])
    if area_thd is not None:
        onehot = F.one_hot(cls.argmax(0), vocab.num_classes).float()
        area = onehot[:, :, 1:].sum((0, 1))
        keep = (area > area_thd * area.sum()).float()
        cls[1:] *= keep[:, None, None]
    pred = cls.argmax(0)
    if prob_thd:
        pred[cls.max(0)[0] < prob_thd] = bg
    return pred, cls


@pytest.mark.parametrize('chunk,cache', [(1, 0), (2, 2 * 23 * 31 * 2),
                                         (2, 2**30), (64, 2**30)])
@pytest.mark.parametrize('area_thd,prob_thd', [(None, 0.0), (None, 0.3),
                                               (0.15, 0.1)])
def test_post_processing_matches_direct_computation(chunk, cache, area_thd,
                                                    prob_thd):
    torch.manual_seed(4)
    class_embeds = embeds()
    sims = torch.randn(VOCAB.num_names, 6, 8) * 0.1
    sims[3, :, :3] += 0.3  # 'bus' (class 1) wins a small region
    h = head(logit_scale=50.0, prob_thd=prob_thd, area_thd=area_thd,
             background_index=0, class_chunk=chunk, cache_elements=cache)
    labels, probs = h.predict_labels(sims, class_embeds, (23, 31),
                                     return_probs=True)
    want, want_probs = direct_labels(sims, VOCAB, (23, 31), 50.0, prob_thd,
                                     area_thd, 0)
    assert labels.shape == (1, 23, 31) and probs.shape == (5, 23, 31)
    assert (labels[0] == want).float().mean() >= 0.999
    torch.testing.assert_close(probs, want_probs)
    if area_thd is not None:  # the area filter removed a class
        assert bool((want_probs.flatten(1).amax(1) == 0).any())
    if prob_thd:  # and the threshold sent pixels to the background
        assert bool((want == 0).any())


def test_head_scores_and_rejects_bad_settings():
    class_embeds = embeds()
    feats = torch.randn(2, 4, 3, 5)
    h = head(logit_scale=10.0)
    sims = h.name_similarities((feats, ), class_embeds)
    want = torch.einsum('bchw,nc->bnhw', F.normalize(feats, dim=1),
                        class_embeds.embeds)
    torch.testing.assert_close(sims, want)
    torch.testing.assert_close(h((feats, ), class_embeds),
                               class_embeds.reduce(10 * want))
    with pytest.raises(ValueError, match='background_index is None'):
        head(prob_thd=0.1, background_index=None)
    with pytest.raises(ValueError, match='one map per name'):
        h.predict_labels(sims[0, :3], class_embeds, (5, 5))
    with pytest.raises(ValueError, match='needs the input image'):
        head(pamr=dict(type='PAMR')).predict_labels(sims[0], class_embeds,
                                                    (5, 5))


# ------------------------------------------------------------ segmentor
def segmentor(**test_cfg):
    torch.manual_seed(0)
    cfg = dict(
        type='TrainingFreeSegmentor',
        vocabulary=['sky, road', 'bus', 'car', 'person, man'],
        backbone=dict(type='TrainingFreeCLIPViT', model_cfg=CFG,
                      last_block_mode='naclip'),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG,
                          templates='single'),
        decode_head=dict(type='TrainingFreeHead', in_channels=32,
                         logit_scale=40.0, prob_thd=0.2, background_index=0,
                         pamr=dict(type='PAMR', num_iter=2, dilations=(1, 2))),
        test_cfg=dict(mode='slide', crop_size=(32, 32), stride=(16, 16),
                      **test_cfg))
    return MODELS.build(cfg).eval()


def test_batched_slide_equals_one_window_at_a_time():
    x = torch.randn(1, 3, 48, 72)
    sample = SegDataSample(metainfo=dict(ori_shape=(61, 90),
                                         img_shape=(48, 72),
                                         pad_shape=(48, 72)))
    with torch.no_grad():
        batched = segmentor(crop_batch_size=8)
        single = segmentor(crop_batch_size=1)
        metas = [sample.metainfo]
        torch.testing.assert_close(batched.slide_inference(x, metas),
                                   single.slide_inference(x, metas))
        out = batched.predict(x, [copy.deepcopy(sample)])
        ref = single.predict(x, [copy.deepcopy(sample)])
    pred = out[0].pred_sem_seg.data
    assert pred.shape == (1, 61, 90) and int(pred.max()) < 4
    assert torch.equal(pred, ref[0].pred_sem_seg.data)
    with pytest.raises(NotImplementedError, match='not trained'):
        batched.loss(x, [sample])


# ------------------------------------------------------------ configs
CONFIGS = sorted(
    p for folder in ('sclip', 'naclip', 'clearclip', 'maskclip', 'proxyclip')
    for p in glob.glob(os.path.join(REPO, 'configs', folder, '*.py')))


def test_every_method_has_configs_for_the_eight_benchmarks():
    names = {os.path.basename(p)[:-3] for p in CONFIGS}
    for method in ('sclip_vit-b16', 'naclip_vit-b16', 'naclip-pamr_vit-b16',
                   'clearclip_vit-b16', 'maskclip_vit-b16',
                   'proxyclip_vit-b16-dino-b8'):
        for bench in ('voc21', 'pascal_context_60', 'coco_object', 'voc20',
                      'pascal_context_59', 'coco_stuff171', 'cityscapes',
                      'ade20k_150'):
            assert f'{method}_{bench}' in names
    for folder in ('sclip', 'naclip', 'clearclip', 'maskclip', 'proxyclip'):
        assert os.path.isfile(os.path.join(REPO, 'configs', folder,
                                           'README.md'))


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[os.path.basename(p) for p in CONFIGS])
def test_config_is_consistent(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    assert MODELS.get(model.type) and MODELS.get(model.backbone.type)
    mode = model.backbone.get('last_block_mode', 'vanilla')
    assert mode in LAST_BLOCK_MODES
    vocab = Vocabulary.build(model.vocabulary)
    dataset = DATASETS.get(cfg.test_dataloader.dataset.type)
    assert vocab.num_classes == len(dataset.METAINFO['classes'])
    head_cfg = model.decode_head
    if head_cfg.prob_thd > 0 or head_cfg.area_thd is not None:
        assert head_cfg.background_index == 0
    resize = [t for t in cfg.test_dataloader.dataset.pipeline
              if t['type'] == 'Resize']
    assert len(resize) == 1 and resize[0]['scale'][0] == 2048
    assert cfg.train_dataloader is None


def test_pamr_affinity_once_per_image_for_all_class_chunks(monkeypatch):
    """The head refines its class chunks with one affinity per image (and the
    labels equal those of per-chunk affinities)."""
    torch.manual_seed(5)
    sims, class_embeds = torch.randn(VOCAB.num_names, 6, 8), embeds()
    image = torch.randn(3, 6, 8)
    pamr = dict(type='PAMR', num_iter=2, dilations=(1, 2))
    calls = []
    affinity = PAMR.affinity
    monkeypatch.setattr(PAMR, 'affinity', lambda self, im: (
        calls.append(1), affinity(self, im))[1])
    got = head(pamr=pamr, class_chunk=2).predict_labels(
        sims, class_embeds, (12, 16), image=image, return_probs=True)
    assert len(calls) == 1  # 5 classes in 3 chunks, one affinity
    # per chunk, as before: the same labels and probabilities
    monkeypatch.setattr(PAMR, 'with_guide', lambda self, guide: (
        lambda masks: self(guide, masks)))
    want = head(pamr=pamr, class_chunk=2).predict_labels(
        sims, class_embeds, (12, 16), image=image, return_probs=True)
    assert len(calls) == 4
    torch.testing.assert_close(got, want, rtol=0, atol=0)
