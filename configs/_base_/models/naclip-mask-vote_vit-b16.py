# NACLIP + CorrCLIP's map correction (a combination no paper reports): the final labels of each
# class-agnostic region take the region's majority label (MaskVoteRefinement, mode 'majority').
# The regions are pre-computed, one file per image stem, in CorrCLIP's format (<stem>.npz with
# `instance_mask`; mmovss/models/mask_generators/files.py); one folder may hold the masks of
# every benchmark (VOC and PASCAL Context share their images):
#   python tools/test.py configs/naclip/naclip-mask-vote_vit-b16_voc21.py \
#       --cfg-options model.decode_head.mask_refinement.generator.mask_dir=/path/to/masks
# Any other benchmark: --benchmark KEY (the NACLIP protocol).
_base_ = ['./naclip_vit-b16.py']
model = dict(
    decode_head=dict(
        mask_refinement=dict(
            type='MaskVoteRefinement',
            mode='majority',
            generator=dict(type='FileMaskGenerator', mask_dir='data/masks', suffix='.npz'))))
