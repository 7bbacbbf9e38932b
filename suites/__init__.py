"""The claims: each task's data, model, metric and target. Tasks know nothing of optimizers."""
from .digits import DigitsResNetConf
from .text.tasks import SynthTextConf, WikiText2Conf
from .vision.digits_twins import DigitsFinetuneConf, DigitsPretrainConf, DigitsWRNConf
from .vision.tasks import CarsResNet50Conf, Cifar10WRNConf

# Config schemas by task name; the entry points pass them to runners.config.register_configs, so a
# typo in a task key fails at compose time.
TASK_SCHEMAS = {"digits_resnet": DigitsResNetConf,
                "awd_lstm_wt2": WikiText2Conf, "qrnn_wt2": WikiText2Conf,
                "synth_awd_lstm": SynthTextConf, "synth_qrnn": SynthTextConf,
                "cifar10_wrn22": Cifar10WRNConf, "cars_resnet50": CarsResNet50Conf,
                "digits_wrn": DigitsWRNConf, "digits_finetune": DigitsFinetuneConf,
                "digits_pretrain": DigitsPretrainConf}
