"""jax_lrn.compat's GDN functions and the GDN layers against tensorflow_compression 2.14.1 and
CompressAI 1.2.8: stored fixtures (tools/make_gdn_fixtures.py ran the real layers) for outputs,
gradients to x and to the effective and stored parameters, initialisation and weight porting;
argument errors."""

import json
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_lrn.equinox
from jax_lrn import compat, gdn

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "gdn"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
ENTRIES = MANIFEST["fixtures"]
IDS = [e["file"][: -len(".npz")] for e in ENTRIES]
# float32 against float32: the frameworks sum the channels in another order (a 1x1 convolution)
# and CompressAI multiplies by rsqrt where jax_lrn divides by sqrt; up to 32 non-negative terms.
RTOL = 1e-5


def load(entry):
  data = dict(np.load(FIXTURES / entry["file"]))
  assert data["x"].shape == tuple(entry["shape"]) and data["x"].dtype == np.float32
  return data


def assert_close(got, want, name, scale=None):
  """float32 agreement; gradients (signed sums) get an absolute floor of RTOL * their scale.
  nan where the framework gives nan, and nowhere else."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, name
  np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: nan pattern")
  finite = ~np.isnan(want)
  if scale is None:
    atol = 0.0
  else:
    atol = RTOL * float(np.max(np.abs(scale[finite]), initial=0.0))
  np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL, atol=atol, err_msg=name)


def tfc_settings(params):
  """jax_lrn.gdn keywords for a tfc.GDN's constructor arguments."""
  return dict(
    alpha=float(params.get("alpha_parameter", 1.0)),
    epsilon=float(params.get("epsilon_parameter", 1.0)),
    inverse=params.get("inverse", False),
    rectify=params.get("rectify", False),
    channel_axis=1 if params.get("data_format") == "channels_first" else -1,
  )


def compressai_settings(entry):
  simplified = entry["function"].endswith("GDN1")
  return dict(
    alpha=1.0 if simplified else 2.0,
    epsilon=1.0 if simplified else 0.5,
    inverse=entry["params"].get("inverse", False),
    channel_axis=1,
  )


def reference_function(entry):
  """The compat function for the fixture's layer, as ``f(x, beta, gamma)`` in the framework's
  own orientation of gamma."""
  params = entry["params"]
  if entry["framework"] == "tfc":
    return lambda x, b, g: compat.tfc_gdn(x, beta_parameter=b, gamma_parameter=g, **params)
  fn = compat.compressai_gdn1 if entry["function"].endswith("GDN1") else compat.compressai_gdn
  return lambda x, b, g: fn(x, b, g, inverse=params.get("inverse", False))


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_compat_function_forward_and_gradients(entry):
  """y and the cotangents of x, beta, gamma (the effective values) against the framework's."""
  data = load(entry)
  fn = reference_function(entry)
  y, vjp = jax.vjp(fn, *(jnp.asarray(data[k]) for k in ("x", "beta", "gamma")))
  assert y.dtype == jnp.float32
  assert_close(y, data["y"], "y")
  dx, dbeta, dgamma = vjp(jnp.asarray(data["g"]))
  assert_close(dx, data["dx"], "dx", scale=data["dx"])
  if "dbeta" in data:  # (TFC layers holding their own variables give only the raw ones)
    assert_close(dbeta, data["dbeta"], "dbeta", scale=data["dbeta"])
    assert_close(dgamma, data["dgamma"], "dgamma", scale=data["dgamma"])


def _layer_entries(framework=None):
  return [
    e
    for e in ENTRIES
    if e["parameters"] != "fixed" and (framework is None or e["framework"] == framework)
  ]


def _converted(entry, data):
  if entry["framework"] == "tfc":
    variables = {"gdn/reparam_beta:0": data["raw_beta"], "gdn/reparam_gamma:0": data["raw_gamma"]}
    return compat.from_tfc_gdn(variables, **entry["params"])
  state = {"beta": data["raw_beta"], "gamma": data["raw_gamma"]}
  state.update({k[len("state.") :]: v for k, v in data.items() if k.startswith("state.")})
  return compat.from_compressai_gdn(
    state,
    simplified=entry["function"].endswith("GDN1"),
    inverse=entry["params"].get("inverse", False),
  )


