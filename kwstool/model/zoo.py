"""Keyword-spotting model zoo: small Keras models that quantize to int8 and run in TFLite-Micro.

Every model takes the front end's output as a float32 tensor ``(49, 40, 1)`` (time frames,
mel channels, 1) whose values are the int8 feature values as floats (-128..127), and ends in a
softmax over the labels. Models normalise their own input with a fixed ``Rescaling(1/128)``
directly in front of the first convolution (no offset, so "same" zero padding stays exact): the
TFLite converter folds that scale into the convolution's weights, so the int8 model starts with
the convolution itself and its input tensor keeps scale 1.0, zero point 0.

Convolutions that are followed by batch normalisation have no bias and are laid out
``conv -> BatchNormalization -> ReLU`` so the converter folds the normalisation into the
convolution. Only layers that become ops TFLite-Micro implements are used: CONV_2D,
DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, ADD, RESHAPE, SOFTMAX (ReLU is fused). The output layer is
a convolution over the whole final map rather than a Dense layer (see :func:`_classifier`), so
TFLite-Micro and LiteRT give bit-identical int8 outputs.

Models:

``tiny_conv``
    micro_speech's model (TensorFlow ``speech_commands`` "tiny_conv"): one 8-filter 10x8 conv
    with stride 2, dropout, and a fully connected layer. Tiny and fast, not very accurate.
``ds_cnn``
    The depthwise-separable CNN of Zhang et al., "Hello Edge: Keyword Spotting on
    Microcontrollers" (2017), in the "small" configuration used by the MLPerf Tiny KWS benchmark:
    a 64-filter 10x4 conv with stride 2, four depthwise-separable blocks, average pooling and a
    fully connected layer.
``ds_tcn`` (default, :mod:`kwstool.model.ds_tcn`)
    Depthwise-separable temporal convolutions over the 40 mel channels, built only from ops
    CMSIS-NN accelerates: keeps the Nano 33 BLE's real-time loop (about 67 ms per inference).
``bc_resnet``
    A broadcasted-residual network after Kim et al., "Broadcasted Residual Learning for Efficient
    Keyword Spotting" (Interspeech 2021), sized for a microcontroller (see :func:`bc_resnet`):
    fits 64 KB of flash and a 32 KB TFLite-Micro arena.
``tc_resnet``
    TC-ResNet8 of Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile
    Devices" (Interspeech 2019) at width 0.75: 1-D convolutions over time with the mel channels
    as input channels; very small arena, fast.

``MODELS`` maps each name to its builder; :func:`build_model` is the entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kwstool.core import tfenv
from kwstool.core.contract import SHAPE
from kwstool.errors import KwsError

#: (time frames, mel channels, 1): the front end's 49x40 features, as float values -128..127.
INPUT_SHAPE = (*SHAPE, 1)
#: The fixed input normalisation: int8 feature values -128..127 become -1..1.
INPUT_SCALE = 1.0 / 128.0
DEFAULT_MODEL = "ds_tcn"
BN_MOMENTUM = 0.9


def _layers() -> Any:
    # Imported lazily so `import kwstool.model.zoo` (and the CLI's --help) does not load TensorFlow.
    tfenv.quiet()
    import keras

    return keras, keras.layers


def _input(batch_size: int | None) -> Any:
    keras, layers = _layers()
    inputs = keras.Input(shape=INPUT_SHAPE, batch_size=batch_size, name="features")
    return inputs, layers.Rescaling(INPUT_SCALE, name="input_scale")(inputs)


def _bn(name: str) -> Any:
    """BatchNorm with momentum 0.9: the moving statistics settle within a few hundred steps,
    which matters on small keyword datasets (Keras' default 0.99 needs thousands)."""
    _, layers = _layers()
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _conv_bn_relu(
    x: Any, filters: int, kernel: Any, strides: Any = (1, 1), name: str = "conv"
) -> Any:
    """Conv (no bias) -> BatchNorm -> ReLU: the converter folds the BN into the conv."""
    _, layers = _layers()
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}"
    )(x)
    x = _bn(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _global_average(x: Any, name: str = "pool") -> Any:
    """Average over time and frequency to a 1x1 map (one AVERAGE_POOL_2D).

    Not GlobalAveragePooling2D, whose MEAN op would be one more int8 kernel that has to match
    bit for bit between TFLite-Micro and LiteRT; AVERAGE_POOL_2D is used inside BC-ResNet anyway.
    """
    _, layers = _layers()
    return layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name=name)(x)


