"""The claims: each task's data, model, metric and target. Tasks know nothing of optimizers."""
from .digits import DigitsResNetConf

# Config schemas by task name; runners/config.py registers them so a typo in a task key fails at
# compose time.
TASK_SCHEMAS = {"digits_resnet": DigitsResNetConf}
