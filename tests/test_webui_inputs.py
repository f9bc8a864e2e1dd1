"""tools/webui.py served on 127.0.0.1 and called over HTTP (gradio_client).

No browser (tests/test_webui.py drives one): uploads go through Gradio's
own upload and preprocessing, as from the page. The model is the OVShapes
tiny CLIP config (offline, fast).
"""
import os
import socket
import stat
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip('gradio_client')

CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
VOCABULARY = 'sky; grass; wall; striped red, red stripes'


@pytest.fixture(scope='module')
def webui():
    from mmovss.testing.tools import load_tool
    return load_tool('webui.py')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('webui_inputs')
    write_world(root / 'world', seed=11, num_train=0, num_val=1)
    rgb = Image.open(root / 'world' / 'img_dir' / 'val' / '000000.png').convert('RGB')
    grey16 = np.array(rgb.convert('L')).astype(np.uint16) * 257
    Image.fromarray(grey16).save(root / 'grey16.png')  # mode I;16
    rgb.convert('P').save(root / 'palette.gif')
    (root / 'notes.png').write_bytes(b'not an image')
    rgb.resize((100, 100)).save(root / 'large.png')  # above the fixture's max_pixels

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', zlib.crc32(kind + data))
    # a header of 30000 x 30000 pixels (900 MP): a "decompression bomb"
    (root / 'bomb.png').write_bytes(
        b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 30000, 30000, 8, 0, 0, 0, 0))
        + chunk(b'IDAT', zlib.compress(b'\0' * 30001)) + chunk(b'IEND', b''))
    (root / 'bad_clip.pt').write_bytes(b'not a checkpoint')
    (root / 'bad_clip.py').write_text(
        f"_base_ = ['{os.path.abspath(CONFIG)}']\n"
        f"model = dict(backbone=dict(pretrained='{root / 'bad_clip.pt'}'),\n"
        f"             text_encoder=dict(pretrained='{root / 'bad_clip.pt'}'))\n")
    return root


@pytest.fixture(scope='module')
def served(webui, repo_root, images):
    with webui.private_upload_folder() as folder:
        pool = webui.InferencerPool([str(repo_root / CONFIG), str(images / 'bad_clip.py')],
                                    device='cpu', max_pixels=5000)
        app = webui.build_app(pool)
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        webui.launch(app, port=port, block=False)
        try:
            client = gradio_client.Client(f'http://127.0.0.1:{port}/', verbose=False)
            yield pool, client, folder
        finally:
            app.close()


def _call(pool, client, path, model=0, vocabulary=VOCABULARY):
    _, table = client.predict(gradio_client.handle_file(str(path)), vocabulary,
                              pool.models[model], api_name='/run')
    return [row[0] for row in table['data']]


def test_16bit_and_gif_uploads_are_read_as_the_demo_reads_them(served, images):
    # before: Gradio's RGB conversion made the 16-bit image white and handed
    # a GIF over as its 2-D palette indices, of which the page segmented a
    # 3-pixel-wide strip: 'sky' 100 % for both, without a word
    pool, client, _ = served
    inferencer = pool.get(pool.models[0])
    vocabulary = ['sky', 'grass', 'wall', 'striped red, red stripes']
    for name in ('grey16.png', 'palette.gif'):
        pred = inferencer(str(images / name), vocabulary=vocabulary)['predictions']
        expected = [pred['classes'][c] for c in pred['present']]
        assert len(expected) > 1
        assert _call(pool, client, images / name) == expected, name


def test_errors_are_shown_in_the_page_and_the_server_goes_on(served, images):
    # before: 'Error' without a message for a file that is no image and for
    # weights that cannot be read (the fix only in the server's log)
    pool, client, _ = served
    with pytest.raises(Exception, match=r"UnreadableImageError: Cannot read image .*notes\.png"):
        _call(pool, client, images / 'notes.png')
    with pytest.raises(Exception, match=r'WeightFileError: .*bad_clip\.pt'):
        _call(pool, client, images / 'grey16.png', model=1)
    assert _call(pool, client, images / 'palette.gif')


