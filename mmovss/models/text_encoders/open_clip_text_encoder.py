"""open_clip's text tower with prompt ensembling, fast encoding and caching.

Each name ``n`` of a vocabulary is embedded with a set of prompt templates
``T`` (Radford et al., ICML 2021, Sec. 3.1.4; ViLD, Gu et al., ICLR 2022)::

    e(n) = normalise( 1/|T| * sum_{t in T} normalise( f(t.format(n)) ) )

where ``f`` is CLIP's text encoder: token + position embeddings, a causal
transformer, ``ln_final``, the features at the end-of-text (EOT) token, and
``text_projection``.

Fast path: the transformer is causal, so the EOT features depend only on the
tokens up to the EOT position. Prompts are sorted by EOT position and encoded
in batches cut to the longest EOT of the batch (instead of all 77 positions);
the result equals open_clip's ``encode_text`` on the padded input up to float
rounding.

Cache: embeddings are kept in memory per name and, with ``cache_dir``, on
disk per vocabulary, keyed by model name, weights identity (pretrained tag,
checkpoint SHA-256, or a hash of the parameters), the text tower's
architecture beyond its weights (activation, e.g. ``quick_gelu``; heads;
norms; pooling; attention mask), the tokenizer (what it makes of probe
texts: case, accents, context length), the open_clip version, weight dtype,
templates and names (see :class:`TextEmbeddingDiskCache`). Loading new
weights into the module (``load_state_dict``, e.g. by mmengine's
``load_from``) or training it switches the identity to a hash of the current
parameters, so stale embeddings are never served.

Trainable encoders (``frozen=False``, fine-tuned by CAT-Seg) embed with
gradients, uncached, while training; under ``torch.no_grad`` (validation,
testing) they use the caches like frozen ones. Their weights change between
validations, so:

* the memory cache keeps only the entries of the current weights: when the
  weights identity changes (training, or ``load_state_dict``), the entries of
  the older weights are dropped, as they can never be served again (they
  grew the memory by a vocabulary per validation);
* weights changed by training in this process are not written to the disk
  cache (one file per validation, never read again); weights loaded with
  ``load_state_dict`` are, so testing a fine-tuned checkpoint twice reuses
  its file.
"""
import hashlib
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmovss.vocab import Vocabulary, get_templates

from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..utils.clip_attention import clip_block
from ..utils.open_clip_weights import build_open_clip, module_fingerprint
from .class_embeddings import SYNONYM_REDUCTIONS, ClassEmbeddings
from .embedding_cache import TextEmbeddingDiskCache

__all__ = ['OpenCLIPTextEncoder', 'CLIPTextTower']

#: Texts whose tokens identify a tokenizer in the cache key: case, accents,
#: punctuation, other scripts, and a text longer than any context.
TOKENIZER_PROBES = ('a photo of a cat.',
                    'Café NAÏVE, "quoted"; it\'s {braces} 1,234 東京 Ελλάδα',
                    ' '.join(['long'] * 100))


