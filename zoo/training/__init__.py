"""Training: per-architecture recipes, ``train`` (run folders, resume, multi-device), plots.

Example:
    >>> from zoo.training import get_recipe, train
    >>> run = train("cnn", output_dir="runs/cnn-quick", epochs=1, limit=512)  # doctest: +SKIP
    >>> run = finetune("cnn", data="my_pictures", init_from="cnn.fmnist", output_dir="runs/mine")  # doctest: +SKIP
    >>> get_recipe("resnet34").batch_size
    256
"""

from zoo.training.fit import (
    FitResult,
    RunResult,
    TrainingPlan,
    compile_model,
    finalize_run,
    fit_run,
    make_optimizer,
    make_schedule,
    prepare_run,
    train,
    train_command,
)
from zoo.training.finetune import finetune
from zoo.training.recipes import RECIPES, Recipe, get_recipe, list_recipes, register_recipe
from zoo.training.run_dir import RunDir, RunExistsError, default_run_dir, prepare_run_dir
from zoo.training.transfer import finetune_recipe, set_backbone_trainable

__all__ = [
    "FitResult",
    "RunResult",
    "TrainingPlan",
    "finalize_run",
    "fit_run",
    "prepare_run",
    "RECIPES",
    "Recipe",
    "RunDir",
    "RunExistsError",
    "compile_model",
    "default_run_dir",
    "finetune",
    "finetune_recipe",
    "get_recipe",
    "list_recipes",
    "make_optimizer",
    "make_schedule",
    "prepare_run_dir",
    "register_recipe",
    "set_backbone_trainable",
    "train",
    "train_command",
]
