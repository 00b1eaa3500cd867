"""Typed configs overridden by ``key=value`` strings (the command line, papermill): a dataclass merged with
YAML layers and overrides through OmegaConf, which checks every key and type. Used by the profiles
(:mod:`dsrg.profile`) and the dataset generators' configs.

Unknown keys and bad values become InputError messages that name the key and what it accepts (for an
unknown key: the keys of its section and the closest one, e.g. ``unknown key 'theta_fgg' in seg (did you
mean 'theta_fg'?); seg has: ...``).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .errors import InputError, first_line


def key_of(item: str) -> str:
    """The key of a ``key=value`` override, e.g. ``seg.lr`` of ``seg.lr=1e-3``."""
    return item.partition("=")[0].strip()


def merge(schema, layers: Sequence, overrides: Sequence[str], example: str, explain) -> Any:
    """``schema`` (a dataclass or instance) merged with ``layers`` (dicts / OmegaConf configs) and then
    ``key=value`` ``overrides``, as a dataclass instance. Any failure is an InputError:
    ``explain(key, reason)`` words it; ``example`` shows the ``key=value`` form."""
    for item in overrides:
        if item.lstrip().startswith("["):
            raise InputError(f"override {item!r}: overrides are key=value words, each on its own, not a list in "
                             f"brackets; e.g. {example}")
        if "=" not in item or not key_of(item):
            raise InputError(f"override {item!r}: expected key=value, e.g. {example}")
        try:
            OmegaConf.from_dotlist([item])
        except yaml.YAMLError as exc:
            key, _, value = item.partition("=")
            problem = getattr(exc, "problem", None) or first_line(exc)
            raise InputError(explain(key, f"the value {value!r} is not valid YAML ({problem}); "
                                          "a list is written [a,b]")) from None
    structured = OmegaConf.structured(schema)
    for item in overrides:
        key, _, value = item.partition("=")
        node = _node(structured, key)
        if OmegaConf.is_dict(node):
            raise InputError(explain(key, f"{key} is a section, not a value; set one of its keys, e.g. "
                                          f"{key}.{next(iter(node))}=... ({key} has: {', '.join(node)})"))
        if value == "" and node is not None and not OmegaConf.is_list(node):
            here = _value_here(structured, layers, key, node)
            raise InputError(explain(key, f"no value after '='; expected a value such as {key}={here} (its value "
                                          f"without it)" if here != "" else f"no value after '='; an empty text is "
                                          f"written {key}=\"\" (in a shell: '{key}=\"\"')"))
    layers = [*layers, _dotlist(overrides, explain)]
    for layer in layers:
        _check_shapes(structured, OmegaConf.to_container(layer) if OmegaConf.is_config(layer) else layer, explain)
    try:
        return OmegaConf.to_object(OmegaConf.merge(structured, *layers))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        typed = {k.strip(): v for k, _, v in (item.partition("=") for item in overrides)}   # the last of each key
        given = typed.get(key)
        if given is not None and OmegaConf.from_dotlist([f"v={given}"])["v"] != getattr(exc, "value", None):
            given = None                    # not the value refused: a profile file's, which an override then fixes
        raise InputError(explain(key, _reason(exc, structured, given, _value_here(structured, layers[:-1], key,
                                                                                 _node(structured, key))))) from None


def _dotlist(overrides: Sequence[str], explain):
    """The overrides as one OmegaConf config; two overrides of one key that OmegaConf cannot put together
    (``pseudo.sizes=[1,2] pseudo.sizes={a: 1}``) are an InputError naming the second."""
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, ValueError) as exc:
        n = next(n for n in range(1, len(overrides) + 1) if not _fits(overrides[:n]))
        key = overrides[n - 1].partition("=")[0]
        raise InputError(explain(key, f"{overrides[n - 1]!r} does not fit what an override before it set "
                                      f"({first_line(exc)})")) from None


def _fits(overrides: Sequence[str]) -> bool:
    try:
        OmegaConf.from_dotlist(list(overrides))
        return True
    except (OmegaConfBaseException, ValueError):
        return False


def _value_here(structured, layers: Sequence, key: str, default):
    """``key``'s value once ``layers`` (a profile file) are merged; ``default`` where they do not merge."""
    try:
        return _node(OmegaConf.merge(structured, *layers), key)
    except OmegaConfBaseException:
        return default


def _check_shapes(structured, layer: dict, explain, prefix: str = "") -> None:
    """A section, a list or a single value of the schema given as another kind in ``layer`` (a YAML file's
    ``seg: 3``, an override's ``pseudo.sizes={a: 1}``) is an InputError naming its key (OmegaConf's own
    message for it names no key)."""
    for name, value in layer.items():
        if not isinstance(name, str) or "." in name:          # not a key of the schema: OmegaConf names it
            continue
        key = f"{prefix}{name}"
        node = _node(structured, key)
        kind = "nothing" if value is None else "a list" if isinstance(value, list) else \
            "a mapping" if isinstance(value, dict) else repr(value)
        if OmegaConf.is_dict(node):
            if not isinstance(value, dict):
                first = next(iter(node), "...")
                raise InputError(explain(key, f"{key} is a section: expected its keys, e.g. {key}: {{{first}: ...}} "
                                              f"in YAML or {key}.{first}=... on the command line; got {kind}"))
            _check_shapes(structured, value, explain, f"{key}.")
        elif OmegaConf.is_list(node):
            example = f"{key}=[{','.join(map(str, node)) or 'a,b'}]"
            inner = [v for v in value if isinstance(v, (dict, list))] if isinstance(value, list) else []
            if isinstance(value, dict):
                raise InputError(explain(key, f"expected a list, e.g. {example}; got {kind}"))
            if inner:
                raise InputError(explain(key, f"expected a list of single values, e.g. {example}; got a list holding "
                                              f"{'a mapping' if isinstance(inner[0], dict) else 'a list'}"))
        elif node is not None and not OmegaConf.is_config(node) and isinstance(value, (dict, list)):
            raise InputError(explain(key, f"expected one value such as {node} (its default); got {kind}"))
        elif isinstance(node, bool) and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and value not in (0, 1):     # OmegaConf takes any number for a flag: 2 would be true
            raise InputError(explain(key, f"expected true or false, got {value!r}"))


