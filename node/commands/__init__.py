"""The `fedmarket` command groups: one module per group, each exposing `register(commands)`.

`node/cli.py` lists the group modules by name; adding a group is one line there (see `docs/cli.md`).
"""
