"""Hardware co-design: a cycle-level systolic-fabric simulator in vectorised JAX."""