def _reason(exc: OmegaConfBaseException, structured, typed: str | None = None, here=None) -> str:
    """OmegaConf's error in words; an unknown key gets the allowed ones, a scalar where a list belongs an example;
    a wrong value is quoted as ``typed`` where an override gave it (``1e3``, which YAML reads as 1000.0); a null
    where a value belongs names the value it would replace (``here``: the profile's)."""
    key, value, section = getattr(exc, "key", None), getattr(exc, "value", None), getattr(exc, "object_type", None)
    full_key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, ConfigKeyError) and isinstance(key, str) and dataclasses.is_dataclass(section):
        names = [f.name for f in dataclasses.fields(section)]
        where = full_key[:-len(key)].rstrip(".") if full_key.endswith(key) else ""
        hint = _did_you_mean(key, section, names)
        return (f"unknown key {key!r} in {where}{hint}; {where} has: {', '.join(names)}" if where
                else f"unknown key {key!r}{hint}; the keys are: {', '.join(names)}")
    given = str(value)  # a plain value, or a node (None for null: OmegaConf's "not Optional" says it)
    node = _node(structured, full_key)
    wanted = {int: "an integer", float: "a number", bool: "true or false"}.get(type(node))
    if given == "None" and ("Optional" in str(exc) or "'None'" in str(exc)):     # null, ~ or an empty YAML value
        if OmegaConf.is_list(node):
            return f"expected a list, e.g. {full_key}=[{','.join(map(str, node))}], got null"
        return f"expected {wanted or 'a value'}, got null (the value it replaces: {_plain(here)})"
    if given != "None" and not OmegaConf.is_list(value) and OmegaConf.is_list(node):
        return f"expected a list, e.g. {full_key}=[{given}]"
    if wanted and getattr(exc, "value", None) is not None:
        return f"expected {wanted}, got {typed if typed is not None else given!r}"
    return first_line(exc) or type(exc).__name__


def _plain(node) -> str:
    """A default as one writes it: ``[241, 321]``, ``0.001``, ``true``."""
    value = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
    return str(value).lower() if isinstance(value, bool) else "''" if value == "" else str(value)


def _did_you_mean(key: str, section, names: list[str]) -> str:
    """The hint for an unknown ``key`` of the dataclass ``section``: the closest of its ``names`` (case aside),
    else, at the top, the sections that hold a key of that name (``theta_fg``: ``seg.theta_fg``)."""
    try:
        instance = section()
    except TypeError:                       # a dataclass without defaults: no sections to look into
        instance = None
    holders = [f"{n}.{key}" for n in names if dataclasses.is_dataclass(getattr(instance, n, None))
               and key in {f.name for f in dataclasses.fields(getattr(instance, n))}]
    if holders:                             # a key of a section, given without it (seed_loss: seg.seed_loss)
        return f" (did you mean {holders[0]!r}?)" if len(holders) == 1 else \
            f" (did you mean one of {', '.join(holders)}?)"
    lower = {n.lower(): n for n in names}
    close = [lower[key.lower()]] if key.lower() in lower else difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _node(cfg, key: str):
    """The node at the dotted ``key`` of ``cfg``, or None."""
    try:
        return OmegaConf.select(cfg, key, default=None) if key else None
    except OmegaConfBaseException:
        return None


def apply_overrides(cfg: Any, overrides: Sequence[str] = (), where: str | None = None) -> Any:
    """Return a copy of the dataclass ``cfg`` with ``key=value`` overrides applied (nested keys: ``a.b=1``).
    ``where``: the setting that holds the overrides (``data.synth``), which an error names."""
    return merge(cfg, [], overrides, f"{dataclasses.fields(cfg)[0].name}=...",
                 (lambda key, reason: f"{where}: {key}: {reason}") if where else
                 (lambda key, reason: f"config key {key!r}: {reason}"))


def given_twice(overrides: Sequence[str]) -> list[str]:
    """A note for each key that ``overrides`` set to more than one value (the last holds, as OmegaConf merges
    them): ``seg.theta_fg given twice; the last, seg.theta_fg=0.8, holds``."""
    values: dict[str, list[str]] = {}
    for override in overrides:
        key, eq, _ = override.partition("=")
        if eq:
            values.setdefault(key, []).append(override)
    return [f"{key} given {'twice' if len(given) == 2 else f'{len(given)} times'}; the last, {given[-1]}, holds"
            for key, given in values.items() if len(set(given)) > 1]
