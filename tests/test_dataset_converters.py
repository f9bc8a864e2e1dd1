"""Label conversions and the converter scripts on tiny synthetic inputs."""
import pickle

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from mmovss.datasets import label_conversion as lc
from mmovss.datasets.label_file_conversion import convert_label_files
from mmovss.testing.tools import load_tool


def _script(name):
    return load_tool(f'dataset_converters/{name}.py')


def test_coco_stuff_ids():
    raw = np.array([[0, 10, 12, 89], [91, 181, 255, 90 - 1]])
    # 0 person, 10 fire hydrant, 12 stop sign (after unused 11), 89
    # toothbrush (last thing), 91 banner (first stuff), 181 wood (last).
    assert lc.coco_stuff_to_171(raw).tolist() == [[0, 10, 11, 79],
                                                  [80, 170, 255, 79]]
    assert lc.coco_stuff_to_object(raw).tolist() == [[1, 11, 12, 80],
                                                     [0, 0, 0, 80]]
    with pytest.raises(ValueError, match=r'x\.png.*\[11\]'):
        lc.coco_stuff_to_171(np.array([[11, 0]]), 'x.png')
    with pytest.raises(ValueError, match='x.png.*200'):
        lc.coco_stuff_to_171(np.array([[200, 0]]), 'x.png')


def test_coco_object_unlabelled_is_background_as_published(tmp_path):
    """GroupViT's cvt_coco_object.py (TCL, SCLIP, NACLIP) maps 255 to 0."""
    root = tmp_path / 'coco_stuff164k'
    (root / 'annotations' / 'val2017').mkdir(parents=True)
    raw = np.array([[255, 0, 91], [89, 255, 181]], np.uint8)
    Image.fromarray(raw).save(root / 'annotations' / 'val2017' / '1.png')
    _script('coco_object').main([str(root)])
    out = np.array(Image.open(root / 'annotations' / 'val2017' /
                              '1_instanceTrainIds.png'))
    assert out.tolist() == [[0, 1, 0], [80, 0, 0]]


def test_cityscapes_ids():
    raw = np.array([[0, 7, 26, 33], [-0, 1, 24, 6]])
    assert lc.cityscapes_to_train_ids(raw).tolist() == [[255, 0, 13, 18],
                                                        [255, 255, 11, 255]]
    with pytest.raises(ValueError, match='34'):
        lc.cityscapes_to_train_ids(np.array([[34, 0]]))


def test_pascal_context_ids():
    raw = np.array([[0, 1, 2, 459], [9, 458, 3, 284]], dtype=np.uint16)
    assert lc.pascal_context_to_459(raw).tolist() == [[65535, 0, 1, 458],
                                                      [8, 457, 2, 283]]
    # 2 aeroplane -> 1, 9 bag -> 2, 458 wood -> 59, 284 person -> 37,
    # others (accordion, air conditioner, unlabelled) -> background 0.
    assert lc.pascal_context_to_59(raw).tolist() == [[0, 0, 1, 0],
                                                     [2, 59, 0, 37]]
    with pytest.raises(ValueError, match='460'):
        lc.pascal_context_to_459(np.array([[460, 1]], dtype=np.uint16))


