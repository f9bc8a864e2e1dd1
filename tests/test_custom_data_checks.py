"""Custom-dataset inputs that the class-file reader and the data check used to
let through (docs/bad_inputs.md): EXIF-rotated images, class files that are
not UTF-8, NFD class names, float and 1-bit label files, and file names that
a split file cannot hold. Each check must agree with what the loaders do."""
import numpy as np
import pytest
from PIL import Image

import mmovss  # noqa: F401
from mmovss.datasets.custom import (
    DataCheck,
    OpenVocabCustomDataset,
    check_custom_dataset,
    find_pairs,
    read_class_file,
)

EXIF_KIND = 'images with an EXIF orientation tag'
LABEL_KIND = 'float or 1-bit label files'
NAME_KIND = 'file names with leading or trailing white space'


def _image(path, size, orientation=None):
    """An RGB image of ``size`` (width, height), bright top-left pixel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0], 3), np.uint8)
    array[0, 0] = 255
    image = Image.fromarray(array)
    if orientation is None:
        image.save(path)
    else:
        exif = image.getexif()
        exif[0x0112] = orientation
        image.save(path, exif=exif)
    return path


def _label(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    image.save(path)
    return path


def _check(pairs, num_classes=3):
    return check_custom_dataset([(str(i), str(a)) for i, a in pairs], num_classes)


# ----------------------------------------------------------- EXIF orientation
def test_mmcv_loader_turns_exif_rotated_images_upright(tmp_path):
    """Why the check exists: LoadImageFromFile (cv2) applies the tag."""
    from mmcv.transforms import LoadImageFromFile
    path = _image(tmp_path / 'rot.jpg', (6, 4), orientation=6)
    img = LoadImageFromFile()(dict(img_path=str(path)))['img']
    assert img.shape[:2] == (6, 4)  # stored 6 wide x 4 high, loaded 4 x 6


@pytest.mark.parametrize('ext', ['jpg', 'png'])
@pytest.mark.parametrize('orientation, size', [(3, (8, 8)), (6, (8, 6))])
def test_exif_orientation_is_reported(tmp_path, ext, orientation, size):
    image = _image(tmp_path / f'photo.{ext}', size, orientation)
    # The label drawn on the stored pixels: the same size, no other problem.
    label = _label(tmp_path / 'photo_label.png', np.zeros(size[::-1], np.uint8))
    check = _check([(image, label)])
    assert list(check.errors) == [EXIF_KIND]
    (message,) = check.errors[EXIF_KIND]
    assert str(image) in message and str(label) in message
    assert f'EXIF orientation {orientation}' in message
    assert 'exif_transpose' in message and 'upright' in message


def test_label_of_the_upright_image_is_no_size_mismatch(tmp_path):
    image = _image(tmp_path / 'photo.jpg', (8, 6), orientation=8)
    label = _label(tmp_path / 'photo.png', np.zeros((8, 6), np.uint8))  # 6 wide x 8 high
    check = _check([(image, label)])
    assert list(check.errors) == [EXIF_KIND]


@pytest.mark.parametrize('orientation', [None, 1, 0])
def test_upright_images_pass(tmp_path, orientation):
    """1 is upright; 0 (invalid) is ignored by cv2 and PIL."""
    image = _image(tmp_path / 'photo.jpg', (8, 6), orientation)
    label = _label(tmp_path / 'photo.png', np.zeros((6, 8), np.uint8))
    assert _check([(image, label)]).ok


# ----------------------------------------------------------- class file text
@pytest.mark.parametrize('data, line', [
    (b'# classes\nsky\ncaf\xe9\n', 3),
    (b'\xef\xbb\xbfsky\r\ncaf\xe9 | unseen\r\n', 2),  # with a byte-order mark
])
def test_class_file_not_utf8_names_file_line_and_fix(tmp_path, data, line):
    path = tmp_path / 'latin1 classes.txt'
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        read_class_file(str(path))
    message = str(info.value)
    assert str(path) in message and f'line {line}' in message
    assert '0xe9' in message and 'Save it as UTF-8' in message


def test_nfd_class_names_are_normalised_to_nfc(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('sky\ncafe\u0301 | unseen\ngrass, pelouse\nre\u0301sume\u0301\n',
                    encoding='utf-8')
    classes = read_class_file(str(path), unseen=['RE\u0301SUME\u0301'])
    assert classes.classes == ['sky', 'caf\u00e9', 'grass, pelouse', 'r\u00e9sum\u00e9']
    assert classes.unseen == ['caf\u00e9', 'r\u00e9sum\u00e9']
    assert classes.seen == ['sky', 'grass, pelouse']


def test_dataset_accepts_the_classes_of_an_nfd_class_file(tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('sky\ncafe\u0301 | unseen\ngrass\n', encoding='utf-8')
    classes = read_class_file(str(path))
    root = tmp_path / 'data'
    _image(root / 'img_dir' / 'train' / 'a.png', (4, 4))
    _label(root / 'ann_dir' / 'train' / 'a.png', np.array([[0, 1, 2, 255]] * 4, np.uint8))
    dataset = OpenVocabCustomDataset(
        classes=classes.classes, unseen_classes=classes.unseen, seen_only=True,
        data_root=str(root), img_suffix='.png', pipeline=[],
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'))
    assert len(dataset) == 1
    assert dataset.metainfo['classes'] == ['sky', 'grass']
    assert dataset.get_label_map() == {0: 0, 1: 255, 2: 1}
    # A hand-written config with an NFD unseen name works too.
    dataset = OpenVocabCustomDataset(
        classes=['sky', 'cafe\u0301', 'grass'], unseen_classes=['cafe\u0301'],
        seen_only=True, data_root=str(root), img_suffix='.png', pipeline=[],
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'))
    assert dataset.metainfo['classes'] == ['sky', 'grass']


# ----------------------------------------------- labels the loader refuses
def _load_label(path):
    from mmovss.datasets import LoadSegAnnotations
    results = dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[],
                   num_classes=3, ignore_index=255)
    return LoadSegAnnotations()(results)


@pytest.mark.parametrize('name, array, mode, shown', [
    ('float.tif', np.ones((4, 4), np.float32), None, 'mode F'),
    ('mask.png', np.eye(4, dtype=bool), '1', 'mode 1'),
])
def test_labels_the_loader_refuses_are_reported(tmp_path, name, array, mode, shown):
    image = _image(tmp_path / 'img.png', (4, 4))
    label = _label(tmp_path / name, array, mode)
    with pytest.raises(ValueError, match='class indices must be integers'):
        _load_label(label)  # what training would do
    check = _check([(image, label)])
    assert list(check.errors) == [LABEL_KIND]
    (message,) = check.errors[LABEL_KIND]
    assert str(label) in message and shown in message and 'index map' in message
    assert not check.label_bits


def test_32_bit_integer_labels_pass_check_and_loader(tmp_path):
    image = _image(tmp_path / 'img.png', (4, 4))
    label = _label(tmp_path / 'int.tif', np.full((4, 4), 2, np.int32))
    check = _check([(image, label)])
    assert check.ok and check.label_bits == {32}
    assert _load_label(label)['gt_seg_map'].max() == 2


# ------------------------------------------------ names a split file loses
def _flat_pair(root, name):
    _image(root / 'images' / f'{name}.png', (4, 4))
    _label(root / 'labels' / f'{name}.png', np.zeros((4, 4), np.uint8))


def test_names_with_outer_white_space_are_reported(tmp_path):
    root = tmp_path / 'data'
    for name in ('my img 1 ', ' lead', 'inner space', 'plain'):
        _flat_pair(root, name)
    _image(root / 'images' / 'orphan .png', (4, 4))
    check = DataCheck()
    pairs = find_pairs(str(root / 'images'), str(root / 'labels'), check)
    assert len(pairs) == 4  # still paired; the check stops the tool
    messages = check.errors[NAME_KIND]
    assert len(messages) == 3
    joined = '\n'.join(messages)
    for name in ('my img 1 ', ' lead', 'orphan '):
        assert str(root / 'images' / f'{name}.png') in joined
    assert str(root / 'labels' / 'my img 1 .png') in joined
    assert 'inner space' not in joined and 'plain' not in joined
    assert 'rename' in messages[0] and 'split file' in messages[0]


def test_inner_spaces_survive_a_split_file(tmp_path):
    """The names that pass the check are found through a split file."""
    root = tmp_path / 'data'
    _flat_pair(root, 'inner  space')
    check = DataCheck()
    pairs = find_pairs(str(root / 'images'), str(root / 'labels'), check)
    assert check.ok and len(pairs) == 1
    (root / 'train.txt').write_text('inner  space\n', encoding='utf-8')
    dataset = OpenVocabCustomDataset(
        classes=['a', 'b'], data_root=str(root), ann_file='train.txt', img_suffix='.png',
        data_prefix=dict(img_path='images', seg_map_path='labels'), pipeline=[])
    assert dataset.get_data_info(0)['seg_map_path'] == str(root / 'labels' / 'inner  space.png')


def test_white_space_names_without_a_split_file_may_pass(tmp_path):
    root = tmp_path / 'data'
    _flat_pair(root, 'name ')
    check = DataCheck()
    find_pairs(str(root / 'images'), str(root / 'labels'), check, split_file=False)
    assert check.ok
