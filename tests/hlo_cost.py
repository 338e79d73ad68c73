"""What a compiled XLA program executes, read from its optimized HLO text.

``compiled.cost_analysis()`` counts every HLO instruction once per element of its shape. Inside a
loop fusion that undercounts: an instruction read through ``k`` differently shifted ``pad`` or
``slice`` users (a shifted window sum) is evaluated at ``k`` positions for each output element,
so its work is done ``k`` times. This module walks each fused computation from its root and
counts, per instruction, the distinct index offsets it is evaluated at, which gives the executed
number of transcendental operations next to the number ``cost_analysis`` reports.

Only what LRN's programs contain is modelled: elementwise ops, ``pad``, ``slice`` and
``reduce-window`` move offsets; ``broadcast`` of a scalar, ``constant`` and ``parameter`` end a
walk; other shape-changing ops keep the number of offsets but not their values.
"""

from __future__ import annotations

import dataclasses
import math
import re

TRANSCENDENTAL = {
  "rsqrt",
  "sqrt",
  "cbrt",
  "exponential",
  "exponential-minus-one",
  "log",
  "log-plus-one",
  "power",
  "tanh",
  "logistic",
  "sine",
  "cosine",
  "tan",
  "atan2",
  "erf",
}

_INSTRUCTION = re.compile(
  r"^\s*(?:ROOT\s+)?%(?P<name>[\w.\-]+)\s*=\s*(?P<type>\([^=]*?\)|[\w]+\[[\d,]*\](?:\{[^}]*\})?)"
  r"\s+(?P<op>[\w\-]+)\((?P<operands>[^)]*)\)(?P<attrs>.*)$"
)
_COMPUTATION = re.compile(r"^(?P<entry>ENTRY\s+)?%(?P<name>[\w.\-]+)\s.*\{\s*$")


@dataclasses.dataclass
class Instruction:
  name: str
  op: str
  shape: tuple[int, ...]
  operands: list[str]
  attrs: str
  root: bool


def _shape(type_text: str) -> tuple[int, ...]:
  match = re.match(r"\w+\[([\d,]*)\]", type_text)
  if match is None:  # a tuple
    return ()
  return tuple(int(d) for d in match.group(1).split(",") if d)


def parse(hlo_text: str) -> tuple[dict[str, list[Instruction]], str]:
  """``(computations, entry_name)`` from optimized HLO text."""
  computations: dict[str, list[Instruction]] = {}
  entry = ""
  current: list[Instruction] | None = None
  for line in hlo_text.splitlines():
    header = _COMPUTATION.match(line)
    if header and "=" not in line.split("{")[0]:
      current = computations.setdefault(header.group("name"), [])
      if header.group("entry"):
        entry = header.group("name")
      continue
    if line.strip() == "}":
      current = None
      continue
    match = _INSTRUCTION.match(line)
    if match is None or current is None:
      continue
    operands = re.findall(r"%([\w.\-]+)", match.group("operands"))
    current.append(
      Instruction(
        name=match.group("name"),
        op=match.group("op"),
        shape=_shape(match.group("type")),
        operands=operands,
        attrs=match.group("attrs"),
        root=line.lstrip().startswith("ROOT"),
      )
    )
  return computations, entry


def _pad_lows(attrs: str) -> tuple[int, ...]:
  spec = re.search(r"padding=([\-\d_x]+)", attrs).group(1)
  return tuple(int(dim.split("_")[0]) for dim in spec.split("x"))


def _slice_starts(attrs: str) -> tuple[int, ...]:
  spec = re.search(r"slice=\{(.*?)\}", attrs).group(1)
  return tuple(int(start) for start in re.findall(r"\[(-?\d+):", spec))


def _window_offsets(attrs: str) -> list[tuple[int, ...]]:
  sizes = tuple(int(s) for s in re.search(r"size=([\dx]+)", attrs).group(1).split("x"))
  pad = re.search(r"pad=([\-\d_x]+)", attrs)
  lows = _pad_lows("padding=" + pad.group(1)) if pad else (0,) * len(sizes)
  ranges = [range(-low, size - low) for size, low in zip(sizes, lows)]
  offsets = [()]
  for r in ranges:
    offsets = [o + (d,) for o in offsets for d in r]
  return offsets


def _operand_offsets(inst: Instruction, offsets: set, operand_shape: tuple[int, ...]) -> set:
  """The offsets (relative to the root's index) at which ``inst`` evaluates an operand."""
  if not operand_shape:
    return {()}  # scalars: computed once
  if inst.op == "pad":
    lows = _pad_lows(inst.attrs)
    return {tuple(o - low for o, low in zip(off, lows)) for off in offsets}
  if inst.op == "slice":
    starts = _slice_starts(inst.attrs)
    return {tuple(o + s for o, s in zip(off, starts)) for off in offsets}
  if inst.op == "reduce-window":
    window = _window_offsets(inst.attrs)
    return {tuple(o + w for o, w in zip(off, win)) for off in offsets for win in window}
  if len(operand_shape) == len(inst.shape):
    return set(offsets)
  # Rank-changing ops (reshape, transpose of other rank, broadcast of a vector): keep the count.
  return {(i,) * len(operand_shape) for i in range(len(offsets))}


def executed_counts(computation: list[Instruction]) -> dict[str, int]:
  """Per instruction of a fused computation, how many offsets it is evaluated at."""
  by_name = {inst.name: inst for inst in computation}
  offsets: dict[str, set] = {}
  root = next(inst for inst in computation if inst.root)
  starts = [by_name[o] for o in root.operands] if root.op == "tuple" else [root]
  for start in starts:
    offsets[start.name] = {(0,) * len(start.shape)}
  # Users come after their operands in HLO text: walk it backwards.
  for inst in reversed(computation):
    if inst.name not in offsets or inst.op in ("parameter", "constant"):
      continue
    for operand in inst.operands:
      if operand not in by_name:
        continue
      moved = _operand_offsets(inst, offsets[inst.name], by_name[operand].shape)
      offsets.setdefault(operand, set()).update(moved)
  return {name: len(offs) for name, offs in offsets.items()}


@dataclasses.dataclass(frozen=True)
class Cost:
  """Transcendental operations of a program: as ``cost_analysis`` counts them, and executed."""

  transcendentals: float
  executed_transcendentals: float


def cost(hlo_text: str) -> Cost:
  """Counts transcendental ops once per element (``cost_analysis``'s way) and as executed."""
  computations, entry = parse(hlo_text)
  once = executed = 0.0
  for inst in computations[entry]:
    called = re.search(r"calls=%([\w.\-]+)", inst.attrs)
    if inst.op == "fusion" and called:
      body = computations[called.group(1)]
      counts = executed_counts(body)
      for fused in body:
        if fused.op in TRANSCENDENTAL:
          size = math.prod(fused.shape)
          once += size
          executed += size * counts.get(fused.name, 1)
    elif inst.op in TRANSCENDENTAL:
      once += math.prod(inst.shape)
      executed += math.prod(inst.shape)
  return Cost(transcendentals=once, executed_transcendentals=executed)
