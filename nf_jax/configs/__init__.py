"""Config files of the package's command lines (``get_config(arg=None)``, see :mod:`nf_jax.cli`).

Each module is the default ``--config`` of one CLI, and its docstring states the command, the
runtime and the result. ``nf_jax.cli.load_config(name)`` returns one.
"""
