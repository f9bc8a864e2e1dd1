"""Test-time augmentation set-up of ``tools/test.py --tta``.

As in MMSegmentation, the config names the augmented views
(``tta_pipeline``, e.g. ``TestTimeAug`` over ``Resize`` ratios and
``RandomFlip``); the views are merged by
:class:`~mmovss.models.segmentors.OpenVocabTTAModel`, which averages each
kind of ``seg_logits`` as what it is (mmseg's ``SegTTAModel`` takes a
softmax of them all). A segmentor whose labels follow a rule other than the
argmax of its ``seg_logits`` (a probability threshold, an area filter, a
mask vote) is refused: averaging its scores would silently drop the rule.
"""
from mmovss.engine.model_wrappers import unwrap_segmentor

from mmengine.logging import print_log

__all__ = ['TTA_PIPELINE_EXAMPLE', 'use_tta', 'check_tta_fits']

#: What ``tta_pipeline`` looks like (mmseg's dataset bases).
TTA_PIPELINE_EXAMPLE = (
    "tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=["
    "[dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.75, 1.0, 1.25)], "
    "[dict(type='RandomFlip', prob=0., direction='horizontal'), "
    "dict(type='RandomFlip', prob=1., direction='horizontal')], "
    "[dict(type='LoadSegAnnotations')], [dict(type='PackSegInputs')]])]")

_MMSEG_TTA = ('SegTTAModel', 'mmseg.SegTTAModel')


def use_tta(cfg) -> None:
    """Wraps ``cfg.model`` in its TTA model and tests on ``cfg.tta_pipeline``.

    ``tta_model`` defaults to ``OpenVocabTTAModel``; mmseg's ``SegTTAModel``
    is replaced by it (noted). The segmentor keeps its ``seg_logits``
    (``test_cfg.return_logits=True``) for the merge.

    Raises:
        ValueError: The config has no ``tta_pipeline``.
    """
    if 'tta_pipeline' not in cfg:
        raise ValueError(
            f'--tta needs `tta_pipeline` in the config: the augmented views to average. No '
            f'shipped mmovss config defines one (the published protocols test one view); add '
            f'it in a config of your own that inherits this one, e.g. {TTA_PIPELINE_EXAMPLE} '
            f'(docs/configs.md, "Test-time augmentation").')
    tta_model = dict(cfg.get('tta_model') or dict(type='OpenVocabTTAModel'))
    if tta_model.get('type') in _MMSEG_TTA:
        print_log("--tta: tta_model SegTTAModel replaced by OpenVocabTTAModel (it averages "
                  "class probabilities and scores as they are instead of a softmax of them).",
                  logger='current')
        tta_model['type'] = 'OpenVocabTTAModel'
    test_cfg = dict(cfg.model.get('test_cfg') or {})
    test_cfg['return_logits'] = True
    cfg.model.test_cfg = test_cfg
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    tta_model['module'] = cfg.model
    cfg.model = tta_model


def check_tta_fits(model) -> None:
    """Refuses a segmentor whose labels are not the argmax of its scores.

    Args:
        model: The runner's model (a TTA model, possibly in a DDP wrapper).

    Raises:
        ValueError: Naming the segmentor and its rule.
    """
    model = unwrap_segmentor(model)
    reason_of = getattr(model, 'tta_unsupported_reason', None)
    reason = reason_of() if reason_of is not None else \
        'it is not an mmovss open-vocabulary segmentor'
    if reason:
        raise ValueError(f'--tta cannot test {type(model).__name__}: {reason}. Test it '
                         f'without --tta.')
