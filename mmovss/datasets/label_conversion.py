"""Label conversions from the official benchmark downloads to train ids.

Pure functions from one label array to the prepared label array; the scripts
in ``tools/dataset_converters/`` read and write the files. Every function
raises ``ValueError`` naming ``source`` and the value when the input holds a
value the format does not define, instead of writing a wrong label.

Id tables (data) and where they come from:

* COCO-Stuff 164k ``stuffthingmaps``: one-channel PNG with value = COCO id - 1
  (0-181; ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91 are unused),
  255 = unlabelled (github.com/nightrome/cocostuff). The 171 used ids, in
  order, are the 171 train ids (as mmseg's ``coco_stuff164k.py``).
* COCO-Object: background + the 80 thing classes (COCO ids 1-90); stuff and
  unlabelled pixels (255) become background 0, as in the published
  conversion (GroupViT's ``convert_coco_object.py``, copied by TCL, SCLIP,
  ClearCLIP and NACLIP as ``cvt_coco_object.py``: its id table maps every
  value above 90, 255 included, to 0), so no pixel is ignored.
* Cityscapes: the ``labelId -> trainId`` column of the official label table
  (github.com/mcordts/cityscapesScripts, ``helpers/labels.py``).
* PASCAL Context: ``trainval/*.mat`` ``LabelMap`` holds 1-459, the line
  numbers of ``labels.txt``. PC-459 = value - 1 (16-bit, 0 -> 65535, as
  ODISE / FC-CLIP prepare it). PC-59 keeps the 59 classes of
  :data:`PASCAL_CONTEXT_59_IDS` (the ``_mapping`` of mmseg's
  ``pascal_context.py``) as 1-59 and makes every other pixel background 0
  (mmseg's ``SegmentationClassContext`` format).
* ADE20K-full (``ADE20K_2021_17_01``): the class of a pixel of ``*_seg.png``
  is ``R // 10 * 256 + G``; :data:`ADE20K_847_IDS` lists the ADE ids of the
  847 evaluated classes in train-id order (ODISE / FC-CLIP
  ``prepare_ade20k_full_sem_seg.py``, copied as data).
* PASCAL VOC 2012 ``SegmentationClass``: palette PNG, 0 = background,
  1-20 = classes, 255 = boundary (ignored).
"""
from typing import Dict

import numpy as np

__all__ = [
    'COCO_STUFF_UNUSED', 'CITYSCAPES_LABEL_TO_TRAIN_ID',
    'PASCAL_CONTEXT_59_IDS', 'ADE20K_847_IDS', 'WIDE_IGNORE',
    'coco_stuff_to_171', 'coco_stuff_to_object', 'cityscapes_to_train_ids',
    'pascal_context_to_459', 'pascal_context_to_59', 'voc_to_detectron2',
    'ade20k_full_to_847'
]

#: Ignore value of 16-bit label files.
WIDE_IGNORE = 65535

#: Unused values (COCO id - 1) of the COCO-Stuff 164k stuffthingmaps.
COCO_STUFF_UNUSED = frozenset({11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90})
_COCO_STUFF_VALUES = [v for v in range(182) if v not in COCO_STUFF_UNUSED]
_COCO_THING_VALUES = [v for v in _COCO_STUFF_VALUES if v <= 89]

#: Cityscapes labelId -> trainId (labels with trainId 255/-1 are ignored).
CITYSCAPES_LABEL_TO_TRAIN_ID: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18
}

#: ``labels.txt`` ids (1-based) of the 59 PC-59 classes, ascending, which is
#: also the alphabetical order of the PC-59 class names.
PASCAL_CONTEXT_59_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85,
    98, 104, 105, 113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258,
    259, 260, 284, 295, 296, 308, 324, 326, 347, 349, 354, 355, 360, 366,
    368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458)

