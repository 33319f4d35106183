"""A client of Streamlit's websocket protocol: one asyncio task per simulated browser tab.

A browser tab talks to a Streamlit server over one websocket,
``ws://HOST/_stcore/stream``: it sends ``BackMsg`` protobufs (a ``rerun_script``
with the page, the query string and every widget's current value) and
receives ``ForwardMsg`` protobufs (a ``new_session`` when a run starts, the
``delta`` messages that add elements at a "delta path", ``navigation``,
``auto_rerun`` for fragments with ``run_every``, ``script_finished`` when the
run ends). `Session` speaks that protocol with Streamlit's own protobuf
classes, the way the frontend does, so one process can drive many sessions
without a browser each; `RunResult` is what a run left on the page.

Written for, and tested against, Streamlit 1.67.0 (pinned in
requirements.txt). The protocol is internal to Streamlit, so anything this
client does not recognise fails loudly (`ProtocolError`) instead of
measuring nothing: a run with no ``script_finished``, a message of an unknown
type, a widget it cannot find or cannot set.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.WidgetStates_pb2 import WidgetState

#: Element types whose value the frontend keeps and sends back on every rerun.
VALUE_WIDGETS = frozenset(
    {
        "number_input",
        "text_input",
        "text_area",
        "checkbox",
        "selectbox",
        "radio",
        "slider",
        "multiselect",
    }
)
#: Widgets whose value is a trigger: true for the one rerun a click causes.
TRIGGER_WIDGETS = frozenset({"button"})
#: ForwardMsg types that carry nothing a test or the load harness reads.
IGNORED_MESSAGES = frozenset(
    {
        "page_config_changed",
        "git_info_changed",
        "page_profile",
        "session_status_changed",
        "session_event",
        "file_urls_response",
        "logo",
        "parent_message",
        "heartbeat_ack",
        "backend_operation_response",
        "auth_redirect",
    }
)
#: A full run's cached messages are forgotten after this many runs (the frontend's
#: message cache ages its entries the same way).
CACHE_MAX_AGE = 2


class ProtocolError(RuntimeError):
    """The server said something this client does not expect (or nothing at all)."""


class ConnectionLost(ProtocolError):
    """The websocket closed (or never opened) while a run was expected."""


class RunTimeout(ProtocolError):
    """No ``script_finished`` came within the session's timeout."""


@dataclass(frozen=True)
class Node:
    """One element or block on the page, at its delta path."""

    path: tuple[int, ...]
    kind: str  # the element's type ("markdown", "plotly_chart", ...) or "block:<type>"
    proto: Any  # the element's own protobuf (e.g. Markdown), or the Block
    fragment_id: str
    run: int  # which run of the session last wrote it


@dataclass(frozen=True)
class Widget:
    """A widget on the page and the value the client holds for it."""

    id: str
    label: str
    key: str | None
    kind: str
    value: Any
    path: tuple[int, ...]
    options: tuple[str, ...] = ()
    integer: bool = False  # a number_input of integers


@dataclass(frozen=True)
class Page:
    """A page of the app's navigation."""

    title: str
    url_pathname: str
    script_hash: str


