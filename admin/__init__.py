"""The UnitedCron admin web app (pages and JSON API over the database)."""
