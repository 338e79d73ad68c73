"""``v / s ** beta`` computed the cheap way.

``lax.pow`` is by far the most expensive part of LRN on XLA:CPU. Exponents that are multiples of
1/4 up to 2 (0.25, 0.5, 0.75 (AlexNet), 1, ...) use ``s``, ``sqrt(s)`` and ``sqrt(sqrt(s))``:
correctly rounded operations, each result within about an ulp, rounded the same way by a
vectorised loop body and its scalar remainder. For ``beta <= 1`` the divisor is one product
(at most ``s``, so it cannot overflow); for ``beta > 1`` ``v`` is divided by ``s`` and by the
rest in turn, so that ``s ** beta`` itself, which would overflow float32 above ~3.4e38, is never
formed. Any other static exponent and every traced exponent use ``exp(beta * log(s))``, whose
range ends where ``s ** beta`` overflows.
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


def log_where_regular(s, regular=None):
  """``log(s)`` where ``0 < s < inf`` (``regular``, computed if not given), else 0: finite, and
  with finite derivatives, everywhere."""
  if regular is None:
    regular = (s > 0) & (s < jnp.inf)
  return jnp.log(jnp.where(regular, s, 1.0))


def divide_by_power(v, s, beta, static_beta: float | None):
  """Returns ``v / s ** beta`` for ``s >= 0`` (``s ** 0 == 1`` for every ``s``, as in IEEE
  ``pow``).

  Args:
    v: floating array, the numerator (``x`` or a cotangent).
    s: floating array of ``v``'s shape (the LRN denominator base, ``k + alpha/n * sum x^2``).
    beta: ``beta`` as a scalar array (used when ``static_beta`` is ``None``).
    static_beta: ``beta`` as a Python float when it is known at trace time, else ``None``.
  """
  if static_beta is None:
    # Where 0 < s < inf: exp(beta log s), a smooth function of s and beta, so that derivatives
    # of every order are right (also at beta = 0). Elsewhere the power is a constant, the limit
    # exp(beta log s) has there: 1 for beta == 0 (where exp(0 * log(s)) would give nan: the same
    # definition as the static path); 0 or inf at s = 0 or inf by the sign of beta; nan for a
    # nan or negative s. Its derivatives there are infinite or undefined: as constants they
    # cannot turn the derivatives of the other elements into nan (a select passes a zero
    # cotangent to the branch it did not take, and 0 * inf would be nan). No second exp or log.
    regular = (s > 0) & (s < jnp.inf)
    power = jnp.exp(beta * log_where_regular(s, regular))
    limit = jnp.where((s == 0) == (beta > 0), 0.0, jnp.inf)
    edge = jnp.where(beta == 0, 1.0, jnp.where(s >= 0, limit, jnp.nan))
    return v / jnp.where(regular, power, edge).astype(s.dtype)
  if not has_fast_path(static_beta):
    return v / jnp.exp(static_beta * jnp.log(s))
  quarters = int(static_beta * 4.0)
  # s ** beta = s ** wholes * s ** (rest / 4). v is divided by s and by the rest in turn, so
  # that s ** beta, which overflows before v / s ** beta underflows when beta > 1 (for beta = 2,
  # from s ~ 1.8e19 on), is never formed; for beta <= 1 that is one division.
  wholes, rest = divmod(quarters, 4)
  for _ in range(wholes):
    v = v / s
  if not rest:
    return v
  root = jnp.sqrt(s)
  fourth = jnp.sqrt(root)
  return v / (None, fourth, root, root * fourth)[rest]  # s ** (rest / 4) <= max(s, 1)