@dataclass(frozen=True)
class RunResult:
    """The page after one run (full or fragment), in delta-path order.

    Attributes:
        status: ``"finished"``, ``"fragment_finished"`` or ``"compile_error"``.
        nodes: every element and block on the page.
        widgets: the value widgets and buttons, with the values the client holds.
        page_hash: the script hash of the page the server ran.
        pages: the navigation's pages.
        page_not_found: the server said the page asked for does not exist.
        seconds: from sending the request to ``script_finished``.
        messages: ForwardMsgs received for this run.
        fragment_ids: the fragments that are rerun every so often (``run_every``).
    """

    status: str
    nodes: tuple[Node, ...]
    widgets: tuple[Widget, ...]
    page_hash: str
    pages: tuple[Page, ...]
    page_not_found: bool
    seconds: float
    messages: int
    fragment_ids: tuple[str, ...]

    def elements(self, kind: str) -> list[Node]:
        """The nodes of one type, in page order."""
        return [n for n in self.nodes if n.kind == kind]

    @property
    def texts(self) -> list[str]:
        """Every text a reader sees: markdown, headings, text, alerts, progress
        and metric labels, expander and tab labels, widget labels."""
        out: list[str] = []
        for n in self.nodes:
            p = n.proto
            if n.kind in ("markdown", "text", "heading", "alert"):
                out.append(p.body)
            elif n.kind == "progress" and p.text:
                out.append(p.text)
            elif n.kind == "metric":
                out.extend([p.label, p.body])
            elif n.kind in ("block:expandable", "block:tab"):
                out.append(p.expandable.label if n.kind == "block:expandable" else p.tab.label)
            elif hasattr(p, "label") and isinstance(getattr(p, "label", None), str):
                out.append(p.label)
        return [t for t in out if t]

    @property
    def text(self) -> str:
        """All `texts` on one string, one per line."""
        return "\n".join(self.texts)

    @property
    def charts(self) -> list[dict]:
        """The Plotly figures on the page (``{"data": [...], "layout": {...}}``)."""
        return [json.loads(n.proto.spec) for n in self.elements("plotly_chart") if n.proto.spec]

    @property
    def exceptions(self) -> list[str]:
        """``Type: message`` of each exception element (a run that raised)."""
        return [f"{n.proto.type}: {n.proto.message}" for n in self.elements("exception")]

    @property
    def page(self) -> Page | None:
        """The page that ran."""
        return next((p for p in self.pages if p.script_hash == self.page_hash), None)

    def widget(self, name: str) -> Widget:
        """The one widget whose key or label is ``name``.

        Raises:
            LookupError: none, or several (then use a key).
        """
        return find_widget(self.widgets, name)


def find_widget(widgets: Iterable[Widget], name: str) -> Widget:
    """The widget with key ``name``, else the only one labelled ``name``."""
    widgets = list(widgets)
    by_key = [w for w in widgets if w.key == name]
    if by_key:
        return by_key[0]
    by_label = [w for w in widgets if w.label == name]
    if len(by_label) == 1:
        return by_label[0]
    if not by_label:
        known = sorted({w.label for w in widgets} | {w.key for w in widgets if w.key})
        raise LookupError(f"no widget labelled or keyed {name!r}; the page has {known}")
    keys = [w.key for w in by_label]
    raise LookupError(f"{len(by_label)} widgets are labelled {name!r}; pick one by key: {keys}")


def trace_length(values: Any) -> int:
    """The number of points in a Plotly trace array: a list, or Plotly's typed
    array ``{"dtype": "f8", "bdata": base64}`` (what plotly.py 6 writes for numpy)."""
    if values is None:
        return 0
    if isinstance(values, dict) and "bdata" in values:
        size = int(values.get("dtype", "f8").lstrip("<>|=")[1:] or 1)
        return len(base64.b64decode(values["bdata"])) // size
    return len(values)


def user_key(widget_id: str) -> str | None:
    """The key a script gave a widget, from its id (``$$ID-<hash>-<key>``)."""
    key = widget_id.split("-", maxsplit=2)[-1]
    return None if key == "None" else key


def initial_value(kind: str, proto: Any) -> Any:
    """The value the frontend starts a widget with: the server's ``value`` when it
    set one, else the widget's default (as a Python value of the widget's type)."""
    if kind == "number_input":
        field = "value" if proto.set_value else "default"
        if not proto.HasField(field):
            return None
        number = getattr(proto, field)
        return int(number) if proto.data_type == NumberInput.INT else number
    if kind in ("text_input", "text_area"):
        if proto.set_value:
            return proto.value if proto.HasField("value") else None
        return proto.default if proto.HasField("default") else None
    if kind == "checkbox":
        return proto.value if proto.set_value else proto.default
    if kind in ("selectbox", "radio"):
        if proto.set_value:
            return proto.raw_value if proto.HasField("raw_value") else None
        return proto.options[proto.default] if proto.HasField("default") else None
    if kind == "multiselect":
        if proto.set_value:
            return list(proto.raw_values)
        return [proto.options[i] for i in proto.default]
    if kind == "slider":
        return list(proto.value) if proto.set_value else list(proto.default)
    if kind == "button":
        return False
    raise ProtocolError(f"no initial value for a {kind} widget")


