"""tools/webui.py driven end to end in headless Chromium (Selenium).

The Gradio app is served on 127.0.0.1 with the offline OVShapes tiny CLIP
(``mmovss/assets/ovshapes_tiny_clip.pt`` when present, else a seeded random
CLIP of the same shape); the browser uploads an image, types a vocabulary,
presses Segment and the rendered overlay is compared, pixel for pixel, with
the inferencer's overlay of the same image and vocabulary. Skipped when
Chromium/chromedriver (Debian: ``apt-get install chromium chromium-driver``),
Gradio or Selenium are missing.
"""
import io
import shutil
import socket
import time
import urllib.request

import cv2

# gradio and selenium are test requirements (requirements/tests.txt): no skip.
import gradio  # noqa: F401  (tools/webui.py imports it)
import numpy as np
import pytest
import torch
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip('headless Chromium is not installed (Debian: apt-get install '
                'chromium chromium-driver)', allow_module_level=True)

CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
ASSET = 'mmovss/assets/ovshapes_tiny_clip.pt'
VOCABULARY = 'sky; grass; wall; striped red, red stripes'
TIMEOUT = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def webui():
    from mmovss.testing.tools import load_tool
    return load_tool('webui.py')


@pytest.fixture(scope='module')
def server(webui, repo_root, tmp_path_factory):
    path = repo_root / ASSET
    if not path.is_file():
        import open_clip

        from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
        torch.manual_seed(0)
        model = open_clip.CLIP(**OVSHAPES_CLIP_CFG)
        path = tmp_path_factory.mktemp('clip') / 'random_tiny_clip.pt'
        torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    pool = webui.InferencerPool(
        [str(repo_root / CONFIG)], device='cpu',
        cfg_options={'model.backbone.pretrained': str(path),
                     'model.text_encoder.pretrained': str(path)})
    app = webui.build_app(pool)
    port = _free_port()
    webui.launch(app, port=port, block=False)
    try:
        yield pool, f'http://127.0.0.1:{port}/'
    finally:
        app.close()


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu',
                '--disable-quic', '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update', '--disable-sync',
                '--disable-dev-shm-usage', '--window-size=1400,1000',
                f'--user-data-dir={tmp_path_factory.mktemp("chromium")}'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope='module')
def image_path(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('webui_world')
    write_world(root, seed=11, num_train=0, num_val=1)
    return root / 'img_dir' / 'val' / '000000.png'


def _wait(driver, condition, what):
    return WebDriverWait(driver, TIMEOUT).until(
        lambda d: condition(d), message=f'timed out waiting for {what}')


def _open_and_upload(browser, url: str, image_path) -> None:
    """Opens the page and uploads ``image_path``; waits for its preview."""
    browser.get(url)
    upload = _wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#input-image input[type=file]'), 'the upload')[0]
    upload.send_keys(str(image_path))
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                             '#input-image img'),
          'the uploaded image preview')


def _fetch_png(src: str) -> np.ndarray:
    with urllib.request.urlopen(src, timeout=30) as response:
        return np.array(Image.open(io.BytesIO(response.read())).convert('RGB'))


def test_upload_type_segment_and_see_overlay(server, browser, image_path):
    pool, url = server
    _open_and_upload(browser, url, image_path)
    model = browser.find_element(By.CSS_SELECTOR, '#model input')
    assert model.get_attribute('value') == pool.models[0]
    box = browser.find_element(By.CSS_SELECTOR, '#vocabulary textarea')
    box.send_keys(VOCABULARY)
    browser.find_element(By.CSS_SELECTOR, '#segment').click()
    overlay = _wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#overlay img'), 'the overlay')[0]
    shown = _fetch_png(overlay.get_attribute('src'))

    inferencer = pool.get(pool.models[0])
    expected = inferencer(cv2.imread(str(image_path)),
                          vocabulary=['sky', 'grass', 'wall',
                                      'striped red, red stripes'],
                          return_vis=True)
    np.testing.assert_array_equal(shown, expected['visualization'])
    pred = expected['predictions']
    present = [pred['classes'][c] for c in pred['present']]

    header = ['class', 'area %', 'score']

    def table_names(driver):
        # the table's text: its label, 3 header cells, 3 cells per row
        lines = driver.find_element(By.CSS_SELECTOR,
                                    '#classes').text.splitlines()
        start = lines.index('class') if 'class' in lines else 0
        cells = [line.strip() for line in lines[start:]]
        names = cells[3::3]
        return names if cells[:3] == header and names == present else False

    assert _wait(browser, table_names, 'the class table') == present


def test_bad_vocabulary_is_shown_in_the_page(server, browser, image_path):
    _, url = server
    _open_and_upload(browser, url, image_path)
    browser.find_element(By.CSS_SELECTOR,
                         '#vocabulary textarea').send_keys('cat, dog')
    browser.find_element(By.CSS_SELECTOR, '#segment').click()
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if 'separate classes with' in browser.find_element(
                By.TAG_NAME, 'body').text:
            break
        time.sleep(0.5)
    else:
        pytest.fail('the vocabulary error was not shown in the page')
    assert not browser.find_elements(By.CSS_SELECTOR, '#overlay img')


def test_warnings_of_the_request_are_shown_in_the_page(server, browser, image_path):
    # before: mmovss's warnings (here: a class name cut to the text context)
    # went to the server's log only
    _, url = server
    _open_and_upload(browser, url, image_path)
    browser.find_element(By.CSS_SELECTOR, '#vocabulary textarea').send_keys(
        'sky; ' + 'striped red wall ' * 30)
    browser.find_element(By.CSS_SELECTOR, '#segment').click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#overlay img'),
          'the overlay')
    _wait(browser, lambda d: 'too long for the' in d.find_element(By.TAG_NAME, 'body').text,
          'the truncation warning')
