"""Configs inherit mmseg's installed configs through `mmseg::` and build."""
from mmengine.config import Config
from mmengine.registry import init_default_scope


def test_mmseg_inherited_config_builds(repo_root):
    cfg = Config.fromfile(repo_root / 'tests/data/configs/tiny_fcn.py')
    # Values from the mmseg base survive where the child does not override them.
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.backbone.type == 'ResNetV1c'
    assert cfg.model.backbone.depth == 18  # overridden by the child
    assert cfg.custom_imports == dict(imports=['mmovss'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmseg'
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    assert model.decode_head.num_classes == 4


def test_schedule_bases_inherit_mmseg(repo_root):
    for name, iters in (('20k', 20000), ('40k', 40000), ('80k', 80000), ('160k', 160000),
                        ('adamw_80k', 80000)):
        cfg = Config.fromfile(repo_root / f'configs/_base_/schedules/schedule_{name}.py')
        assert cfg.train_cfg.max_iters == iters
    cfg = Config.fromfile(repo_root / 'configs/_base_/schedules/schedule_adamw_80k.py')
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert 'momentum' not in cfg.optim_wrapper.optimizer
