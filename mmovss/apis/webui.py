"""The browser demo's library part: a pool of inferencers built on demand and
the Gradio app around it (``tools/webui.py`` is the command line).

Needs Gradio (``pip install gradio``, or ``pip install -e ".[optional]"``);
without it :data:`gr` is None and the tool says how to install it. The
uploaded file itself is segmented, read as ``tools/demo.py`` reads it (16-bit,
palette and GIF images included); errors (an unreadable file, weights that
cannot be loaded or downloaded, a malformed vocabulary) and warnings are shown
in the page; uploads and overlays are kept in a private temporary folder that
is deleted when the server stops (:func:`private_upload_folder`).
"""
import contextlib
import os
import os.path as osp
import shutil
import socket
import sys
import tempfile
import threading
import warnings
from typing import Dict, Optional, Sequence

from PIL import Image

import mmovss
from mmovss.apis.model_zoo import resolve_model
from mmovss.apis.open_vocab_inferencer import OpenVocabInferencer
from mmovss.apis.vocabulary_text import vocabulary_from_text
from mmovss.models.utils.open_clip_weights import WeightFileError

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

__all__ = ['DEFAULT_MAX_PIXELS', 'DEFAULT_MODELS', 'GRADIO_MISSING', 'InferencerPool',
           'USER_ERRORS', 'build_app', 'private_upload_folder', 'check_models', 'check_port',
           'launch', 'gr']

try:
    import gradio as gr
except ImportError:  # optional dependency
    gr = None

DEFAULT_MAX_PIXELS = 50_000_000
"""Uploads above this many pixels are refused (``--max-pixels``)."""

DEFAULT_MODELS = ['sclip', 'naclip', 'clearclip', 'maskclip', 'proxyclip',
                  'naclip-pamr', 'ovshapes-tiny']
"""Offered when ``--models`` is not given (see :data:`mmovss.apis.ALIASES`)."""

GRADIO_MISSING = ('The browser demo needs Gradio: pip install gradio (or pip '
                  'install -e ".[optional]").')


