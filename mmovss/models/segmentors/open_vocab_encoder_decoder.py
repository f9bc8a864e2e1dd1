"""Open-vocabulary encoder-decoder: mmseg's EncoderDecoder plus a vocabulary.

The segmentor owns a text encoder and a vocabulary. At every forward it
embeds the vocabulary (cached by the text encoder) and hands the
:class:`~mmovss.models.text_encoders.ClassEmbeddings` to its
:class:`~mmovss.models.decode_heads.OpenVocabDecodeHead`; nothing in the
model has a class-sized shape, so the same weights serve any vocabulary.

Vocabulary, by priority:

1. explicit: ``vocabulary=`` in the config (``--cfg-options
   model.vocabulary=/path/to/names.txt``) or :meth:`set_vocabulary`;
2. the dataset's: ``METAINFO['classes']`` of the dataset being trained on or
   evaluated, set by :class:`DatasetVocabularyHook` (in ``custom_hooks``),
   so one config evaluates any benchmark by swapping the dataset ``_base_``.

Inference differs from mmseg's in memory/speed points (results equal):
sliding-window crops are encoded ``test_cfg.crop_batch_size`` at a time;
:meth:`predict` keeps each window's *low-resolution* head logits
(:meth:`OpenVocabDecodeHead.predict_low_res`) and computes the window
average, the resize to the original image size and the argmax over
``test_cfg.resize_class_chunk`` classes at a time, keeping a running max
(:class:`~mmovss.models.utils.class_maps.SlideLogits`), so no
full-resolution float tensor of all classes is ever allocated, neither at
the input size nor at the original size (``test_cfg.return_logits=True``
stores the original-size logits as mmseg does). Heads whose ``predict`` is
not a plain resize (SAN) take mmseg's path with a dense window average.

Mixed precision: ``test_cfg.inference_dtype`` (``'fp32'`` by default,
``'bf16'``, or ``'fp16'`` on CUDA) selects the inference precision, and
``test_cfg.precision_mode`` how it is run:

* ``'autocast'`` (the default for heads without a low-precision path): the
  image tower (backbone + neck) and the text encoder run under
  :func:`torch.autocast`; the decode head gets float32 features and returns
  float32 logits (see :mod:`mmovss.models.utils.mixed_precision`);
* ``'cast'`` (the default for heads with one: CAT-Seg, LSeg, the light
  decoder, FC-CLIP, SAN): the image tower *and the decode head* are low
  precision, their weights cast once (norms, the patch embedding and the
  final CLIP projection kept float32,
  :mod:`mmovss.models.utils.low_precision`); the head gets its features and
  class embeddings in its dtype (class embeddings in float32 for a head with
  ``float32_class_embeddings``) and its logits are returned in float32, so
  everything after the head (window averages, resizes, argmax) is float32.
  Heads with ``float32_on_cast_path`` (ZegFormer, OVSeg, SAM + CLIP,
  OpenSeg; also their default where the backbone was checked in bf16,
  :meth:`OpenVocabEncoderDecoder.backbone_checked_for_cast`) stay float32
  and get float32 features: only the towers are cast (for the two-stage
  methods also the CLIP of their crops,
  :class:`~mmovss.models.segmentors.TwoStageEncoderDecoder`). Only heads
  with either attribute (checked against float32) accept the mode, and the
  latter only beside a checked backbone; the others refuse it with the fix.
  On a CPU whose bf16 products are slower than float32 it runs float32 and
  says so.

Training is left to mmengine's ``AmpOptimWrapper``.
"""
import contextlib
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mmovss.vocab import Vocabulary

from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.segmentors.encoder_decoder import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import (
    ConfigType,
    OptConfigType,
    OptMultiConfig,
    OptSampleList,
    SampleList,
    add_prefix,
)

