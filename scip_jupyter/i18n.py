"""English and French: one gettext catalog, one current language per request, kernel or command.

Text a person reads goes through `_()` (and `ngettext()` for counts); the message
id is the English text. The French catalog is every `locale/fr/LC_MESSAGES/*.po`
(one file per area: `scip.po` for shared words, `arc.po`, `courses.po`, ...),
merged and compiled in memory with Babel when first used (no `.mo` files to keep
in step). A message id defined in two files must have the same translation.

The current language is a context variable: hub pages set it from the person's
choice (a cookie) or `Accept-Language` with `use_locale()`, the CLI from
`LANGUAGE`/`LC_ALL`/`LANG`, widgets from the kernel's environment.

>>> with use_locale("fr"):
...     _("Profile")
'Profil'
>>> _("Profile")
'Profile'
>>> negotiate("fr-CA,fr;q=0.9,en;q=0.8"), negotiate("de-DE"), negotiate("")
('fr', 'en', 'en')
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import os
from pathlib import Path
from typing import Iterator

DOMAIN = "scip"
LOCALE_DIR = Path(__file__).parent / "locale"
#: Languages we serve; the first is the default.
LANGUAGES = ("en", "fr")
#: Cookie holding a person's explicit choice (set by the language switcher).
LANGUAGE_COOKIE = "scip-lang"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("scip_locale", default=None)


def _env_language() -> str:
    for var in ("SCIP_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value and value not in ("C", "POSIX", "C.UTF-8"):
            return normalise(value.split(":")[0])
    return LANGUAGES[0]


def normalise(tag: str | None) -> str:
    """`fr_CA.UTF-8`, `fr-ca`, `FR` -> `fr`; anything we do not serve -> `en`."""
    base = (tag or "").replace("-", "_").split(".")[0].split("_")[0].strip().lower()
    return base if base in LANGUAGES else LANGUAGES[0]


def negotiate(accept_language: str | None, choice: str | None = None) -> str:
    """The language for a request: the person's explicit choice, else the best of Accept-Language."""
    if choice and choice.strip().lower() in LANGUAGES:
        return choice.strip().lower()
    best, best_q = LANGUAGES[0], -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        base = tag.replace("_", "-").split("-")[0].strip().lower()
        if base in LANGUAGES and q > best_q:
            best, best_q = base, q
    return best


def current() -> str:
    """The language in force here (context first, then the environment)."""
    return _current.get() or _env_language()


@contextlib.contextmanager
def use_locale(language: str | None) -> Iterator[str]:
    """Translate to `language` inside the block (request handlers, tests)."""
    token = _current.set(normalise(language))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def set_locale(language: str | None) -> str:
    """Set the language for the rest of this context (a kernel, a command)."""
    _current.set(normalise(language))
    return _current.get()


@functools.lru_cache(maxsize=None)
def translations(language: str):
    """The compiled catalog of `language` (NullTranslations for English or a missing catalog)."""
    import gettext

    files = sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po"))
    if language == LANGUAGES[0] or not files:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo

    catalog = load_catalog(language)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def load_catalog(language: str):
    """Every `*.po` of `language` merged into one Babel Catalog (tests check it is complete)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    merged = Catalog(locale=language, domain=DOMAIN)
    for po in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=language, domain=DOMAIN)
        # Plural forms as the files say (French: 2, `n > 1`), not Babel's CLDR default (3 for fr).
        merged._num_plurals, merged._plural_expr = catalog.num_plurals, catalog.plural_expr
        for message in catalog:
            if message.id:
                merged[message.id] = message
    return merged


def _(message: str) -> str:
    """Translate `message` (its English text) into the current language."""
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def gettext(message: str) -> str:
    return _(message)


def N_(message: str) -> str:
    """Mark a message for extraction where it is defined (a table of labels); translate it with `_()` where shown."""
    return message


def install_jinja(env) -> None:
    """Give a jinja Environment `{% trans %}` and `_()` that follow the current language."""
    if "jinja2.ext.InternationalizationExtension" not in env.extensions and "jinja2.ext.i18n" not in env.extensions:
        env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext=_, ngettext=ngettext, newstyle=True)