def test_images_above_max_pixels_are_refused_before_decoding(served, images):
    # before: a 12000 x 12000 upload ran for minutes with 10 GB of memory,
    # blocking every other request (PIL's bomb check was Gradio's, which the
    # file upload no longer passes through)
    pool, client, _ = served
    with pytest.raises(Exception, match=r"'large.png' is 100 x 100 pixels \(0 MP\), above the "
                       r'0.005 MP this server segments: downscale it, or start the server with '
                       r'a larger --max-pixels'):
        _call(pool, client, images / 'large.png')
    with pytest.raises(Exception, match=r"'bomb.png' has more than \d+ MP"):
        _call(pool, client, images / 'bomb.png')


def test_uploads_stay_in_a_private_folder_deleted_on_exit(webui, served, images, monkeypatch):
    # before: every upload and overlay stayed in /tmp/gradio, readable by all
    pool, client, folder = served
    _call(pool, client, images / 'palette.gif')
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert any(name.endswith('palette.gif') for _, _, names in os.walk(folder)
               for name in names)
    monkeypatch.delenv('GRADIO_TEMP_DIR')
    with webui.private_upload_folder() as other:
        assert os.environ['GRADIO_TEMP_DIR'] == other != folder
    assert not os.path.exists(other)
    assert 'GRADIO_TEMP_DIR' not in os.environ


def test_misspelt_model_bad_device_and_busy_port_fail_before_serving(webui, repo_root):
    # before: a misspelt --models name was offered and failed in the page, a
    # bad --device failed each request with 'Error'; a busy port ended in
    # Gradio's traceback
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        with pytest.raises(ValueError, match="Unknown model name 'sclipp'"):
            webui.main(['--models', 'ovshapes-tiny', 'sclipp', '--port', port])
        with pytest.raises(ValueError, match="--device 'foo' is not a device name; use cpu"):
            webui.main(['--models', 'ovshapes-tiny', '--device', 'foo', '--port', port])
        with pytest.raises(ValueError, match=f'Cannot serve on 127.0.0.1:{port}.*--port'):
            webui.main(['--models', str(repo_root / CONFIG), '--port', port])


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def test_a_missing_or_unreadable_legend_font_fails_before_serving(webui, tmp_path, monkeypatch,
                                                                   capsys):
    """As tools/demo.py: one line naming the file, exit 2, nothing served
    (before: ``unrecognized arguments: --legend-font``)."""
    monkeypatch.delenv('MMOVSS_TRACEBACK', raising=False)
    monkeypatch.setattr(webui, 'InferencerPool',
                        lambda *a, **k: pytest.fail('served with a bad --legend-font'))
    bad = tmp_path / 'font.ttf'
    bad.write_text('not a font')
    for font, said in ((tmp_path / 'nofont.ttf', 'does not exist'),
                       (bad, 'cannot be read as a TrueType/OpenType font')):
        with pytest.raises(SystemExit) as exited:
            webui.run_tool(webui.main, ['--models', 'ovshapes-tiny', '--legend-font', str(font),
                                        '--port', _free_port()])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f'error: Legend font {str(font)!r} ') and said in err, err
        assert 'Traceback' not in err


def test_every_legend_is_drawn_with_the_legend_font(webui, monkeypatch):
    from mmovss.visualization import legend
    font = legend._font_file()
    if font is None:
        pytest.skip('no DejaVu Sans here')
    used, draw_legend = [], legend.draw_legend

    def spy(*args, **kwargs):
        used.append(kwargs.get('font'))
        return draw_legend(*args, **kwargs)

    monkeypatch.setattr('mmovss.visualization.open_vocab_visualizer.draw_legend', spy)
    served = []
    monkeypatch.setattr(webui, 'build_app', lambda pool: pool)
    monkeypatch.setattr(webui, 'launch', lambda app, *a, **k: served.append(app))
    monkeypatch.setattr(webui.signal, 'signal', lambda *a: None)  # not this process's SIGTERM
    assert webui.main(['--models', 'ovshapes-tiny', '--device', 'cpu', '--legend-font', font,
                       '--port', _free_port()]) == 0
    pool, = served
    image = np.full((8, 8, 3), 90, np.uint8)
    pool.segment(image, 'sky; grass', 'ovshapes-tiny')
    pool.segment(image, 'sky; water; wall', 'ovshapes-tiny')
    assert used == [font, font]
