"""LSeg's text encoder: OpenAI CLIP as ``clip.load`` gives it on a GPU.

LSeg's official code (github.com/isl-org/lang-seg, ``modules/models/
lseg_vit.py``: ``clip.load("ViT-B/32", device='cuda', jit=False)``;
``modules/models/lseg_net.py``: ``LSeg.forward``) encodes each label once
(no prompt template) with the CLIP text tower as OpenAI's ``clip.load``
returns it on a CUDA device: the weights of linear layers, attention and
``text_projection`` in half precision (``clip.model.convert_weights``),
LayerNorms computed in float32 and cast back, and the features L2-normalised
in half precision (``text_features / text_features.norm(dim=-1,
keepdim=True)``).
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmseg.registry import MODELS

from .open_clip_text_encoder import OpenCLIPTextEncoder

__all__ = ['LSegTextEncoder', 'LSEG_TEXT_PRECISIONS']

LSEG_TEXT_PRECISIONS = ('fp32', 'fp16')


@MODELS.register_module()
class LSegTextEncoder(OpenCLIPTextEncoder):
    """:class:`OpenCLIPTextEncoder` computing as LSeg's official code.

    Args:
        precision (str): ``'fp32'`` (float32 weights and features) or
            ``'fp16'`` (OpenAI ``clip.load`` on a GPU: half-precision linear,
            attention and projection weights, float32 LayerNorms, features
            normalised in half precision; every prompt is encoded at the full
            context length, as ``encode_text`` does).
        templates (str | list[str]): As :class:`OpenCLIPTextEncoder`; LSeg
            uses the bare label (``['{}']``). ``'fp16'`` needs one template
            (LSeg has no prompt ensemble).
        **kwargs: :class:`OpenCLIPTextEncoder` arguments (``quick_gelu=True``
            for OpenAI CLIP's QuickGELU).
    """

    def __init__(self, precision: str = 'fp32',
                 templates: Sequence[str] = ('{}', ), **kwargs):
        if precision not in LSEG_TEXT_PRECISIONS:
            raise ValueError(f'LSegTextEncoder: precision={precision!r}; use one of '
                             f'{LSEG_TEXT_PRECISIONS}.')
        if precision == 'fp16':
            kwargs['truncate'] = False  # full-length prompts, as encode_text
        super().__init__(templates=list(templates) if not isinstance(templates, str)
                         else templates, **kwargs)
        self.precision = precision
        if precision == 'fp16':
            if len(self.templates) != 1:
                raise ValueError(
                    f'LSegTextEncoder: precision=fp16 encodes each label with one '
                    f'template (LSeg has no prompt ensemble); got '
                    f'{len(self.templates)} templates.')
            self._to_openai_half()
            self._identity_dirty = True

    def _to_openai_half(self) -> None:
        """``clip.model.convert_weights``: half weights, float32 LayerNorms."""
        from open_clip.model import convert_weights_to_lp
        from open_clip.transformer import LayerNormFp32
        convert_weights_to_lp(self.tower, dtype=torch.float16)
        projection = self.tower.text_projection  # a bare Parameter on the tower
        if isinstance(projection, nn.Parameter):
            projection.data = projection.data.half()
        for module in self.tower.modules():
            if type(module) is not LayerNormFp32 and isinstance(module, nn.LayerNorm):
                module.__class__ = LayerNormFp32  # x.float() -> norm -> input dtype

    def compute_dtype(self) -> str:
        """Parent's dtype key plus the precision (fp16 keeps fp32 embeddings)."""
        return f'{super().compute_dtype()}+{self.precision}'

    def encode_prompts(self, prompts: Sequence[str],
                       tokens: Optional[Tensor] = None) -> Tensor:
        """Embeddings (P, D) of prompts, normalised in the tower's precision."""
        if self.precision != 'fp16':
            return super().encode_prompts(prompts, tokens)
        if tokens is None:
            tokens = self.tokenize(prompts)
        positions = self.tower.pooled_positions(tokens)
        chunks = torch.arange(len(prompts)).split(self.batch_size)
        feats = torch.cat([self.encode_text(tokens[c], positions[c]) for c in chunks])
        feats = feats / feats.norm(dim=-1, keepdim=True)  # in half, as LSeg
        return feats.float()

    def encode_text(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """CLIP's ``encode_text`` on full-length tokens, through the transformer's own
        forward (``nn.MultiheadAttention``), as OpenAI's ``CLIP.encode_text``."""
        tower = self.tower
        dtype = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(tokens).to(dtype)
        x = x + tower.positional_embedding.to(dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        x = tower.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), positions]
        return x @ tower.text_projection

    def _embed_names_uncached(self, names: Sequence[str]) -> Tensor:
        if self.precision != 'fp16':
            return super()._embed_names_uncached(names)
        prompts = [self.templates[0].format(n) for n in names]
        tokens = self.tokenize(prompts)
        self._warn_truncated(names, prompts, tokens)
        return self.encode_prompts(prompts, tokens)  # no float32 re-normalisation