#: ADE20K-full ids of the 847 A-847 classes, in train-id order.
ADE20K_847_IDS = (
    2978, 312, 2420, 2855, 2131, 976, 447, 165, 2377, 838, 350, 1831, 1125,
    3055, 401, 1610, 1910, 2684, 471, 687, 774, 2473, 2264, 1735, 2994,
    1564, 1276, 2178, 2329, 57, 907, 913, 1395, 2138, 2272, 2128, 724, 155,
    2053, 2380, 689, 1788, 3087, 2530, 581, 2388, 2985, 2454, 2096, 137,
    294, 212, 2185, 524, 2212, 943, 1869, 2251, 2793, 2423, 1121, 266, 1948,
    1744, 783, 571, 627, 629, 491, 1374, 223, 3016, 2598, 978, 239, 608,
    236, 2531, 2616, 591, 327, 2679, 1451, 181, 420, 2821, 1023, 855, 2733,
    2928, 1240, 77, 1969, 2880, 14, 1936, 2828, 631, 103, 3144, 308, 1282,
    38, 1563, 29, 480, 2569, 247, 187, 778, 2243, 1941, 2833, 120, 95, 2836,
    1087, 868, 1401, 220, 47, 843, 123, 2537, 1927, 2337, 1702, 64, 249,
    642, 1981, 609, 2840, 2586, 1393, 2704, 1304, 146, 1494, 2739, 389,
    1551, 131, 738, 161, 747, 1919, 3109, 2179, 2989, 206, 1930, 1002, 2254,
    1708, 2526, 160, 2901, 2262, 44, 597, 2235, 1260, 682, 2151, 3107, 432,
    1098, 2932, 461, 410, 2046, 533, 1481, 1858, 894, 1322, 1891, 1756, 49,
    1272, 1229, 2850, 1784, 2962, 259, 319, 954, 1974, 1013, 2356, 97, 318,
    592, 2885, 1017, 851, 1407, 1332, 303, 2714, 1924, 1346, 1081, 1583,
    2727, 2509, 2123, 602, 202, 10, 490, 530, 2213, 1884, 2934, 2687, 387,
    2668, 982, 2547, 1474, 877, 1391, 414, 698, 2019, 2422, 3010, 1139, 753,
    1747, 2175, 1301, 1033, 1789, 2939, 2730, 1652, 90, 1349, 2830, 1485,
    2370, 2155, 118, 1402, 1957, 3130, 1197, 52, 2688, 96, 762, 772, 1857,
    2315, 1016, 643, 3105, 1849, 791, 349, 6, 3114, 1587, 1233, 559, 1223,
    3049, 1943, 853, 709, 1390, 2748, 2007, 1546, 1513, 2600, 2538, 1790,
    194, 326, 2877, 594, 2036, 1662, 2366, 1754, 418, 2553, 1951, 1963, 918,
    2086, 997, 2731, 704, 1365, 569, 3108, 948, 839, 63, 1305, 378, 2362,
    2734, 2982, 2398, 1119, 382, 1141, 1805, 3102, 2341, 1131, 2316, 2626,
    3104, 198, 1896, 2800, 190, 3131, 1463, 357, 929, 209, 912, 1164, 1509,
    2539, 3116, 2615, 1644, 818, 242, 2217, 2347, 2686, 2300, 572, 789, 358,
    2443, 101, 2969, 2692, 606, 2339, 1533, 2060, 1782, 495, 371, 2707, 889,
    3156, 2683, 1499, 1135, 1619, 125, 2838, 2792, 1695, 746, 1343, 1370,
    2858, 145, 2565, 1892, 1103, 286, 170, 3073, 922, 1655, 1602, 2160,
    1151, 2176, 2239, 132, 394, 1424, 607, 700, 116, 1425, 2676, 141, 2360,
    2449, 897, 317, 2228, 2351, 1543, 656, 1088, 373, 2472, 2892, 1740,
    3067, 1367, 188, 79, 1633, 1885, 677, 1779, 1297, 2334, 3027, 2735,
    1791, 2405, 1748, 2983, 3035, 2824, 2168, 385, 2148, 2465, 175, 390,
    268, 2722, 2857, 3088, 2926, 2782, 1378, 1934, 2072, 2889, 944, 1158,
    1383, 867, 2145, 1915, 361, 402, 482, 2761, 300, 1554, 636, 260, 1186,
    871, 2859, 2103, 208, 2236, 2012, 2462, 1462, 2832, 2617, 1024, 1129,
    18, 376, 134, 407, 434, 2017, 2717, 2005, 2993, 1545, 1445, 2831, 1161,
    2411, 2949, 1769, 552, 2327, 939, 3013, 1986, 1486, 2723, 1549, 2649,
    1020, 392, 422, 1419, 2099, 2464, 3058, 430, 675, 2941, 2955, 2355, 840,
    32, 2338, 1232, 2834, 2991, 2879, 444, 1657, 2246, 296, 245, 2661, 1202,
    1714, 251, 1095, 1828, 311, 2732, 947, 2115, 2738, 2525, 2194, 634, 740,
    2682, 2020, 1156, 1036, 1295, 1181, 3037, 1614, 736, 893, 2047, 1274,
    1361, 3036, 2606, 2797, 2022, 2876, 2758, 472, 3028, 882, 1189, 743,
    3122, 2401, 468, 1061, 1523, 3059, 2843, 2853, 1529, 214, 3032, 3071,
    277, 813, 426, 1039, 727, 1508, 2490, 2299, 768, 1172, 537, 1847, 1664,
    1110, 1014, 662, 121, 227, 2410, 2165, 2696, 3005, 1231, 635, 292, 2690,
    65, 2607, 2574, 1188, 456, 2913, 459, 1955, 827, 1111, 2412, 2997, 528,
    366, 1863, 500, 1001, 1958, 1441, 809, 210, 435, 718, 1674, 388, 1572,
    1584, 1944, 674, 99, 2352, 1019, 1763, 185, 554, 1066, 2508, 951, 2822,
    415, 297, 1914, 2619, 1338, 2505, 955, 2786, 238, 3000, 2763, 299, 822,
    1288, 3101, 2894, 992, 489, 2157, 2309, 1576, 1810, 2964, 2662, 2087,
    1569, 503, 1505, 1468, 1613, 1138, 1256, 2715, 2846, 477, 2576, 108,
    2245, 1162, 2149, 2183, 858, 1324, 1055, 1741, 149, 615, 825, 2143, 304,
    283, 2322, 3017, 2510, 1960, 265, 2282, 2184, 1461, 3113, 2372, 2166,
    232, 693, 1945, 3039, 2494, 1908, 2827, 280, 2950, 1044, 288, 2863,
    1342, 2409, 1258, 2249, 2862, 920, 1607, 2802, 610, 3129, 1108, 2823,
    476, 2641, 2788, 2070, 1368, 2903, 699, 2844, 942, 2663, 457, 2701,
    2540, 2231, 2746, 1738, 2350, 2808, 2025, 2541, 2156, 126, 2512, 831,
    2503, 2039, 2774, 886, 919, 2240, 2636, 963, 1218, 1406, 1420, 526,
    2639, 975, 1921, 2305, 1193, 2517, 2809, 1647, 314, 2560, 545, 1345,
    775, 603, 1163, 1641, 1678, 2450, 2915, 42, 2242, 2741, 1143, 862, 1654,
    1826, 1689, 3124, 2710, 152, 549, 360, 1982, 1478, 2203, 2612, 2956,
    2681, 437, 2171, 1933, 3110, 1824, 2803, 234, 764, 177, 817, 3145, 1262,
    864, 2359, 2992, 1725, 2667, 2484, 1133, 1667, 2847, 932, 1392, 2573,
    2140, 1046, 264, 2927, 2752, 679, 2493, 1658, 2466, 1057, 2444, 2093,
    2248, 2432, 726, 816, 1171, 2766, 2900, 2313, 488, 2265, 2043, 332,
    1771, 2320, 2646, 1089, 2826, 3148)

