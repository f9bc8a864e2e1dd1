"""open_clip ConvNeXt image tower as a dense backbone.

Returns the four stage maps (strides 4, 8, 16, 32) of the timm ConvNeXt
trunk and the dense embeddings in CLIP's joint space: the CLIP head (the
trunk's final ``norm`` followed by open_clip's ``linear``/``mlp``
projection) applied at every position of the last stage instead of after
global pooling, as FC-CLIP does for mask pooling (Yu et al., NeurIPS 2023,
Sec. 3.2). Inputs of any size are zero-padded bottom/right to a multiple of
32, so a stage of stride ``s`` has ``32 * ceil(H / 32) / s`` rows (and the
same for columns).

``dense_output='features'`` returns the last stage map itself instead of the
dense embeddings; :meth:`OpenCLIPConvNeXt.project_pooled` then applies the
CLIP head to mask-pooled vectors, as the official FC-CLIP does
(``fcclip/modeling/backbone/clip.py``, ``CLIP.visual_prediction_forward_convnext``:
pooling first, then ``trunk.head`` and ``visual.head``).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.open_clip_weights import build_open_clip
from ..utils.trainable_params import PretrainedTower

__all__ = ['OpenCLIPConvNeXt']


@MODELS.register_module()
class OpenCLIPConvNeXt(PretrainedTower):
    """Stage maps and joint-space dense embeddings of an open_clip ConvNeXt.

    Args:
        model_name (str, optional): open_clip ConvNeXt model name, e.g.
            ``'convnext_base_w'``, ``'convnext_large_d_320'``.
        pretrained (str, optional): open_clip pretrained tag or a local
            checkpoint file; None: random weights.
        model_cfg (dict, optional): open_clip model-config dict instead of
            ``model_name`` (tests).
        out_indices (Sequence[int]): Stages returned (0-3).
        frozen (bool): Freeze the tower (default).
        unfrozen (Sequence[str]): Parameter-name patterns kept trainable.
        eval_mode (bool): Keep the tower in eval mode (no stochastic depth)
            during training.
        download_cache_dir (str, optional): open_clip's download cache.
        dense_output (str): The last output: ``'embeddings'`` (default, the
            CLIP head at every position, (B, embed_dim, H/32, W/32)) or
            ``'features'`` (the last stage after ``norm_pre``, (B, C, H/32,
            W/32), for pooling before :meth:`project_pooled`, as the official
            FC-CLIP).
        init_cfg (dict, optional): mmengine init config.

    Returns (forward):
        tuple[Tensor]: The stage maps of ``out_indices``, then the dense
        embeddings or features (``dense_output``).
    """

    #: Kept float32 when the tower is cast to bf16 once
    #: (``test_cfg.precision_mode='cast'``, ``low_precision.cast_tower``): the
    #: stem (a 4 x 4 convolution of the normalised pixels and its norm, as the
    #: ViT's patch embedding) and the CLIP head into the joint space
    #: (``trunk.head``, ``visual.head``), so the dense embeddings and
    #: :meth:`project_pooled` are float32; the stages run in bf16.
    float32_modules = ('stem', 'head')

    def __init__(self,
                 model_name: Optional[str] = 'convnext_base_w',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen: bool = True,
                 unfrozen: Sequence[str] = (),
                 eval_mode: bool = True,
                 download_cache_dir: Optional[str] = None,
                 dense_output: str = 'embeddings',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if dense_output not in ('embeddings', 'features'):
            raise ValueError(f"OpenCLIPConvNeXt: dense_output must be 'embeddings' or "
                             f"'features', got {dense_output!r}.")
        self.dense_output = dense_output
        if model_cfg is not None:
            model_name = None
        clip, self.weights_identity = build_open_clip(
            model_name, pretrained, model_cfg, None, download_cache_dir)
        visual = clip.visual
        trunk = getattr(visual, 'trunk', None)
        if trunk is None or not hasattr(trunk, 'stages') or \
                not hasattr(getattr(trunk, 'head', None), 'norm'):
            raise ValueError(
                f'OpenCLIPConvNeXt needs an open_clip timm ConvNeXt tower '
                f'(timm_pool=""), but {clip.model_label} has '
                f'{type(visual).__name__}; use OpenCLIPViT for ViT models.')
        if 'pool' in dict(visual.head.named_children()):
            raise NotImplementedError(
                'Attention-pooled timm towers have no per-position head.')
        self.visual = visual
        del clip
        num_stages = len(trunk.stages)
        for i in out_indices:
            if not 0 <= i < num_stages:
                raise ValueError(f'out_indices entry {i} is not a stage index '
                                 f'in [0, {num_stages - 1}].')
        self.out_indices = tuple(out_indices)
        self.stage_channels = tuple(f['num_chs'] for f in trunk.feature_info)
        self.size_divisor = trunk.feature_info[-1]['reduction']
        self.set_trainable(frozen, unfrozen, eval_mode)

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """Channels of the forward's outputs: the stages of ``out_indices``,
        then the joint dimension (the CLIP head's output, computed on one
        position) or the last stage's (``dense_output='features'``)."""
        last = self.stage_channels[-1]
        if self.dense_output == 'embeddings':
            weight = next(self.visual.head.parameters(), None)
            with torch.no_grad():
                last = self.project_dense(torch.zeros(
                    1, last, 1, 1, device=None if weight is None else weight.device)).shape[1]
        return tuple(self.stage_channels[i] for i in self.out_indices) + (last, )

    def project_dense(self, x: Tensor) -> Tensor:
        """The CLIP head at every position: (B, C, h, w) -> (B, D, h, w)."""
        trunk_head = self.visual.trunk.head
        # float32 also in a bf16 tower: the head's weights are kept float32
        x = trunk_head.norm(x.float()).permute(0, 2, 3, 1)  # LayerNorm2d, then NHWC
        x = trunk_head.pre_logits(x)
        x = trunk_head.fc(trunk_head.drop(x))
        x = self.visual.head(x)
        return x.permute(0, 3, 1, 2).contiguous()

    def project_pooled(self, x: Tensor) -> Tensor:
        """The CLIP head on pooled last-stage vectors: (B, Q, C) -> (B, Q, D).

        The official FC-CLIP's order (``CLIP.visual_prediction_forward_convnext``:
        ``trunk.head`` (norm, flatten, fc) then ``visual.head`` on each
        mask-pooled vector as a 1 x 1 map).
        """
        b, q, c = x.shape
        out = self.project_dense(x.reshape(b * q, c, 1, 1))
        return out.reshape(b, q, -1)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'OpenCLIPConvNeXt expects (B, 3, H, W) images, '
                             f'got {tuple(inputs.shape)}.')
        s = self.size_divisor
        pad_h, pad_w = (-inputs.shape[2]) % s, (-inputs.shape[3]) % s
        if pad_h or pad_w:
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h))
        trunk = self.visual.trunk
        x = trunk.stem(inputs)
        # the stages' dtype: bf16 once the tower is cast (the stem is float32)
        x = x.to(next(p for p in trunk.stages.parameters() if p.dim() > 1).dtype)
        stages = []
        for i, stage in enumerate(trunk.stages):
            x = stage(x)
            stages.append(x)
        x = trunk.norm_pre(x)
        outs = [stages[i] for i in self.out_indices]
        outs.append(x if self.dense_output == 'features' else self.project_dense(x))
        return tuple(outs)
