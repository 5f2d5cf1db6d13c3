"""Keep a pyln-client plugin's state across reloads under cln-autoreload.

cln-autoreload restarts a plugin when its file changes. Normally the new
version starts with empty memory. With this helper, the plugin keeps its
state in one dict; just before the old version stops, cln-autoreload asks
it for that dict, and hands it to the new version right after its ``init``,
before any call reaches it::

    from pyln.client import Plugin
    from cln_autoreload_state import keep_state

    plugin = Plugin()
    state = keep_state(plugin, {"calls": 0}, schema=1)
    # handlers read and change state["calls"]; then plugin.run()

``keep_state(plugin, defaults, schema=1, migrate=None)`` returns a new dict
holding a copy of ``defaults``. Use that dict (and only that one) in your
handlers and do not rebind it: a restore replaces its contents in place, so
every reference to it sees the handed-over values. Call it once per plugin,
before ``plugin.run()``.

What it does to the plugin: the ``getmanifest`` answer gains
``"autoreload": {"state": true}``, and two methods are added,
``autoreload-save-state`` and ``autoreload-restore-state``, which only
cln-autoreload calls. They are left out of the manifest's ``rpcmethods``, so
``lightning-cli`` does not offer them and two plugins using this helper do not
clash over their names. The saved value is ``{"schema": N, "data": state}``.

The state must be plain JSON: dicts with ``str`` keys, lists, ``str``,
``int``, finite ``float``, ``bool`` and ``None`` (tuples come back as
lists). Anything else (a set, a ``Millisatoshi``, an ``int`` key, NaN) makes
the save fail with an error naming where it is, e.g. ``state['peers'][2]``;
cln-autoreload then logs it and the new version starts from the defaults.
The same check runs on ``defaults`` when you call ``keep_state``.
cln-autoreload refuses a state of more than 16 MiB of JSON the same way.

When the schema changes: bump ``schema`` whenever the new code reads the
state differently (a key renamed, a value of another type). When the saved
schema is not this version's, ``migrate(old_schema, old_data)`` is called if
you gave one: return the new state dict, or ``None`` to start from the
defaults. Without ``migrate`` (or if it returns ``None``, something else than
a dict, or raises), the plugin keeps its defaults and logs a warning saying
why. Same schema: the saved values replace the defaults; a key of the
defaults that the saved state lacks (one you just added) keeps its default,
so adding a key does not need a new schema.

What is not handed over: a version that crashed (or was killed, or did not
answer the save in time) leaves nothing to hand over, so the restarted
version starts from the defaults. Nor is anything kept when lightningd
restarts: this is memory across reloads, not storage (use the datastore or a
file for that).

Without cln-autoreload (plain lightningd): everything still works; nothing
ever calls the two methods, so the state simply lives as long as the process.
lightningd reads only the manifest fields it knows (``getmanifest``'s answer
is parsed member by member in lightningd/plugin.c), so the ``autoreload``
field is ignored there, and cln-autoreload removes it anyway before
lightningd sees the manifest.

Threads: the save reads the dict while pyln dispatches nothing else; if your
own threads change the state, they may do so while it is being saved.

Install: ``pip install /path/to/cln-autoreload/python`` (or copy this single
file next to your plugin). It needs only pyln-client.
"""

import copy
import json
import math
import traceback

__all__ = ["keep_state", "SAVE_METHOD", "RESTORE_METHOD"]
__version__ = "0.1.0"

SAVE_METHOD = "autoreload-save-state"
RESTORE_METHOD = "autoreload-restore-state"

_MISSING = object()
_EXIT = object()  # a marker in _not_json's stack


class StateError(Exception):
    """The state cannot be saved as JSON, or a restore request is malformed."""


def _rpc_error(message):
    """An exception pyln turns into a JSON-RPC error answer with `message`."""
    try:
        from pyln.client import RpcException
    except ImportError:  # a pyln without it: pyln prefixes the message
        return StateError(message)
    return RpcException(message)


