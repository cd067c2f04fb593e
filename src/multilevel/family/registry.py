"""The registries of families and links: names to classes, and the look-ups.

Every built-in family registers itself in its own module
(``register_family(Poisson)`` at the bottom of :mod:`multilevel.family.poisson`);
importing :mod:`multilevel.family` imports them all. A new family is one module
with its class and that one line; it is then accepted by name everywhere a family
is (``multilevel.fit(..., family="my_family")``, ``gee``, ``sample``, the command
line).

Unknown names raise :class:`~multilevel.errors.FamilyError` (a
:class:`~multilevel.errors.ModelError`) listing the valid names and suggesting
the closest ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ..errors import FamilyError
from .base import Dispersion, Family, Link

# canonical name -> class; alias -> canonical name
_FAMILIES: dict[str, type[Family]] = {}
_FAMILY_ALIASES: dict[str, str] = {}
_LINKS: dict[str, type[Link]] = {}


def close_matches(name: str, names: Iterable[str], canonical: dict[str, str] | None = None) -> str:
    """``"; did you mean 'x'?"`` for the names closest to ``name`` (case aside), or ``""``.

    ``canonical`` maps aliases among ``names`` to the name suggested in their place.
    """
    canonical = canonical or {}
    by_lower: dict[str, str] = {}
    for n in names:
        by_lower.setdefault(n.lower(), canonical.get(n, n))
    hits = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)
    suggested = list(dict.fromkeys(by_lower[h] for h in hits))
    if not suggested:
        return ""
    return "; did you mean " + " or ".join(repr(s) for s in suggested) + "?"


def register_family(
    cls: type[Family], *, aliases: tuple[str, ...] = (), replace: bool = False
) -> type[Family]:
    """Make ``cls`` available by its ``name`` (and ``aliases``) to every ``family=`` argument.

    Checks the declarations that must agree (a default link among the links; a
    sampler parameter exactly when there is a dispersion) and refuses to shadow
    a registered name unless ``replace=True``. Returns ``cls``.

    Examples
    --------
    >>> from multilevel.family import Family, get_family, register_family
    >>> from multilevel.family.poisson import Poisson
    >>> class Counts(Poisson):
    ...     name = "counts_example"
    >>> _ = register_family(Counts)
    >>> get_family("counts_example")
    counts_example(link='log')
    >>> unregister_family("counts_example")
    """
    name = cls.name
    if not name:
        raise FamilyError(f"{cls.__name__} has no name: set the class attribute name = '...'")
    if cls.default_link not in cls.links:
        raise FamilyError(f"{name}: default_link {cls.default_link!r} is not among links {cls.links}")
    if (cls.dispersion is not Dispersion.NONE) != (cls.sampler_dispersion is not None):
        raise FamilyError(f"{name}: a family with a dispersion names its sampler_dispersion, and only then")
    for key in (name, *aliases):
        owner = _FAMILY_ALIASES.get(key, key)
        if not replace and owner in _FAMILIES and _FAMILIES[owner] is not cls:
            taken = _FAMILIES[owner].__name__
            raise FamilyError(f"the family name {key!r} is taken by {taken}; pass replace=True to replace it")
    _FAMILIES[name] = cls
    for a in aliases:
        _FAMILY_ALIASES[a] = name
    return cls


def unregister_family(name: str) -> None:
    """Remove a registered family and its aliases (for tests and interactive use)."""
    canonical = _FAMILY_ALIASES.get(name, name)
    _FAMILIES.pop(canonical, None)
    for a in [a for a, c in _FAMILY_ALIASES.items() if c == canonical]:
        del _FAMILY_ALIASES[a]


def family_names(*, aliases: bool = False) -> tuple[str, ...]:
    """Registered family names in registration order (with their aliases if asked)."""
    return tuple(_FAMILIES) + (tuple(_FAMILY_ALIASES) if aliases else ())


def family_class(name: str) -> type[Family]:
    """The class registered under ``name`` or one of its aliases."""
    canonical = _FAMILY_ALIASES.get(name, name)
    if canonical not in _FAMILIES:
        hint = close_matches(name, family_names(aliases=True), _FAMILY_ALIASES)
        raise FamilyError(f"unknown family {name!r}; choose one of {', '.join(family_names())}{hint}")
    return _FAMILIES[canonical]


def get_family(family: str | Family, link: str | Link | None = None) -> Family:
    """A family instance from its name (``"binomial"``, ``"poisson"``, ...) and a link.

    A :class:`Family` instance is returned as it is, or rebuilt with ``link`` if one is given.

    Examples
    --------
    >>> get_family("Gamma", "log")
    Gamma(link='log')
    >>> get_family("binomial", "sqrt")
    Traceback (most recent call last):
    ...
    multilevel.errors.FamilyError: link 'sqrt' is not available for the binomial family; choose ...
    """
    if isinstance(family, Family):
        if link is None:
            return family
        cls = type(family)
    elif isinstance(family, str):
        cls = family_class(family)
    else:
        raise FamilyError(f"family= takes a name or a Family instance, not {type(family).__name__}")
    name = link.name if isinstance(link, Link) else (link or cls.default_link)
    if name not in cls.links:
        known = name in _LINKS
        what = f"link {name!r} is not available for" if known else f"unknown link {name!r} for"
        hint = "" if known else close_matches(name, cls.links)
        raise FamilyError(f"{what} the {cls.name} family; choose one of {', '.join(cls.links)}{hint}")
    return cls(get_link(link or cls.default_link))


def register_link(cls: type[Link], *, replace: bool = False) -> type[Link]:
    """Make ``cls`` available by its ``name`` to families that list it in ``links``."""
    if not cls.name:
        raise FamilyError(f"{cls.__name__} has no name: set the class attribute name = '...'")
    if not replace and cls.name in _LINKS and _LINKS[cls.name] is not cls:
        taken = _LINKS[cls.name].__name__
        raise FamilyError(f"the link name {cls.name!r} is taken by {taken}; pass replace=True to replace it")
    _LINKS[cls.name] = cls
    return cls


def link_names() -> tuple[str, ...]:
    """Registered link names."""
    return tuple(_LINKS)


def get_link(name: str | Link) -> Link:
    """A link instance from its name (``"logit"``, ``"log"``, ...); a Link is returned as it is."""
    if isinstance(name, Link):
        return name
    if name not in _LINKS:
        hint = close_matches(str(name), _LINKS)
        raise FamilyError(f"unknown link {name!r}; choose one of {', '.join(_LINKS)}{hint}")
    return _LINKS[name]()
