"""The wire protocol, defined once for the controller, the agent and the simulator.

Imports only pydantic and cryptography. `topics` builds and parses topic names, `messages` holds the
models, `signing` signs and verifies commands. docs/PROTOCOL.md describes the same in prose.
"""

from .messages import (
    COMMAND_KINDS,
    Ack,
    AnyCommand,
    Availability,
    Command,
    ControllerAvailability,
    Ping,
    ProtocolError,
    ReceiverState,
    SetVolume,
    Telemetry,
    parse_command,
    parse_receiver_message,
    utcnow,
)
from .signing import Rejected, Signer, Verifier, generate_private_key_pem, public_key_b64
from .topics import TopicInfo, Topics, check_level

__all__ = [
    "COMMAND_KINDS", "Ack", "AnyCommand", "Availability", "Command", "ControllerAvailability", "Ping",
    "ProtocolError", "ReceiverState", "SetVolume", "Telemetry", "parse_command", "parse_receiver_message",
    "utcnow", "Rejected", "Signer", "Verifier", "generate_private_key_pem", "public_key_b64", "Topics",
    "TopicInfo", "check_level",
]
