"""The vision claims (CIFAR-10 WRN-22, Stanford Cars ResNet-50) and their CPU-sized digits twins.

Modules: paths (where data and caches live), resident (uint8 data on the device, crop/flip per batch),
cifar / cars (dataset readers), side_on (Cars augmentation as one affine resample per batch), wrn and
resnet_head (models), tasks and digits_twins (the Task classes and their config schemas).
"""
