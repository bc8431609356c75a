"""PBFT for a chain (IBFT 2.0 style) as a sans-I/O state machine: `Replica.step(event) -> list[Action]`."""
