# Runtime shared by every mmovss config: mmseg's scope, the plugin import,
# logging, visualisation and the distributed backend.
default_scope = 'mmseg'
custom_imports = dict(imports=['mmovss'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # 'nccl' on GPUs; tools/train.py and tools/test.py fall back to 'gloo'
    # when CUDA is not available (CPU runs, CI).
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
tta_model = dict(type='SegTTAModel')
