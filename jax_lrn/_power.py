"""``s ** -beta`` computed the cheap way.

``lax.pow`` is by far the most expensive part of LRN on XLA:CPU. Exponents that are multiples of
1/4 up to 2 (0.25, 0.5, 0.75 (AlexNet), 1, ...) are products of ``rsqrt`` and ``sqrt``, which are
exact to a few ulp at every magnitude; any other static exponent and every traced exponent use
``exp(-beta * log(s))``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

_MAX_QUARTERS = 8  # beta up to 2.0 takes the rsqrt/sqrt path.


def has_fast_path(static_beta: float | None) -> bool:
  """Whether ``s ** -static_beta`` is an exact ``rsqrt``/``sqrt``/reciprocal product."""
  if static_beta is None:
    return False
  quarters = static_beta * 4.0
  return quarters == int(quarters) and 0 <= quarters <= _MAX_QUARTERS


def negative_power(s, beta, static_beta: float | None):
  """Returns ``s ** -beta`` for ``s >= 0`` (``inf`` at ``s == 0`` for ``beta > 0``).

  Args:
    s: floating array (the LRN denominator base, ``k + alpha/n * sum x^2``).
    beta: ``beta`` as a scalar array (used when ``static_beta`` is ``None``).
    static_beta: ``beta`` as a Python float when it is known at trace time, else ``None``.
  """
  if static_beta is None or not has_fast_path(static_beta):
    return jnp.exp(-(beta if static_beta is None else static_beta) * jnp.log(s))
  quarters = int(static_beta * 4.0)
  halves, quarter = divmod(quarters, 2)
  if quarters == 0:
    return jnp.ones_like(s)
  r = lax.rsqrt(s)  # s ** -1/2
  out = None
  if halves:
    # s ** -(halves/2); a plain reciprocal is exact for beta == 1.
    out = r if halves == 1 else (1.0 / s if halves == 2 else lax.integer_pow(r, halves))
  if quarter:
    q = jnp.sqrt(r)  # s ** -1/4
    out = q if out is None else out * q
  return out
