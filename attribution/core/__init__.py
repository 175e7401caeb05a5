"""The data path: options -> tokens -> quadrature -> Jacobian-vector products -> engine.

Nothing is imported here, so that `attribution.core.options` (which attribution.settings needs
for `Limits`) loads without the engine; import the modules themselves (attribution.core.engine, ...).
"""