def encode_value(widget: Widget, value: Any) -> WidgetState:
    """``value`` as the WidgetState the frontend sends for ``widget``.

    Selectbox and radio values are the option's text (or its index in the
    options, an int); multiselect values a list of option texts; sliders a
    number or a (low, high) pair; numbers are checked against the widget's
    integer or float type.

    Raises:
        ValueError: a value of the wrong type, or an option that is not offered.
    """
    state = WidgetState(id=widget.id)
    kind = widget.kind
    if kind == "button":
        state.trigger_value = bool(value)
    elif kind == "number_input":
        if value is None:
            return state  # an empty number box: no value at all
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{widget.label!r} wants a number, not {value!r}")
        if widget.integer and float(value) != int(value):
            raise ValueError(f"{widget.label!r} holds integers, not {value!r}")
        state.double_value = float(value)
    elif kind in ("text_input", "text_area"):
        if not isinstance(value, str):
            raise ValueError(f"{widget.label!r} wants a string, not {value!r}")
        state.string_value = value
    elif kind == "checkbox":
        if not isinstance(value, bool):
            raise ValueError(f"{widget.label!r} wants True or False, not {value!r}")
        state.bool_value = value
    elif kind in ("selectbox", "radio"):
        if value is None:
            return state
        state.string_value = _option(widget, value)
    elif kind == "multiselect":
        if isinstance(value, str):
            raise ValueError(f"{widget.label!r} wants a list of options, not {value!r}")
        state.string_array_value.data.extend(_option(widget, v) for v in value)
    elif kind == "slider":
        values = [value] if isinstance(value, int | float) else list(value)
        if not values or not all(isinstance(v, int | float) for v in values):
            raise ValueError(f"{widget.label!r} wants a number or a pair, not {value!r}")
        state.double_array_value.data.extend(float(v) for v in values)
    else:
        raise ValueError(f"cannot set a {kind} widget ({widget.label!r})")
    return state


