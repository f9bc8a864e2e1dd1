"""A browser demo: upload an image, type a vocabulary, pick a model.

Needs Gradio (``pip install gradio``, or ``pip install -e ".[optional]"``).
Serves on http://127.0.0.1:7860 (this machine only) by default::

    python tools/webui.py                       # every short model name
    python tools/webui.py --models ovshapes-tiny sclip --port 7861
    python tools/webui.py --legend-font /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
    python tools/webui.py --models configs/sclip/sclip_vit-b16_coco_stuff171.py \\
        --cfg-options model.backbone.pretrained=/path/ViT-B-16.pt \\
                      model.text_encoder.pretrained=/path/ViT-B-16.pt

Models are built when first used and kept; the training-free ones download
open_clip's ViT-B-16 (``openai``) weights on first use, ``ovshapes-tiny``
needs nothing. Type classes separated by ``;`` and synonyms by ``,``
(``cat, kitten; grass; sky``).

The uploaded file itself is segmented, read as ``tools/demo.py`` reads it
(16-bit, palette and GIF images included), and errors (an unreadable file,
weights that cannot be loaded or downloaded, a malformed vocabulary) are
shown in the page. Uploads and overlays are kept in a private temporary
folder that is deleted when the server stops (``GRADIO_TEMP_DIR`` chooses
another folder, which is then kept).
"""
import argparse
import os
import os.path as osp
import signal
import sys

# huge pages for CPU tensors >= 2 MiB, read by PyTorch at its first allocation
# (mmovss.benchmarking.memory.HUGE_PAGES_ENV; THP_MEM_ALLOC_ENABLE=0 turns it off)
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
import mmovss  # noqa: E402,F401  (compat + registration before mmseg is used)
from mmovss.apis.webui import (  # noqa: E402,F401  (the library part; names kept here)
    DEFAULT_MAX_PIXELS,
    DEFAULT_MODELS,
    GRADIO_MISSING,
    InferencerPool,
    build_app,
    check_models,
    check_port,
    gr,
    launch,
    private_upload_folder,
)
from mmovss.runtime import check_device, run_tool  # noqa: E402
from mmovss.visualization.legend import check_font_file  # noqa: E402

from mmengine.config import DictAction  # noqa: E402


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
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='larger uploads are refused (default: 50 million, '
                        'e.g. 8000 x 6000)')
    parser.add_argument('--legend-font', metavar='PATH', default=None,
                        help='TTF/OTF/TTC font for the legend names (default: DejaVu '
                        'Sans, and for names it cannot draw, e.g. CJK, an installed '
                        'font that can; e.g. a file from `fc-list :lang=zh`)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides for every model')
    return parser.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    if gr is None:
        print(f'error: {GRADIO_MISSING}', file=sys.stderr)
        return 2
    check_models(args.models)
    check_device(args.device)  # DeviceUnavailableError, a ValueError: one line
    if args.legend_font is not None:  # FileNotFoundError / ValueError, as tools/demo.py
        args.legend_font = check_font_file(args.legend_font)
    check_port(args.host, args.port)
    pool = InferencerPool(args.models, args.checkpoint, args.device,
                          args.cfg_options, args.max_pixels, args.legend_font)
    # `kill` stops the server as Ctrl+C does: the upload folder is deleted
    signal.signal(signal.SIGTERM, _interrupt)
    with private_upload_folder():
        launch(build_app(pool), args.host, args.port, block=True)
    return 0


if __name__ == '__main__':
    if gr is None:
        sys.exit(main())
    run_tool(main)  # user errors: one line, exit code 2
