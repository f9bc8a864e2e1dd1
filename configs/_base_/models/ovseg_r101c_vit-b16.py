# OVSeg (Liang et al., CVPR 2023), the released R101c / ViT-B/16 recipe: a
# MaskFormer (ResNet-101c, 100 queries, 6 layers, 2-layer segment-embedding
# MLP) classified with CLIP text embeddings, and the mask-adapted CLIP
# ViT-B/16 (mask prompt depth 3, weights from MaskPromptTuner) on the masked
# crops; ensemble weight 0.7.
_base_ = ['./zegformer_r101_vit-b16.py']
model = dict(
    decode_head=dict(
        _delete_=True,
        type='OVSegHead',
        in_channels=[256, 512, 1024, 2048],
        embed_dim=512,
        channels=256, mask_channels=256, num_queries=100, num_layers=6,
        num_heads=8, ffn_channels=2048, dropout=0.1, temperature=0.01,
        embed_layers=2, ensemble_weight=0.7,
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name='ViT-B-16', pretrained='openai'),
            crop_size=224, mask_fill='mean', crop_style='cropmask',
            mask_prompt_depth=3),
        criterion={{_base_.model.decode_head.criterion}}))
