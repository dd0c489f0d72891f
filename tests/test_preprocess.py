"""prepare(): size, padding, normalisation, channel order and the frame ↔ net mapping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backbones.registry import PreprocessSpec
from stages.preprocess import net_size, padded_size, prepare

CMU_LIKE = PreprocessSpec(mean=128.0, scale=1 / 256, pad_value=128.0, default_height=368)
RAW = PreprocessSpec(mean=0.0, scale=1.0, pad_value=0.0, default_height=368)


def test_input_height_fixes_the_height_and_pads_the_width_to_a_multiple_of_8():
    frame = np.full((480, 640, 3), 200, np.uint8)
    net_input, scale, pad = prepare(frame, RAW, input_height=100)
    assert net_input.dtype == np.float32 and net_input.flags.c_contiguous
    assert net_input.shape == (3, 104, 136)          # 100 -> 104, 640*100/480 = 133 -> 136
    assert scale == pytest.approx(100 / 480)
    assert pad == (0, 0)
    assert np.all(net_input[:, :100, :133] == 200)   # the image
    assert np.all(net_input[:, 100:, :] == 0)        # bottom padding (pad value 0)
    assert np.all(net_input[:, :, 133:] == 0)        # right padding


def test_normalisation_and_pad_value_follow_the_spec():
    frame = np.full((64, 64, 3), 192, np.uint8)
    net_input, _, _ = prepare(frame, CMU_LIKE, input_height=60)
    assert net_input.shape == (3, 64, 64)
    assert np.allclose(net_input[:, :60, :60], (192 - 128) / 256)
    assert np.allclose(net_input[:, 60:, :], 0.0)    # pad 128 normalises to 0


def test_scale_is_an_alternative_to_input_height():
    frame = np.zeros((300, 400, 3), np.uint8)
    net_input, scale, _ = prepare(frame, RAW, scale=0.5)
    assert net_input.shape == (3, 152, 200)          # 150 -> 152, 200
    assert scale == pytest.approx(0.5)


def test_default_height_when_neither_is_given():
    frame = np.zeros((240, 320, 3), np.uint8)
    net_input, scale, _ = prepare(frame, RAW)
    assert net_input.shape[1] == 368
    assert scale == pytest.approx(368 / 240)


def test_a_point_maps_back_to_the_frame_through_scale():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[300:304, 500:504] = 255                    # a bright 4x4 square centred at (501.5, 301.5)
    net_input, scale, (top, left) = prepare(frame, RAW, input_height=240)
    brightness = net_input.sum(axis=0)
    net_y, net_x = np.unravel_index(np.argmax(brightness), brightness.shape)
    frame_x, frame_y = (net_x - left) / scale, (net_y - top) / scale
    assert abs(frame_x - 501.5) <= 2 / scale and abs(frame_y - 301.5) <= 2 / scale


def test_channel_order_rgb_swaps_blue_and_red():
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[..., 0] = 10      # blue
    frame[..., 2] = 250     # red
    rgb = PreprocessSpec(channel_order="RGB", mean=0.0, scale=1.0, pad_value=0.0, default_height=16)
    bgr_input, _, _ = prepare(frame, RAW, input_height=16)
    rgb_input, _, _ = prepare(frame, rgb, input_height=16)
    assert bgr_input[0, 0, 0] == 10 and bgr_input[2, 0, 0] == 250
    assert rgb_input[0, 0, 0] == 250 and rgb_input[2, 0, 0] == 10


def test_input_is_not_modified():
    frame = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    before = frame.copy()
    prepare(frame, CMU_LIKE, input_height=40)
    assert np.array_equal(frame, before)


def test_size_helpers():
    assert net_size(480, 640, RAW, input_height=368) == (368, 491, pytest.approx(368 / 480))
    assert padded_size(368, 491, 8) == (368, 496)


def test_grey_image_is_refused():
    with pytest.raises(ValueError, match="HxWx3"):
        prepare(np.zeros((10, 10), np.uint8), RAW)


@pytest.mark.parametrize("frame_shape", [(480, 640), (1080, 1920), (960, 1280), (2160, 3840), (300, 400)])
def test_resizing_equals_opencvs_8_bit_area_resize(frame_shape):
    # prepare may resize through 16-bit pixels (faster for fractional factors): same values
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (*frame_shape, 3), dtype=np.uint8), (3, 3), 1)
    for height in (184, 240, 368):
        width = round(frame_shape[1] * height / frame_shape[0])
        expected = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA
                              if height < frame_shape[0] else cv2.INTER_LINEAR)
        net_input = prepare(image, RAW, height)[0]
        np.testing.assert_array_equal(net_input[:, :height, :width],
                                      expected.transpose(2, 0, 1).astype(np.float32))
