"""Data for the launchers. Importing this package adds Fashion-MNIST to the datasets that
solo-learn's ``parse_cfg`` accepts (its tables are plain module-level containers, like
``METHODS``), next to cifar10/100, stl10, imagenet(100) and custom image folders.
"""

import solo.args.linear
import solo.args.pretrain

from solo_cjepa.launch.data import fashion_mnist

for _args in (solo.args.pretrain, solo.args.linear):
    if fashion_mnist.NAME not in _args._SUPPORTED_DATASETS:
        _args._SUPPORTED_DATASETS.append(fashion_mnist.NAME)
    _args._N_CLASSES_PER_DATASET[fashion_mnist.NAME] = fashion_mnist.NUM_CLASSES

DATASETS = tuple(solo.args.pretrain._SUPPORTED_DATASETS)
