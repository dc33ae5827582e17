"""Datasets: Fashion-MNIST IDX reader and the task builders."""

from .tasks import MINI_TASKS, SUPER_CLASSES, TASKS, TaskSpec, build_task, get_task, to_tensor, to_uint8

__all__ = ["MINI_TASKS", "SUPER_CLASSES", "TASKS", "TaskSpec", "build_task", "get_task", "to_tensor", "to_uint8"]
