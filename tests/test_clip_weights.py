"""Loading open_clip weights from files (open_clip / OpenAI formats) and the
offline error for pretrained tags that would need a download."""
import pytest
import torch

from mmovss.models.utils import PretrainedWeightsUnavailable, build_open_clip, file_sha256
from mmovss.models.utils import open_clip_weights as ocw
from mmovss.testing.clip import build_tiny_clip, tiny_clip_cfg


def _assert_same_weights(model, source, dtype=None):
    mine = model.state_dict()
    for key, value in source.state_dict().items():
        expected = value if dtype is None else value.to(dtype).float()
        assert torch.equal(mine[key], expected), key


def test_open_clip_format_file(tmp_path):
    cfg = tiny_clip_cfg('vit')
    source = build_tiny_clip(cfg, seed=3)
    path = tmp_path / 'epoch_1.pt'
    # open_clip training checkpoints: {'state_dict': {'module.<key>': ...}}
    torch.save({'epoch': 1, 'state_dict': {
        f'module.{k}': v for k, v in source.state_dict().items()}}, path)
    model, identity = build_open_clip(model_cfg=cfg, pretrained=str(path))
    _assert_same_weights(model, source)
    assert identity == f'sha256:{file_sha256(str(path))}'
    assert not torch.equal(build_tiny_clip(cfg, seed=4).visual.proj,
                           model.visual.proj)


