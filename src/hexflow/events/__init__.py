"""Events, triggers and functions: the durable event bus (every event logged with a sequence
number before anyone acts on it), triggers (webhooks, file arrival, schedules, event
rules) and the function gateway (registered functions run by warm worker pools).

Inside a function: ``from hexflow.events import FunctionContext, current_context``.
"""

from hexflow.events.config import EventsConfig
from hexflow.events.functions.context import FunctionContext, current_context
from hexflow.events.triggers.webhooks import signed_headers

__all__ = ["EventsConfig", "FunctionContext", "current_context", "signed_headers"]