_UNDEFINED = -1


def _lookup(label: np.ndarray, table: np.ndarray, source: str,
            what: str) -> np.ndarray:
    """Maps ``label`` through ``table``; undefined entries raise."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(
            f'{source}: expected a single-channel label map, got shape '
            f'{label.shape}.')
    if label.min(initial=0) < 0 or label.max(initial=0) >= len(table):
        bad = label.max() if label.max() >= len(table) else label.min()
        raise ValueError(
            f'{source}: label value {int(bad)} is not valid (expected '
            f'{what}).')
    out = table[label]
    if (out == _UNDEFINED).any():
        bad = np.unique(label[out == _UNDEFINED])
        raise ValueError(
            f'{source}: label value(s) {bad[:5].tolist()} not valid '
            f'(expected {what}).')
    return out


def _table(size: int, mapping: Dict[int, int], default: int = _UNDEFINED
           ) -> np.ndarray:
    table = np.full(size, default, dtype=np.int64)
    for old, new in mapping.items():
        table[old] = new
    return table


_COCO_171_TABLE = _table(
    256, {**{v: i for i, v in enumerate(_COCO_STUFF_VALUES)}, 255: 255})
#: Unlabelled (255) is background, as in the published COCO-Object labels.
_COCO_OBJECT_TABLE = _table(
    256, {**{v: 0 for v in _COCO_STUFF_VALUES},
          **{v: i + 1 for i, v in enumerate(_COCO_THING_VALUES)}, 255: 0})
_CITYSCAPES_TABLE = _table(256, CITYSCAPES_LABEL_TO_TRAIN_ID, default=255)
_CITYSCAPES_TABLE[34:] = _UNDEFINED
_PC59_TABLE = _table(
    460, {**{v: 0 for v in range(460)},
          **{v: i + 1 for i, v in enumerate(PASCAL_CONTEXT_59_IDS)}})
_VOC20_TABLE = _table(
    256, {0: 255, **{v: v - 1 for v in range(1, 21)}, 255: 255})
_VOC21_BG_LAST_TABLE = _table(
    256, {0: 20, **{v: v - 1 for v in range(1, 21)}, 255: 255})


def coco_stuff_to_171(label: np.ndarray, source: str = 'label') -> np.ndarray:
    """COCO-Stuff stuffthingmap (0-181, 255) -> 171 train ids (uint8).

    Args:
        label (np.ndarray): The stuffthingmap values.
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint8 map with 0-170 and 255 = unlabelled.
    """
    return _lookup(label, _COCO_171_TABLE, source,
                   'COCO-Stuff value (0-181 without unused ids, or 255)'
                   ).astype(np.uint8)


def coco_stuff_to_object(label: np.ndarray,
                         source: str = 'label') -> np.ndarray:
    """COCO-Stuff stuffthingmap -> COCO-Object (0 = bg, 1-80; uint8).

    Unlabelled pixels (255) become background 0, as in the conversion of
    GroupViT / TCL / SCLIP / NACLIP whose COCO-Object numbers are published
    (keeping them as 255 would leave them out of the evaluation).

    Args:
        label (np.ndarray): The stuffthingmap values.
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint8 map, things 1-80, stuff and unlabelled 0.
    """
    return _lookup(label, _COCO_OBJECT_TABLE, source,
                   'COCO-Stuff value (0-181 without unused ids, or 255)'
                   ).astype(np.uint8)


def cityscapes_to_train_ids(label: np.ndarray,
                            source: str = 'label') -> np.ndarray:
    """Cityscapes ``*_labelIds.png`` (0-33) -> 19 train ids (uint8, 255).

    Args:
        label (np.ndarray): The label ids.
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint8 map with 0-18 and 255 = ignored.
    """
    return _lookup(label, _CITYSCAPES_TABLE, source,
                   'Cityscapes labelId (0-33)').astype(np.uint8)


def pascal_context_to_459(label_map: np.ndarray,
                          source: str = 'label') -> np.ndarray:
    """PASCAL Context ``LabelMap`` (1-459) -> PC-459 (0-458, 65535; uint16).

    Args:
        label_map (np.ndarray): ``LabelMap`` of a ``trainval/*.mat`` file.
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint16 map, class = value - 1, 0 (unlabelled) -> 65535.
    """
    table = _table(460, {**{v: v - 1 for v in range(1, 460)},
                         0: WIDE_IGNORE})
    return _lookup(label_map, table, source,
                   'PASCAL Context label (0-459)').astype(np.uint16)


def pascal_context_to_59(label_map: np.ndarray,
                         source: str = 'label') -> np.ndarray:
    """PASCAL Context ``LabelMap`` -> 59 classes + background 0 (uint8).

    The result is mmseg's ``SegmentationClassContext`` format: PC-59 reads it
    with ``reduce_zero_label=True``, PC-60 with background as class 0.

    Args:
        label_map (np.ndarray): ``LabelMap`` of a ``trainval/*.mat`` file.
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint8 map, 0 = background, 1-59 = the PC-59 classes.
    """
    return _lookup(label_map, _PC59_TABLE, source,
                   'PASCAL Context label (0-459)').astype(np.uint8)


def voc_to_detectron2(label: np.ndarray, background: bool,
                      source: str = 'label') -> np.ndarray:
    """VOC ``SegmentationClass`` -> detectron2-prepared VOC-20 / VOC-21.

    Args:
        label (np.ndarray): Palette indices (0 = background, 1-20, 255).
        background (bool): False: VOC-20 (background -> 255, classes 0-19,
            ``annotations_detectron2``). True: background last as class 20
            (CAT-Seg's ``annotations_detectron2_bg``).
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint8 map.
    """
    table = _VOC21_BG_LAST_TABLE if background else _VOC20_TABLE
    return _lookup(label, table, source,
                   'VOC label (0-20 or 255)').astype(np.uint8)


def ade20k_full_to_847(seg_rgb: np.ndarray,
                       source: str = 'label') -> np.ndarray:
    """ADE20K-full ``*_seg.png`` (RGB) -> A-847 train ids (uint16, 65535).

    Args:
        seg_rgb (np.ndarray): (H, W, 3) RGB array of the ``_seg.png`` file.
        source (str): Name of the input, used in error messages.

    Returns:
        np.ndarray: uint16 map with 0-846; classes outside the 847 and
        unlabelled pixels are 65535.
    """
    seg_rgb = np.asarray(seg_rgb)
    if seg_rgb.ndim != 3 or seg_rgb.shape[2] < 3:
        raise ValueError(
            f'{source}: expected an RGB *_seg.png of ADE20K-full, got shape '
            f'{seg_rgb.shape}.')
    ade_ids = (seg_rgb[..., 0].astype(np.int64) // 10) * 256 + seg_rgb[
        ..., 1].astype(np.int64)
    table = np.full(max(ADE20K_847_IDS) + 1, WIDE_IGNORE, dtype=np.int64)
    table[list(ADE20K_847_IDS)] = np.arange(len(ADE20K_847_IDS))
    out = np.full(ade_ids.shape, WIDE_IGNORE, dtype=np.int64)
    known = ade_ids < len(table)
    out[known] = table[ade_ids[known]]
    return out.astype(np.uint16)