def _option(widget: Widget, value: Any) -> str:
    """The option text for an option text or index."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(widget.options):
            raise ValueError(f"{widget.label!r} has no option {value}")
        return widget.options[value]
    if value not in widget.options:
        raise ValueError(f"{widget.label!r} has no option {value!r}; it offers {widget.options}")
    return value


class Session:
    """One simulated browser tab: a websocket to the server and the page it shows.

    Use as ``async with Session(url) as s: result = await s.load("", query)``.
    Requests are sent one at a time, each answered by a whole run.
    """

    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        """``url``: the server (``http://127.0.0.1:PORT``); ``timeout_s``: the longest
        a run may take before `ProtocolError`."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.ws: Any = None
        self.nodes: dict[tuple[int, ...], Node] = {}
        self.values: dict[str, Any] = {}  # widget id -> value the client holds
        self.page_hash = ""
        self.pages: tuple[Page, ...] = ()
        self.query = ""
        self.fragments: dict[str, float] = {}  # fragment id -> run_every seconds
        self._run = 0
        self._cache: dict[str, tuple[ForwardMsg, int]] = {}  # hash -> (message, last run)

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Opens the websocket, as the frontend does on a page load."""
        stream = "ws" + self.url.removeprefix("http") + "/_stcore/stream"
        try:
            self.ws = await websockets.connect(
                stream,
                subprotocols=["streamlit"],
                origin=self.url,
                max_size=None,  # the server's own limit (server.maxMessageSize) applies
                open_timeout=self.timeout_s,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as err:
            raise ConnectionLost(f"cannot open {stream}: {err}") from err

    async def close(self) -> None:
        """Closes the websocket (the tab is closed or navigates away)."""
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    # ------------------------------------------------------------------ actions

    async def load(self, page: str = "", query: str = "") -> RunResult:
        """Runs ``page`` (its URL path, "" for the default page) with ``query``,
        as a page load does.

        Raises:
            ProtocolError: the page does not exist or the run never finished.
        """
        self.query = query.lstrip("?")
        result = await self._request(self._client_state(page_name=page))
        if result.page is None or result.page.url_pathname != page:
            ran = result.page.url_pathname if result.page else result.page_hash
            raise ProtocolError(f"asked for page {page!r}, the server ran {ran!r}")
        return result

    async def set(self, name: str, value: Any) -> RunResult:
        """Gives the widget keyed or labelled ``name`` a new value and reruns, as
        typing a number and pressing Enter does."""
        widget = find_widget(self.widgets(), name)
        encode_value(widget, value)  # checks the value before anything is sent
        self.values[widget.id] = value
        return await self._request(self._client_state())

    async def click(self, name: str) -> RunResult:
        """Clicks the button keyed or labelled ``name`` (its trigger is true for one run)."""
        widget = find_widget(self.widgets(), name)
        if widget.kind not in TRIGGER_WIDGETS:
            raise ValueError(f"{name!r} is a {widget.kind}, not a button")
        return await self._request(self._client_state(triggers=(widget,)))

    async def tick(self) -> RunResult | None:
        """Reruns every fragment registered with ``run_every`` once, as the
        frontend's timers do; the last run's result, or None when none is registered."""
        result = None
        for fragment_id in list(self.fragments):
            if fragment_id not in self.fragments:
                continue  # a run before this one stopped it
            state = self._client_state()
            state.fragment_id = fragment_id
            state.is_auto_rerun = True
            result = await self._request(state)
        return result

    def widgets(self) -> list[Widget]:
        """The widgets on the page now, in page order."""
        out = []
        for node in sorted(self.nodes.values(), key=lambda n: n.path):
            if node.kind not in VALUE_WIDGETS | TRIGGER_WIDGETS or not node.proto.id:
                continue
            p = node.proto
            options = tuple(p.options) if hasattr(p, "options") else ()
            value = self.values.get(p.id, False if node.kind == "button" else None)
            integer = node.kind == "number_input" and p.data_type == NumberInput.INT
            out.append(
                Widget(p.id, p.label, user_key(p.id), node.kind, value, node.path, options, integer)
            )
        return out

    # ------------------------------------------------------------------ the wire

    def _client_state(self, page_name: str = "", triggers: Sequence[Widget] = ()) -> ClientState:
        state = ClientState(query_string=self.query)
        if page_name or not self.page_hash:
            state.page_name = page_name  # a page load: the server finds the page by name
        else:
            # A rerun stays on the page that ran (also when a fragment calls st.rerun).
            state.page_script_hash = self.page_hash
        ctx = state.context_info
        ctx.url = f"{self.url}/{page_name}" + (f"?{self.query}" if self.query else "")
        ctx.timezone, ctx.timezone_offset, ctx.locale = "UTC", 0, "en-US"
        ctx.color_scheme, ctx.is_embedded = "light", False
        trigger_ids = {w.id for w in triggers}
        for widget in self.widgets():
            if widget.id in trigger_ids:
                state.widget_states.widgets.append(encode_value(widget, True))
            elif widget.kind in VALUE_WIDGETS:
                state.widget_states.widgets.append(encode_value(widget, widget.value))
        state.cached_message_hashes.extend(self._cache)
        return state

    async def _request(self, state: ClientState) -> RunResult:
        if self.ws is None:
            raise ProtocolError("the session is not connected")
        msg = BackMsg()
        msg.rerun_script.CopyFrom(state)
        t0 = time.monotonic()
        await self.ws.send(msg.SerializeToString())
        try:
            return await asyncio.wait_for(self._collect(t0), self.timeout_s)
        except TimeoutError:
            raise RunTimeout(f"no script_finished within {self.timeout_s:g} s") from None

    async def _collect(self, t0: float) -> RunResult:
        """Applies ForwardMsgs until a run ends for good."""
        count, page_not_found, fragments_run = 0, False, ()
        while True:
            try:
                data = await self.ws.recv()
            except websockets.ConnectionClosed as err:
                raise ConnectionLost(f"the websocket closed during a run: {err}") from err
            if isinstance(data, str):
                raise ProtocolError(f"a text frame from the server: {data[:100]!r}")
            msg = ForwardMsg()
            msg.ParseFromString(data)
            count += 1
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":
                cached = self._cache.get(msg.ref_hash)
                if cached is None:
                    raise ProtocolError(f"a reference to message {msg.ref_hash} never received")
                full = ForwardMsg()
                full.CopyFrom(cached[0])
                full.metadata.CopyFrom(msg.metadata)
                msg, kind = full, "delta"
            if kind == "new_session":
                if not self.pages:
                    # An app without st.navigation: its pages (one, or a pages/ folder)
                    # come with every new_session, and no navigation message follows.
                    self._set_pages(msg.new_session.page_script_hash, msg.new_session.app_pages)
                fragments_run = tuple(msg.metadata.run.fragment_ids)
                self._run += 1
                if not fragments_run:
                    # A full run registers its fragments' timers afresh.
                    self.fragments.clear()
            elif kind == "delta":
                self._apply(msg)
            elif kind == "navigation":
                self._set_pages(msg.navigation.page_script_hash, msg.navigation.app_pages)
            elif kind == "page_info_changed":
                self.query = msg.page_info_changed.query_string
            elif kind == "page_not_found":
                page_not_found = True
            elif kind == "auto_rerun":
                self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fid in msg.stop_auto_rerun.fragment_ids:
                    self.fragments.pop(fid, None)
            elif kind == "script_finished":
                status = msg.script_finished
                if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue  # st.rerun() (or a queued request): another run follows
                return self._finish(status, fragments_run, page_not_found, t0, count)
            elif kind not in IGNORED_MESSAGES:
                raise ProtocolError(f"a ForwardMsg of unknown type {kind!r}")

    def _set_pages(self, page_hash: str, app_pages: Iterable[Any]) -> None:
        self.page_hash = page_hash
        self.pages = tuple(Page(p.page_name, p.url_pathname, p.page_script_hash) for p in app_pages)

    def _apply(self, msg: ForwardMsg) -> None:
        """Applies one delta to the page at its delta path."""
        path = tuple(msg.metadata.delta_path)
        delta = msg.delta
        which = delta.WhichOneof("type")
        if which == "new_element":
            kind = delta.new_element.WhichOneof("type")
            if kind is None:
                raise ProtocolError(f"an element of unknown type at {path}")
            proto = getattr(delta.new_element, kind)
            if msg.metadata.cacheable and msg.hash:
                self._cache[msg.hash] = (msg, self._run)
        elif which == "add_block":
            kind = f"block:{delta.add_block.WhichOneof('type')}"
            proto = delta.add_block
        elif which == "new_transient":
            return  # spinners and toasts: gone once the run ends
        else:
            raise ProtocolError(f"a delta of unknown type {which!r} at {path}")
        # The frontend keeps a widget's value while the widget (its id) stays on
        # the page; the server overrides it only with set_value.
        if kind in VALUE_WIDGETS and proto.id and (proto.set_value or proto.id not in self.values):
            self.values[proto.id] = initial_value(kind, proto)
        self.nodes[path] = Node(path, kind, proto, delta.fragment_id, self._run)

    def _finish(
        self, status: int, fragments_run: Sequence[str], not_found: bool, t0: float, count: int
    ) -> RunResult:
        run = self._run
        if status == ForwardMsg.FINISHED_SUCCESSFULLY:
            # The frontend drops what the run did not write again (stale elements).
            self.nodes = {p: n for p, n in self.nodes.items() if n.run == run}
            live = {n.proto.id for n in self.nodes.values() if n.kind in VALUE_WIDGETS}
            self.values = {k: v for k, v in self.values.items() if k in live}
            self._cache = {h: c for h, c in self._cache.items() if run - c[1] < CACHE_MAX_AGE}
            name = "finished"
        elif status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            name = "fragment_finished"
        elif status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            name = "compile_error"
        else:
            raise ProtocolError(f"script_finished with unknown status {status}")
        if name == "fragment_finished":
            # A fragment run replaces what that fragment drew, and only that.
            self.nodes = {
                p: n
                for p, n in self.nodes.items()
                if n.run == run or n.fragment_id not in fragments_run
            }
        nodes = tuple(sorted(self.nodes.values(), key=lambda n: n.path))
        return RunResult(
            name,
            nodes,
            tuple(self.widgets()),
            self.page_hash,
            self.pages,
            not_found,
            time.monotonic() - t0,
            count,
            tuple(self.fragments),
        )


__all__ = [
    "ConnectionLost",
    "Node",
    "Page",
    "ProtocolError",
    "RunResult",
    "RunTimeout",
    "Session",
    "Widget",
    "encode_value",
    "find_widget",
    "trace_length",
]
