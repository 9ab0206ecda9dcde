"""The receiver agent (see `agent.Agent`): MQTT link, command verification and handlers, local state."""

from .agent import HANDLERS, Agent
from .config import AgentSettings
from .hardware import Hardware, PiHardware

__all__ = ["HANDLERS", "Agent", "AgentSettings", "Hardware", "PiHardware"]