def _classifier(x: Any, num_labels: int, dropout: float, name: str = "classifier") -> Any:
    """The fully connected output layer, written as a convolution over the whole map, + softmax.

    A ``Conv2D`` whose kernel covers the whole (time, frequency) map is exactly a dense layer on
    the flattened map, but it becomes CONV_2D instead of FULLY_CONNECTED: LiteRT's int8
    FULLY_CONNECTED kernels (optimized and reference) round differently from TFLite-Micro's on
    some inputs (outputs off by one), whereas int8 CONV_2D gives the same outputs in both,
    which ``kwstool quantize`` checks.
    """
    _, layers = _layers()
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Conv2D(num_labels, tuple(x.shape[1:3]), padding="valid", name=name)(x)
    x = layers.Flatten(name="logits")(x)
    return layers.Softmax(name="probabilities")(x)


# --- tiny_conv ---------------------------------------------------------------------------------
def tiny_conv(num_labels: int, batch_size: int | None = None) -> Any:
    """micro_speech's "tiny_conv": conv 8@10x8 stride 2 + ReLU, dropout, fully connected.

    About 4k weights per label (25x20x8 inputs to the final layer), a few hundred kMACs.
    """
    keras, layers = _layers()
    inputs, x = _input(batch_size)
    x = layers.Conv2D(8, (10, 8), strides=(2, 2), padding="same", activation="relu", name="conv")(x)
    outputs = _classifier(x, num_labels, dropout=0.5)  # over the whole 25x20x8 map
    return keras.Model(inputs, outputs, name="tiny_conv")


# --- ds_cnn ------------------------------------------------------------------------------------
def ds_cnn(
    num_labels: int, batch_size: int | None = None, filters: int = 64, blocks: int = 4
) -> Any:
    """Hello Edge DS-CNN, "small" (MLPerf Tiny): conv 64@10x4 stride 2, 4 x (DW 3x3 + PW 1x1).

    Each stage is conv -> BN -> ReLU. With 40 mel channels the feature map is 25x20x64; the head
    averages it over time and frequency and classifies with one fully connected layer.
    """
    keras, layers = _layers()
    inputs, x = _input(batch_size)
    x = _conv_bn_relu(x, filters, (10, 4), strides=(2, 2), name="conv0")
    x = layers.Dropout(0.2, name="conv0_dropout")(x)
    for i in range(1, blocks + 1):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False, name=f"dw{i}")(x)
        x = _bn(name=f"dw{i}_bn")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(x)
        x = _conv_bn_relu(x, filters, (1, 1), name=f"pw{i}")
    x = _global_average(x)
    outputs = _classifier(x, num_labels, dropout=0.4)
    return keras.Model(inputs, outputs, name="ds_cnn")


