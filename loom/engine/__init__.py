"""The Loom engine: runs graphs on an asyncio loop. Never imports Qt."""

from .context import NodeContext, RunContext, StopRequested
from .dask_executor import DaskExecutor, ExecutorUnavailableError
from .errors import NodeAborted
from .events import EVENT_TYPES, Event, EventBus
from .invoke import RUN_EXECUTORS
from .manager import ExecutionManager
from .plan import GraphValidationError, Issue, Plan, compile_plan, ports_of, validate
from .result import NodeRecord, RunResult
from .states import NodeState, RunStatus
from .strategies import STRATEGIES, Setting, Strategy
from .values import Skip, preview, to_jsonable

__all__ = [
    "EVENT_TYPES",
    "RUN_EXECUTORS",
    "STRATEGIES",
    "DaskExecutor",
    "Event",
    "EventBus",
    "ExecutionManager",
    "ExecutorUnavailableError",
    "GraphValidationError",
    "Issue",
    "NodeAborted",
    "NodeContext",
    "NodeRecord",
    "NodeState",
    "Plan",
    "RunContext",
    "RunResult",
    "RunStatus",
    "Setting",
    "Skip",
    "StopRequested",
    "Strategy",
    "compile_plan",
    "ports_of",
    "preview",
    "to_jsonable",
    "validate",
]
