"""OVSeg's mask prompt tuning (Liang et al., CVPR 2023, Sec. 3.3).

Adapts CLIP to masked images without changing CLIP: only the mask prompts
of a :class:`~mmovss.models.decode_heads.RegionCLIPClassifier` train; the
CLIP image and text towers stay frozen. Training pairs are masked region
crops with a noun pseudo-label (``tools/ovseg/build_region_data.py``,
dataset :class:`~mmovss.datasets.RegionCropDataset`).

The loss is CLIP's symmetric contrastive loss (Radford et al., ICML 2021,
Fig. 3) between the crops of a batch and the text embeddings of the nouns
of that batch. Several crops of a batch may share a noun; each crop's
positive is its noun (image -> text), and each noun's positives are all its
crops (text -> image, averaged), which is CLIP's loss when nouns are
distinct.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmovss.vocab import Vocabulary

from mmengine.model import BaseModel
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList

from ..utils.mask_classification import open_vocab_class_logits

__all__ = ['MaskPromptTuner', 'multi_positive_clip_loss', 'merge_mask_prompts',
           'check_not_merged_before']

MERGED_META_KEY = 'mask_prompts_from'


def multi_positive_clip_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Symmetric CLIP loss of images against the classes present in a batch.

    Args:
        logits (Tensor): (B, C) scaled image-class similarities.
        labels (Tensor): (B,) class index of every image.

    Returns:
        Tensor: ``(L_i2t + L_t2i) / 2`` where, with ``U`` the distinct labels
        of the batch, ``L_i2t = mean_b -log softmax_U(logits_b)[y_b]`` and
        ``L_t2i = mean_{u in U} mean_{b: y_b = u} -log softmax_b(logits_{:,
        u})[b]``.
    """
    classes, target = torch.unique(labels, return_inverse=True)
    batch_logits = logits[:, classes]
    loss_i2t = F.cross_entropy(batch_logits, target)
    log_p = batch_logits.log_softmax(dim=0)  # over images, per class
    positive = F.one_hot(target, classes.numel()).to(log_p)
    loss_t2i = (-(log_p * positive).sum(0) / positive.sum(0)).mean()
    return (loss_i2t + loss_t2i) / 2


