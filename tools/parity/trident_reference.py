"""Parity fixture of Trident: runs the published code on CPU.

Runs ``Trident`` of github.com/YuHengsss/Trident (``trident.py`` with its
modified ``open_clip/transformer.py`` and ``segment_anything``) on set A's
tiny random CLIP (OpenAI format), the tiny random DINO ViT/8 of the CorrCLIP
fixture (``dino_tiny_vit8.pth``, built with DINO's ``vision_transformer.py``)
and a tiny random SAM built with the clone's own ``segment_anything``
(image encoder: 1024 input, patch 16, width 32, 2 blocks, 2 heads, window
14, global last block, relative positions, no absolute position
embedding). Writes ``trident.json`` + ``trident.npz`` (README in
tests/data/parity_corrclip_trident/) and ``sam_tiny_encoder.pth`` (the
image encoder's weights, float16, ``image_encoder.*`` keys).

Adaptations to the tiny models (recorded in ``tiny_model_adaptations``):
``sam_heads`` (hard-coded 12 for ``vit_b``) set to the tiny SAM's 2; the
window 112 / stride 56 instead of 336 / 224; DINO ViT/8 instead of ViT/16
(the code handles any DINO/CLIP grid ratio; here 2). float16 casts are made
no-ops (float32 on CPU); ``skimage`` and ``openpyxl`` stubbed (only the SAM
prompt refinement, off in the configs, and excel logging use them).

Example::

    python tools/parity/trident_reference.py --official-repo /path/to/Trident \
        --dino-repo /path/to/dino \
        --clip-weights ../shared/parity/A/clip_tiny_openai_format.pt \
        --dino-weights tests/data/parity_corrclip_trident/dino_tiny_vit8.pth \
        --image ../shared/parity/A/000000001584.jpg \
        --seed 0 --out tests/data/parity_corrclip_trident
"""
import argparse
import contextlib
import hashlib
import json
import os
import os.path as osp
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from corrclip_reference import (  # noqa: E402
    CLASSES,
    DINO_CFG,
    float32_reference,
    git_commit,
    install_mmcv_compat,
    record_returns,
    reference_batch,
    seed_everything,
    stub,
)

