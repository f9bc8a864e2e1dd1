# OVSeg Swin-B + CLIP ViT-L/14 with only the mask prompts tuned (CLIP weights not fine-tuned):
# checkpoint ovseg_swinbase_vitL14_mpt_only.pt of github.com/facebookresearch/ov-seg @ 36f49d49
# (GETTING_STARTED.md, "Ablation study", Google Drive, md5 2dd495...; the paper's Table 3).
# Same architecture and official layout as the ft_mpt model; convert with
# tools/model_converters/ovseg_official_to_mmovss.py.
_base_ = ['./ovseg-official_swin-b-vit-l14_120k_coco-stuff171-640x640.py']
