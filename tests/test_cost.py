"""Guards on what the compiled programs do, without timing anything.

For every way users differentiate LRN, the optimized XLA:CPU program must (1) evaluate each
transcendental operation once per element where it appears, never once per shifted copy of a
window sum (a recomputation ``compiled.cost_analysis()`` cannot see: it counts an instruction
once however many shifted reads of it a fused loop makes, so ``tests/hlo_cost.py`` counts the
evaluations from the HLO), (2) do no more transcendental work per element than the passes it
needs, and (3) move no more bytes per element (``cost_analysis``'s ``bytes accessed``) than its
passes over memory. Before this guard, the dx-only program evaluated rsqrt and sqrt five times
per element (size 5) and stored shifted copies of ``x**2``.
"""

import math

import jax
import jax.numpy as jnp
import pytest

from jax_lrn import lrn

import hlo_cost

# Passes over memory (arrays read or written, each the size of x in the compute dtype) that each
# program needs on CPU. Across channels: forward reads x, writes y; the backward writes t = g y/s
# once (reads x, g) and then dx (reads x, g, t); y and dx in one program does both. Within
# channel, the first spatial axis is a stored partial sum: x^2 (written, read), the partial sum
# (written, read twice), the same for t.
PASSES = {
  ("across_channels", "forward"): 2,
  ("across_channels", "dx"): 7,
  ("across_channels", "y_and_dx"): 9,
  ("within_channel", "forward"): 7,
  ("within_channel", "dx"): 15,
  ("within_channel", "y_and_dx"): 18,
}
# Transcendental evaluations per element: each pass that needs s^beta computes it (two sqrt
# for beta = 0.75): the forward, and both backward passes.
TRANSCENDENTALS = {"forward": 2, "dx": 4, "y_and_dx": 6}

LAYOUTS = {  # name: (shape, channel_axis)
  "NHWC": ((2, 9, 9, 32), -1),
  "NCHW": ((2, 32, 9, 9), 1),
  "channel axis 2": ((2, 9, 32, 9), 2),
}


def _contexts(f):
  """The ways users call LRN: forward, jax.grad of a loss, jax.vjp for y and dx. Each takes
  ``(x, g)``: the cotangent is an argument, as in a real step (a constant one would be folded
  into the program and save it a pass)."""

  def forward(x, g):
    return f(x)

  def dx_only(x, g):
    return jax.grad(lambda x: jnp.sum((f(x) * g).astype(jnp.float32)))(x)

  def y_and_dx(x, g):
    y, vjp = jax.vjp(f, x)
    return y, vjp(g)[0]

  return {"forward": forward, "dx": dx_only, "y_and_dx": y_and_dx}


def _analyse(fn, *args):
  compiled = jax.jit(fn).lower(*args).compile()
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, list) else analysis
  return analysis, hlo_cost.cost(compiled.as_text())


def _assert_no_recomputation(analysis, executed: hlo_cost.Cost, elements: int, transcendentals):
  # The parser reads the same program cost_analysis does...
  assert executed.transcendentals == pytest.approx(analysis["transcendentals"], rel=1e-3)
  # ...and no transcendental op is evaluated at more than one shift.
  assert executed.executed_transcendentals == pytest.approx(executed.transcendentals, rel=1e-3)
  assert analysis["transcendentals"] / elements <= transcendentals + 0.01


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
@pytest.mark.parametrize("context", ["forward", "dx", "y_and_dx"])
def test_each_context_computes_once_in_few_passes(layout, mode, context):
  shape, channel_axis = LAYOUTS[layout]
  x = jnp.ones(shape, jnp.float32)
  g = jnp.ones(shape, jnp.float32)
  size = 5 if mode == "across_channels" else 3
  f = lambda x: lrn(x, size, 1e-4, 0.75, 2.0, mode=mode, channel_axis=channel_axis)  # noqa: E731
  analysis, executed = _analyse(_contexts(f)[context], x, g)
  elements = math.prod(shape)
  _assert_no_recomputation(analysis, executed, elements, TRANSCENDENTALS[context])
  bytes_per_element = analysis["bytes accessed"] / elements
  assert bytes_per_element <= 4 * PASSES[mode, context] + 0.5


@pytest.mark.parametrize(
  "dtype", [jnp.bfloat16, jnp.float16, jnp.float64], ids=lambda d: jnp.dtype(d).name
)
@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_every_dtype_computes_once(dtype, mode):
  """16-bit inputs widen to float32 inside the passes; float64 computes in float64."""
  shape = (2, 9, 9, 32)
  x, g = jnp.ones(shape, dtype), jnp.ones(shape, dtype)
  f = lambda x: lrn(x, 5, 1e-4, 0.75, 2.0, mode=mode)  # noqa: E731
  analysis, executed = _analyse(_contexts(f)["dx"], x, g)
  elements = math.prod(shape)
  _assert_no_recomputation(analysis, executed, elements, TRANSCENDENTALS["dx"])
  compute_bytes = max(jnp.dtype(dtype).itemsize, 4)
  assert analysis["bytes accessed"] / elements <= compute_bytes * PASSES[mode, "dx"] + 0.5


@pytest.mark.parametrize("beta", [0.6, "traced"])
def test_general_exponents_compute_once(beta):
  """exp/log powers (a static exponent without a sqrt form, and a traced one)."""
  shape = (2, 9, 9, 32)
  x, g = jnp.ones(shape, jnp.float32), jnp.ones(shape, jnp.float32)

  def loss(x, g, b):
    return jnp.sum(lrn(x, 5, 1e-4, 0.6 if beta == 0.6 else b, 2.0) * g)

  analysis, executed = _analyse(jax.grad(loss), x, g, jnp.float32(0.6))
  elements = math.prod(shape)
  _assert_no_recomputation(analysis, executed, elements, TRANSCENDENTALS["dx"])
  assert analysis["bytes accessed"] / elements <= 4 * PASSES["across_channels", "dx"] + 0.5


def test_training_step_checkpoint_and_vmap_compute_once():
  """Inside an AlexNet-style step (conv, ReLU, LRN, max-pool, gradient of the kernel), under
  jax.checkpoint and under vmap, nothing LRN computes is evaluated at more than one shift."""
  x = jnp.ones((2, 12, 12, 3), jnp.float32)
  kernel = jnp.ones((3, 3, 3, 32), jnp.float32) * 0.1
  dn = ("NHWC", "HWIO", "NHWC")

  def block(kernel, x, norm):
    h = jax.nn.relu(jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=dn))
    h = norm(h)
    return jnp.sum(
      jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    )

  norm = lambda h: lrn(h, 5, 1e-4, 0.75, 2.0)  # noqa: E731
  elements = 2 * 12 * 12 * 32
  step = jax.grad(lambda k, x: block(k, x, norm))
  checkpointed = jax.grad(lambda k, x: block(k, x, jax.checkpoint(norm)))
  per_sample = jax.vmap(jax.grad(lambda k, x: block(k, x[None], norm)), in_axes=(None, 0))
  for fn in (step, checkpointed, per_sample):
    analysis, executed = _analyse(fn, kernel, x)
    _assert_no_recomputation(analysis, executed, elements, TRANSCENDENTALS["y_and_dx"])
