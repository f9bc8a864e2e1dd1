# Test pipelines of the released detectron2-based models (SAN, FC-CLIP, CAT-Seg, ZegFormer, OVSeg):
# detectron2's ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST) on images decoded and resized with
# PIL (read_image; bilinear), as their default test DatasetMapper does. Labels are loaded after
# Resize: the metric compares at full resolution. A protocol base or an official config picks one:
#   test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
detectron2_pipelines = {
    f'short_{short}_long_{long}': [
        dict(type='LoadImageFromFile', imdecode_backend='pillow'),
        dict(type='Resize', scale=(long, short), keep_ratio=True, backend='pillow'),
        dict(type='LoadSegAnnotations'),
        dict(type='PackSegInputs'),
    ]
    for short, long in ((512, 2048), (640, 2560), (800, 1333), (1024, 2560))
}
