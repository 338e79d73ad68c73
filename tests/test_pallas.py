"""lrn(implementation="pallas"): the Pallas TPU kernels, run in interpret mode on the CPU, against
the float64 NumPy loop reference; their block schedules against the bytes they declare."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu

import jax_lrn._pallas as pallas_module
from jax_lrn import lrn

import reference
from cases import RTOL, random_input

PARAMS = dict(alpha=1.5, beta=0.75, k=2.0)
DTYPES = [jnp.float32, jnp.bfloat16]

# (mode, shape, channel_axis): NHWC and NCHW, sizes not multiples of 8 or 128.
LAYOUTS = [
  ("across_channels", (2, 3, 4, 7), -1),
  ("across_channels", (2, 7, 3, 4), 1),
  ("within_channel", (2, 6, 5, 3), -1),
  ("within_channel", (2, 3, 6, 5), 1),
  # W a multiple of 8: XLA:TPU keeps (N, H, W, C), and the kernels' views follow it (the
  # within-channel window's last axis on sublanes).
  ("across_channels", (2, 3, 8, 5), -1),
  ("within_channel", (2, 5, 8, 3), -1),
  ("within_channel", (2, 3, 6, 16), 1),
]


def _check(x, g, size, mode, channel_axis, placement="before", **kw):
  """y and dx of the kernels against the reference, with x and g exactly as the kernels see
  them; dx's tolerance is relative to its largest element (it is a difference of terms)."""
  f = lambda x: lrn(  # noqa: E731
    x,
    size,
    **PARAMS,
    mode=mode,
    channel_axis=channel_axis,
    even_placement=placement,
    implementation="pallas",
    **kw,
  )
  y, vjp = jax.vjp(f, x)
  (dx,) = vjp(g)
  x64, g64 = (np.asarray(a, np.float64) for a in (x, g))
  ry, rdx, *_ = reference.lrn_and_grads(
    x64, g64, size, **PARAMS, mode=mode, channel_axis=channel_axis, placement=placement, **kw
  )
  assert y.dtype == dx.dtype == x.dtype and y.shape == dx.shape == x.shape
  rtol = RTOL[x.dtype.type] if x.dtype != jnp.bfloat16 else RTOL[jnp.bfloat16]
  np.testing.assert_allclose(np.asarray(y, np.float64), ry, rtol=rtol, atol=0)
  scale = np.abs(rdx).max()
  np.testing.assert_allclose(np.asarray(dx, np.float64), rdx, rtol=rtol, atol=1e-5 * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("mode, shape, channel_axis", LAYOUTS)
def test_forward_and_vjp_match_reference(rng, mode, shape, channel_axis, size, dtype):
  x, _ = random_input(rng, shape, dtype, scale=2.0)
  g, _ = random_input(rng, shape, dtype)
  _check(x, g, size, mode, channel_axis)


@pytest.fixture
def small_blocks(monkeypatch):
  """A VMEM budget so small that every block is the smallest: several blocks along each axis,
  halo blocks above and below, ragged last blocks; run by the TPU interpreter, which reads nan
  past the array's end and in fresh memory, so that no value of a clamped or ragged block and
  no unwritten scratch row can reach a result."""
  monkeypatch.setattr(pallas_module, "VMEM_BUDGET", 1)
  monkeypatch.setattr(
    pallas_module,
    "INTERPRET",
    pltpu.InterpretParams(out_of_bounds_reads="uninitialized", uninitialized_memory="nan"),
  )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(
  "size, placement, shape, channel_axis",
  [
    (3, "before", (2, 11, 5, 3), -1),
    (5, "before", (3, 2, 13, 6), 1),
    (4, "before", (2, 9, 4, 3), -1),  # even: halos of 3 and 2 rows, blocks of 6
    (4, "after", (2, 3, 9, 4), 1),
    (7, "before", (2, 3, 4, 2), -1),  # longer than both spatial axes: clipped halos
    (5, "before", (2, 11, 8, 3), -1),  # W on sublanes
  ],
)
def test_within_channel_halo_blocks(rng, small_blocks, size, placement, shape, channel_axis, dtype):
  x, _ = random_input(rng, shape, dtype, scale=2.0)
  g, _ = random_input(rng, shape, dtype)
  _check(x, g, size, "within_channel", channel_axis, placement)


@pytest.mark.parametrize(
  "size, placement, shape, channel_axis",
  [(5, "before", (2, 5, 5, 3), -1), (4, "after", (3, 6, 3, 3), 1), (9, "before", (2, 3, 3, 4), 1)],
)
def test_across_channels_row_blocks(rng, small_blocks, size, placement, shape, channel_axis):
  x, _ = random_input(rng, shape, jnp.float32, scale=2.0)
  g, _ = random_input(rng, shape, jnp.float32)
  _check(x, g, size, "across_channels", channel_axis, placement)


@pytest.mark.parametrize(
  "mode, shape, channel_axis, spatial_axes",
  [
    ("across_channels", (6, 5), -1, None),  # rank 2
    ("across_channels", (1, 2, 2, 3, 6), -1, None),  # rank 5
    ("within_channel", (2, 7, 3), -1, (1,)),  # one spatial axis
    ("within_channel", (6, 5, 2), -1, (0, 1)),  # unbatched HWC: no axis for the sublanes
    ("within_channel", (2, 3, 4, 2, 3), 1, (3, 4)),  # an unwindowed axis besides the batch
  ],
)
def test_other_ranks(rng, mode, shape, channel_axis, spatial_axes):
  x, _ = random_input(rng, shape, jnp.float32, scale=2.0)
  g, _ = random_input(rng, shape, jnp.float32)
  _check(x, g, 3, mode, channel_axis, spatial_axes=spatial_axes)


def test_jit_and_vmap(rng):
  """Under jit, and vmapped over a leading axis (each image normalised on its own)."""
  x, x64 = random_input(rng, (3, 2, 5, 4, 3), jnp.float32, scale=2.0)
  kw = dict(mode="within_channel", spatial_axes=(1, 2), implementation="pallas")
  f = jax.jit(jax.vmap(lambda v: lrn(v, 3, **PARAMS, **kw)))
  y = f(x)
  for i in range(x.shape[0]):
    ref = reference.lrn(x64[i], 3, **PARAMS, mode="within_channel", spatial_axes=(1, 2))
    np.testing.assert_allclose(np.asarray(y[i], np.float64), ref, rtol=RTOL[jnp.float32])


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_second_order_by_central_differences(rng, mode):
  """grad-of-grad (through the XLA backward's derivatives): a Hessian-vector product of
  ``sum(y * w)`` against central differences of the reference's float64 gradient."""
  shape = (1, 4, 3, 5)
  x, x64 = random_input(rng, shape, jnp.float32, scale=2.0)
  w, w64 = random_input(rng, shape, jnp.float32)
  v, v64 = random_input(rng, shape, jnp.float32)

  def loss(x):
    return jnp.sum(lrn(x, 3, **PARAMS, mode=mode, implementation="pallas") * w)

  hvp = jax.grad(lambda x: jnp.vdot(jax.grad(loss)(x), v))(x)
  step = 1e-4

  def grad64(x):
    return reference.lrn_and_grads(x, w64, 3, **PARAMS, mode=mode)[1]

  numeric = (grad64(x64 + step * v64) - grad64(x64 - step * v64)) / (2 * step)
  np.testing.assert_allclose(np.asarray(hvp, np.float64), numeric, rtol=1e-3, atol=1e-4)


def test_traced_parameter_is_refused():
  x = jnp.ones((2, 3, 3, 4), jnp.float32)
  with pytest.raises(TypeError, match="implementation='pallas' needs beta"):
    jax.jit(lambda b: lrn(x, 3, beta=b, implementation="pallas"))(0.75)
  with pytest.raises(TypeError, match="needs alpha"):
    lrn(x, 3, alpha=jnp.float32(1e-4), implementation="pallas")


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.float64])
def test_other_dtypes_are_refused(dtype):
  with pytest.raises(TypeError, match="takes x of dtype float32 or bfloat16"):
    lrn(jnp.ones((2, 3, 3, 4), dtype), 3, implementation="pallas")