def _frequency_stride_layer() -> Any:
    """The Keras layer class behind :func:`FrequencyStride` (built lazily: no TF at import)."""
    import keras

    @keras.saving.register_keras_serializable(package="kwstool")
    class FrequencyStrideLayer(keras.layers.Layer):  # type: ignore[misc]  # keras is untyped
        """Keep every ``stride``-th frequency bin of a stride-1 "same" convolution's output.

        ``conv(stride=(1, s))`` equals ``conv(stride=1)`` sampled at ``offset::s`` along
        frequency, where ``offset`` undoes the different "same" padding of the strided
        convolution (TensorFlow pads ``total // 2`` on the left). Expressed this way the model
        needs only equal strides, which every TensorFlow CPU kernel (stock and oneDNN) and
        TFLite-Micro support; the slice becomes one cheap STRIDED_SLICE op.
        """

        def __init__(self, stride: int, kernel: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.stride = int(stride)
            self.kernel = int(kernel)

        def _offset(self, width: int) -> int:
            out = -(-width // self.stride)
            pad_total = max((out - 1) * self.stride + self.kernel - width, 0)
            return (self.kernel - 1) // 2 - pad_total // 2

        def call(self, x: Any) -> Any:
            return x[:, :, self._offset(int(x.shape[2])) :: self.stride, :]

        def compute_output_shape(self, input_shape: Any) -> Any:
            width = input_shape[2]
            return (*input_shape[:2], -(-width // self.stride), input_shape[3])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "stride": self.stride, "kernel": self.kernel}

    return FrequencyStrideLayer


_FREQUENCY_STRIDE: Any = None


def register_custom_layers() -> dict[str, Any]:
    """Create (once) and register kwstool's custom Keras layers; call before loading a model."""
    global _FREQUENCY_STRIDE
    if _FREQUENCY_STRIDE is None:
        _FREQUENCY_STRIDE = _frequency_stride_layer()
    return {"FrequencyStrideLayer": _FREQUENCY_STRIDE}


def FrequencyStride(stride: int, kernel: int, name: str) -> Any:  # noqa: N802 - a layer factory
    """A ``FrequencyStrideLayer`` (see :func:`_frequency_stride_layer`)."""
    return register_custom_layers()["FrequencyStrideLayer"](stride, kernel, name=name)


# --- bc_resnet ---------------------------------------------------------------------------------
#: (channels, blocks, frequency stride of the first block, temporal dilation) per stage, for
#: width 1. BC-ResNet-1 in the paper has 8/12/16/20 channels in 2/2/4/4 blocks with dilations
#: 1/2/4/8 on 10 ms frames. Here the blocks are halved (1/1/2/2: TFLite-Micro's arena and the
#: flatbuffer grow with every op and tensor, far more than with channels), and our frames are
#: 20 ms and halved again by the stem, so the dilations are 1/1/2/2.
BC_RESNET_STAGES = ((8, 1, 1, 1), (12, 1, 2, 1), (16, 2, 2, 2), (20, 2, 1, 2))


def _bc_block(
    x: Any, channels: int, freq_stride: int, dilation: int, dropout: float, name: str
) -> Any:
    """One broadcasted-residual block (time on axis 1, frequency on axis 2).

    ``f2``: a depthwise 1x3 convolution along frequency (after a 1x1 conv when the block changes
    the channel count: a "transition" block) and BN. ``f1``: the f2 output averaged over
    frequency, a depthwise 3x1 (dilated) convolution along time, BN, ReLU, a 1x1 convolution and
    channel dropout. The output is ``ReLU(identity + f2 + broadcast(f1))``; transition blocks have
    no identity path. The paper's SubSpectral Normalization is plain BN here (it folds into the
    convolution) and its swish is ReLU (int8-friendly, fused into the convolution).

    Layer names are short (``s2b0_fdw``: stage 2, block 0, frequency depthwise conv) because
    the TFLite converter stores every tensor's fused name path in the flatbuffer.
    """
    _, layers = _layers()
    transition = x.shape[-1] != channels or freq_stride != 1
    identity = x
    if transition:
        x = _conv_bn_relu(x, channels, (1, 1), name=f"{name}_pw")
    f2 = layers.DepthwiseConv2D((1, 3), padding="same", use_bias=False, name=f"{name}_fdw")(x)
    f2 = _bn(name=f"{name}_fbn")(f2)  # before the stride, so it still folds into the conv
    if freq_stride != 1:
        f2 = FrequencyStride(freq_stride, kernel=3, name=f"{name}_fstride")(f2)

    f1 = layers.AveragePooling2D(pool_size=(1, f2.shape[2]), name=f"{name}_favg")(f2)
    f1 = layers.DepthwiseConv2D(
        (3, 1), dilation_rate=(dilation, 1), padding="same", use_bias=False, name=f"{name}_tdw"
    )(f1)
    f1 = _bn(name=f"{name}_tbn")(f1)
    f1 = layers.ReLU(name=f"{name}_trelu")(f1)
    f1 = layers.Conv2D(channels, (1, 1), name=f"{name}_tpw")(f1)
    if dropout:
        f1 = layers.SpatialDropout2D(dropout, name=f"{name}_drop")(f1)

    # Broadcast add: (T, 1, C) f1 over the (T, F, C) frequency map.
    x = layers.Add(name=f"{name}_badd")([f2, f1])
    if not transition:
        x = layers.Add(name=f"{name}_radd")([x, identity])
    return layers.ReLU(name=f"{name}_relu")(x)


def bc_resnet(
    num_labels: int,
    batch_size: int | None = None,
    width: float = 1.5,
    dropout: float = 0.1,
    stages: Any = BC_RESNET_STAGES,
    stem: int | None = 16,
) -> Any:
    """BC-ResNet for 49x40 features, sized for a microcontroller.

    Stem: conv 16@5x5 stride 2x2 (time and frequency: a 25x20 map) -> BN -> ReLU. Then the
    stages of ``stages`` with channels scaled by ``width`` (default 1.5: 12/18/24/30 channels,
    6 blocks). Head: a depthwise conv over the remaining 5 frequency bins (no padding), a 1x1
    conv to ``32 * width`` channels, average over time and a fully connected layer.
    About 10k parameters; int8 it takes about 37 KB of flash and 30 KB of TFLite-Micro arena.
    """
    keras, layers = _layers()
    inputs, x = _input(batch_size)
    stem = stem or round(2 * stages[0][0] * width)
    x = _conv_bn_relu(x, stem, (5, 5), strides=(2, 2), name="stem")
    for s, (channels, blocks, freq_stride, dilation) in enumerate(stages, start=1):
        c = round(channels * width)
        for b in range(blocks):
            x = _bc_block(x, c, freq_stride if b == 0 else 1, dilation, dropout, name=f"s{s}b{b}")
    x = layers.DepthwiseConv2D(
        (1, x.shape[2]), padding="valid", use_bias=False, name="head_freq_dw"
    )(x)
    x = _bn(name="head_freq_bn")(x)
    x = layers.ReLU(name="head_freq_relu")(x)
    x = _conv_bn_relu(x, round(32 * width), (1, 1), name="head_pw")
    x = _global_average(x)
    outputs = _classifier(x, num_labels, dropout=0.0)
    return keras.Model(inputs, outputs, name="bc_resnet")


# --- tc_resnet ---------------------------------------------------------------------------------
#: (channels, stride) of the residual blocks of TC-ResNet8 at width 1.
TC_RESNET_BLOCKS = ((24, 2), (32, 2), (48, 2))


def _tc_block(x: Any, channels: int, stride: int, kernel: int, name: str) -> Any:
    """TC-ResNet block: two k x 1 temporal convs (BN, ReLU) plus a shortcut, added, ReLU."""
    _, layers = _layers()
    shortcut = x
    x = _conv_bn_relu(x, channels, (kernel, 1), strides=(stride, 1), name=f"{name}_conv1")
    x = layers.Conv2D(channels, (kernel, 1), padding="same", use_bias=False, name=f"{name}_conv2")(
        x
    )
    x = _bn(name=f"{name}_conv2_bn")(x)
    if stride != 1 or shortcut.shape[-1] != channels:
        shortcut = _conv_bn_relu(
            shortcut, channels, (1, 1), strides=(stride, 1), name=f"{name}_short"
        )
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu")(x)


def tc_resnet(
    num_labels: int,
    batch_size: int | None = None,
    width: float = 0.75,
    kernel: int = 9,
    blocks: Any = TC_RESNET_BLOCKS,
    dropout: float = 0.0,
) -> Any:
    """TC-ResNet8 (Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile
    Devices", 2019): the 40 mel channels are the input channels of 1-D convolutions over time.

    First conv 3x40 (all channels at once, no padding) -> 16 channels; three residual blocks of
    two 9x1 convolutions (stride 2 in the first) with 24/32/48 channels; average over time; FC.
    Channels are scaled by ``width``: the paper's width 1 (66k parameters) is 80 KB as int8,
    the default 0.75 (38k) about 55 KB.
    """
    keras, layers = _layers()
    inputs, x = _input(batch_size)
    x = layers.Conv2D(
        round(16 * width), (3, INPUT_SHAPE[1]), padding="valid", use_bias=False, name="conv0"
    )(x)
    x = _bn(name="conv0_bn")(x)
    x = layers.ReLU(name="conv0_relu")(x)
    for i, (channels, stride) in enumerate(blocks, start=1):
        x = _tc_block(x, round(channels * width), stride, kernel, name=f"block{i}")
    x = _global_average(x)
    outputs = _classifier(x, num_labels, dropout=dropout)
    return keras.Model(inputs, outputs, name="tc_resnet")


# --- registry ----------------------------------------------------------------------------------
def ds_tcn(num_labels: int, batch_size: int | None = None, **kwargs: Any) -> Any:
    """The default model: see :mod:`kwstool.model.ds_tcn`."""
    from kwstool.model.ds_tcn import ds_tcn as build

    return build(num_labels, batch_size=batch_size, **kwargs)


MODELS: dict[str, Callable[..., Any]] = {
    "ds_tcn": ds_tcn,
    "tiny_conv": tiny_conv,
    "ds_cnn": ds_cnn,
    "bc_resnet": bc_resnet,
    "tc_resnet": tc_resnet,
}


def check_name(name: str) -> str:
    """Return ``name`` if it is a known model, else raise a KwsError listing the choices."""
    if name not in MODELS:
        raise KwsError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return name


def build_model(name: str, num_labels: int, batch_size: int | None = None, **kwargs: Any) -> Any:
    """Build the (uncompiled) Keras model ``name`` for ``num_labels`` classes.

    ``batch_size=1`` gives the inference graph that is saved for conversion: with a static batch
    the converter emits no SHAPE/PACK ops for Flatten. Keras still runs it on any batch size.
    """
    check_name(name)
    if num_labels < 2:
        raise KwsError(f"a model needs at least 2 labels, got {num_labels}")
    return MODELS[name](num_labels, batch_size=batch_size, **kwargs)
