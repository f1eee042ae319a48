"""UnitedCron's wire protocol: sans-IO framing, typed messages, handshake, one asyncio wrapper."""
