"""`python -m center` is `unitedcron center`."""

from center.cli import app

if __name__ == "__main__":
    app(["center", *__import__("sys").argv[1:]])
