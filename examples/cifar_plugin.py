"""An example plugin: a small CIFAR-style network with its own ten classes, registered through
the studio's public plugin API. Load it with

    STUDIO_MODELS=examples/cifar_plugin.py ./studio dashboard
    STUDIO_MODELS=examples/cifar_plugin.py ./studio cli --list-models

Point ``weights=`` at your trained state dict; this example has none and says so
(``"untrained"``): its maps show the machinery, not what a trained network sees."""
from torch import nn

import model_zoo

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@model_zoo.register_model(
    "example-cifar",
    categories=CIFAR10,
    preprocess=model_zoo.Preprocess(resize=32, crop=32, mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261)),
    weights="untrained",  # or a path: weights="checkpoints/my_cifar_net.pt"
    title="Example CIFAR-style CNN (plugin)",
    description="a plugin's small CIFAR-style CNN (three conv blocks, global pooling); untrained",
)
def build(num_classes: int) -> nn.Module:
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 32), *block(32, 32), nn.MaxPool2d(2),  # 16 x 16
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 8 x 8: the default layer is the last ReLU here
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )
