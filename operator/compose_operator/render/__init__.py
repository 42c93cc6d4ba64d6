"""The planner: a typed Compose project in, Kubernetes objects and env bindings out (pure)."""

from __future__ import annotations

from compose_operator.render.env import build_env_patch
from compose_operator.render.plan import plan

__all__ = ["build_env_patch", "plan"]