from ..decode_heads.open_vocab_head import OpenVocabDecodeHead
from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.class_maps import ClassMaps, SlideLogits
from ..utils.clip_consistency import check_clip_consistency
from ..utils.low_precision import prepare_low_precision
from ..utils.mixed_precision import (
    check_inference_dtype,
    inference_autocast,
    to_dtype,
    to_float32,
)
from ..utils.running_max import chunked_argmax
from ..utils.width_check import (
    check_head_widths,
    head_declared_widths,
    neck_output_widths,
    output_widths,
)

__all__ = ['OpenVocabEncoderDecoder']


def _describe(path: str, cfg) -> str:
    """``model.<path> (<type>, model_name=...)`` for messages."""
    cfg = cfg if isinstance(cfg, dict) else {}
    details = [str(cfg['type'])] if cfg.get('type') else []
    if cfg.get('model_name') is not None:
        details.append(f"model_name={cfg['model_name']!r}")
    return f'model.{path}' + (f" ({', '.join(details)})" if details else '')


@MODELS.register_module()
class OpenVocabEncoderDecoder(EncoderDecoder):
    """Encoder-decoder whose classes are named in text.

    Args:
        backbone (dict): Image encoder config (e.g. ``OpenCLIPViT``).
        decode_head (dict): An :class:`OpenVocabDecodeHead` config.
        text_encoder (dict): Text encoder config (``OpenCLIPTextEncoder``).
        vocabulary (optional): Explicit vocabulary (list of classes, text
            file, or METAINFO dict); None follows the dataset.
            Every CLIP named in ``backbone``, ``text_encoder``, ``neck`` and
            ``decode_head`` must be the same CLIP, and the data
            preprocessor's mean / std those of the backbone's pretrained tag
            (:func:`~mmovss.models.utils.clip_consistency.check_clip_consistency`,
            checked before anything is built). The decode head's widths
            (``in_channels``, ``embed_dim``) must be those of the backbone
            (or neck) outputs it reads and of the text encoder's embeddings
            (:func:`~mmovss.models.utils.width_check.check_head_widths`,
            checked once everything is built, where the towers state them;
            also the ``in_channels`` of the auxiliary heads).
        neck, auxiliary_head, train_cfg, data_preprocessor, pretrained,
        init_cfg: As in mmseg's ``EncoderDecoder``.
        test_cfg (dict): mmseg's ``mode`` (``'whole'``/``'slide'``),
            ``crop_size``, ``stride``, plus ``crop_batch_size`` (crops per
            forward in slide mode, default 8), ``resize_class_chunk``
            (classes resized at once, default 16), ``return_logits``
            (store full-size logits in the results, default False) and
            ``inference_dtype`` (``'fp32'``, ``'bf16'`` or ``'fp16'``) and
            ``precision_mode`` (``'cast'``: image tower and decode head cast
            once, the default where the head supports it; ``'autocast'``:
            autocast of the image and text towers; see the module docstring).
    """

    #: ``test_cfg.precision_mode`` values.
    PRECISION_MODES = ('autocast', 'cast')
    #: ``precision_mode`` when ``test_cfg`` names none (None: ``'cast'``
    #: where the decode head has a low-precision path, else ``'autocast'``).
    DEFAULT_PRECISION_MODE = None

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 text_encoder: ConfigType,
                 vocabulary=None,
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None):
        # before anything is built or downloaded: one CLIP, its normalisation
        check_clip_consistency(
            dict(backbone=backbone, neck=neck, text_encoder=text_encoder,
                 decode_head=decode_head, auxiliary_head=auxiliary_head),
            data_preprocessor)
        super().__init__(backbone, decode_head, neck, auxiliary_head,
                         train_cfg, test_cfg, data_preprocessor, pretrained,
                         init_cfg)
        if not isinstance(self.decode_head, OpenVocabDecodeHead):
            raise TypeError(
                f'OpenVocabEncoderDecoder needs an OpenVocabDecodeHead, got '
                f'{type(self.decode_head).__name__}.')
        self.test_cfg = ConfigDict(test_cfg or dict(mode='whole'))
        check_inference_dtype(self.test_cfg.get('inference_dtype'))
        self.text_encoder = MODELS.build(text_encoder)
        check_head_widths({path: head_declared_widths(head)
                           for path, head in self.width_checked_heads()},
                          self.feature_widths(),
                          getattr(self.text_encoder, 'embed_dim', None),
                          _describe('neck' if self.with_neck else 'backbone',
                                    neck if self.with_neck else backbone),
                          _describe('text_encoder', text_encoder))
        self._explicit_vocabulary = None
        self._dataset_vocabulary = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        self._precision_mode()

    def width_checked_heads(self) -> List[Tuple[str, nn.Module]]:
        """The heads whose widths are checked at build, with their config
        paths: the decode head, then the auxiliary head(s)
        (``'model.auxiliary_head'``, or ``'model.auxiliary_head[i]'`` for a
        list), which read the same features."""
        heads = [('model.decode_head', self.decode_head)]
        if self.with_auxiliary_head:
            if isinstance(self.auxiliary_head, nn.ModuleList):
                heads += [(f'model.auxiliary_head[{i}]', head)
                          for i, head in enumerate(self.auxiliary_head)]
            else:
                heads.append(('model.auxiliary_head', self.auxiliary_head))
        return heads

    def feature_widths(self) -> Optional[tuple]:
        """Channels of each feature :meth:`extract_feat` gives the heads,
        stated without a forward: the backbone's
        (:func:`~mmovss.models.utils.width_check.output_widths`), through
        the neck where there is one
        (:func:`~mmovss.models.utils.width_check.neck_output_widths`); None
        where one of them states none."""
        widths = output_widths(self.backbone)
        return neck_output_widths(self.neck, widths) if self.with_neck else widths

    # ---------------------------------------------------------- vocabulary
    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary in use (explicit, else the dataset's)."""
        vocabulary = self._explicit_vocabulary or self._dataset_vocabulary
        if vocabulary is None:
            raise RuntimeError(
                'OpenVocabEncoderDecoder has no vocabulary. Set one in the '
                "config (model.vocabulary=['cat', 'dog'] or a text file), "
                "add custom_hooks=[dict(type='DatasetVocabularyHook')] to "
                'follow the dataset, or call model.set_vocabulary(...).')
        return vocabulary

    @property
    def explicit_vocabulary(self) -> Optional[Vocabulary]:
        """The explicitly set vocabulary, or None when following the data."""
        return self._explicit_vocabulary

    def set_vocabulary(self, vocabulary) -> Vocabulary:
        """Sets an explicit vocabulary (overrides the dataset's)."""
        self._explicit_vocabulary = Vocabulary.build(vocabulary)
        self._sync_num_classes()
        return self._explicit_vocabulary

    def set_dataset_vocabulary(self, metainfo_or_vocabulary) -> Vocabulary:
        """Sets the dataset's vocabulary (from METAINFO or class names).

        It is used unless an explicit vocabulary is set.
        """
        self._dataset_vocabulary = Vocabulary.build(metainfo_or_vocabulary)
        self._sync_num_classes()
        return self.vocabulary

    def tta_unsupported_reason(self) -> Optional[str]:
        """Why mmseg's ``SegTTAModel`` (``tools/test.py --tta``) would give
        other labels than this model's own rule, or None where it may run.

        ``SegTTAModel`` averages the views' ``seg_logits`` (kept with
        ``test_cfg.return_logits``) and takes their argmax; the labels here
        are the argmax of ``seg_logits``, so it may.
        """
        return None

    def _sync_num_classes(self):
        """The class count of the segmentor and the decode head follows the
        vocabulary. Auxiliary heads are left as built: an mmseg head
        (``FCNHead``) classifies into the channels of its ``conv_seg``, so
        its ``num_classes`` cannot follow; they only add training losses, and
        :meth:`check_auxiliary_classes` refuses training them on a
        vocabulary of another class count."""
        num_classes = self.vocabulary.num_classes
        self.num_classes = self.out_channels = num_classes
        self.decode_head.num_classes = num_classes
        self.decode_head.out_channels = num_classes

    def check_auxiliary_classes(self) -> None:
        """Refuses auxiliary heads built for another class count than the
        vocabulary trained on (class ``i`` is their channel ``i``).

        Raises:
            ValueError: Naming each such head, both counts and the fix.
        """
        num_classes = self.vocabulary.num_classes
        wrong = [(path, head.num_classes)
                 for path, head in self.width_checked_heads()[1:]
                 if getattr(head, 'num_classes', num_classes) != num_classes]
        if not wrong:
            return
        heads = ', '.join(f'{path}.num_classes={n}' for path, n in wrong)
        fix = ' and '.join(f'{path}.num_classes={num_classes}'
                           for path, _ in wrong)
        names = ', '.join(self.vocabulary.class_names[:5]) + \
            (', ...' if num_classes > 5 else '')
        verb = 'do' if len(wrong) > 1 else 'does'
        raise ValueError(
            f'{heads} {verb} not fit the vocabulary trained on ({num_classes} '
            f'classes: {names}). An auxiliary head '
            f'classifies into the channels it was built with (vocabulary '
            f'class i is its channel i), so it cannot follow the vocabulary '
            f'as the decode head does: set {fix}, or remove '
            f'model.auxiliary_head.')

    def class_embeddings(self) -> ClassEmbeddings:
        """Embeddings of the current vocabulary (cached by the encoder).

        In inference under ``test_cfg.inference_dtype`` autocast; the
        embeddings are float32.
        """
        if self.training:
            return self.text_encoder(self.vocabulary)
        device = next(self.text_encoder.parameters(), torch.empty(0)).device
        with self._autocast(device.type):
            embeds = self.text_encoder(self.vocabulary)
        if embeds.embeds.is_floating_point() and \
                embeds.embeds.dtype != torch.float32:
            embeds = embeds.to(torch.float32)
        return embeds

    def default_precision_mode(self) -> str:
        """The ``precision_mode`` used when ``test_cfg`` names none."""
        if self.DEFAULT_PRECISION_MODE is not None:
            return self.DEFAULT_PRECISION_MODE
        return 'autocast' if self._cast_refusal() else 'cast'

    def backbone_checked_for_cast(self) -> bool:
        """Whether the backbone is one checked in bf16 against float32 beside
        a ``float32_on_cast_path`` head: mmseg's and detectron2's ResNets
        and open_clip ViTs (tests/test_low_precision_heads.py). Others (e.g.
        mmseg's Swin, whose window attention adds a float32 mask) run the
        towers under autocast."""
        from mmseg.models.backbones import ResNet

        from ..backbones import D2ResNet, OpenCLIPViT
        return isinstance(self.backbone, (ResNet, D2ResNet, OpenCLIPViT))

    def _precision_mode(self) -> str:
        """``test_cfg.precision_mode``, checked."""
        mode = self.test_cfg.get('precision_mode') or self.default_precision_mode()
        if mode not in self.PRECISION_MODES:
            raise ValueError(
                f'test_cfg.precision_mode={mode!r}; use one of '
                f'{self.PRECISION_MODES} (e.g. --cfg-options '
                f'model.test_cfg.precision_mode={self.default_precision_mode()}).')
        refusal = self._cast_refusal() if mode == 'cast' else None
        if refusal:
            raise ValueError(refusal + " use precision_mode='autocast' (--cfg-options "
                             'model.test_cfg.precision_mode=autocast).')
        return mode

    def _cast_refusal(self) -> Optional[str]:
        """Why this model may not take the cast path (None: it may): the one
        rule behind :meth:`default_precision_mode` and the refusal of an
        explicit ``precision_mode='cast'``. A head the path casts
        (:meth:`cast_modules`) needs ``supports_low_precision_cast``; a
        ``float32_on_cast_path`` head needs a backbone checked in low
        precision (:meth:`backbone_checked_for_cast`)."""
        head = self.decode_head
        if any(m is head for m in self.cast_modules()):
            if getattr(head, 'supports_low_precision_cast', False):
                return None
            return (f"test_cfg.precision_mode='cast' casts the decode head, and "
                    f'{type(head).__name__} has no low-precision path (only the '
                    f'heads checked against float32 do: CATSegHead, LSegHead, '
                    f'DenseEmbeddingRefineHead, FCCLIPHead, SANHead; ZegFormerHead, '
                    f'OVSegHead, SAMCLIPHead and OpenSegHead stay float32 beside cast '
                    f'towers);')
        if getattr(head, 'float32_on_cast_path', False) and \
                not self.backbone_checked_for_cast():
            return (f"test_cfg.precision_mode='cast' casts the backbone, and "
                    f'{type(self.backbone).__name__} was not checked in low precision '
                    f'beside {type(head).__name__} (ResNets and open_clip ViTs were);')
        return None

    def _cast_path(self) -> bool:
        """Whether inference takes the cast path (``precision_mode='cast'``;
        with ``inference_dtype='fp32'`` it casts nothing, and refuses float32
        after an earlier cast).

        Never for a model that is being trained (:meth:`train` was called):
        validating it would cast the weights being trained, so its
        validation runs the autocast path instead (said once).
        """
        if self.training or self._precision_mode() != 'cast':
            return False
        if getattr(self, '_being_trained', False):
            if check_inference_dtype(self.test_cfg.get('inference_dtype')) != 'fp32' \
                    and not getattr(self, '_warned_training_cast', False):
                self._warned_training_cast = True
                warnings.warn(
                    "test_cfg.precision_mode='cast' is not used while the model is "
                    'being trained (it would cast the weights being trained); its '
                    'validation runs the towers under autocast instead. Test the '
                    'saved checkpoint with tools/test.py for the cast path.')
            return False
        return True

    def train(self, mode: bool = True):
        """Sets the training mode; a model switched to training is never cast
        to low precision afterwards (:meth:`_cast_path`).

        Raises:
            RuntimeError: Its weights were already cast by a low-precision
                inference (training them in bf16 is not supported).
        """
        if mode:
            state = getattr(self, '_low_precision', None)
            if state is not None and state.get('dtype') is not None:
                raise RuntimeError(
                    f"The model's weights were cast to {state['dtype']} by a "
                    f"low-precision inference (test_cfg.inference_dtype="
                    f"{state['requested']!r}, precision_mode='cast'); rebuild the "
                    f'model or load its checkpoint again before training it.')
            self._being_trained = True
        return super().train(mode)

    def cast_modules(self) -> tuple:
        """The modules the cast path casts: image tower, neck, decode head
        (unless it is ``float32_on_cast_path``) and, with
        ``test_cfg.cast_text_encoder``, the text encoder."""
        text = self.text_encoder if \
            self.test_cfg.get('cast_text_encoder', False) else None
        head = None if getattr(self.decode_head, 'float32_on_cast_path', False) \
            else self.decode_head
        return (self.backbone, self.neck if self.with_neck else None, head, text)

    def _autocast(self, device_type: str):
        """Autocast of the towers, or (cast path) their weights cast once."""
        if not self._cast_path():
            return inference_autocast(self.test_cfg.get('inference_dtype'),
                                      device_type)
        prepare_low_precision(self, self.cast_modules(),
                              self.test_cfg.get('inference_dtype'), device_type)
        return contextlib.nullcontext()

    @property
    def inference_precision(self) -> Optional[dict]:
        """What the last cast-path preparation ran (None: not yet):
        ``requested``, ``run`` (``'fp32'`` after a fallback), ``notes``."""
        return getattr(self, '_low_precision', None)

    def head_dtype(self) -> Optional[torch.dtype]:
        """The decode head's dtype when the cast path made it low precision,
        else None (the head runs on float32 inputs). Read from the state the
        cast recorded (:func:`prepare_low_precision`), not from the weights."""
        state = self.inference_precision
        if state is None or state['dtype'] is None or not self._cast_path() or \
                not any(m is self.decode_head for m in self.cast_modules()):
            return None
        return state['dtype']

    def head_class_embeds(self, class_embeds: ClassEmbeddings) -> ClassEmbeddings:
        """Class embeddings in the decode head's dtype (unchanged unless
        :meth:`head_dtype` is low precision; :meth:`extract_feat` already
        returns the features in that dtype). A head with
        ``float32_class_embeddings`` (FC-CLIP's) gets them in float32."""
        dtype = self.head_dtype()
        if dtype is None or getattr(self.decode_head, 'float32_class_embeddings', False):
            return class_embeds
        return class_embeds.to(dtype)

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Backbone (+ neck) features; autocast in inference.

        Under ``test_cfg.inference_dtype`` the towers run in mixed precision
        and the features are returned in float32, or in the head's dtype
        where the cast path made the head low precision.
        """
        if self.training:
            return super().extract_feat(inputs)
        with self._autocast(inputs.device.type):
            feats = super().extract_feat(inputs)
        dtype = self.head_dtype()
        return to_float32(feats) if dtype is None else to_dtype(feats, dtype)

    # ---------------------------------------------------------- training
    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        x = self.extract_feat(inputs)
        class_embeds = self.class_embeddings()
        losses = dict()
        loss_decode = self.decode_head.loss(x, class_embeds, data_samples,
                                            self.train_cfg)
        losses.update(add_prefix(loss_decode, 'decode'))
        if self.with_auxiliary_head:
            self.check_auxiliary_classes()
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        return losses

    def _forward(self, inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        x = self.extract_feat(inputs)
        return self.decode_head.forward(x, self.class_embeddings())

    # ---------------------------------------------------------- inference
    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict],
                      class_embeds: Optional[ClassEmbeddings] = None
                      ) -> Tensor:
        """Class logits of a batch, resized to the input size."""
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        x = self.extract_feat(inputs)
        return self.decode_head.predict(x, self.head_class_embeds(class_embeds),
                                        batch_img_metas, self.test_cfg).float()

    def _test_mode(self) -> str:
        """``test_cfg.mode``, checked: ``'slide'`` or ``'whole'``."""
        mode = self.test_cfg.get('mode', 'whole')
        if mode not in ('slide', 'whole'):
            raise ValueError(f"test_cfg.mode must be 'slide' or 'whole', got "
                             f'{mode!r}.')
        return mode

    def inference(self, inputs: Tensor, batch_img_metas: List[dict],
                  class_embeds: Optional[ClassEmbeddings] = None) -> Tensor:
        mode = self._test_mode()
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        if mode == 'slide':
            return self.slide_inference(inputs, batch_img_metas, class_embeds)
        return self.whole_inference(inputs, batch_img_metas, class_embeds)

    def whole_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        class_embeds: Optional[ClassEmbeddings] = None
                        ) -> Tensor:
        return self.encode_decode(inputs, batch_img_metas, class_embeds)

    @staticmethod
    def crop_boxes(image_hw: Sequence[int], crop_hw: Sequence[int],
                   stride_hw: Sequence[int]) -> List[tuple]:
        """Sliding-window boxes ``(y1, y2, x1, x2)``, as mmseg places them."""
        h_img, w_img = image_hw
        h_crop, w_crop = crop_hw
        h_stride, w_stride = stride_hw
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        boxes = []
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y2 = min(h_idx * h_stride + h_crop, h_img)
                x2 = min(w_idx * w_stride + w_crop, w_img)
                boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
        return boxes

    def _crop_batches(self, inputs: Tensor, batch_img_metas: List[dict]):
        """The sliding windows of every image, ``crop_batch_size`` at a time.

        Returns:
            tuple: The number of windows per image and an iterator of
            ``(jobs, crops, metas)``: the ``(image, (y1, y2, x1, x2))`` of
            each crop, the stacked crops and their metas (``img_shape`` set
            to the crop size).
        """
        crop_batch = int(self.test_cfg.get('crop_batch_size', 8))
        if crop_batch < 1:
            raise ValueError(f'test_cfg.crop_batch_size must be >= 1, got '
                             f'{crop_batch}.')
        batch_size, _, h_img, w_img = inputs.shape
        boxes = self.crop_boxes((h_img, w_img), self.test_cfg['crop_size'],
                                self.test_cfg['stride'])
        jobs = [(b, box) for box in boxes for b in range(batch_size)]

        def batches():
            for start in range(0, len(jobs), crop_batch):
                chunk = jobs[start:start + crop_batch]
                crops = torch.stack([inputs[b, :, y1:y2, x1:x2]
                                     for b, (y1, y2, x1, x2) in chunk])
                metas = [dict(batch_img_metas[b], img_shape=crops.shape[2:])
                         for b, _ in chunk]
                yield chunk, crops, metas

        return len(boxes), batches()

    def slide_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        class_embeds: Optional[ClassEmbeddings] = None
                        ) -> Tensor:
        """Sliding-window inference, ``crop_batch_size`` crops per forward.

        Crops of all images of the batch are pooled; overlapping logits are
        averaged as in mmseg.
        """
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        batch_size, _, h_img, w_img = inputs.shape
        preds = None
        count = inputs.new_zeros((batch_size, 1, h_img, w_img))
        _, batches = self._crop_batches(inputs, batch_img_metas)
        for chunk, crops, metas in batches:
            logits = self.encode_decode(crops, metas, class_embeds)
            if preds is None:
                preds = inputs.new_zeros(
                    (batch_size, logits.shape[1], h_img, w_img))
            for (b, (y1, y2, x1, x2)), crop_logits in zip(chunk, logits):
                preds[b, :, y1:y2, x1:x2] += crop_logits
                count[b, :, y1:y2, x1:x2] += 1
        return preds / count

    def chunked_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                          class_embeds: Optional[ClassEmbeddings] = None
                          ) -> Optional[SlideLogits]:
        """:meth:`inference` as low-resolution window logits.

        Runs the same windows (``'slide'``: ``crop_batch_size`` at a time;
        ``'whole'``: one window) but keeps the head's logits before their
        resize to the window; ``SlideLogits.dense()`` equals
        :meth:`inference` and ``SlideLogits.image_maps(i).chunk(a, b)`` gives
        classes ``a:b`` of it. None when the head's ``predict`` is not a
        plain resize of per-class maps (then use :meth:`inference`).
        """
        head = self.decode_head
        if not getattr(head, 'has_low_res_predict', False):
            return None
        mode = self._test_mode()
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        batch_size, _, h_img, w_img = inputs.shape
        if mode == 'whole':
            low = head.predict_low_res(
                self.extract_feat(inputs), self.head_class_embeds(class_embeds),
                batch_img_metas, self.test_cfg).float()
            size = head.predict_size(batch_img_metas)
            out = SlideLogits(batch_size, low.shape[1], size,
                              head.align_corners)
            for b in range(batch_size):
                out.add(b, (0, size[0], 0, size[1]), low[b])
            return out
        out = None
        num_windows, batches = self._crop_batches(inputs, batch_img_metas)
        for chunk, crops, metas in batches:
            low = head.predict_low_res(
                self.extract_feat(crops), self.head_class_embeds(class_embeds),
                metas, self.test_cfg).float()
            if out is None:
                out = SlideLogits(batch_size, low.shape[1], (h_img, w_img),
                                  head.align_corners, num_windows=num_windows)
            for (b, box), crop_low in zip(chunk, low):
                out.add(b, box, crop_low)
        return out

    @staticmethod
    def batch_img_metas(inputs: Tensor,
                        data_samples: OptSampleList = None) -> List[dict]:
        """The samples' metainfo; without samples, the unpadded input size
        (as mmseg's ``EncoderDecoder.predict``)."""
        if data_samples is not None:
            return [s.metainfo for s in data_samples]
        return [
            dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                 pad_shape=inputs.shape[2:], padding_size=[0, 0, 0, 0])
        ] * inputs.shape[0]

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        batch_img_metas = self.batch_img_metas(inputs, data_samples)
        class_embeds = self.class_embeddings()
        seg_logits = None
        if data_samples is not None:  # else dense logits are returned
            seg_logits = self.chunked_inference(inputs, batch_img_metas,
                                                class_embeds)
        if seg_logits is None:
            seg_logits = self.inference(inputs, batch_img_metas, class_embeds)
        return self.postprocess_result(seg_logits, data_samples)

    @staticmethod
    def image_maps(seg_logits: Union[Tensor, SlideLogits]) -> List[ClassMaps]:
        """Per-image :class:`ClassMaps` of dense or window logits."""
        if isinstance(seg_logits, SlideLogits):
            return [seg_logits.image_maps(i)
                    for i in range(seg_logits.batch_size)]
        return [ClassMaps.from_tensor(x) for x in seg_logits]

    def resize_argmax(self, logits: Union[Tensor, ClassMaps],
                      size: Sequence[int]) -> Tensor:
        """``resize(logits, size).argmax(0)`` in class chunks.

        Bilinear resizing acts on each class map independently, so resizing
        ``resize_class_chunk`` maps at a time and keeping a running maximum
        (the earlier class wins ties, as in ``argmax``) gives the same
        labels as resizing all classes at once.

        Args:
            logits (Tensor | ClassMaps): (C, h, w) class logits.
            size (Sequence[int]): Output (H, W).

        Returns:
            Tensor: (1, H, W) int64 labels.
        """
        chunk = int(self.test_cfg.get('resize_class_chunk', 16))
        if chunk < 1:
            raise ValueError(f'test_cfg.resize_class_chunk must be >= 1, got '
                             f'{chunk}.')
        if torch.is_tensor(logits):
            logits = ClassMaps.from_tensor(logits)
        resized = ((start, resize(maps[None], size=tuple(size),
                                  mode='bilinear',
                                  align_corners=self.align_corners,
                                  warning=False)[0])
                   for start, maps in logits.chunks(chunk))
        return chunked_argmax(resized)[1][None]

    @staticmethod
    def undo_padding_and_flip(maps: ClassMaps, meta: dict) -> ClassMaps:
        """Removes the batch padding and undoes a flip (mmseg's order)."""
        pad = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
        left, right, top, bottom = pad
        maps = maps.crop(top, bottom, left, right)
        if meta.get('flip', None):
            direction = meta.get('flip_direction', None)
            if direction not in ('horizontal', 'vertical'):
                raise ValueError(f'Unknown flip_direction {direction!r}.')
            maps = maps.flip(2 if direction == 'horizontal' else 1)
        return maps

    def postprocess_result(self, seg_logits: Union[Tensor, SlideLogits],
                           data_samples: OptSampleList = None) -> SampleList:
        """Labels at the original size (chunked resize + argmax).

        Padding removal and flipping follow mmseg's ``postprocess_result``.
        Unlike mmseg, a one-class vocabulary is also decided by argmax (all
        pixels get that class) rather than by a sigmoid threshold.

        Args:
            seg_logits (Tensor | SlideLogits): (B, C, H, W) logits at the
                network input size, dense or as window logits
                (:meth:`chunked_inference`).
            data_samples (list, optional): Samples with ``ori_shape``.
        """
        maps = self.image_maps(seg_logits)
        batch_size = len(maps)
        return_logits = bool(self.test_cfg.get('return_logits', False))
        only_prediction = data_samples is None
        if only_prediction:
            data_samples = [SegDataSample() for _ in range(batch_size)]
        for i in range(batch_size):
            if only_prediction:
                logits = maps[i].dense()
                pred = logits.argmax(dim=0, keepdim=True)
            else:
                meta = data_samples[i].metainfo
                image_maps = self.undo_padding_and_flip(maps[i], meta)
                size = meta['ori_shape'][:2]
                pred = self.resize_argmax(image_maps, size)
                if return_logits:
                    logits = resize(image_maps.dense()[None], size=tuple(size),
                                    mode='bilinear',
                                    align_corners=self.align_corners,
                                    warning=False)[0]
            fields = {'pred_sem_seg': PixelData(data=pred)}
            if return_logits or only_prediction:
                fields['seg_logits'] = PixelData(data=logits)
            data_samples[i].set_data(fields)
        return data_samples
