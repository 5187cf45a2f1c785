"""Models: the Keras example's exact parameter counts, output shapes, FLOPs."""

import pytest
import torch

from kd_core.models import MODELS, count_params, create_model, flops_per_image


def test_keras_networks_have_the_examples_parameter_counts():
    assert count_params(create_model("keras-teacher")) == 1_433_610
    assert count_params(create_model("keras-student")) == 20_490


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_maps_images_to_ten_logits(name):
    assert create_model(name)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_keras_same_padding_shapes():
    net = create_model("keras-student")
    shapes = []
    x = torch.zeros(1, 1, 28, 28)
    for layer in net:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert (16, 14, 14) in shapes and (32, 7, 7) in shapes


def test_flops_count_conv_and_linear():
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert flops_per_image(linear) == 10 * (2 * 784 + 1)
    assert flops_per_image(create_model("keras-teacher")) > 50 * flops_per_image(create_model("keras-student"))


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="keras-student"):
        create_model("resnet")