class InferencerPool:
    """Builds one :class:`OpenVocabInferencer` per model name, on demand.

    Args:
        models (Sequence[str]): Model names or config paths offered.
        weights (str, optional): Checkpoint for every model.
        device (str, optional): Inference device.
        cfg_options (dict, optional): Config overrides for every model.
        max_pixels (int): Larger uploads are refused (the server segments
            one image at a time, at full resolution, and a small file can
            decode to gigabytes).
        legend_font (str, optional): TTF / OTF / TTC file for the legend
            text of every model (``--legend-font``); by default DejaVu Sans,
            and for names it cannot draw (CJK) an installed font that can.
    """

    def __init__(self, models: Sequence[str], weights: Optional[str] = None,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 legend_font: Optional[str] = None):
        if not models:
            raise ValueError('InferencerPool needs at least one model.')
        self.models = list(models)
        self.weights = weights
        self.device = device
        self.cfg_options = cfg_options
        self.max_pixels = max_pixels
        self.legend_font = legend_font
        self._built: Dict[str, OpenVocabInferencer] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> OpenVocabInferencer:
        """The inferencer of ``model`` (built the first time)."""
        if model not in self.models:
            raise ValueError(f'Unknown model {model!r}; choose one of '
                             f'{", ".join(self.models)}.')
        with self._lock:
            if model not in self._built:
                self._built[model] = OpenVocabInferencer(
                    model, weights=self.weights, device=self.device,
                    cfg_options=self.cfg_options)
            return self._built[model]

    def _check_size(self, path) -> None:
        """Refuses an image above :attr:`max_pixels` (its header is read)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', Image.DecompressionBombWarning)
                with Image.open(path) as header:
                    width, height = header.size
        except Image.DecompressionBombError:  # above 2 x PIL's MAX_IMAGE_PIXELS
            width = height = None
        except Exception:  # not an image: the inferencer names it
            return
        if width is None or width * height > self.max_pixels:
            if width is None:
                raise ValueError(
                    f'The image {osp.basename(path)!r} has more than '
                    f'{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP, above the '
                    f'{self.max_pixels / 1e6:g} MP this server segments: downscale it.')
            raise ValueError(
                f'The image {osp.basename(path)!r} is {width} x {height} pixels '
                f'({width * height / 1e6:.0f} MP), above the {self.max_pixels / 1e6:g} MP '
                f'this server segments: downscale it, or start the server with a larger '
                f'--max-pixels.')

    def segment(self, image, vocabulary_text: str, model: str):
        """Overlay (RGB, with legend) and table rows of one request.

        Args:
            image (str | np.ndarray): The uploaded image file (read as
                ``tools/demo.py`` reads it), or an RGB ``uint8`` array
                (``(H, W, 3)``, or ``(H, W)`` grey).
            vocabulary_text (str): ``"cat, kitten; grass; sky"``.
            model (str): One of :attr:`models`.

        Raises:
            ValueError: No image, an unreadable image, or a malformed
                vocabulary.
        """
        if image is None:
            raise ValueError('Upload an image first.')
        vocabulary = vocabulary_from_text(vocabulary_text or '',
                                          source='Vocabulary')
        if isinstance(image, (str, os.PathLike)):
            self._check_size(image)
        else:
            image = image[..., ::-1].copy() if image.ndim == 3 else image
        inferencer = self.get(model)
        with self._lock:  # one request at a time per process
            result = inferencer(image, vocabulary=vocabulary,
                                return_vis=True, legend_font=self.legend_font)
        pred = result['predictions']
        rows = [[pred['classes'][c], round(100 * float(pred['areas'][c]), 2),
                 round(float(pred['scores'][c]), 3)]
                for c in pred['present']]
        return result['visualization'], rows


USER_ERRORS = (ValueError, FileNotFoundError, WeightFileError)
"""Shown in the page: bad inputs, and weights that cannot be read or
downloaded (with how to pass a local file)."""


def _image_file_component(**kwargs):
    """A ``gr.Image`` that hands over the uploaded file, not an array.

    Gradio's own conversion to an RGB array turns a 16-bit image white and
    a GIF into its palette indices; the file is read by the inferencer
    instead, as ``tools/demo.py`` reads it. An upload that is no image
    reaches the inferencer too, which names it. (The instance's
    ``preprocess`` is replaced: a subclass of a Gradio component would make
    Gradio write a ``.pyi`` file next to this script.)
    """
    component = gr.Image(type='filepath', **kwargs)
    gradio_preprocess = component.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None:  # None, or base64 data
            return gradio_preprocess(payload)
        return payload.path

    component.preprocess = preprocess
    return component


def _show_warnings(caught) -> None:
    """mmovss's warnings of one request (e.g. class names truncated to the
    text context) as toasts in the page."""
    root = osp.dirname(osp.abspath(mmovss.__file__))
    for item in caught:
        if osp.abspath(item.filename).startswith(root):
            gr.Warning(str(item.message))


def build_app(pool: InferencerPool, title: str = 'mmovss: segment your '
              'image with your words'):
    """The Gradio Blocks app (not launched).

    Build it inside :func:`private_upload_folder` to keep the uploads out
    of the shared ``/tmp/gradio``.
    """
    if gr is None:
        raise ImportError(GRADIO_MISSING)

    def run(image, text, model):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                result = pool.segment(image, text, model)
        except USER_ERRORS as e:  # shown in the page, the server goes on
            message = f'{type(e).__name__}: {e}'
            print(f'error: {message}', file=sys.stderr)
            raise gr.Error(message, print_exception=False)
        _show_warnings(caught)
        return result

    with gr.Blocks(title=title) as app:
        gr.Markdown(f'## {title}\nClasses are separated by `;`, synonyms '
                    'of a class by `,` — e.g. `cat, kitten; grass; sky`.')
        with gr.Row():
            with gr.Column():
                image = _image_file_component(
                    label='Image', sources=['upload', 'clipboard'],
                    elem_id='input-image')
                vocabulary = gr.Textbox(label='Vocabulary',
                                        placeholder='cat, kitten; grass; sky',
                                        lines=2, elem_id='vocabulary')
                model = gr.Dropdown(choices=pool.models,
                                    value=pool.models[0], label='Model',
                                    elem_id='model')
                button = gr.Button('Segment', variant='primary',
                                   elem_id='segment')
            with gr.Column():
                overlay = gr.Image(label='Overlay and legend', type='numpy',
                                   format='png', interactive=False,
                                   elem_id='overlay')
                table = gr.Dataframe(headers=['class', 'area %', 'score'],
                                     label='Present classes',
                                     interactive=False, elem_id='classes')
        button.click(run, inputs=[image, vocabulary, model],
                     outputs=[overlay, table])
        vocabulary.submit(run, inputs=[image, vocabulary, model],
                          outputs=[overlay, table])
    return app


@contextlib.contextmanager
def private_upload_folder():
    """Keeps Gradio's uploads and results in a private temporary folder.

    Gradio copies every upload and every overlay into ``GRADIO_TEMP_DIR``,
    by default ``/tmp/gradio``: readable by every user of the machine and
    never deleted. Inside this context (enter it before
    :func:`build_app`) they go to a new folder only its owner can read,
    deleted on exit. A ``GRADIO_TEMP_DIR`` set by the user is kept as is.

    Yields:
        str: The upload folder.
    """
    if os.environ.get('GRADIO_TEMP_DIR'):
        yield os.environ['GRADIO_TEMP_DIR']
        return
    folder = tempfile.mkdtemp(prefix='mmovss-webui-')  # mode 0700
    os.environ['GRADIO_TEMP_DIR'] = folder
    try:
        yield folder
    finally:
        os.environ.pop('GRADIO_TEMP_DIR', None)
        shutil.rmtree(folder, ignore_errors=True)


def check_models(models: Sequence[str]) -> None:
    """Every ``--models`` entry names a config or a known model.

    Raises:
        FileNotFoundError: A config path that is no file.
        ValueError: An unknown name (with the close ones).
    """
    for model in models:
        resolve_model(model)


def check_port(host: str, port: int) -> None:
    """Raises ``ValueError`` naming ``--port`` when it is taken."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ValueError(
                f'Cannot serve on {host}:{port} ({e.strerror}): another '
                f'program (maybe another web UI) uses the port; pass another '
                f'one, e.g. --port {port + 1}.') from None


def launch(app, host: str = '127.0.0.1', port: int = 7860,
           block: bool = True):
    """Starts the server (system fonts only: the page works offline)."""
    theme = gr.themes.Default(font=['sans-serif'], font_mono=['monospace'])
    return app.launch(server_name=host, server_port=port, share=False,
                      inbrowser=False, prevent_thread_lock=not block,
                      quiet=not block, ssr_mode=False, theme=theme,
                      footer_links=[])
