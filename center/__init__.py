"""The UnitedCron center: decides what runs when and pushes it to agents."""
