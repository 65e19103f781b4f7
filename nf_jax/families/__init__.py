"""Topology families added as plug-ins.

Each module here registers one :class:`nf_jax.topology.Family` with
:func:`nf_jax.topology.register`; :mod:`nf_jax.topology` imports every module of this package
when it is imported, so ``nf_jax.topology.make(name, ...)`` knows the family at once. Adding a
family means adding its module here and its tests (see ``docs/ARCHITECTURE.md``). Plug-in
families are listed by ``nf_jax.topology.families()``; ``nf_jax.topology.FAMILIES`` stays the
built-in six, which the co-design genome indexes.
"""