def test_three_spatial_axes_are_refused():
  with pytest.raises(ValueError, match="at most two spatial axes"):
    x = jnp.ones((1, 3, 3, 3, 2), jnp.float32)
    lrn(x, 3, mode="within_channel", implementation="pallas")


# ---------------------------------------------------------------------------------------------
# The declared DMA bytes against the block schedule.
# ---------------------------------------------------------------------------------------------


def _stored_bytes(block_shape, dtype) -> int:
  """A block's bytes as DMA'd from XLA:TPU's layout: its leading dimensions times its last two,
  padded to (8, 128) tiles (``T(8,128)``, and ``T(8,128)(2,1)`` for 16-bit dtypes)."""
  dims = [d for d in block_shape if d is not None]
  rows, lanes = dims[-2], dims[-1]
  padded = math.ceil(rows / 8) * 8 * math.ceil(lanes / 128) * 128
  return math.prod(dims[:-2]) * padded * jnp.dtype(dtype).itemsize


def _schedule_bytes(grid, specs, dtype) -> int:
  """Walks the grid in order (the last axis fastest) and adds a block's bytes at every step
  where its index differs from the previous step's (when Pallas copies it)."""
  total = 0
  for spec in specs:
    previous = None
    for step in itertools.product(*(range(n) for n in grid)):
      index = tuple(int(i) for i in spec.index_map(*step))
      if index != previous:
        total += _stored_bytes(spec.block_shape, dtype)
      previous = index
  return total


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(
  "shape, halos",
  [
    ((1, 55, 55, 64, 96), (1,)),  # conv1, within 3x3 forward
    ((1, 55, 55, 64, 96), (4, 2)),  # within 5x5 backward
    ((1, 27, 27, 128, 256), (2, 1)),  # conv2, within 3x3 backward
    ((2, 9, 4, 3, 5), (3, 2)),  # even window, ragged
    ((1, 7, 3, 2, 3), (1,)),
    ((32, 56, 1, 56, 192), (4, 2)),  # GoogLeNet, the window's last axis on sublanes
  ],
)
@pytest.mark.parametrize("budget", [None, 1])
def test_within_dma_bytes_match_the_schedule(monkeypatch, shape, halos, dtype, budget):
  if budget is not None:
    monkeypatch.setattr(pallas_module, "VMEM_BUDGET", budget)
  reach = (2, 2) if halos[0] == 4 else (1, 1)
  plan = pallas_module.within_plan(shape, dtype, halos, reach)
  in_specs, _ = pallas_module.within_specs(plan)
  specs = [*in_specs, pallas_module.within_out_spec(plan)]
  declared = pallas_module.dma_bytes(plan, dtype, len(halos), 1)
  assert declared == _schedule_bytes(plan.grid, specs, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape", [(55 * 55 * 64, 96), (27 * 27 * 128, 256), (50, 7)])
@pytest.mark.parametrize("arrays", [2, 3])
def test_across_dma_bytes_match_the_schedule(shape, dtype, arrays):
  plan = pallas_module.across_plan(shape, dtype, arrays)
  spec = pallas_module.across_spec(plan)
  declared = pallas_module.dma_bytes(plan, dtype, arrays - 1, 1)
  assert declared == _schedule_bytes(plan.grid, [spec] * arrays, dtype)


def test_forward_mode_over_the_gradient_is_refused():
  """The kernels' derivatives are reverse-mode only (custom_vjp): jax.hessian, which is forward
  over reverse, raises JAX's error instead of a wrong value; implementation=None supports it."""
  x = jnp.ones((1, 3, 3, 4), jnp.float32)
  loss = lambda x: jnp.sum(lrn(x, 3, **PARAMS, implementation="pallas") ** 2)  # noqa: E731
  with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
    jax.hessian(loss)(x)
