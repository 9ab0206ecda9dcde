"""The receiver side of truyenthanh: the agent that runs on each loudspeaker cluster's Raspberry Pi
(`receivers.agent`) and the one definition of the wire protocol that every side shares
(`receivers.protocol`)."""
