# Test pipelines of the training-free protocols (configs/_base_/protocols/<family>/): the published
# codes resize the short side to 336, 448 or 560 pixels (long side at most 2048) and slide windows
# over the result. Labels are loaded after Resize: the metric compares at full resolution.
# A protocol base picks one:
#   test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
training_free_pipelines = {
    f'short_side_{side}': [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, side), keep_ratio=True),
        dict(type='LoadSegAnnotations'),
        dict(type='PackSegInputs'),
    ]
    for side in (336, 448, 560)
}
