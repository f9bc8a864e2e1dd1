"""A browser demo: upload an image, type a vocabulary, pick a model.

Needs Gradio (``pip install gradio``, or ``pip install -e ".[optional]"``).
Serves on http://127.0.0.1:7860 (this machine only) by default::

    python tools/webui.py                       # every short model name
    python tools/webui.py --models ovshapes-tiny sclip --port 7861
    python tools/webui.py --models configs/sclip/sclip_vit-b16_coco_stuff171.py \\
        --cfg-options model.backbone.pretrained=/path/ViT-B-16.pt \\
                      model.text_encoder.pretrained=/path/ViT-B-16.pt

Models are built when first used and kept; the training-free ones download
open_clip's ViT-B-16 (``openai``) weights on first use, ``ovshapes-tiny``
needs nothing. Type classes separated by ``;`` and synonyms by ``,``
(``cat, kitten; grass; sky``).
"""
import argparse
import os
import os.path as osp
import sys
import threading
from typing import Dict, Optional, Sequence

# huge pages for CPU tensors >= 2 MiB, read by PyTorch at its first allocation
# (mmovss.benchmarking.memory.HUGE_PAGES_ENV; THP_MEM_ALLOC_ENABLE=0 turns it off)
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
import mmovss  # noqa: E402,F401  (compat + registration before mmseg is used)
from mmovss.apis import OpenVocabInferencer, vocabulary_from_text  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

try:
    import gradio as gr
except ImportError:  # optional dependency
    gr = None

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
    """

    def __init__(self, models: Sequence[str], weights: Optional[str] = None,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None):
        if not models:
            raise ValueError('InferencerPool needs at least one model.')
        self.models = list(models)
        self.weights = weights
        self.device = device
        self.cfg_options = cfg_options
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

    def segment(self, image_rgb, vocabulary_text: str, model: str):
        """Overlay (RGB, with legend) and table rows of one request.

        Raises:
            ValueError: No image, or a malformed vocabulary.
        """
        if image_rgb is None:
            raise ValueError('Upload an image first.')
        vocabulary = vocabulary_from_text(vocabulary_text or '',
                                          source='Vocabulary')
        inferencer = self.get(model)
        with self._lock:  # one request at a time per process
            result = inferencer(image_rgb[..., :3][..., ::-1].copy(),
                                vocabulary=vocabulary, return_vis=True)
        pred = result['predictions']
        rows = [[pred['classes'][c], round(100 * float(pred['areas'][c]), 2),
                 round(float(pred['scores'][c]), 3)]
                for c in pred['present']]
        return result['visualization'], rows


def build_app(pool: InferencerPool, title: str = 'mmovss: segment your '
              'image with your words'):
    """The Gradio Blocks app (not launched)."""
    if gr is None:
        raise ImportError(GRADIO_MISSING)

    def run(image, text, model):
        try:
            return pool.segment(image, text, model)
        except ValueError as e:  # user input: shown in the page
            raise gr.Error(str(e))

    with gr.Blocks(title=title) as app:
        gr.Markdown(f'## {title}\nClasses are separated by `;`, synonyms '
                    'of a class by `,` — e.g. `cat, kitten; grass; sky`.')
        with gr.Row():
            with gr.Column():
                image = gr.Image(label='Image', type='numpy',
                                 sources=['upload', 'clipboard'],
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


def launch(app, host: str = '127.0.0.1', port: int = 7860,
           block: bool = True):
    """Starts the server (system fonts only: the page works offline)."""
    theme = gr.themes.Default(font=['sans-serif'], font_mono=['monospace'])
    return app.launch(server_name=host, server_port=port, share=False,
                      inbrowser=False, prevent_thread_lock=not block,
                      quiet=not block, ssr_mode=False, theme=theme,
                      footer_links=[])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Browser demo of mmovss')
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS,
                        help='model names or config paths offered in the '
                        'page (first = default)')
    parser.add_argument('--checkpoint', '--weights',
                        help='checkpoint used for every model')
    parser.add_argument('--device', default=None, help='cpu, cuda, ...')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (127.0.0.1: this machine '
                        'only; 0.0.0.0: the network)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides for every model')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if gr is None:
        print(f'error: {GRADIO_MISSING}', file=sys.stderr)
        return 2
    pool = InferencerPool(args.models, args.checkpoint, args.device,
                          args.cfg_options)
    launch(build_app(pool), args.host, args.port, block=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
