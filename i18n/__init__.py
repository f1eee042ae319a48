"""The words of UnitedCron in more than one language: catalogs, the language choice, and how
an English reason becomes another language's (shared by center, admin and ctl)."""