class CLIPTextTower(nn.Module):
    """The text half of an open_clip model (``CLIP`` or ``CustomTextCLIP``).

    Args:
        clip (nn.Module): An open_clip model; its text modules are shared.
    """

    def __init__(self, clip: nn.Module):
        super().__init__()
        text = getattr(clip, 'text', clip)
        if not hasattr(text, 'token_embedding'):
            raise NotImplementedError(
                f'{type(text).__name__} text towers (e.g. Hugging Face text '
                f'models) are not supported; use a CLIP model with the '
                f'standard open_clip text transformer.')
        self.token_embedding = text.token_embedding
        self.positional_embedding = text.positional_embedding
        self.transformer = text.transformer
        self.ln_final = text.ln_final
        self.text_projection = text.text_projection
        self.register_buffer('attn_mask', text.attn_mask, persistent=False)
        self.pool_type = getattr(text, 'text_pool_type',
                                 getattr(text, 'pool_type', 'argmax'))
        self.eos_id = getattr(text, 'text_eos_id', getattr(text, 'eos_id', None))
        self.context_length = self.positional_embedding.shape[0]
        # EOT truncation is exact only for a causal mask, no padding mask and
        # no appended class token.
        self.causal = (text.attn_mask is not None and
                       getattr(text, 'cls_emb', None) is None and
                       not getattr(text, 'use_pad_mask', False) and
                       self.pool_type in ('argmax', 'eos', 'first'))

    @property
    def embed_dim(self) -> int:
        """Width of the text features: the projection's output, else the
        transformer's width."""
        proj = self.text_projection
        if isinstance(proj, nn.Linear):
            return proj.out_features
        if proj is not None:
            return proj.shape[1]
        return self.token_embedding.embedding_dim

    def pooled_positions(self, tokens: Tensor) -> Tensor:
        """Index of the token whose features are pooled, per prompt."""
        if self.pool_type == 'argmax':
            return tokens.argmax(dim=-1)
        if self.pool_type == 'eos':
            return (tokens == self.eos_id).int().argmax(dim=-1)
        if self.pool_type == 'first':
            return tokens.new_zeros(tokens.shape[0])
        return tokens.new_full((tokens.shape[0], ), tokens.shape[1] - 1)

    def forward(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """Encodes tokens (B, L), pooling at ``positions``; L may be < 77.

        Returns:
            Tensor: (B, D) unnormalised text features.
        """
        length = tokens.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast_dtype)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        mask = self.attn_mask[:length, :length] \
            if self.attn_mask is not None else None
        transformer = self.transformer
        if getattr(transformer, 'batch_first', False) and \
                not getattr(transformer, 'grad_checkpointing', False):
            for block in transformer.resblocks:  # SDPA (see clip_block)
                x = clip_block(block, x, attn_mask=mask)
        else:
            x = transformer(x, attn_mask=mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), positions]
        if isinstance(self.text_projection, nn.Linear):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection
        return x


