"""``s ** beta`` computed the cheap way (LRN divides by it).

``lax.pow`` is by far the most expensive part of LRN on XLA:CPU. Exponents that are multiples of
1/4 up to 2 (0.25, 0.5, 0.75 (AlexNet), 1, ...) are products of at most two of ``s``, ``sqrt(s)``
and ``sqrt(sqrt(s))``: correctly rounded operations, exact to about an ulp at every magnitude
and rounded the same way in every code path XLA generates for them (a vectorised loop body and
its scalar remainder alike, so that results do not depend on how a loop is split over threads or
devices). Any other static exponent and every traced exponent use ``exp(beta * log(s))``.
"""

from __future__ import annotations

import jax.numpy as jnp

_MAX_QUARTERS = 8  # beta up to 2.0 takes the sqrt path.


def has_fast_path(static_beta: float | None) -> bool:
  """Whether ``s ** static_beta`` is a product of ``s``, ``sqrt(s)`` and ``sqrt(sqrt(s))``."""
  if static_beta is None:
    return False
  quarters = static_beta * 4.0
  return quarters == int(quarters) and 0 <= quarters <= _MAX_QUARTERS


def power(s, beta, static_beta: float | None):
  """Returns ``s ** beta`` for ``s >= 0`` (``s ** 0 == 1`` for every ``s``, as in IEEE ``pow``).

  Args:
    s: floating array (the LRN denominator base, ``k + alpha/n * sum x^2``).
    beta: ``beta`` as a scalar array (used when ``static_beta`` is ``None``).
    static_beta: ``beta`` as a Python float when it is known at trace time, else ``None``.
  """
  if static_beta is None:
    # beta == 0 gives 1 also for s = 0 and s = inf, where exp(0 * log(s)) would give nan: the
    # same definition as the static path.
    return jnp.where(beta == 0, 1.0, jnp.exp(beta * jnp.log(s))).astype(s.dtype)
  if not has_fast_path(static_beta):
    return jnp.exp(static_beta * jnp.log(s))
  quarters = int(static_beta * 4.0)
  if quarters == 0:
    return jnp.ones_like(s)
  halves, quarter = divmod(quarters, 2)
  root = jnp.sqrt(s)
  whole = (None, root, s, s * root, s * s)[halves]  # s ** (halves / 2)
  if not quarter:
    return whole
  fourth = jnp.sqrt(root)  # s ** (1/4)
  return fourth if whole is None else whole * fourth