@pytest.mark.parametrize("entry", _layer_entries(), ids=lambda e: e["file"][:-4])
def test_porting_stored_parameters(entry):
  """The converters read the stored variables out exactly as the layer did (bit for bit), and
  gdn with the converted arguments gives the layer's output."""
  data = load(entry)
  kwargs = _converted(entry, data)
  gamma_ours = data["gamma"] if entry["framework"] == "tfc" else data["gamma"].T
  np.testing.assert_array_equal(kwargs["beta"], data["beta"])
  np.testing.assert_array_equal(kwargs["gamma"], gamma_ours)
  settings = (
    tfc_settings(entry["params"]) if entry["framework"] == "tfc" else compressai_settings(entry)
  )
  assert {k: kwargs[k] for k in settings} == settings
  assert_close(gdn(jnp.asarray(data["x"]), **kwargs), data["y"], "y")


def _equinox_layer(entry, data):
  """jax_lrn's layer with the framework layer's settings and stored parameters."""
  if entry["framework"] == "tfc":
    settings = tfc_settings(entry["params"])
    kw = {}
    raw_gamma = data["raw_gamma"]
  else:
    settings = compressai_settings(entry)
    kw = {k: entry["params"][k] for k in ("beta_min", "gamma_init") if k in entry["params"]}
    raw_gamma = data["raw_gamma"].T
  layer = jax_lrn.equinox.GDN(data["x"].shape[settings["channel_axis"]], **settings, **kw)
  fresh = (layer.raw_beta, layer.raw_gamma)
  layer = eqx.tree_at(
    lambda m: (m.raw_beta, m.raw_gamma),
    layer,
    (jnp.asarray(data["raw_beta"]), jnp.asarray(raw_gamma)),
  )
  return layer, fresh


@pytest.mark.parametrize("entry", _layer_entries(), ids=lambda e: e["file"][:-4])
def test_layer_output_and_stored_parameter_gradients(entry):
  """jax_lrn's layer holding the framework layer's stored parameters: the same output, and the
  same gradients to those stored parameters (through the lower bound's pass-through rule:
  the moved fixtures have a quarter of their entries below the bound)."""
  data = load(entry)
  layer, _ = _equinox_layer(entry, data)
  x, g = jnp.asarray(data["x"]), jnp.asarray(data["g"])
  assert_close(layer(x), data["y"], "y")
  grads = eqx.filter_grad(lambda m: jnp.vdot(m(x), g))(layer)
  draw_gamma = data["draw_gamma"] if entry["framework"] == "tfc" else data["draw_gamma"].T
  assert_close(grads.raw_beta, data["draw_beta"], "draw_beta", scale=data["draw_beta"])
  assert_close(grads.raw_gamma, draw_gamma, "draw_gamma", scale=data["draw_gamma"])


@pytest.mark.parametrize(
  "entry", [e for e in _layer_entries() if e["parameters"] == "fresh"], ids=lambda e: e["file"][:-4]
)
def test_fresh_layer_is_the_fresh_reference_layer(entry):
  """A freshly built jax_lrn layer stores exactly the fresh framework layer's variables."""
  data = load(entry)
  _, (raw_beta, raw_gamma) = _equinox_layer(entry, data)
  np.testing.assert_array_equal(raw_beta, data["raw_beta"])
  np.testing.assert_array_equal(raw_gamma, data["raw_gamma"])  # symmetric at initialisation


def test_fixtures_cover_the_conventions():
  assert {p.name for p in FIXTURES.glob("*.npz")} == {e["file"] for e in ENTRIES}
  tfc = [e for e in ENTRIES if e["framework"] == "tfc"]
  cai = [e for e in ENTRIES if e["framework"] == "compressai"]
  assert {len(e["shape"]) for e in tfc} == {2, 3, 4, 5, 6}
  assert {e["params"].get("data_format", "channels_last") for e in tfc} == set(
    compat._gdn.DATA_FORMATS
  )
  for flag in ("inverse", "rectify"):
    assert any(e["params"].get(flag) for e in tfc)
  assert {e["parameters"] for e in tfc} == {"fixed", "fresh", "moved"}
  assert {e["function"] for e in cai} == {"compressai.layers.GDN", "compressai.layers.GDN1"}
  assert any(e["params"].get("inverse") for e in cai) and any(
    e["parameters"] == "moved" for e in cai
  )
  for entry in ENTRIES:
    assert entry["version"].startswith(("tensorflow-compression 2.14.1", "compressai 1.2.8"))