def _not_json(value, path="state"):
    """Where `value` is not plain JSON: a description, or None if it is.

    A walk rather than json.dumps, to say *where* the problem is and to
    refuse what json.dumps would change silently (int keys, NaN).
    """
    stack = [(value, path)]
    open_ids = set()  # containers on the current path, against cycles
    # An explicit stack with exit markers: state may be deep.
    while stack:
        item, where = stack.pop()
        if item is _EXIT:
            open_ids.discard(where)
            continue
        if item is None or isinstance(item, (str, bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return "%s is %r, which JSON cannot hold" % (where, item)
            continue
        if isinstance(item, (dict, list, tuple)):
            if id(item) in open_ids:
                return "%s contains itself" % where
            open_ids.add(id(item))
            stack.append((_EXIT, id(item)))
            if isinstance(item, dict):
                for k, v in item.items():
                    if not isinstance(k, str):
                        return "%s has the key %r, of type %s: %s" % (
                            where, k, type(k).__name__, _key_problem(k))
                    stack.append((v, "%s[%r]" % (where, k)))
            else:
                for i, v in enumerate(item):
                    stack.append((v, "%s[%d]" % (where, i)))
            continue
        return "%s is a %s, which JSON cannot hold" % (
            where, type(item).__name__)
    return None


def _key_problem(k):
    """Why the dict key k is refused (json.dumps would change or refuse it)."""
    try:
        as_json = json.dumps({k: 0})
    except (TypeError, ValueError):
        return "JSON keys are strings"
    return "JSON keys are strings (it would come back as %s)" % (
        as_json[1:as_json.rindex(":")],)


def _pyln_getmanifest(plugin):
    """pyln's Method for getmanifest, or an error saying what is missing."""
    methods = getattr(plugin, "methods", None)
    if not isinstance(methods, dict):
        raise RuntimeError(
            "cln_autoreload_state: %r has no dict `methods`: is it a "
            "pyln.client.Plugin? This helper wraps pyln-client's "
            "plugin.methods['getmanifest'].func (there since pyln-client "
            "0.9); your pyln-client may have changed it. Please report it."
            % (plugin,))
    method = methods.get("getmanifest")
    if method is None or not callable(getattr(method, "func", None)):
        raise RuntimeError(
            "cln_autoreload_state: plugin.methods['getmanifest'] is %r, not "
            "a pyln Method with a callable .func: this helper cannot add "
            "\"autoreload\" to the manifest with this pyln-client. Please "
            "report it." % (method,))
    if not callable(getattr(plugin, "add_method", None)):
        raise RuntimeError(
            "cln_autoreload_state: the plugin has no add_method(): is it a "
            "pyln.client.Plugin?")
    return method


def keep_state(plugin, defaults, schema=1, migrate=None):
    """Return a dict that cln-autoreload hands from a version to the next.

    plugin    the pyln.client.Plugin, before plugin.run()
    defaults  the state at a fresh start: a dict of plain JSON values
    schema    an int; change it when the state's layout changes
    migrate   optional migrate(old_schema, old_data) -> dict or None, called
              when the saved state has another schema

    See the module's docstring for the details.
    """
    if not isinstance(defaults, dict):
        raise TypeError("keep_state: defaults must be a dict, not %s"
                        % type(defaults).__name__)
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise TypeError("keep_state: schema must be an int, not %r" % (schema,))
    if migrate is not None and not callable(migrate):
        raise TypeError("keep_state: migrate must be callable or None")
    problem = _not_json(defaults, "defaults")
    if problem:
        raise ValueError("keep_state: " + problem)

    getmanifest = _pyln_getmanifest(plugin)
    if SAVE_METHOD in plugin.methods or RESTORE_METHOD in plugin.methods:
        raise RuntimeError(
            "keep_state was already called for this plugin: keep all the "
            "state in the one dict it returned")

    pristine = copy.deepcopy(defaults)
    kept = copy.deepcopy(defaults)  # the dict the plugin's handlers use

    def log(message, level):
        try:
            plugin.log(message, level=level)
        except Exception:  # logging must not turn a fallback into an error
            pass

    def replace_with(data):
        fresh = copy.deepcopy(pristine)
        fresh.update(data)
        kept.clear()
        kept.update(fresh)

    original = getmanifest.func

    def getmanifest_with_state(**kwargs):
        manifest = original(**kwargs)
        if not isinstance(manifest, dict):
            raise RuntimeError(
                "cln_autoreload_state: pyln's getmanifest returned %r, not a "
                "dict: cannot add \"autoreload\" to it" % (type(manifest),))
        methods = manifest.get("rpcmethods")
        if isinstance(methods, list):
            manifest["rpcmethods"] = [
                m for m in methods
                if not (isinstance(m, dict)
                        and m.get("name") in (SAVE_METHOD, RESTORE_METHOD))
            ]
        manifest["autoreload"] = {"state": True}
        return manifest

    getmanifest.func = getmanifest_with_state

    def save_state(**kwargs):
        problem = _not_json(kept)
        if problem:
            raise _rpc_error("cannot save the state: " + problem)
        return {"state": {"schema": schema, "data": kept}}

    # The parameter is named as in the request's params: {"state": ...}.
    def restore_state(state=_MISSING, **kwargs):
        saved = state
        if saved is _MISSING:
            raise _rpc_error("%s: params have no \"state\"" % RESTORE_METHOD)
        if (not isinstance(saved, dict) or "data" not in saved
                or isinstance(saved.get("schema"), bool)
                or not isinstance(saved.get("schema"), int)):
            raise _rpc_error(
                "%s: the state is not {\"schema\": <int>, \"data\": ...} as "
                "cln_autoreload_state saves it: %.200s"
                % (RESTORE_METHOD, _short(saved)))
        old_schema, data = saved["schema"], saved["data"]
        if old_schema == schema:
            if not isinstance(data, dict):
                raise _rpc_error(
                    "%s: the state's data is a %s, not a dict"
                    % (RESTORE_METHOD, type(data).__name__))
            replace_with(data)
            log("state restored (schema %d)" % schema, "debug")
            return {}
        if migrate is None:
            log("the handed-over state has schema %d and this version has "
                "schema %d, with no migrate() to convert it: starting from "
                "the defaults" % (old_schema, schema), "warn")
            return {}
        try:
            new = migrate(old_schema, data)
        except Exception as e:
            log("migrate(%d, ...) raised %s: %s; starting from the defaults"
                % (old_schema, type(e).__name__, e), "warn")
            for line in traceback.format_exc().splitlines():
                log(line, "debug")
            return {}
        if new is None:
            log("migrate(%d, ...) returned None: starting from the defaults "
                "(schema %d)" % (old_schema, schema), "warn")
        elif not isinstance(new, dict):
            log("migrate(%d, ...) returned a %s, not a dict: starting from "
                "the defaults" % (old_schema, type(new).__name__), "warn")
        else:
            replace_with(new)
            log("state migrated from schema %d to %d" % (old_schema, schema),
                "info")
        return {}

    # Plain (non-background) methods: pyln answers with what they return,
    # and with a JSON-RPC error if they raise.
    plugin.add_method(SAVE_METHOD, save_state)
    plugin.add_method(RESTORE_METHOD, restore_state)
    return kept


def _short(value):
    try:
        return json.dumps(value)[:200]
    except (TypeError, ValueError):
        return repr(value)[:200]