@MODELS.register_module()
class MaskPromptTuner(BaseModel):
    """Trains the mask prompts of a region CLIP classifier.

    Inputs are masked crops, normalised for CLIP by the data preprocessor,
    with ``gt_sem_seg`` the crop's region mask (1 inside) and
    ``region_label`` (metainfo) the index of its noun in the vocabulary.

    Args:
        region_classifier (dict): :class:`RegionCLIPClassifier` config with
            ``mask_prompt_depth > 0``.
        text_encoder (dict): Frozen ``OpenCLIPTextEncoder`` config (the
            same CLIP).
        vocabulary (optional): The nouns; None follows the dataset
            (``DatasetVocabularyHook``).
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` with
            CLIP's mean/std.
    """

    def __init__(self, region_classifier: dict, text_encoder: dict,
                 vocabulary=None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.region_classifier = MODELS.build(region_classifier)
        if self.region_classifier.mask_prompts is None:
            raise ValueError('MaskPromptTuner: the region classifier has no '
                             'mask prompts; set mask_prompt_depth > 0.')
        self.region_classifier.clip.requires_grad_(False)
        self.text_encoder = MODELS.build(text_encoder)
        self.text_encoder.requires_grad_(False)
        self._explicit = None if vocabulary is None else \
            Vocabulary.build(vocabulary)
        self._dataset = None

    # vocabulary, as OpenVocabEncoderDecoder
    def set_vocabulary(self, vocabulary) -> Vocabulary:
        self._explicit = Vocabulary.build(vocabulary)
        return self._explicit

    def set_dataset_vocabulary(self, metainfo_or_vocabulary) -> Vocabulary:
        self._dataset = Vocabulary.build(metainfo_or_vocabulary)
        return self.vocabulary

    @property
    def vocabulary(self) -> Vocabulary:
        vocabulary = self._explicit or self._dataset
        if vocabulary is None:
            raise RuntimeError(
                'MaskPromptTuner has no vocabulary: set `vocabulary` or add '
                "custom_hooks=[dict(type='DatasetVocabularyHook')].")
        return vocabulary

    def train(self, mode: bool = True):
        super().train(mode)
        self.region_classifier.clip.train(False)  # frozen CLIP: eval mode
        return self

    def region_masks(self, inputs: Tensor,
                     data_samples: SampleList) -> Tensor:
        """(B, S, S) bool region masks from ``gt_sem_seg`` (1 = inside)."""
        masks = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
        masks = masks.to(inputs.device) == 1
        if masks.shape[-2:] != inputs.shape[-2:]:
            masks = F.interpolate(masks[:, None].float(),
                                  size=inputs.shape[-2:],
                                  mode='nearest')[:, 0] > 0.5
        return masks

    def class_logits(self, inputs: Tensor, data_samples: SampleList
                     ) -> Tensor:
        """(B, C) CLIP logits of the crops against the vocabulary."""
        embeds = self.region_classifier.encode(
            inputs, self.region_masks(inputs, data_samples))
        with torch.no_grad():
            class_embeds = self.text_encoder(self.vocabulary)
        return open_vocab_class_logits(embeds, class_embeds)

    def loss(self, inputs: Tensor, data_samples: SampleList
             ) -> Dict[str, Tensor]:
        labels = []
        for s in data_samples:
            if 'region_label' not in s.metainfo:
                raise KeyError(
                    'MaskPromptTuner: a sample has no `region_label`; add it '
                    "to PackSegInputs' meta_keys.")
            labels.append(int(s.metainfo['region_label']))
        labels = torch.tensor(labels, device=inputs.device)
        logits = self.class_logits(inputs, data_samples)
        return dict(loss_contrastive=multi_positive_clip_loss(logits, labels))

    def predict(self, inputs: Tensor, data_samples: SampleList
                ) -> SampleList:
        """Sets ``pred_region_label`` and ``region_scores`` (metainfo)."""
        probs = self.class_logits(inputs, data_samples).softmax(dim=-1)
        for sample, p in zip(data_samples, probs):
            sample.set_metainfo(dict(pred_region_label=int(p.argmax()),
                                     region_scores=p.cpu()))
        return data_samples

    def forward(self, inputs: Tensor, data_samples: OptSampleList = None,
                mode: str = 'tensor'):
        if data_samples is None:
            raise ValueError('MaskPromptTuner needs data samples (region '
                             'masks in gt_sem_seg).')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.class_logits(inputs, data_samples)
        raise ValueError(f'Unknown mode {mode!r}.')


def merge_mask_prompts(mask_state: Dict[str, Tensor], tuner_state: Dict[str, Tensor],
                       head_prefix: str = 'decode_head.'
                       ) -> Tuple[Dict[str, Tensor], List[str]]:
    """Puts the tuned mask prompts into a trained OVSeg mask model.

    The tuner's ``region_classifier.*`` weights have the names of the head's
    ``decode_head.region_classifier.*`` (OVSeg's recipe: the mask model and
    the mask-adapted CLIP are trained separately, Sec. 3). The frozen CLIP
    weights must be equal in both; the mask prompts are added (a mask model
    without prompts) or replace the untrained ones of a mask model built
    with ``mask_prompt_depth`` (same shape). The tuner's text encoder is not
    copied.

    Args:
        mask_state (dict): State dict of the mask model (``OVSegHead`` with a
            ``region_classifier``; any prompt depth).
        tuner_state (dict): State dict of the :class:`MaskPromptTuner`.
        head_prefix (str): Prefix of the head's keys in ``mask_state``.

    Returns:
        tuple[dict, list[str]]: The merged state dict (a new dict) and the
        keys taken from the tuner that the mask model did not have or held
        different values for (prompts).

    Raises:
        ValueError: No region classifier on one side, a shape mismatch, or
            a frozen CLIP weight that differs (another CLIP was tuned).
    """
    source = 'region_classifier.'
    tuned = {k: v for k, v in tuner_state.items() if k.startswith(source)}
    if not tuned:
        raise ValueError('merge_mask_prompts: the prompt checkpoint has no '
                         '`region_classifier.*` weights; pass the checkpoint '
                         'that tools/train.py wrote for a MaskPromptTuner config.')
    if not any(k.startswith(head_prefix + source) for k in mask_state):
        raise ValueError(f'merge_mask_prompts: the mask model has no '
                         f'`{head_prefix}{source}*` weights; pass an OVSeg '
                         f'(or ZegFormer) checkpoint with a region classifier.')
    merged = dict(mask_state)
    taken = []
    for key, value in tuned.items():
        target = head_prefix + key
        old = mask_state.get(target)
        if old is not None and old.shape != value.shape:
            raise ValueError(f'merge_mask_prompts: {target} is {tuple(old.shape)} in '
                             f'the mask model but {tuple(value.shape)} in the '
                             f'prompt checkpoint (a different mask_prompt_depth '
                             f'or CLIP).')
        if 'mask_prompts' not in key:
            if old is None or not torch.equal(old, value):
                raise ValueError(
                    f'merge_mask_prompts: the frozen CLIP weight {key} differs '
                    f'between the two checkpoints; tune the prompts of the '
                    f'mask model\'s own CLIP (same `clip` config and weights).')
            continue
        merged[target] = value
        taken.append(target)
    return merged, taken


def check_not_merged_before(mask_meta: dict, replace: bool = False) -> None:
    """Refuses a mask checkpoint that already holds merged mask prompts.

    ``tools/ovseg/merge_mask_prompts.py`` records the prompt checkpoint in
    ``meta['mask_prompts_from']``; merging into its output again would
    replace those tuned prompts without a word (a merge meant for the mask
    model's own checkpoint given the merged file).

    Args:
        mask_meta (dict): ``meta`` of the mask checkpoint.
        replace (bool): Replace the merged prompts knowingly
            (``--replace-prompts``).

    Raises:
        ValueError: Naming the earlier prompt checkpoint and the fix.
    """
    earlier = (mask_meta or {}).get(MERGED_META_KEY)
    if earlier and not replace:
        raise ValueError(
            f'the mask checkpoint already holds mask prompts merged from {earlier!r}; '
            'pass the mask model\'s own checkpoint (tools/train.py), or '
            '--replace-prompts to replace those prompts.')