def test_tfc_signed_fractional_alpha_is_nan_where_tfc_is():
  """The fixture with alpha=1.5 and signed inputs really has nan rows (TFC's x ** alpha), and
  jax_lrn.gdn agrees with TFC everywhere TFC is finite."""
  entry = next(e for e in ENTRIES if e["file"] == "tfc_alpha1.5_eps0.75_signed.npz")
  data = load(entry)
  nan = np.isnan(data["y"])
  assert nan.any() and not nan.all()
  y = gdn(data["x"], data["beta"], data["gamma"], **tfc_settings(entry["params"]))
  assert_close(np.where(nan, np.nan, np.asarray(y)), data["y"], "y")


# ---------------------------------------------------------------------------------------------
# Errors in the references' own argument names.
# ---------------------------------------------------------------------------------------------

X4 = jnp.ones((1, 3, 2, 2))  # NCHW for CompressAI
XH = jnp.ones((1, 2, 2, 3))  # NHWC, tfc.GDN's default
B, G = jnp.ones(3), 0.1 * jnp.eye(3)


@pytest.mark.parametrize(
  "call, error, match",
  [
    (
      lambda: compat.tfc_gdn(XH, beta_parameter=B, gamma_parameter=G, data_format="NCHW"),
      ValueError,
      "data_format must be one of",
    ),
    (
      lambda: compat.tfc_gdn(jnp.ones(3), beta_parameter=B, gamma_parameter=G),
      ValueError,
      r"rank >= 2, got x of shape \(3,\)",
    ),
    (
      lambda: compat.tfc_gdn(XH, beta_parameter=jnp.ones(2), gamma_parameter=G),
      ValueError,
      r"beta_parameter must have shape \(C,\)",
    ),
    (
      lambda: compat.tfc_gdn(XH, beta_parameter=B, gamma_parameter=-G),
      ValueError,
      "gamma_parameter must be >= 0",
    ),
    (
      lambda: compat.tfc_gdn(XH, beta_parameter=B, gamma_parameter=G, alpha_parameter=3),
      ValueError,
      "alpha_parameter=3 with rectify=False",
    ),
    (
      lambda: compat.tfc_gdn(XH, beta_parameter=B, gamma_parameter=G, alpha_parameter=jnp.ones(())),
      TypeError,
      "alpha_parameter must be a Python or NumPy real number",
    ),
    (
      lambda: compat.tfc_gdn(XH, beta_parameter=B, gamma_parameter=G, epsilon_parameter=-1.0),
      ValueError,
      "epsilon_parameter must be >= 0",
    ),
    (lambda: compat.compressai_gdn(jnp.ones((2, 3)), B, G), ValueError, "4-D NCHW input"),
    (lambda: compat.compressai_gdn1(X4, B, jnp.ones((3, 2))), ValueError, "gamma must have shape"),
    (lambda: compat.from_compressai_gdn({"beta": np.ones(3)}), KeyError, "no 'gamma' entry"),
    (
      lambda: compat.from_compressai_gdn({"beta": np.ones(3), "gamma": np.ones((2, 2))}),
      ValueError,
      r"got \(3,\) and \(2, 2\)",
    ),
    (
      lambda: compat.from_compressai_gdn({"beta": np.ones(3, int), "gamma": np.ones((3, 3))}),
      TypeError,
      r"state_dict\['beta'\] must be a floating array",
    ),
    (lambda: compat.from_tfc_gdn({"reparam_beta": np.ones(3)}), KeyError, "reparam_gamma"),
    (
      lambda: compat.from_tfc_gdn({"reparam_beta": B, "reparam_gamma": G}, data_format="x"),
      ValueError,
      "data_format must be one of",
    ),
  ],
)
def test_errors(call, error, match):
  with pytest.raises(error, match=match):
    call()


def test_tfc_rectified_odd_alpha_is_accepted():
  """With rectify the inputs are >= 0 and x ** 3 == |x| ** 3: nothing to refuse."""
  y = compat.tfc_gdn(XH, beta_parameter=B, gamma_parameter=G, alpha_parameter=3, rectify=True)
  np.testing.assert_allclose(y, 1.0 / 1.1, rtol=1e-6)  # epsilon_parameter=1
