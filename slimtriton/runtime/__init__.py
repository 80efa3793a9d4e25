"""Plan, lowering table, memory plan, executor and CUDA-graph capture of compiled models."""
from .lowering import LOWERINGS
from .memory import MemoryPlan, plan_memory
from .plan import PLAN_PASS_FUNCTIONS, Plan, build_plan
from .step import Output, Step

__all__ = ["LOWERINGS", "MemoryPlan", "plan_memory", "Plan", "PLAN_PASS_FUNCTIONS", "Step", "Output", "build_plan"]
