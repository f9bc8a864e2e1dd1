"""Put tuned OVSeg mask prompts into a trained mask model's checkpoint.

OVSeg trains its mask model and its mask-adapted CLIP in separate runs
(Liang et al., CVPR 2023, Sec. 3). This writes the mask model's checkpoint
with the mask prompts of a ``MaskPromptTuner`` run added to
``decode_head.region_classifier`` (the frozen CLIP weights must be the same
in both; :func:`mmovss.models.segmentors.merge_mask_prompts`)::

    python tools/ovseg/merge_mask_prompts.py MASK_CKPT PROMPT_CKPT OUT.pth

Test OUT.pth with the mask model's config and ``mask_prompt_depth`` set to
the tuner's (e.g. ``configs/ovshapes/ovseg-mpt_tiny-clip_3k_ovshapes-seen.py``).
A MASK_CKPT that is itself a merged checkpoint (``meta.mask_prompts_from``)
is refused unless ``--replace-prompts``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.common import ConversionError, unwrap_state_dict  # noqa: E402
from mmovss.converters.files import save_atomically  # noqa: E402
from mmovss.io import UnsafeOutputError, check_output_file, check_planned_outputs  # noqa: E402
from mmovss.models.segmentors.two_stage_mask_prompt_tuner import (  # noqa: E402
    MERGED_META_KEY,
    check_not_merged_before,
    merge_mask_prompts,
)
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mask_checkpoint', help='trained OVSeg mask model (tools/train.py)')
    parser.add_argument('prompt_checkpoint', help='trained MaskPromptTuner (tools/train.py)')
    parser.add_argument('out', help='output checkpoint (a new file)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing OUT (never one of the inputs)')
    parser.add_argument('--replace-prompts', action='store_true',
                        help='MASK_CKPT is itself a merged checkpoint: replace its prompts')
    args = parser.parse_args(argv)
    for path in (args.mask_checkpoint, args.prompt_checkpoint):
        if not osp.isfile(path):
            sys.exit(f'error: checkpoint {path!r} does not exist; pass the .pth file '
                     f'tools/train.py wrote.')
    check_planned_outputs([args.out], [args.mask_checkpoint, args.prompt_checkpoint],
                          flag='out')
    try:  # a folder, or an existing file without --overwrite
        check_output_file(args.out, overwrite=args.overwrite, flag='out')
    except UnsafeOutputError as err:
        sys.exit(f'error: {err}')
    mask = load_checkpoint_safely(args.mask_checkpoint)
    tuner = load_checkpoint_safely(args.prompt_checkpoint)
    meta = dict(mask.get('meta') or {}) if 'state_dict' in mask else {}
    try:
        check_not_merged_before(meta, args.replace_prompts)
        state, taken = merge_mask_prompts(unwrap_state_dict(mask), unwrap_state_dict(tuner))
    except (ConversionError, ValueError) as err:
        sys.exit(f'error: {err}')
    meta[MERGED_META_KEY] = osp.abspath(args.prompt_checkpoint)
    save_atomically(dict(state_dict=state, meta=meta), args.out)
    print(f"added {', '.join(taken)} -> {args.out}")


if __name__ == '__main__':
    main()
