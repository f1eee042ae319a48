"""Schema migrations (Alembic) for UnitedCron's database."""