SAM_CFG = dict(img_size=1024, patch_size=16, embed_dim=32, depth=2,
               num_heads=2, mlp_ratio=4, out_chans=16, qkv_bias=True,
               use_abs_pos=False, use_rel_pos=True, window_size=14,
               global_attn_indexes=[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True)
    parser.add_argument('--official-commit', default=None)
    parser.add_argument('--dino-repo', required=True)
    parser.add_argument('--dino-commit', default=None)
    parser.add_argument('--clip-weights', required=True)
    parser.add_argument('--dino-weights', required=True,
                        help='the tiny DINO of corrclip_reference.py')
    parser.add_argument('--image', required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--short-side', type=int, default=224)
    parser.add_argument('--crop', type=int, default=112)
    parser.add_argument('--stride', type=int, default=64)
    parser.add_argument('--prob-thd', type=float, default=0.15)
    parser.add_argument('--logit-scale', type=float, default=40.0)
    parser.add_argument('--cos-fac', type=float, default=1.2)
    parser.add_argument('--ori-logits-subsample', type=int, default=16)
    parser.add_argument('--feature-subsample', type=int, default=37)
    parser.add_argument('--weight-rows', type=int, default=4)
    args = parser.parse_args()

    for name in ('out', 'clip_weights', 'dino_weights', 'image'):
        setattr(args, name, osp.abspath(getattr(args, name)))
    root = osp.abspath(args.official_repo)
    if not osp.isfile(osp.join(root, 'trident.py')):
        sys.exit(f'{root} has no trident.py')
    os.makedirs(args.out, exist_ok=True)
    for name in list(sys.modules):
        if name.split('.')[0] in ('open_clip', 'segment_anything'):
            del sys.modules[name]
    sys.path.insert(0, root)
    sys.path.insert(1, osp.abspath(args.dino_repo))
    stub('openpyxl')
    stub('skimage', measure=None)
    install_mmcv_compat()
    cwd = os.getcwd()
    os.chdir(root)
    import open_clip.transformer as oc_transformer
    import trident as ref
    import vision_transformer as dino_vit
    from open_clip.model import build_model_from_openai_state_dict
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )
    os.chdir(cwd)

    state = torch.load(args.clip_weights, map_location='cpu',
                       weights_only=True)
    clip = build_model_from_openai_state_dict(
        {k: v.float() for k, v in state.items()}).float().eval()
    dino = dino_vit.VisionTransformer(
        norm_layer=partial(nn.LayerNorm, eps=1e-6), **DINO_CFG)
    dino.load_state_dict({k: v.float() for k, v in torch.load(
        args.dino_weights, map_location='cpu', weights_only=True).items()})
    dino.eval()

    seed_everything(args.seed)
    encoder = ImageEncoderViT(norm_layer=partial(nn.LayerNorm, eps=1e-6),
                              **dict(SAM_CFG, global_attn_indexes=tuple(
                                  SAM_CFG['global_attn_indexes'])))
    gen = torch.Generator().manual_seed(args.seed + 2)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if 'rel_pos' in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith('norm1.weight') or name.endswith('norm2.weight'):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith('bias') and 'neck' not in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    sam_state = {f'image_encoder.{k}': v.half()
                 for k, v in encoder.state_dict().items()
                 if not k.startswith('neck.')}
    encoder.load_state_dict({k[len('image_encoder.'):]: v.float()
                             for k, v in sam_state.items()}, strict=False)
    sam_file = 'sam_tiny_encoder.pth'
    torch.save(sam_state, osp.join(args.out, sam_file))
    sam = Sam(image_encoder=encoder,
              prompt_encoder=PromptEncoder(
                  embed_dim=16, image_embedding_size=(64, 64),
                  input_image_size=(1024, 1024), mask_in_chans=4),
              mask_decoder=MaskDecoder(
                  num_multimask_outputs=3,
                  transformer=TwoWayTransformer(depth=1, embedding_dim=16,
                                                mlp_dim=32, num_heads=2),
                  transformer_dim=16, iou_head_depth=1,
                  iou_head_hidden_dim=16),
              pixel_mean=[123.675, 116.28, 103.53],
              pixel_std=[58.395, 57.12, 57.375]).eval()

    class_file = osp.join(args.out, 'classes_corrclip.txt')
    with open(class_file, 'w') as f:
        f.write('\n'.join('; '.join(c) for c in CLASSES))

    ref.create_model = lambda *a, **k: clip
    ref.sam_model_registry = {'vit_b': lambda checkpoint=None: sam}
    vt = oc_transformer.VisionTransformer
    get_sam_sim = vt.get_sam_sim
    with float32_reference(dino), contextlib.ExitStack() as restore:
        restore.callback(os.chdir, cwd)
        restore.callback(setattr, vt, 'get_sam_sim', get_sam_sim)
        os.chdir(root)
        model = ref.Trident(
            clip_type='tiny', model_type='ViT-B/16', vfm_model='dino',
            name_path=class_file, device=torch.device('cpu'),
            prob_thd=args.prob_thd, logit_scale=args.logit_scale, beta=1.2,
            gamma=3.0, slide_stride=args.stride, slide_crop=args.crop,
            sam_refinement=False, sam_model_type='vit_b', pamr_steps=0,
            sam_ckpt=None, cos_fac=args.cos_fac, refine_neg_cos=True,
            sam_iou_thresh=0.8, coarse_thresh=0.2, minimal_area=225,
            dataset_type='PascalVOCDataset')
        os.chdir(cwd)
        model.sam_heads = SAM_CFG['num_heads']
        model.eval()

        weights, feats, logits = [], [], []

        def recording_get_sam_sim(*a, **k):
            out = get_sam_sim(*a, **k)
            weights.append(out.detach().clone())
            return out

        vt.get_sam_sim = staticmethod(recording_get_sam_sim)
        record_returns(clip, 'encode_image', feats)
        record_returns(model, 'get_trident_seg', logits)

        batch = reference_batch(model, args.image, args.short_side)
        with torch.no_grad():
            out = model.predict(batch['inputs'], batch['data_samples'])

    w = weights[0][0, 0]  # heads share the weights
    m = w.shape[0]
    rows = np.linspace(0, m - 1, args.weight_rows).round().astype(int)
    s, fs = args.ori_logits_subsample, args.feature_subsample
    arrays = dict(
        text_embeddings=model.query_features.float().numpy(),
        query_idx=model.query_idx.numpy().astype(np.int16),
        sam_weight_rows=rows.astype(np.int32),
        sam_weights=w[rows].numpy(),
        dense_features=feats[0][0][::fs].numpy(),
        ori_logits=logits[0][0][:, ::s, ::s].numpy(),
        pred=out[0].pred_sem_seg.data[0].numpy().astype(np.int16),
    )
    np.savez_compressed(osp.join(args.out, 'trident.npz'), **arrays)

    def sha(path):
        with open(path, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()

    from PIL import Image
    with Image.open(args.image) as img:
        ori_w, ori_h = img.size
    meta = dict(
        method='trident',
        reference_repo='YuHengsss/Trident',
        reference_commit=args.official_commit or git_commit(root),
        reference_files=['trident.py', 'open_clip/transformer.py',
                         'seg_utils/utils.py (preprocess_image)',
                         'segment_anything (modified image encoder)'],
        dino_repo='facebookresearch/dino',
        dino_commit=args.dino_commit or git_commit(args.dino_repo),
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
        seed=args.seed,
        weights_file=osp.basename(args.clip_weights),
        weights_sha256=sha(args.clip_weights),
        dino_weights_file=osp.basename(args.dino_weights),
        dino_cfg=dict(DINO_CFG, norm_eps=1e-6),
        sam_weights_file=sam_file,
        sam_cfg=dict(SAM_CFG, norm_eps=1e-6),
        compute_dtype='float32, CPU (the reference .half() casts made '
        'no-ops)',
        image_file=osp.basename(args.image),
        original_hw=[ori_h, ori_w],
        resized_hw=list(batch['inputs'].shape[2:]),
        resize=dict(pipeline=f'mmseg Resize(scale=(2048, {args.short_side}),'
                    ' keep_ratio=True)'),
        normalization=dict(mean=[122.771, 116.746, 104.094],
                           std=[68.501, 66.632, 70.323], order='RGB'),
        class_file=osp.basename(class_file),
        classes=CLASSES,
        query_words=list(model.query_words),
        logit_scale=args.logit_scale,
        prob_thd=args.prob_thd,
        trident=dict(beta=1.2, gamma=3.0, cos_fac=args.cos_fac,
                     refine_neg_cos=True, slide_crop=args.crop,
                     slide_stride=args.stride, sam_refinement=False,
                     pamr_steps=0, dataset_type='PascalVOCDataset'),
        tiny_model_adaptations=dict(
            sam_heads=dict(official=12, used=SAM_CFG['num_heads']),
            slide=dict(official='crop 336 / stride 224',
                       used=f'crop {args.crop} / stride {args.stride}'),
            dino=dict(official='dino_vitb16 (patch 16, grid ratio 1)',
                      used='tiny DINO patch 8 (grid ratio 2)')),
        ori_logits_subsample=s,
        feature_subsample=fs,
        array_notes=dict(
            sam_weights='rows `sam_weight_rows` of the (M, M) aggregation '
            'weights (get_sam_sim, identical for every head), M = valid SAM '
            'grid (64 x 64 here)',
            dense_features='(M / fs, D) ln_post + proj output on the SAM '
            'grid, tokens [::fs] (row-major), before normalisation',
            ori_logits='cosine similarities resized to the original size, '
            '[:, ::s, ::s]',
            pred='labels after prob_thd (no SAM refinement, no PAMR)'),
        stubs=['skimage (SAM prompt refinement only)',
               'openpyxl (excel logging only)'],
    )
    with open(osp.join(args.out, 'trident.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    print(json.dumps({k: v.nbytes for k, v in arrays.items()}, indent=1))
    print('sam grid', m, 'pred classes', np.unique(arrays['pred']).tolist())


if __name__ == '__main__':
    main()
