"""Segment your own images with your own words: the Python inferencer.

:class:`OpenVocabInferencer` is MMSegmentation's ``MMSegInferencer`` (built
from a config or a model name, optional checkpoint, device; the config's
test pipeline) for open-vocabulary segmentors:

* a **vocabulary** per call (list, text file, :class:`~mmovss.vocab.
  Vocabulary`; synonyms as ``'cat, kitten'``); changing it swaps the
  segmentor's classes (``set_vocabulary``) without rebuilding anything, and
  text embeddings stay cached in the text encoder across calls;
* results per image: the label map, the class names, per-class pixel areas
  and confidence scores, optionally the overlay with a legend of the
  present classes;
* images of any size in one call: a batch is split into groups of equal
  network-input size;
* folders: image files sorted, other files skipped with a warning, an
  unreadable image skipped with a warning (but an error when named alone);
  outputs written under ``out_dir`` never replace an input file.

Example::

    from mmovss.apis import OpenVocabInferencer
    inferencer = OpenVocabInferencer('sclip')  # or a config path
    result = inferencer('demo.jpg', vocabulary=['cat, kitten', 'grass', 'sky'])
    result['predictions']['sem_seg']          # (H, W) labels
"""
import copy
import json
import os
import os.path as osp
import sys
import warnings
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from rich.progress import track

from mmovss.datasets.label_file_conversion import save_label
from mmovss.io import UnsafeOutputError, check_planned_outputs
from mmovss.models.segmentors.training_free_segmentor import TrainingFreeSegmentor
from mmovss.models.utils.open_clip_weights import fetch_pretrained_clip_weights
from mmovss.protocols import apply_benchmark
from mmovss.runtime import check_device, load_config, merge_cfg_options
from mmovss.trained_weights import require_trained_weights
from mmovss.visualization import OpenVocabVisualizer
from mmovss.visualization.legend import check_font_file
from mmovss.vocab import Vocabulary

import mmcv
from mmcv.transforms import Compose
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.visualization import Visualizer
from mmseg.apis import MMSegInferencer
from mmseg.registry import DATASETS, TRANSFORMS
from mmseg.structures import SegDataSample

from .class_stats import summarize
from .inputs import ImageInput, UnreadableImageError, UnsegmentableImageError, collect_inputs
from .model_zoo import resolve_model
from .released_weights import (
    PreparedWeights,
    ReleasedWeightsError,
    load_prepared,
    prepare_weights,
    released_config_mismatch,
)

__all__ = ['OpenVocabInferencer', 'OutputWouldOverwriteInput']

_LOAD_FILE = 'LoadImageFromFile'


class OutputWouldOverwriteInput(ValueError):
    """An output file of ``out_dir`` is one of the input images."""


def output_paths(out_dir: str, name: str) -> dict:
    """The files written for image ``name`` under ``out_dir``."""
    return dict(vis=osp.join(out_dir, 'vis', f'{name}.png'),
                labels=osp.join(out_dir, 'pred', f'{name}.png'),
                json=osp.join(out_dir, 'pred', f'{name}.json'))


def _has_display() -> bool:
    """Whether a window can be shown (Linux and BSD need an X or Wayland display)."""
    if sys.platform.startswith(('win', 'darwin')):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


