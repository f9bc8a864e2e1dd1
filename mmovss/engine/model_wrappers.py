"""Model wrapper of distributed testing, registered into MMEngine's
``MODEL_WRAPPERS`` (the runner looks a wrapper type up there, not in mmseg's
child registry), and :func:`unwrap_segmentor`, the segmentor inside the
runner's wrappers."""
import torch.nn as nn

from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS


def unwrap_segmentor(model: nn.Module) -> nn.Module:
    """The segmentor inside a runner's model wrappers.

    Args:
        model (nn.Module): ``runner.model``: the segmentor, or the segmentor
            inside any nesting of model wrappers (``MMDistributedDataParallel``,
            :class:`DistributedTestWrapper`) and test-time-augmentation models
            (``tools/test.py --tta``).

    Returns:
        nn.Module: The innermost module that is neither.
    """
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


@MODEL_WRAPPERS.register_module()
class DistributedTestWrapper(nn.Module):
    """Wraps the model of a distributed *test* run without DDP.

    ``tools/test.py --launcher pytorch|slurm|mpi`` (``tools/dist_test.sh``)
    shards the test set over the processes; each segments its share and
    the metric gathers the results. No gradient is synchronised, so
    PyTorch's ``DistributedDataParallel``, MMEngine's default wrapper, is
    not needed, and it refuses a model without a trainable parameter (every
    training-free method: ``DistributedDataParallel is not needed when a
    module doesn't have any parameter that requires a gradient``). The
    checkpoint is loaded into every process after wrapping, so nothing
    needs to be broadcast either.

    Args:
        module (nn.Module): The model.
        **kwargs: DDP options of a ``model_wrapper_cfg`` (``device_ids``,
            ``broadcast_buffers``...), ignored.
    """

    def __init__(self, module: nn.Module, **kwargs):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def val_step(self, data):
        """The model's ``val_step``."""
        return self.module.val_step(data)

    def test_step(self, data):
        """The model's ``test_step``."""
        return self.module.test_step(data)

    def train_step(self, data, optim_wrapper):
        raise RuntimeError('DistributedTestWrapper is for testing; training needs '
                           'MMDistributedDataParallel (the default wrapper of tools/train.py).')
