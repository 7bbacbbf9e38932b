"""The claims: each task's data, model, metric and target. Tasks know nothing of optimizers."""
from .digits import DigitsResNetConf
from .vision.digits_twins import DigitsFinetuneConf, DigitsWRNConf
from .vision.tasks import CarsResNet50Conf, Cifar10WRNConf

# Config schemas by task name; runners/config.py registers them so a typo in a task key fails at
# compose time.
TASK_SCHEMAS = {"digits_resnet": DigitsResNetConf,
                "cifar10_wrn22": Cifar10WRNConf, "cars_resnet50": CarsResNet50Conf,
                "digits_wrn": DigitsWRNConf, "digits_finetune": DigitsFinetuneConf}
