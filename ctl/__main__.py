"""`python -m ctl …`: the same commands as `unitedcron ctl …`."""

from __future__ import annotations

from ctl.app import app

if __name__ == "__main__":
    app(prog_name="unitedcron ctl")
