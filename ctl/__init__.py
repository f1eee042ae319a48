"""`unitedcron ctl`: the fleet from a terminal or a script, over the admin's REST API only."""