@MODELS.register_module()
class OpenCLIPTextEncoder(BaseModule):
    """Embeds vocabularies with an open_clip text tower (prompt ensembles).

    Args:
        model_name (str, optional): open_clip model name, e.g. ``'ViT-B-16'``.
        pretrained (str, optional): open_clip pretrained tag (``'openai'``)
            or a local checkpoint file; None for random weights.
        model_cfg (dict, optional): open_clip model-config dict instead of
            ``model_name`` (tests).
        quick_gelu (bool, optional): See :func:`build_open_clip`.
        templates (str | list[str]): ``'imagenet'`` (80), ``'vild'`` (14),
            ``'single'``, or a list of templates with a ``{}`` placeholder.
        synonym_reduction (str): ``'max'`` or ``'mean'`` of the logits over
            a class's synonyms.
        whole_names (bool): Embed each class as ONE name, its synonyms
            joined by ``', '`` (the class's entry as written, e.g.
            ``'road, route'``), as the detectron2-based codes do (SAN's
            ``PredefinedOvClassifier`` formats each template with the whole
            dataset name); ``synonym_reduction`` is then unused. CLIP's
            tokenizer ignores white space around a comma, so the tokens equal
            those of the name as published. Default False: one prompt per
            synonym, reduced by ``synonym_reduction``.
        cache_dir (str, optional): Directory of the on-disk embedding cache;
            None keeps embeddings in memory only.
        batch_size (int): Prompts encoded per forward pass.
        truncate (bool): Stop encoding at the last EOT position of each batch
            (exact for causal text transformers).
        frozen (bool): Freeze all parameters (default). Unfrozen encoders
            compute embeddings with gradients and do not cache them while
            gradients are enabled (see the module docstring for the caches
            under ``torch.no_grad``).
        download_cache_dir (str, optional): open_clip's weight cache dir.
        init_cfg (dict, optional): mmengine init config (weights come from
            ``pretrained``; this is rarely needed).
    """

    def __init__(self,
                 model_name: Optional[str] = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 quick_gelu: Optional[bool] = None,
                 templates: Union[str, Sequence[str]] = 'vild',
                 synonym_reduction: str = 'max',
                 whole_names: bool = False,
                 cache_dir: Optional[str] = None,
                 batch_size: int = 256,
                 truncate: bool = True,
                 frozen: bool = True,
                 download_cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if model_cfg is not None:
            model_name = None
        if synonym_reduction not in SYNONYM_REDUCTIONS:
            raise ValueError(f'synonym_reduction={synonym_reduction!r}; use one '
                             f'of {SYNONYM_REDUCTIONS}.')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        clip, identity = build_open_clip(model_name, pretrained, model_cfg,
                                         quick_gelu, download_cache_dir)
        self.model_label = clip.model_label
        self.tower = CLIPTextTower(clip)
        self.register_buffer('logit_scale', clip.logit_scale.detach().exp(),
                             persistent=False)
        del clip
        self.tokenizer = self._build_tokenizer(model_name,
                                               self.tower.context_length)
        self.templates = get_templates(templates)
        self.synonym_reduction = synonym_reduction
        self.whole_names = bool(whole_names)
        self.batch_size = batch_size
        self.truncate = truncate
        self.disk_cache = TextEmbeddingDiskCache(cache_dir) \
            if cache_dir else None
        self._memory: Dict[Tuple[str, str], Tensor] = {}
        self._identity = identity
        self._identity_dirty = identity == 'random'
        self._memory_weights: Optional[str] = None  # identity of _memory
        self._trained = False  # weights changed by training in this process
        if frozen:
            self.tower.requires_grad_(False)
        if self._identity_dirty:  # random weights: hash them once, now
            self.weights_identity

    @staticmethod
    def _build_tokenizer(model_name: Optional[str], context_length: int):
        import open_clip
        if model_name is not None:
            return open_clip.get_tokenizer(model_name)
        return open_clip.tokenizer.SimpleTokenizer(
            context_length=context_length)

    def init_weights(self):
        """Weights come from ``pretrained``; only ``init_cfg`` is applied."""
        if self.init_cfg:
            super().init_weights()

    # ---------------------------------------------------------- identity
    def _load_from_state_dict(self, *args, **kwargs):
        self._identity_dirty = True  # new weights: cached embeddings invalid
        self._trained = False  # loaded weights: worth keeping on disk
        super()._load_from_state_dict(*args, **kwargs)

    @property
    def embed_dim(self) -> int:
        """Width of the class embeddings."""
        return self.tower.embed_dim

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.tower.parameters())

    @property
    def weights_identity(self) -> str:
        """Identity of the current text weights (tag, file hash or content)."""
        if self._identity_dirty:
            self._identity = f'blake2b:{module_fingerprint(self.tower)}'
            self._identity_dirty = False
        return self._identity

    def compute_dtype(self) -> str:
        """The weights' dtype, plus the autocast dtype when one is active.

        Part of the cache key: embeddings computed under mixed precision
        (``test_cfg.inference_dtype``) are cached apart from float32 ones.
        """
        weight = self.tower.positional_embedding
        dtype = str(weight.dtype)
        device_type = weight.device.type
        if torch.is_autocast_enabled(device_type):
            dtype += f'+autocast:{torch.get_autocast_dtype(device_type)}'
        return dtype

    def architecture_identity(self) -> str:
        """A hash of what decides the embeddings besides the weights.

        The tower's modules as ``repr`` shows them (activation: QuickGELU or
        GELU; norms and their eps; layer scale), the heads of every
        attention (not in the weights' shapes), the pooling, the EOT id and
        the attention mask. Two model configs that load the same weight file
        (``quick_gelu=True`` and ``False``) thus differ.
        """
        tower = self.tower
        digest = hashlib.blake2b(repr(tower).encode(), digest_size=16)
        for name, module in tower.named_modules():
            heads = getattr(module, 'num_heads', None)
            if heads is not None:
                digest.update(f'{name}:heads={heads};'.encode())
        digest.update(f'pool={tower.pool_type};eos={tower.eos_id};'
                      f'context={tower.context_length}'.encode())
        if tower.attn_mask is not None:
            mask = tower.attn_mask.detach().cpu().float().contiguous()
            digest.update(mask.numpy().tobytes())
        return digest.hexdigest()

    def tokenizer_identity(self) -> str:
        """The tokenizer's type and a hash of its tokens of
        :data:`TOKENIZER_PROBES` (lower-casing, text cleaning, context
        length), so that a tokenizer set on the encoder keys its own
        embeddings."""
        tokens = self.tokenizer(list(TOKENIZER_PROBES))
        tokens = torch.as_tensor(tokens).cpu().to(torch.int64).contiguous()
        digest = hashlib.blake2b(tokens.numpy().tobytes(), digest_size=16)
        digest.update(str(tuple(tokens.shape)).encode())
        return f'{type(self.tokenizer).__qualname__}:{digest.hexdigest()}'

    def cache_key(self, names: Sequence[str] = ()) -> dict:
        """The key of cached embeddings: model, weights, architecture,
        tokenizer, open_clip version, dtype, templates and names."""
        import open_clip
        dtype = self.compute_dtype()
        return dict(model=self.model_label, weights=self.weights_identity,
                    architecture=self.architecture_identity(),
                    tokenizer=self.tokenizer_identity(),
                    open_clip=getattr(open_clip, '__version__', 'unknown'),
                    dtype=dtype, templates=list(self.templates),
                    names=list(names))

    def clear_memory_cache(self):
        """Forgets the in-memory embeddings (the disk cache is kept)."""
        self._memory.clear()

    # ---------------------------------------------------------- encoding
    def tokenize(self, prompts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(list(prompts))
        return tokens.to(self.tower.token_embedding.weight.device)

    def truncated_prompts(self, prompts: Sequence[str],
                          tokens: Optional[Tensor] = None) -> List[int]:
        """Indices of the prompts longer than the text context.

        open_clip's tokenizer cuts such prompts to ``context_length`` tokens
        (ending them with EOT), so their end is not encoded. Only rows that
        fill the whole context can be cut; those are re-counted with the
        tokenizer's ``encode`` (SOT and EOT included). Tokenizers without
        ``encode`` (Hugging Face ones) are not checked.

        Args:
            prompts (Sequence[str]): The prompts.
            tokens (Tensor, optional): Their tokens, if already computed.

        Returns:
            list[int]: Indices into ``prompts``.
        """
        encode = getattr(self.tokenizer, 'encode', None)
        if not callable(encode) or not prompts:
            return []
        if tokens is None:
            tokens = self.tokenize(prompts)
        context = tokens.shape[1]
        full = torch.nonzero(tokens[:, -1] != 0).flatten().tolist()
        return [i for i in full if len(encode(prompts[i])) + 2 > context]

    def _warn_truncated(self, names: Sequence[str], prompts: Sequence[str],
                        tokens: Tensor) -> None:
        """Warns, naming them, about names whose prompts were truncated."""
        cut = self.truncated_prompts(prompts, tokens)
        if not cut:
            return
        per_name = len(prompts) // len(names)
        cut_names = list(dict.fromkeys(names[i // per_name] for i in cut))
        shown = ', '.join(repr(n) for n in cut_names[:10])
        more = f' and {len(cut_names) - 10} more' if len(cut_names) > 10 \
            else ''
        warnings.warn(
            f'{len(cut_names)} class name(s) are too long for the '
            f'{tokens.shape[1]}-token text context of {self.model_label} and '
            f'were truncated ({len(cut)} of {len(prompts)} prompts cut): '
            f'{shown}{more}. Only their beginning is encoded; shorten them '
            f'or split them into synonyms (comma-separated).')

    def encode_prompts(self, prompts: Sequence[str],
                       tokens: Optional[Tensor] = None) -> Tensor:
        """L2-normalised embeddings (P, D) of prompts, in their order.

        Args:
            prompts (Sequence[str]): The prompts.
            tokens (Tensor, optional): Their tokens (``self.tokenize``), if
                already computed.
        """
        if tokens is None:
            tokens = self.tokenize(prompts)
        positions = self.tower.pooled_positions(tokens)
        if not (self.truncate and self.tower.causal):
            chunks = torch.arange(len(prompts)).split(self.batch_size)
            feats = [self.tower(tokens[c], positions[c]) for c in chunks]
            return F.normalize(torch.cat(feats).float(), dim=-1)
        order = torch.argsort(positions.cpu(), stable=True)
        out = None
        for chunk in order.split(self.batch_size):
            chunk = chunk.to(tokens.device)
            length = int(positions[chunk].max()) + 1
            feats = self.tower(tokens[chunk, :length], positions[chunk])
            if out is None:
                out = feats.new_empty(len(prompts), feats.shape[-1])
            out[chunk] = feats
        # float32 also when encoded under autocast (mixed precision)
        return F.normalize(out.float(), dim=-1)

    def _embed_names_uncached(self, names: Sequence[str]) -> Tensor:
        prompts = [t.format(n) for n in names for t in self.templates]
        tokens = self.tokenize(prompts)
        self._warn_truncated(names, prompts, tokens)
        embeds = self.encode_prompts(prompts, tokens)
        embeds = embeds.float()  # float32 even when computed under autocast
        embeds = embeds.view(len(names), len(self.templates), -1).mean(dim=1)
        return F.normalize(embeds, dim=-1)

    def embed_names(self, names: Sequence[str]) -> Tensor:
        """Template-ensembled, L2-normalised embeddings (N, D) of names.

        Served from the memory cache, then the disk cache, then computed
        (only the names not cached in memory). Trainable encoders always
        compute, with gradients.
        """
        names = list(names)
        if not names:
            raise ValueError('embed_names: the list of names is empty.')
        if self.trainable and torch.is_grad_enabled():
            self._identity_dirty = True  # weights may change after training
            self._trained = True
            return self._embed_names_uncached(names)
        with torch.no_grad():
            return self._embed_names_cached(names)

    def _embed_names_cached(self, names: List[str]) -> Tensor:
        device = self.tower.token_embedding.weight.device
        if self.weights_identity != self._memory_weights:
            self._memory.clear()  # older weights' entries: never used again
            self._memory_weights = self.weights_identity
        context = TextEmbeddingDiskCache.key_text(self.cache_key())
        missing = [n for n in dict.fromkeys(names)
                   if (context, n) not in self._memory]
        disk_cache = None if self._trained else self.disk_cache
        if missing and disk_cache is not None:
            key = self.cache_key(names)
            stored = disk_cache.load(key, len(names))
            if stored is not None:
                for name, row in zip(names, stored):
                    self._memory[(context, name)] = row.to(device)
                missing = []
            else:
                self._fill_memory(context, missing)
                disk_cache.save(
                    key, torch.stack([self._memory[(context, n)]
                                      for n in names]))
                missing = []
        if missing:
            self._fill_memory(context, missing)
        return torch.stack([self._memory[(context, n)].to(device)
                            for n in names])

    def _fill_memory(self, context: str, names: List[str]) -> None:
        embeds = self._embed_names_uncached(names)
        for name, row in zip(names, embeds):
            self._memory[(context, name)] = row

    def forward(self, vocabulary) -> ClassEmbeddings:
        """Embeds every name of a vocabulary.

        Args:
            vocabulary: A :class:`Vocabulary` or anything
                :meth:`Vocabulary.build` accepts.

        Returns:
            ClassEmbeddings: Name embeddings with the synonym reduction
            (``whole_names``: one row per class).
        """
        vocabulary = Vocabulary.build(vocabulary)
        if self.whole_names:  # one prompt per class: 'road, route'
            embeds = self.embed_names([', '.join(names) for names in vocabulary])
            index = torch.arange(len(vocabulary), device=embeds.device)
        else:
            embeds = self.embed_names(vocabulary.names)
            index = torch.tensor(vocabulary.name_to_class, dtype=torch.long,
                                 device=embeds.device)
        return ClassEmbeddings(embeds, index, vocabulary,
                               self.synonym_reduction, self.logit_scale)
