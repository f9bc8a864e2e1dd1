# ZegFormer R-101 + CLIP ViT-B/16 as released by its authors
# (github.com/dingjiansw101/ZegFormer, commit 8cb9e8fb), trained on the 15 seen PASCAL VOC
# classes: checkpoint zegformer_R101_bs32_10k_vit16_voc.pth (the name of its training config,
# configs/pascal_voc/zegformer_R101_bs32_10k_vit16_voc.yaml; the README's Google Drive folder),
# evaluated as configs/pascal_voc/zegformer_R101_bs32_10k_vit16_voc_gzss_eval.yaml on VOC-20:
# PROMPT_ENSEMBLE_TYPE 'single', GZERO_CALIBRATE 0.1, ensembling (fusion) on; test images
# resized to short side 512 (max 2048). Unseen: pottedplant, sheep, sofa, train, tvmonitor
# (register_pascal_voc.py categories[15:]).
# (detectron2_pipelines come with the base)
_base_ = ['./zegformer-official_r101-vit-b16_60k_coco-stuff156-640x640.py']
seen_classes = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
                'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person']
model = dict(decode_head=dict(seen_vocabulary=seen_classes))
test_pipeline = {{_base_.detectron2_pipelines.short_512_long_2048}}
voc = dict(type='PascalVOC20Dataset', data_root='data/VOCdevkit/VOC2012', layout='mmseg',
           split='val', pipeline=test_pipeline)
val_dataloader = dict(dataset=dict(_delete_=True, **voc))
test_dataloader = dict(dataset=dict(_delete_=True, **voc))
train_dataloader = None