def test_voc_and_ade_full_ids():
    raw = np.array([[0, 1, 20, 255]])
    assert lc.voc_to_detectron2(raw, False).tolist() == [[255, 0, 19, 255]]
    assert lc.voc_to_detectron2(raw, True).tolist() == [[20, 0, 19, 255]]
    wall, adding_machine = lc.ADE20K_847_IDS[0], lc.ADE20K_847_IDS[846]
    rgb = np.zeros((1, 3, 3), np.uint8)
    for col, ade_id in enumerate((wall, adding_machine, 1)):
        rgb[0, col] = (ade_id // 256 * 10, ade_id % 256, 0)
    assert lc.ade20k_full_to_847(rgb).tolist() == [[0, 846, 65535]]


def test_runner_refuses_overwrite_and_resumes(tmp_path):
    src = [tmp_path / f'in{i}.png' for i in range(3)]
    for path in src:
        Image.fromarray(np.ones((2, 2), np.uint8)).save(path)
    pairs = [(str(s), str(tmp_path / 'out' / s.name)) for s in src]
    calls, lines = [], []

    def convert(path):
        calls.append(path)
        return np.array(Image.open(path)) * 7

    summary = convert_label_files(pairs[:1], convert, log=lines.append)
    assert summary == dict(converted=1, skipped=0)
    with pytest.raises(FileExistsError, match='--resume.*--overwrite'):
        convert_label_files(pairs, convert, log=lines.append)
    assert len(calls) == 1  # nothing written before the refusal
    summary = convert_label_files(pairs, convert, resume=True,
                                  log=lines.append)
    assert summary == dict(converted=2, skipped=1)
    assert any('[3/3]' in line for line in lines)
    assert convert_label_files(pairs, convert, overwrite=True,
                               log=lines.append)['converted'] == 3
    assert np.array(Image.open(pairs[2][1])).tolist() == [[7, 7], [7, 7]]
    with pytest.raises(FileNotFoundError, match='missing'):
        convert_label_files([(str(tmp_path / 'nope.png'),
                              str(tmp_path / 'o.png'))], convert,
                            log=lines.append)


def test_pascal_context_script(tmp_path):
    root = tmp_path / 'VOC2010'
    (root / 'trainval').mkdir(parents=True)
    label_map = np.array([[0, 2, 459], [300, 9, 1]], dtype=np.uint16)
    savemat(root / 'trainval' / '2008_000001.mat', {'LabelMap': label_map})
    (root / 'pascalcontext_val.txt').write_text('2008_000001\n')
    _script('pascal_context').main([str(root)])
    pc459 = np.array(Image.open(root / 'SegmentationClassContext459' /
                                '2008_000001.tif'))
    assert pc459.dtype == np.uint16
    assert pc459.tolist() == [[65535, 1, 458], [299, 8, 0]]
    pc59 = np.array(Image.open(root / 'SegmentationClassContext' /
                               '2008_000001.png'))
    assert pc59.tolist() == [[0, 1, 0], [0, 2, 0]]
    assert (root / 'ImageSets' / 'SegmentationContext' /
            'val.txt').read_text().split() == ['2008_000001']
    with pytest.raises(FileExistsError):
        _script('pascal_context').main([str(root)])
    _script('pascal_context').main([str(root), '--resume'])


def test_voc_script(tmp_path):
    root = tmp_path / 'VOC2012'
    (root / 'SegmentationClass').mkdir(parents=True)
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (root / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('a\n')
    img = Image.fromarray(np.array([[0, 1], [20, 255]], np.uint8), mode='P')
    img.putpalette([0] * 768)
    img.save(root / 'SegmentationClass' / 'a.png')
    _script('voc').main([str(root), '--out-dir', str(tmp_path / 'out')])
    voc20 = Image.open(tmp_path / 'out' / 'annotations_detectron2' / 'val' /
                       'a.png')
    voc21 = Image.open(tmp_path / 'out' / 'annotations_detectron2_bg' /
                       'val' / 'a.png')
    assert np.array(voc20).tolist() == [[255, 0], [19, 255]]
    assert np.array(voc21).tolist() == [[20, 0], [19, 255]]


def test_ade20k_847_script_resizes_and_writes_16bit(tmp_path):
    root = tmp_path / 'ADE20K_2021_17_01'
    folder = 'ADE20K_2021_17_01/images/ADE/validation/x'
    (tmp_path / folder).mkdir(parents=True)
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(dict(folder=[folder, folder],
                         filename=['ADE_val_00000001.jpg',
                                   'ADE_train_00000001.jpg']), f)
    rgb = np.zeros((8, 12, 3), np.uint8)
    last = lc.ADE20K_847_IDS[846]
    rgb[:, 6:] = (last // 256 * 10, last % 256, 0)
    Image.fromarray(rgb).save(tmp_path / folder / 'ADE_val_00000001_seg.png')
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(
        tmp_path / folder / 'ADE_val_00000001.jpg')
    _script('ade20k_847').main([str(root), '--max-short-side', '4'])
    label = np.array(Image.open(root / 'annotations_detectron2' /
                                'validation' / 'ADE_val_00000001.tif'))
    image = Image.open(root / 'images_detectron2' / 'validation' /
                       'ADE_val_00000001.jpg')
    assert label.shape == (4, 6) and image.size == (6, 4)
    assert label.dtype == np.uint16
    assert set(np.unique(label)) == {846, 65535}
    assert not (root / 'annotations_detectron2' / 'training').exists()


def test_ade20k_847_training_keeps_the_frames_as_published(tmp_path, capsys):
    """ODISE / FC-CLIP: ``split = 'validation' if name is ADE_val_* else
    'training'``, so the ``ADE_frame_*`` images are training images."""
    root = tmp_path / 'ADE20K_2021_17_01'
    folder = 'ADE20K_2021_17_01/images/ADE/training/x'
    (tmp_path / folder).mkdir(parents=True)
    names = ['ADE_train_00000001', 'ADE_frame_00000001', 'ADE_val_00000001']
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(dict(folder=[folder] * 3,
                         filename=[n + '.jpg' for n in names]), f)
    for name in names:
        Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(
            tmp_path / folder / f'{name}_seg.png')
        Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(
            tmp_path / folder / f'{name}.jpg')
    _script('ade20k_847').main([str(root), '--splits', 'training'])
    assert 'training: 2 images (1 ADE_frame_*)' in capsys.readouterr().out
    out = root / 'annotations_detectron2'
    assert sorted(p.name for p in (out / 'training').iterdir()) == [
        'ADE_frame_00000001.tif', 'ADE_train_00000001.tif']
    assert sorted(p.name for p in (root / 'images_detectron2' /
                                   'training').iterdir()) == [
        'ADE_frame_00000001.jpg', 'ADE_train_00000001.jpg']
    assert not (out / 'validation').exists()


def test_ade20k_847_resizes_as_the_published_preparation(tmp_path):
    """ODISE / FC-CLIP / CAT-Seg resize with cv2 (Pillow samples elsewhere)."""
    root = tmp_path / 'ADE20K_2021_17_01'
    folder = 'ADE20K_2021_17_01/images/ADE/validation/x'
    (tmp_path / folder).mkdir(parents=True)
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(dict(folder=[folder], filename=['ADE_val_00000001.jpg']), f)
    height, width = 21, 33
    classes = np.arange(height * width).reshape(height, width) % 847
    ade_ids = np.array(lc.ADE20K_847_IDS)[classes]
    rgb = np.stack([ade_ids // 256 * 10, ade_ids % 256, 0 * ade_ids], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(
        tmp_path / folder / 'ADE_val_00000001_seg.png')
    stripes = np.zeros((height, width, 3), np.uint8)
    stripes[:, ::2] = 255
    Image.fromarray(stripes).save(tmp_path / folder / 'ADE_val_00000001.jpg',
                                  quality=100)
    _script('ade20k_847').main([str(root), '--max-short-side', '8'])
    label = np.array(Image.open(root / 'annotations_detectron2' /
                                'validation' / 'ADE_val_00000001.tif'))
    size = (13, 8)  # (w, h): short side 8, round(33 / 21 * 8) = 13
    expected = cv2.resize(classes.astype(np.uint16), size,
                          interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(label, expected)
    image = np.array(Image.open(root / 'images_detectron2' / 'validation' /
                                'ADE_val_00000001.jpg')).astype(int)
    source = np.array(Image.open(tmp_path / folder / 'ADE_val_00000001.jpg'))
    by_cv2 = cv2.resize(source, size, interpolation=cv2.INTER_LINEAR)
    by_pil = np.array(Image.fromarray(source).resize(size, Image.BILINEAR))
    assert np.abs(image - by_cv2).mean() < np.abs(image - by_pil).mean() / 2


def test_converter_user_errors_are_one_line_naming_the_file(tmp_path, capsys):
    """A truncated download, existing outputs, a missing folder: one line."""
    from mmovss.runtime import run_tool
    root = tmp_path / 'coco_stuff164k'
    folder = root / 'annotations' / 'val2017'
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / '1.png')
    data = (folder / '1.png').read_bytes()
    (folder / '2.png').write_bytes(data[:len(data) // 2])  # extracted in part
    main = _script('coco_stuff').main
    with pytest.raises(SystemExit) as exit_info:
        run_tool(main, [str(root), '--splits', 'val2017'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: '") and 'Traceback' not in err
    assert f"'{folder / '2.png'}' cannot be read" in err and '--resume' in err
    (folder / '2.png').write_bytes(data)
    with pytest.raises(SystemExit):
        run_tool(main, [str(root), '--splits', 'val2017'])
    assert 'exist already' in capsys.readouterr().err
    run_tool(main, [str(root), '--splits', 'val2017', '--resume'])
    assert (folder / '2_labelTrainIds.png').is_file()
    with pytest.raises(SystemExit):
        run_tool(main, [str(root), '--splits', 'train2017'])
    assert 'unzip stuffthingmaps' in capsys.readouterr().err


def test_truncated_pascal_context_mat_is_named(tmp_path, capsys):
    from mmovss.runtime import run_tool
    root = tmp_path / 'VOC2010'
    (root / 'trainval').mkdir(parents=True)
    for name, cut in (('a', 0), ('b', 40)):
        savemat(root / 'trainval' / f'{name}.mat',
                {'LabelMap': np.ones((4, 4), np.uint16)})
        if cut:
            path = root / 'trainval' / f'{name}.mat'
            path.write_bytes(path.read_bytes()[:cut])
    (root / 'pascalcontext_val.txt').write_text('a\nb\n')
    with pytest.raises(SystemExit):
        run_tool(_script('pascal_context').main, [str(root)])
    err = capsys.readouterr().err
    assert f"'{root / 'trainval' / 'b.mat'}' cannot be read" in err


def test_voc_tar_unpacked_one_level_too_deep_is_named(tmp_path, capsys):
    """The VOC tar holds VOCdevkit/VOC2012; unpacked into data/VOCdevkit."""
    from mmovss.runtime import run_tool
    nested = tmp_path / 'VOCdevkit' / 'VOCdevkit' / 'VOC2012'
    (nested / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (nested / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('a\n')
    root = tmp_path / 'VOCdevkit' / 'VOC2012'
    with pytest.raises(SystemExit):
        run_tool(_script('voc').main, [str(root)])
    err = capsys.readouterr().err
    assert '-C data' in err
    assert f'one level too deep: {nested} exists; move it to {root}' in err
