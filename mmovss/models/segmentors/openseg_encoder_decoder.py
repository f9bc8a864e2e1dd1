"""OpenSeg's segmentor: embeds the caption words of each training batch.

The grounding loss of OpenSeg (Ghiasi et al., ECCV 2022, Sec. 3.3) compares
regions with the words of the image's caption. During training this
segmentor collects the words of the batch (``caption_words`` in each
sample's metainfo, see :class:`~mmovss.datasets.CaptionDataset`), embeds
them with the (frozen) text encoder as a vocabulary of words and hands
those embeddings to :class:`~mmovss.models.decode_heads.OpenSegHead`'s
loss. Inference is :class:`OpenVocabEncoderDecoder`'s.
"""
from typing import Optional

from torch import Tensor

from mmovss.vocab import Vocabulary

from mmseg.registry import MODELS
from mmseg.utils import SampleList, add_prefix

from ..text_encoders.class_embeddings import ClassEmbeddings
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['OpenSegEncoderDecoder']


@MODELS.register_module()
class OpenSegEncoderDecoder(OpenVocabEncoderDecoder):
    """:class:`OpenVocabEncoderDecoder` whose training loss grounds caption
    words (arguments are the parent's)."""

    def caption_word_embeddings(self, data_samples: SampleList
                                ) -> Optional[ClassEmbeddings]:
        """Embeddings of the distinct caption words of a batch, or None."""
        words = {}
        for sample in data_samples:
            for word in sample.metainfo.get('caption_words') or []:
                word = ' '.join(str(word).replace(',', ' ').split())
                if word:
                    words.setdefault(word.lower(), word)
        if not words:
            return None
        return self.text_encoder(Vocabulary(list(words.values()),
                                            source='caption words'))

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        x = self.extract_feat(inputs)
        word_embeds = self.caption_word_embeddings(data_samples)
        losses = self.decode_head.loss(x, word_embeds, data_samples,
                                       self.train_cfg)
        return add_prefix(losses, 'decode')
