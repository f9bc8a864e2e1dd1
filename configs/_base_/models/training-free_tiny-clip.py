# Training-free dense CLIP segmentation on the OVShapes tiny CLIP
# (./ovshapes_tiny_clip.py: 64 px images, patch 8 -> an 8 x 8 token grid, width
# 128, 3 blocks, joint dimension 64): the common part of the per-method rows
# configs/ovshapes/<method>_tiny-clip_ovshapes.py (MaskCLIP, SCLIP, ClearCLIP,
# NACLIP, ResCLIP, SC-CLIP, ProxyCLIP, CorrCLIP, Trident), i.e.
# ./training-free_vit-b16.py with the tiny CLIP. What changes, for every method:
# * whole-image inference (test_cfg mode 'whole'): the published sliding windows
#   (224-448 px crops) make no sense on 64 px images; the whole image is one window
#   of the tiny CLIP's native size (no position-embedding resize);
# * the tiny CLIP's own prompts (`templates` of ./ovshapes_tiny_clip.py, the
#   phrasings of its pretraining captions) instead of CLIP's 80 ImageNet
#   templates ("a bad photo of a {}."), which its text tower never saw;
# * the vocabulary follows the dataset (40 OVShapes names, DatasetVocabularyHook),
#   no background class: prob_thd 0, no area threshold (the published settings of
#   the benchmarks without background, e.g. ADE20K-150).
# Head options (logit scale, PAMR, mask votes) and last-block modes are each
# method's; settings that depend on the token grid are scaled in each method's
# file, which says how.
_base_ = ['./ovshapes_tiny_clip.py']
# The tiny CLIP's image tower as a timm ViT (timm converts the open_clip keys of
# the shipped file; its final norm is CLIP's ln_post): the "vision foundation
# model" of ProxyCLIP, CorrCLIP and Trident here, as no DINO exists offline.
tiny_clip_vfm = dict(
    model_name='vit_base_patch16_clip_224',
    pretrained={{_base_.tiny_clip_weights}},
    model_kwargs=dict(img_size=64, patch_size=8, embed_dim=128, depth=3, num_heads=4))
model = dict(
    type='TrainingFreeSegmentor',
    vocabulary=None,
    backbone=dict(
        type='TrainingFreeCLIPViT',
        out_indices=(),
        last_block_mode='vanilla',
        pos_embed_resize='scale_factor',
        incomplete_patches='drop'),
    decode_head=dict(
        _delete_=True,
        type='TrainingFreeHead',
        in_channels=64,
        logit_scale=40.0,
        prob_thd=0.0,
        area_thd=None,
        background_index=None,
        pamr=None),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
