"""``ds_tcn``: a depthwise-separable temporal convolution network, the default model.

Sized for the Nano 33 BLE's real-time loop: it treats the 40 mel channels of a frame as the input
channels of 1-D convolutions over time (as TC-ResNet does, Choi et al. 2019) and builds every
block from a depthwise convolution along time and a pointwise convolution (as MatchboxNet does,
Majumdar and Ginsburg 2020), with equal-shape residual additions. Every op is one that
CMSIS-NN accelerates on a Cortex-M4 (convolution, 1x1 convolution, depthwise convolution without
dilation, equal-shape ADD, average pooling); there is no broadcast ADD, no dilation and no
unequal stride in a depthwise convolution (which TensorFlow's stock CPU kernels reject).

Layout (time on axis 1, a width-1 "frequency" axis 2 after the stem)::

    features (49, 40, 1) -> reshape (49, 1, 40): the mel channels become input channels
    stem      conv k x 1 stride (2, 1), no padding       -> (23, 1, C)   BN, ReLU
    blocks    x = ReLU(x + BN(PW(ReLU(BN(DW_k(x))))))    at (23, 1, C), dropout;
              after ``pool_after`` blocks an average pool (2 x 1) halves the frames
    head      average over time -> (1, 1, C) -> classifier (1x1 conv) -> softmax

The stem is a ``k x 40`` convolution over the whole spectrum; written as a ``k x 1``
convolution on the reshaped input it is the same function, but CMSIS-NN runs it with its
multi-channel kernel instead of the slow single-input-channel path (measured on the M4:
about half the instructions; ``docs/m4_op_costs.md``).
"""

from __future__ import annotations

from typing import Any

from kwstool.model import zoo

#: Kernel sizes (frames of 40 ms after the stem) of the residual blocks.
DS_TCN_KERNELS = (9, 9, 9, 9)


def _block(x: Any, channels: int, kernel: int, dropout: float, name: str) -> Any:
    """Depthwise conv along time -> BN -> ReLU -> pointwise conv -> BN, plus the identity."""
    _, layers = zoo._layers()
    y = layers.DepthwiseConv2D((kernel, 1), padding="same", use_bias=False, name=f"{name}_dw")(x)
    y = zoo._bn(name=f"{name}_dw_bn")(y)
    y = layers.ReLU(name=f"{name}_dw_relu")(y)
    y = layers.Conv2D(channels, (1, 1), use_bias=False, name=f"{name}_pw")(y)
    y = zoo._bn(name=f"{name}_pw_bn")(y)
    if dropout:
        y = layers.SpatialDropout2D(dropout, name=f"{name}_drop")(y)
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_relu")(x)


def ds_tcn(
    num_labels: int,
    batch_size: int | None = None,
    channels: int = 64,
    stem_kernel: int = 5,
    kernels: tuple[int, ...] = DS_TCN_KERNELS,
    pool_after: int | None = None,
    dropout: float = 0.1,
) -> Any:
    """The default keyword model (see the module docstring); about 35k parameters for 12 labels."""
    keras, layers = zoo._layers()
    frames, bins = zoo.INPUT_SHAPE[0], zoo.INPUT_SHAPE[1]
    inputs = keras.Input(shape=zoo.INPUT_SHAPE, batch_size=batch_size, name="features")
    x = layers.Reshape((frames, 1, bins), name="bins_as_channels")(inputs)
    x = layers.Conv2D(
        channels, (stem_kernel, 1), strides=(2, 1), padding="valid", use_bias=False, name="stem"
    )(x)
    # The input normalisation after the (linear) stem: the same function and gradients as
    # scaling the input, but the converter folds a multiply *after* a convolution into it,
    # whereas one between the reshape and the convolution would stay a MUL op on the board.
    x = layers.Rescaling(zoo.INPUT_SCALE, name="input_scale")(x)
    x = zoo._bn(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, kernel in enumerate(kernels, start=1):
        if pool_after is not None and i == pool_after + 1:
            x = layers.AveragePooling2D((2, 1), name="time_pool")(x)
        x = _block(x, channels, kernel, dropout, name=f"b{i}")
    x = zoo._global_average(x)
    outputs = zoo._classifier(x, num_labels, dropout=dropout)
    return keras.Model(inputs, outputs, name="ds_tcn")