def test_openai_format_state_dict(tmp_path):
    cfg = tiny_clip_cfg('vit')
    source = build_tiny_clip(cfg, seed=5)
    state = {k: v.half() for k, v in source.state_dict().items()}
    state.update(input_resolution=torch.tensor(32),
                 context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    path = tmp_path / 'ViT-tiny.pt'
    torch.save(state, path)
    model, _ = build_open_clip(model_cfg=cfg, pretrained=str(path))
    _assert_same_weights(model, source, dtype=torch.float16)
    assert model.visual.proj.dtype == torch.float32
    # OpenAI's CLIP uses QuickGELU; the format implies it.
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ \
        == 'QuickGELU'


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
def test_openai_torchscript_archive(tmp_path):
    cfg = tiny_clip_cfg('vit')
    source = build_tiny_clip(cfg, seed=6)
    scripted = torch.jit.trace_module(
        source, {'encode_text': (torch.zeros(1, 77, dtype=torch.long), )})
    path = tmp_path / 'ViT-tiny-jit.pt'
    scripted.save(str(path))
    model, _ = build_open_clip(model_cfg=cfg, pretrained=str(path))
    _assert_same_weights(model, source)


def test_mismatching_checkpoint_is_reported(tmp_path):
    source = build_tiny_clip(tiny_clip_cfg('vit', embed_dim=16))
    path = tmp_path / 'other.pt'
    torch.save(source.state_dict(), path)
    with pytest.raises(RuntimeError, match='does not fit'):
        build_open_clip(model_cfg=tiny_clip_cfg('vit'), pretrained=str(path))


def test_half_precision_file_at_another_image_size(tmp_path):
    # OpenAI-style float16 files: the positional embedding is resized in float32
    # (bicubic interpolation has no float16 kernel on the CPU).
    cfg = tiny_clip_cfg('vit')
    source = build_tiny_clip(cfg, seed=7)
    path = tmp_path / 'half.pt'
    torch.save({k: v.half() for k, v in source.state_dict().items()}, path)
    size = cfg['vision_cfg']['image_size'] * 2
    model, _ = build_open_clip(
        model_cfg=tiny_clip_cfg('vit', vision_cfg={'image_size': size}),
        pretrained=str(path))
    assert model.visual.positional_embedding.dtype == torch.float32


def test_file_of_another_architecture_is_reported(tmp_path):
    # A file of another CLIP (other width and grid) fails with the file's name
    # and the hint, not inside open_clip's positional-embedding resizing.
    source = build_tiny_clip(tiny_clip_cfg('vit', vision_cfg={'width': 48},
                                           text_cfg={'width': 48, 'context_length': 32}))
    path = tmp_path / 'other_arch.pt'
    torch.save({k: v.half() for k, v in source.state_dict().items()}, path)
    target = tiny_clip_cfg('vit', vision_cfg={'image_size': 64})
    with pytest.raises(ocw.WeightFileError, match='other_arch.pt.*does not fit'):
        build_open_clip(model_cfg=target, pretrained=str(path))


def test_unknown_tag_and_missing_file():
    with pytest.raises(ValueError, match="known tags: .*'openai'"):
        ocw.resolve_pretrained_tag('ViT-B-16', 'no_such_tag')
    with pytest.raises(ValueError, match='not an existing file'):
        build_open_clip(model_cfg=tiny_clip_cfg('vit'),
                        pretrained='/nonexistent/clip.pt')


@pytest.fixture
def offline(monkeypatch):
    calls = []

    def unreachable(host, timeout=3.0):
        calls.append(host)
        return False, f'{host} is unreachable: no network (test)'

    monkeypatch.setattr(ocw, '_host_reachable', unreachable)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    return calls


def test_offline_tag_fails_fast_with_instructions(offline, tmp_path):
    from mmseg.registry import MODELS
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        MODELS.build(dict(type='OpenCLIPViT', model_name='ViT-B-16',
                          pretrained='openai',
                          download_cache_dir=str(tmp_path)))
    message = str(info.value)
    assert offline == ['huggingface.co']  # checked, no download attempted
    for expected in ("'openai'", "'ViT-B-16'", 'model.backbone.pretrained',
                     'model.text_encoder.pretrained', '--cfg-options',
                     'no network (test)'):
        assert expected in message


def test_offline_message_is_one_line(offline, tmp_path):
    """The tools print it as ``error: …``: it was six lines (the fixes on lines
    of their own), read as a wrapped log rather than one error."""
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        ocw.resolve_pretrained_tag('ViT-B-16', 'openai', str(tmp_path))
    message = str(info.value)
    assert '\n' not in message, message
    assert ('Pass a local checkpoint file (open_clip or OpenAI format) instead of the tag: '
            '--cfg-options model.backbone.pretrained=/path/to/ViT-B-16.pt '
            'model.text_encoder.pretrained=/path/to/ViT-B-16.pt') in message
    # a multi-line reason (a download library's message) is folded into the line
    assert '\n' not in ocw._offline_message('ViT-B-16', 'openai', 'download failed:\n  503')


def test_offline_message_names_every_key_of_the_config_that_gives_the_tag(offline, tmp_path):
    """SAN loads its CLIP in three parts; the message named only the usual two
    keys, so a user who passed them still failed on ``decode_head.clip``."""
    model = dict(type='X', backbone=dict(type='OpenCLIPViT', model_name='ViT-B-16',
                                         pretrained='openai', download_cache_dir=str(tmp_path)),
                 text_encoder=dict(type='OpenCLIPTextEncoder', model_name='ViT-B-16',
                                   pretrained='openai', download_cache_dir=str(tmp_path)),
                 decode_head=dict(type='SANHead', clip=dict(
                     type='OpenCLIPViT', model_name='ViT-B-16', pretrained='openai',
                     download_cache_dir=str(tmp_path))))
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        ocw.fetch_pretrained_clip_weights(model)
    assert ('--cfg-options model.backbone.pretrained=/path/to/ViT-B-16.pt '
            'model.text_encoder.pretrained=/path/to/ViT-B-16.pt '
            'model.decode_head.clip.pretrained=/path/to/ViT-B-16.pt ') in str(info.value)


def test_inferencer_offline_names_every_key_before_building(offline, monkeypatch, tmp_path):
    from mmovss.apis import OpenVocabInferencer
    from mmovss.testing.tools import REPO_ROOT
    monkeypatch.setattr(ocw, '_cached_tag_file', lambda *a, **k: None)  # whatever is cached
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        OpenVocabInferencer(str(REPO_ROOT / 'configs/san/san_vit-b16_60k_coco-stuff171-640x640.py'))
    assert 'model.decode_head.clip.pretrained=/path/to/ViT-B-16.pt' in str(info.value)


def test_offline_env_variable(monkeypatch, tmp_path):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(ocw, '_host_reachable',
                        lambda *a, **k: pytest.fail('must not probe'))
    with pytest.raises(PretrainedWeightsUnavailable, match='HF_HUB_OFFLINE'):
        ocw.resolve_pretrained_tag('convnext_base_w',
                                   'laion2b_s13b_b82k', str(tmp_path))


def test_cached_tag_file_is_used_without_network(offline, tmp_path):
    import open_clip
    tag_cfg = open_clip.get_pretrained_cfg('ViT-B-16', 'openai')
    model_id = tag_cfg['hf_hub'].rstrip('/')
    # Lay out a huggingface_hub cache entry by hand.
    repo_dir = tmp_path / ('models--' + model_id.replace('/', '--'))
    snapshot = repo_dir / 'snapshots' / ('0' * 40)
    snapshot.mkdir(parents=True)
    (repo_dir / 'refs').mkdir()
    (repo_dir / 'refs' / 'main').write_text('0' * 40)
    weights = snapshot / 'open_clip_model.safetensors'
    weights.write_bytes(b'x')
    found = ocw.resolve_pretrained_tag('ViT-B-16', 'openai', str(tmp_path))
    assert found == str(weights)
    assert offline == []
