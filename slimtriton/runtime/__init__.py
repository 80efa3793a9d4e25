"""Plan, lowering table, memory plan, executor and CUDA-graph capture of compiled models."""
from .lowering import LOWERINGS, Lowered
from .memory import MemoryPlan, plan_memory
from .plan import Plan, Step, build_plan

__all__ = ["LOWERINGS", "Lowered", "MemoryPlan", "plan_memory", "Plan", "Step", "build_plan"]
