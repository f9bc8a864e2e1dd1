# OVSeg with its mask-adapted CLIP: the mask model of
# ovseg_tiny-clip_3k_ovshapes-seen.py and mask prompts in all 3 blocks of the
# tiny CLIP, tuned in OVSeg's second run
# (ovseg_tiny-clip_mask-prompt-tuning_ovshapes-regions.py, region crops of the
# training images, seen names only). Test the checkpoint that
# tools/ovseg/merge_mask_prompts.py writes from the two runs:
#   python tools/test.py configs/ovshapes/ovseg-mpt_tiny-clip_3k_ovshapes-seen.py MERGED.pth
# The mask model itself is trained with ovseg_tiny-clip_3k_ovshapes-seen.py.
_base_ = './ovseg_tiny-clip_3k_ovshapes-seen.py'
# (its ensemble weight stays 0.3, the weight of the plain mask model until its 3k
# config moved to 0.1; the mask-adapted CLIP's weight was not screened)
model = dict(decode_head=dict(ensemble_weight=0.3,
                              region_classifier=dict(mask_prompt_depth=3)))
# run_table.py: not one train + test cell (tests a checkpoint merged from two runs)
table_cell = False