class OpenVocabInferencer(MMSegInferencer):
    """Open-vocabulary semantic segmentation of images given by the user.

    Args:
        model (str | Config | dict): A config path, a model name or alias
            (:func:`mmovss.apis.list_models`), or a config object.
        weights (str, optional): Checkpoint path or URL, in mmovss's layout
            or a released official format (recognised by its keys,
            converted once and cached:
            :func:`mmovss.apis.released_weights.prepare_weights`); loaded
            strictly (every key of the model must be filled). Training-free
            configs need none (their CLIP weights come from the config);
            a released model name brings its own URL (downloaded once).
        vocabulary (optional): Initial vocabulary (list of classes, text
            file or Vocabulary). Defaults to the config's (``model.
            vocabulary``), else the class names of its test dataset.
        palette (list, optional): RGB colour per class of ``vocabulary``;
            by default the dataset's palette when the vocabulary is the
            dataset's, else a fixed palette for any number of classes.
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:1'``...;
            the available device by default. One this machine does not have
            (``'cuda'`` without a usable GPU, ``'cuda:7'`` with fewer GPUs,
            ``'gpu'``) raises :class:`~mmovss.runtime.DeviceUnavailableError`
            (a ``ValueError``) naming it and the fix, before anything is
            built or downloaded.
        cfg_options (dict, optional): Dotted-key config overrides (as
            ``--cfg-options``), e.g. ``{'model.backbone.pretrained': path}``.
        scope (str): Default registry scope. Defaults to ``'mmseg'``.
        show_progress (bool): Progress bar over batches. Defaults to False.
        benchmark (str, optional): A benchmark key (``'voc21'``...,
            :data:`mmovss.protocols.BENCHMARK_KEYS`): the method's protocol
            for it (class names, test resize, thresholds) is applied before
            ``cfg_options`` (:func:`mmovss.protocols.apply_benchmark`).
        weights_dir (str, optional): Folder for downloaded and converted
            checkpoints; default ``$MMOVSS_WEIGHTS_DIR``, else torch hub's
            ``checkpoints`` folder.
        allow_random_weights (bool): Accept a trained model without weights
            (its learned layers random: speed tests, debugging). Otherwise
            such a model is refused (:class:`~mmovss.trained_weights.
            MissingTrainedWeights`), as in ``tools/test.py`` and
            ``tools/demo.py``: its predictions would not be the model's.
            The config's ``load_from`` counts as weights.
    """

    def __init__(self,
                 model: Union[str, os.PathLike, Config, dict],
                 weights: Optional[str] = None,
                 vocabulary=None,
                 palette: Optional[Sequence] = None,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 scope: str = 'mmseg',
                 show_progress: bool = False,
                 benchmark: Optional[str] = None,
                 weights_dir: Optional[str] = None,
                 allow_random_weights: bool = False) -> None:
        check_device(device, option='device')  # before any download or build
        config = None
        if isinstance(model, (str, os.PathLike)):
            config, weights = resolve_model(os.fspath(model), weights)
            cfg = load_config(config)
        elif isinstance(model, (Config, ConfigDict, dict)):
            cfg = Config(copy.deepcopy(dict(model))) \
                if not isinstance(model, Config) else copy.deepcopy(model)
        else:
            raise TypeError(f'model must be a config path, a model name or a '
                            f'config, got {type(model).__name__}.')
        if benchmark is not None:
            cfg = apply_benchmark(cfg, benchmark)
        if cfg_options:
            merge_cfg_options(cfg, cfg_options)  # warns about likely misspelt keys
        if weights is None and cfg.get('load_from'):
            weights = cfg.load_from  # as tools/test.py without CHECKPOINT
        if weights is not None and not str(weights).startswith(
                ('http://', 'https://')) and not osp.isfile(weights):
            raise FileNotFoundError(f'Checkpoint {weights!r} does not exist.')
        # download / recognise / convert once (cached); None: no checkpoint
        self.weights = None if weights is None else prepare_weights(
            weights, cache_dir=weights_dir)
        self._dataset_meta = self._test_dataset_meta(cfg)
        # CLIP tags cached or downloaded now: offline, the error names every key to set
        fetch_pretrained_clip_weights(cfg.model)
        super().__init__(model=cfg, weights=None, device=device,
                         scope=scope)
        if self.weights is not None:
            self._load_strictly(self.weights)
            mismatch = released_config_mismatch(config, self.weights)
            if mismatch:  # a released file with the config of another release
                warnings.warn(mismatch, stacklevel=2)
        else:
            require_trained_weights(self.model, None, allow_random_weights,
                                    config=model if isinstance(model, str) else None,
                                    api=True)
        self.show_progress = show_progress
        if not hasattr(self.model, 'set_vocabulary'):
            raise TypeError(
                f'{type(self.model).__name__} is not an open-vocabulary '
                f'segmentor (it has no set_vocabulary); use mmseg\'s '
                f'MMSegInferencer for closed-set models.')
        self._palette = None
        explicit = getattr(self.model, 'explicit_vocabulary', None)
        own = explicit if explicit is not None else (
            Vocabulary.build(self._dataset_meta) if self._dataset_meta else None)
        self._own_class_names = list(own.class_names) if own is not None else None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, palette)
        else:
            self._palette = palette
            if not self._has_vocabulary() and self._dataset_meta:
                self.model.set_dataset_vocabulary(self._dataset_meta)

    # ------------------------------------------------------------ set-up
    def _load_strictly(self, weights: PreparedWeights) -> None:
        """The strict loader of ``tools/test.py``; a mismatch names the
        source and its recognised format."""
        try:
            load_prepared(self.model, weights)
        except RuntimeError as err:
            reason = str(err)
            what = (f'{weights.source!r} (format {weights.format}, converted to '
                    f'{weights.path!r})' if weights.converted else repr(weights.source))
            raise ReleasedWeightsError(
                f'The weights {what} do not fit the model of this config: {reason} Use the '
                'config of the released model (python tools/demo.py --list-models).') from None

    def _seg_logits_kind(self) -> str:
        """What the model's ``seg_logits`` hold (``OpenVocabDecodeHead.seg_logits_kind``)."""
        if isinstance(self.model, TrainingFreeSegmentor):
            return 'probabilities'
        head = getattr(self.model, 'decode_head', None)
        return getattr(head, 'seg_logits_kind', 'logits')

    @staticmethod
    def _test_dataset_meta(cfg: Config) -> Optional[dict]:
        """METAINFO (classes, palette) of the config's test dataset."""
        loader = cfg.get('test_dataloader') or {}
        dataset = loader.get('dataset') or {}
        metainfo = {}
        dataset_type = dataset.get('type')
        if isinstance(dataset_type, str):
            try:
                metainfo.update(getattr(DATASETS.get(dataset_type),
                                        'METAINFO', {}) or {})
            except KeyError:
                pass
        override = dataset.get('metainfo') or {}
        if override.get('classes'):
            metainfo = dict(classes=override['classes'],
                            palette=override.get('palette'))
        return metainfo if metainfo.get('classes') else None

    def _load_weights_to_model(self, model: torch.nn.Module,
                               checkpoint: Optional[dict],
                               cfg: Optional[Config]) -> None:
        """Nothing: the checkpoint is loaded after the model is built, by the
        strict loader (``__init__``); classes come from the vocabulary."""

    def _init_pipeline(self, cfg: Config) -> Compose:
        """The config's test pipeline fed with arrays, without annotations.

        Images are read by the config's own ``LoadImageFromFile`` (kept as
        :attr:`image_loader`) so that unreadable files can be reported one by
        one; the pipeline then starts from the array.
        """
        loader = cfg.get('test_dataloader') or {}
        pipeline = (loader.get('dataset') or {}).get('pipeline')
        if not pipeline:
            pipeline = [dict(type=_LOAD_FILE), dict(type='PackSegInputs')]
        pipeline = [
            copy.deepcopy(t) for t in pipeline
            if 'Annotation' not in str(t['type'])
        ]
        index = next((i for i, t in enumerate(pipeline)
                      if t['type'] == _LOAD_FILE), None)
        if index is None:
            raise ValueError(
                f'The test pipeline has no {_LOAD_FILE}; the inferencer '
                f'needs it to read images: {pipeline}')
        load_cfg = pipeline[index]
        self.image_loader = TRANSFORMS.build(load_cfg)
        pipeline[index] = dict(type='LoadImageFromNDArray',
                               to_float32=load_cfg.get('to_float32', False))
        return Compose(pipeline)

    def _init_collate(self, cfg: Config):
        """The test loader's ``collate_fn`` if it names one, else
        mmengine's ``pseudo_collate`` (as mmengine falls back to)."""
        loader = cfg.get('test_dataloader') or {}
        if loader.get('collate_fn') is None:
            return pseudo_collate
        return super()._init_collate(cfg)

    def _init_visualizer(self, cfg: Config) -> OpenVocabVisualizer:
        name, k = 'mmovss_inferencer', 0
        while Visualizer.check_instance_created(f'{name}_{k}'):
            k += 1
        return OpenVocabVisualizer(name=f'{name}_{k}')

    # ------------------------------------------------------------ vocabulary
    def _has_vocabulary(self) -> bool:
        try:
            self.model.vocabulary
        except RuntimeError:
            return False
        return True

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary of the next call."""
        if not self._has_vocabulary():
            raise ValueError(
                'No vocabulary: pass vocabulary=[...] (class names, synonyms '
                "as 'cat, kitten') or a text file to the inferencer or to "
                'the call; the config has none and no test dataset.')
        return self.model.vocabulary

    def set_vocabulary(self, vocabulary,
                       palette: Optional[Sequence] = None) -> Vocabulary:
        """Swaps the classes; the model is not rebuilt.

        Args:
            vocabulary: List of classes (``'cat, kitten'`` for synonyms), a
                text file (one class per line) or a Vocabulary.
            palette (list, optional): RGB colour per class.
        """
        vocabulary = Vocabulary.build(vocabulary)
        if palette is not None and len(palette) != len(vocabulary):
            raise ValueError(
                f'palette has {len(palette)} colours for the '
                f'{len(vocabulary)} classes of the vocabulary.')
        self._palette = palette
        self.model.set_vocabulary(vocabulary)
        self._fit_background_rule(vocabulary)
        return vocabulary

    def _fit_background_rule(self, vocabulary: Vocabulary) -> None:
        """The training-free protocols' background rule, kept only where it fits.

        A benchmark protocol (e.g. ``sclip_vit-b16_voc21``) sends pixels
        below ``prob_thd`` to its background class ``background_index`` (0)
        and spares it the ``area_thd`` filter. With the user's own classes
        that class is whatever came first, so the rule is turned off
        (``prob_thd=0``, ``background_index=None``; warned) unless the class
        at that index is named as a background (``background``, ``other``,
        ...) or the vocabulary is the config's own; it comes back when it
        fits again.
        """
        head = getattr(self.model, 'decode_head', None)
        if head is None or not hasattr(head, 'background_index'):
            return
        if not hasattr(self, '_protocol_background'):
            self._protocol_background = (head.prob_thd, head.background_index)
        prob_thd, index = self._protocol_background
        if index is None or (prob_thd <= 0 and getattr(head, 'area_thd', None) is None):
            return
        from mmovss.vocab import is_background_name
        names = list(vocabulary.class_names)
        fits = index < len(names) and (
            is_background_name(names[index])
            or names == self._own_class_names)
        if fits:
            head.prob_thd, head.background_index = prob_thd, index
        elif head.background_index is not None:
            head.prob_thd, head.background_index = 0.0, None
            warnings.warn(
                f'This config\'s protocol treats class {index} as the background (pixels '
                f'below prob_thd={prob_thd} go to it; it is spared the area filter), but class '
                f'{index} of your vocabulary is {names[index]!r}: the rule is off for it '
                f'(prob_thd=0, background_index=None). Name a background class at index '
                f'{index} (e.g. "background") to keep it.', stacklevel=3)

    def _class_palette(self, vocabulary: Vocabulary) -> Optional[list]:
        if self._palette is not None and len(self._palette) == len(
                vocabulary):
            return list(self._palette)
        meta = self._dataset_meta or {}
        if meta.get('palette') and Vocabulary.build(
                meta).class_names == vocabulary.class_names:
            return list(meta['palette'])
        return None

    # ------------------------------------------------------------ running
    def _read(self, item: ImageInput) -> Optional[np.ndarray]:
        """The BGR image of an item; None (+ warning) if a folder file fails.

        Raises:
            UnreadableImageError: An explicitly named file cannot be read.
        """
        if item.path is None:
            return item.source
        try:
            results = self.image_loader(dict(img_path=item.path))
            image = None if results is None else results['img']
            reason = 'not a decodable image'
        except Exception as e:  # noqa: BLE001 (any decoder error)
            image, reason = None, f'{type(e).__name__}: {e}'
        if image is not None:
            return image
        message = (f'Cannot read image {item.path!r} ({reason}); pass an '
                   f'image file OpenCV can decode.')
        if item.from_folder:
            warnings.warn(f'{message} Skipped.')
            return None
        raise UnreadableImageError(message)

    @torch.no_grad()
    def forward(self, inputs: dict, with_scores: bool = True) -> list:
        """``model.test_step`` that also keeps the class logits for scores."""
        test_cfg = self.model.test_cfg
        previous = test_cfg.get('return_logits', None)
        if with_scores:
            test_cfg['return_logits'] = True
        try:
            return self.model.test_step(inputs)
        finally:
            if previous is None:
                test_cfg.pop('return_logits', None)
            else:
                test_cfg['return_logits'] = previous

    def _predict(self, images: List[np.ndarray],
                 with_scores: bool) -> List[SegDataSample]:
        """Runs a batch; images of different network sizes go separately."""
        data = [self.pipeline(dict(img=image)) for image in images]
        groups = {}
        for i, item in enumerate(data):
            groups.setdefault(tuple(item['inputs'].shape), []).append(i)
        samples = [None] * len(data)
        for indices in groups.values():
            batch = self.collate_fn([data[i] for i in indices])
            for i, sample in zip(indices, self.forward(batch, with_scores)):
                samples[i] = sample
        return samples

    def _check_no_overwrite(self, items: List[ImageInput],
                            out_dir: str) -> None:
        # By inode (mmovss.io): a hard link of an input is the input.
        planned = [path for item in items
                   for path in output_paths(out_dir, item.name).values()]
        try:
            check_planned_outputs(
                planned, [i.path for i in items if i.path is not None],
                flag='out_dir')
        except UnsafeOutputError as e:
            raise OutputWouldOverwriteInput(str(e)) from None

    def stream(self,
               inputs,
               vocabulary=None,
               batch_size: int = 1,
               return_datasamples: bool = False,
               return_vis: bool = False,
               show: bool = False,
               wait_time: float = 0,
               out_dir: str = '',
               opacity: float = 0.5,
               with_legend: bool = True,
               with_labels: bool = False,
               with_scores: bool = True,
               legend_font: Optional[str] = None) -> Iterator[dict]:
        """Yields one result per image, batch by batch (see :meth:`__call__`).

        Use it for large folders: nothing is kept after an image is yielded.
        The arguments (the legend font file included), the vocabulary and the
        inputs are checked when it is called, before the first image is taken.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        if legend_font is not None:
            legend_font = check_font_file(legend_font)
        if show and not _has_display():
            raise ValueError('show=True (--show) needs a display, and this session has none '
                             '(no DISPLAY / WAYLAND_DISPLAY): the window would wait forever. '
                             'Write the overlays with out_dir (--out) instead.')
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        vocab = self.vocabulary
        self.visualizer.set_dataset_meta(list(vocab.class_names),
                                         self._class_palette(vocab))
        self.visualizer.alpha = opacity
        self.visualizer.with_legend = with_legend
        if legend_font is not None:
            self.visualizer.legend_font = legend_font
        items = collect_inputs(inputs)
        if out_dir:
            self._check_no_overwrite(items, out_dir)
        return self._stream(items, vocab, batch_size, return_datasamples, return_vis, show,
                            wait_time, out_dir, with_labels, with_scores)

    def _stream(self, items, vocab, batch_size, return_datasamples, return_vis, show,
                wait_time, out_dir, with_labels, with_scores) -> Iterator[dict]:
        batches = [items[i:i + batch_size]
                   for i in range(0, len(items), batch_size)]
        if self.show_progress:
            batches = track(batches, description='Segmenting')
        done, skipped = 0, []
        for batch in batches:
            loaded = [(item, self._read(item)) for item in batch]
            skipped += [item for item, img in loaded if img is None]
            loaded = [(item, img) for item, img in loaded if img is not None]
            if not loaded:
                continue
            for (item, image), sample in zip(loaded, self._segment(loaded, with_scores)):
                if sample is None:
                    skipped.append(item)
                    continue
                done += 1
                yield self._result(item, image, sample, vocab,
                                   return_datasamples, return_vis, show,
                                   wait_time, out_dir, with_labels)
        if skipped and not done:
            raise UnreadableImageError(
                f'None of the {len(skipped)} image(s) could be read and segmented (the '
                f'warnings above give each reason, e.g. {skipped[0].path!r}); nothing was '
                f'written.')

    def _segment(self, loaded, with_scores: bool) -> List[Optional[SegDataSample]]:
        """The samples of one batch of ``(item, image)``; an image the model
        cannot segment (smaller than a patch, thinner than a kernel) is
        refused naming its file, or skipped (None, warned) in a folder run."""
        try:
            return self._predict([img for _, img in loaded], with_scores)
        except (ValueError, RuntimeError) as err:
            if isinstance(err, torch.OutOfMemoryError):
                raise
        samples = []  # one by one, to find the image and keep the others
        for item, image in loaded:
            try:
                samples += self._predict([image], with_scores)
            except (ValueError, RuntimeError) as err:
                if isinstance(err, torch.OutOfMemoryError):
                    raise
                message = (f'Cannot segment image {item.path or item.name!r} '
                           f'({image.shape[0]}x{image.shape[1]} pixels) with this model: '
                           f'{type(err).__name__}: {err}')
                if not item.from_folder:
                    raise UnsegmentableImageError(message) from err
                warnings.warn(f'{message} Skipped.')
                samples.append(None)
        return samples

    def _result(self, item: ImageInput, image: np.ndarray,
                sample: SegDataSample, vocab: Vocabulary,
                return_datasamples: bool, return_vis: bool, show: bool,
                wait_time: float, out_dir: str, with_labels: bool):
        sem_seg = sample.pred_sem_seg.data[0]
        seg_logits = sample.seg_logits.data if 'seg_logits' in sample \
            else None
        stats = summarize(
            sem_seg, vocab.num_classes, seg_logits,
            kind=self._seg_logits_kind())
        if not return_datasamples and 'seg_logits' in sample:
            del sample.seg_logits  # (C, H, W): free it now
        labels = sem_seg.cpu().numpy()
        drawn = None
        if return_vis or show or out_dir:
            drawn = self.visualizer.draw_prediction(
                np.ascontiguousarray(image[..., ::-1]), labels, with_labels)
            if show:
                self.visualizer.show(drawn, win_name=item.name,
                                     wait_time=wait_time)
        order = sorted(np.flatnonzero(stats['pixels']),
                       key=lambda c: (-stats['pixels'][c], c))
        result = dict(
            name=item.name,
            img_path=item.path,
            sem_seg=labels,
            classes=list(vocab.class_names),
            pixels=stats['pixels'],
            areas=stats['areas'],
            scores=stats['scores'],
            present=[int(c) for c in order])
        if out_dir:
            self._write(result, drawn, vocab, out_dir)
        if return_vis:
            result['visualization'] = drawn
        if return_datasamples:
            sample.set_metainfo(dict(result_name=item.name))
            return sample
        return result

    def _write(self, result: dict, drawn: np.ndarray, vocab: Vocabulary,
               out_dir: str) -> None:
        paths = output_paths(out_dir, result['name'])
        mmcv.imwrite(mmcv.rgb2bgr(drawn), paths['vis'])
        dtype = np.uint8 if vocab.num_classes <= 256 else np.uint16
        save_label(result['sem_seg'].astype(dtype), paths['labels'])
        with open(paths['json'], 'w', encoding='utf-8') as f:
            json.dump(self.summary(result, vocab), f, indent=2)

    @staticmethod
    def summary(result: dict, vocabulary: Vocabulary) -> dict:
        """A JSON-able account of one result: present classes by area."""
        height, width = result['sem_seg'].shape
        classes = []
        for c in result['present']:
            score = float(result['scores'][c])
            classes.append(
                dict(label=c, name=vocabulary.class_names[c],
                     synonyms=list(vocabulary[c]),
                     pixels=int(result['pixels'][c]),
                     area=float(result['areas'][c]),
                     score=None if np.isnan(score) else score))
        return dict(image=result['img_path'], name=result['name'],
                    height=int(height), width=int(width),
                    vocabulary=vocabulary.to_list(), classes=classes)

    def __call__(self,
                 inputs,
                 vocabulary=None,
                 batch_size: int = 1,
                 return_datasamples: bool = False,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: float = 0,
                 out_dir: str = '',
                 opacity: float = 0.5,
                 with_legend: bool = True,
                 with_labels: bool = False,
                 with_scores: bool = True,
                 legend_font: Optional[str] = None) -> dict:
        """Segments images with a vocabulary.

        Args:
            inputs: An image path, a folder, a ``uint8`` BGR array (as
                ``cv2.imread`` returns; convert RGB with ``img[..., ::-1]``),
                or a list of these.
            vocabulary (optional): Classes for this call and the next ones
                (list, text file or Vocabulary); None keeps the current one.
            batch_size (int): Images per forward.
            return_datasamples (bool): Return ``SegDataSample`` objects
                (with ``seg_logits`` when ``with_scores``) instead of dicts.
            return_vis (bool): Add the overlay (RGB array, legend included)
                to each result as ``'visualization'``.
            show (bool), wait_time (float): Show each overlay in a window.
            out_dir (str): Write ``vis/NAME.png`` (overlay + legend),
                ``pred/NAME.png`` (labels; 16-bit above 256 classes) and
                ``pred/NAME.json`` (present classes: pixels, area, score)
                under it. Inputs are never overwritten.
            opacity (float): Opacity of the colour mask.
            with_legend (bool): Draw the legend beside the overlay.
            with_labels (bool): Write class names on the regions (mmseg).
            with_scores (bool): Compute per-class scores (needs the class
                logits at image size for one image at a time).
            legend_font (str, optional): TTF / OTF / TTC file for the legend
                text, for this call and the next ones (it is set as
                ``visualizer.legend_font``); None keeps the current one (by
                default DejaVu Sans, and for names it cannot draw, e.g. CJK,
                an installed font that can). A missing or unreadable file
                raises ``FileNotFoundError`` / ``ValueError`` before any
                image is read.

        Returns:
            dict: ``predictions``: for a single input (a path to a file or
            an array) one dict, else a list of dicts, each with ``name``,
            ``img_path``, ``sem_seg`` ((H, W) int64 labels), ``classes``
            (display names; label ``i`` is ``classes[i]``), ``pixels``,
            ``areas`` (share of the image) and ``scores`` (mean probability
            of the class over its pixels, NaN if absent) as (C,) arrays,
            ``present`` (labels, largest first) and, with ``return_vis``,
            ``visualization``. ``visualization``: the overlays (or []).
        """
        single = isinstance(inputs, np.ndarray) or (
            isinstance(inputs, (str, os.PathLike))
            and not osp.isdir(os.fspath(inputs)))
        results = list(
            self.stream(inputs, vocabulary, batch_size, return_datasamples,
                        return_vis, show, wait_time, out_dir, opacity,
                        with_legend, with_labels, with_scores, legend_font))
        if return_datasamples:
            return results[0] if single else results
        vis = [r['visualization'] for r in results] if return_vis else []
        if single:
            return dict(predictions=results[0],
                        visualization=vis[0] if vis else None)
        return dict(predictions=results, visualization=vis)
